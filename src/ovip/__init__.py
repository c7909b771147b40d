"""ovip: online vision-language preference learning (OViP) against VLM hallucination."""

__version__ = "0.1.0"
