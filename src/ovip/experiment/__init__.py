"""`ovip experiment`: methods x seeds x evaluation, resumable cell by cell, written as the paper's tables."""
