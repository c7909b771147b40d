"""Data: loaders for the real formats (ovip jsonl, LLaMA-Factory sharegpt, RLAIF-V parquet, TRL) and the check."""

from ovip.data.check import CheckReport, check_examples
from ovip.data.images import load_image
from ovip.data.load import detect_format, load_examples

__all__ = ["CheckReport", "check_examples", "detect_format", "load_examples", "load_image"]
