"""Negative images I-: diffusers text-to-image, crop and random-sample alternatives, and the content-addressed store."""
