"""Evaluation: benchmark metrics (metrics.py), benchmark scorers and analyses."""
