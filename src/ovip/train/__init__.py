"""Training: the online loop (loop.py, Algorithm 1), its objective, checkpoints, setup from a Config."""
