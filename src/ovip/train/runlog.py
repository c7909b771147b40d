"""RUN_DIR/train.log: everything the `ovip` loggers say during a run, every service error included.

The file is written by `ovip.logs.log_file` (the one way ovip writes a log file; `ovip train` already holds it
open around the whole run, and a run started from the library opens it here). The console shows warnings and
errors (the first service error of each kind, a stop) when no other handler does. Both are removed when the
run ends, so in-process runs (tests) do not pile up handlers.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ovip.logs import ROOT, ConsoleHandler, log_file


@contextlib.contextmanager
def run_log(run_dir: Path, name: str = "train.log"):
    """Attach train.log (unless it is attached already) and, when nothing shows warnings, a console."""
    logger = logging.getLogger(ROOT)
    path = str((Path(run_dir) / name).resolve())
    with contextlib.ExitStack() as stack:
        if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            stack.enter_context(log_file(path))
        # A console already there (the command line's ConsoleHandler, a caller's stream) shows the warnings:
        # a second one would print each twice. File handlers are StreamHandlers too, hence the exact type.
        shown = [
            h for h in logger.handlers + logging.getLogger().handlers if type(h) is logging.StreamHandler
        ]
        if not shown and not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
            console = logging.StreamHandler()  # stderr
            console.setLevel(logging.WARNING)
            console.setFormatter(logging.Formatter("ovip: %(message)s"))
            # A stop is logged for train.log and raised for the caller, who prints it: not twice on screen.
            console.addFilter(lambda record: getattr(record, "console", True))
            logger.addHandler(console)
            stack.callback(logger.removeHandler, console)
        yield
