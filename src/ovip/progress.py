"""Progress: a tqdm bar on a terminal, a one-line log record every few seconds always.

A tqdm bar redraws itself with carriage returns; sent to a file (`ovip train > log.txt 2>&1`) that is one
endless line. So the bar is drawn only when stderr is a terminal. Besides, `Progress` logs a line such as

    ovip: 120/4000 prompt (3%), 0:00:41 elapsed, 2.9 prompt/s, 0:22:10 left; step=7 loss=0.681

to the `ovip.progress` logger at most every `$OVIP_PROGRESS_SECONDS` (default 30) and once at the end. On a
terminal the console handler drops these lines (the bar shows them, `ovip.logs.ConsoleHandler`); in a file they
are the progress, and RUN_DIR/train.log keeps them either way.
"""

from __future__ import annotations

import datetime
import logging
import os
import time

from tqdm import tqdm

from ovip.logs import interactive

log = logging.getLogger("ovip.progress")


def _seconds_between_lines() -> float:
    try:
        return max(0.0, float(os.environ.get("OVIP_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class Progress:
    """tqdm's interface as the package uses it: iterate, `update(n)`, `set_postfix(**kw)`, `close()`."""

    def __init__(
        self,
        iterable=None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.start_n, self.disable = initial, initial, disable
        self.postfix: dict[str, object] = {}
        self.every = _seconds_between_lines()
        self.start = self.last = time.monotonic()
        self.logged_n: int | None = None
        self.bar = None
        if not disable and interactive():
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        self.closed = False
        if not disable:
            self._log()

    def __iter__(self):
        if self.iterable is None:
            raise TypeError("Progress without an iterable is updated with update(n)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        if not self.disable and time.monotonic() - self.last >= self.every:
            self._log()

    def set_postfix(self, **values) -> None:
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        if not self.disable and self.logged_n != self.n:
            self._log()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total if self.total is not None else '?'} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{_clock(elapsed)} elapsed")
        if done:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total:
                parts.append(f"{_clock(max(0, self.total - self.n) / rate)} left")
        text = f"{self.desc}: " + ", ".join(parts)
        if self.postfix:
            text += "; " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text

    def _log(self) -> None:
        self.last, self.logged_n = time.monotonic(), self.n
        log.info(self.line(), extra={"progress": True})


def progress(iterable=None, **kwargs) -> Progress:
    """`Progress(iterable, ...)`: a drop-in for the `tqdm(...)` calls of this package."""
    return Progress(iterable, **kwargs)
