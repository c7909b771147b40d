"""One logger for the whole package: `ovip` (modules log to `ovip.<module>` and propagate to it).

The command line configures it once (`setup`): one handler on stderr, level from `--log-level` or
`$OVIP_LOG_LEVEL` (default INFO). A library caller configures logging as it likes; nothing here runs on import.
During training `log_file` adds RUN_DIR/train.log, which keeps INFO lines (progress included) whatever the
console level is.

Progress lines (`ovip.progress`) carry `record.progress = True`: on a terminal the console handler drops them,
because a tqdm bar shows the same thing; in a file (`ovip train > log.txt 2>&1`) they are the progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

ROOT = "ovip"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def interactive() -> bool:
    """Whether stderr is a terminal: progress bars draw there; elsewhere progress is logged as lines."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class ConsoleHandler(logging.Handler):
    """Writes to the current sys.stderr through `tqdm.write`, so a line does not tear a bar being drawn.

    A record logged with `extra={"console": False}` is for the log files only (a service error after the first
    of its kind, a stop message that the caller prints itself)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "console", True):
            return
        if getattr(record, "progress", False) and interactive():
            return  # the bar shows it
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never take the program down
            self.handleError(record)


def parse_level(level: str | int | None) -> int:
    """A level name (any case) or number; None reads $OVIP_LOG_LEVEL, then INFO. A bad name is a ValueError."""
    if level is None:
        level = os.environ.get("OVIP_LOG_LEVEL") or "INFO"
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)} (any case), got {level!r}")
    return getattr(logging, name)


def quiet_library_bars() -> None:
    """Turn off the tqdm bars that Hugging Face libraries draw themselves (transformers loading and saving
    weights, hub downloads): off a terminal they are carriage-return floods too. The environment variable covers
    the libraries not imported yet, the calls those already imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def setup(level: str | int | None = None) -> logging.Logger:
    """Configure the `ovip` logger for a command-line run (idempotent: a second call replaces the handler).
    Off a terminal, the libraries' own progress bars are turned off (`quiet_library_bars`)."""
    if not interactive():
        quiet_library_bars()
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    handler.setLevel(parse_level(level))
    logger.addHandler(handler)
    # The logger lets INFO through even when the console shows less: RUN_DIR/train.log keeps INFO lines.
    logger.setLevel(min(handler.level, logging.INFO))
    return logger


@contextlib.contextmanager
def log_file(path: str | Path, level: int = logging.INFO):
    """Append the `ovip` logger's records of at least `level` to `path` while the block runs."""
    logger = logging.getLogger(ROOT)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.setLevel(level)
    previous = logger.level
    if logger.getEffectiveLevel() > level:  # a library caller that did not configure logging
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)
