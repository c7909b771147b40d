"""RUN_DIR/train.log: everything the `ovip` loggers say during a run, every service error included.

The console shows warnings and errors (the first service error of each kind, a stop) when no other handler
does; the file keeps INFO and above. Both are removed when the run ends, so in-process runs (tests) do not
pile up handlers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ovip.logs import ConsoleHandler


class RunLog:
    """`with RunLog(run_dir):` attaches the handlers for the duration of a run."""

    def __init__(self, run_dir: Path, name: str = "train.log"):
        self.path = str((Path(run_dir) / name).resolve())
        self.logger = logging.getLogger("ovip")
        self.added: list[logging.Handler] = []
        self.level = logging.NOTSET

    def __enter__(self) -> RunLog:
        handlers = self.logger.handlers
        if not any(getattr(h, "baseFilename", None) == self.path for h in handlers):
            file = logging.FileHandler(self.path, encoding="utf-8")
            file.setLevel(logging.INFO)
            file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            self.added.append(file)
        # A console already there (the command line's ConsoleHandler, a caller's stream) shows the warnings:
        # a second one would print each twice. File handlers are StreamHandlers too, hence the exact type.
        shown = [h for h in handlers + logging.getLogger().handlers if type(h) is logging.StreamHandler]
        if not shown and not any(isinstance(h, ConsoleHandler) for h in handlers):
            console = logging.StreamHandler()  # stderr
            console.setLevel(logging.WARNING)
            console.setFormatter(logging.Formatter("ovip: %(message)s"))
            # A stop is logged for train.log and raised for the caller, who prints it: not twice on screen.
            console.addFilter(lambda record: getattr(record, "console", True))
            self.added.append(console)
        for handler in self.added:
            self.logger.addHandler(handler)
        self.level = self.logger.level
        if self.level == logging.NOTSET or self.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.setLevel(self.level)
        for handler in self.added:
            self.logger.removeHandler(handler)
            handler.close()
        self.added.clear()
