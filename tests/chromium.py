"""Headless Chromium over the Chrome DevTools Protocol on a pipe: open a page, collect its console errors,
query its DOM, take a screenshot. Needs only the browser binary (Debian's `chromium`), no WebDriver.

With `--remote-debugging-pipe` the browser reads commands from its file descriptor 3 and writes replies and
events to its descriptor 4, each a JSON object followed by a NUL byte (the protocol is documented at
chromedevtools.github.io/devtools-protocol). Errors collected: uncaught exceptions (`Runtime.exceptionThrown`),
`console.error` / `console.assert` calls (`Runtime.consoleAPICalled`) and the browser's own error entries
such as failed loads (`Log.entryAdded`).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """Chromium is missing, died, timed out or answered a command with an error."""


def find_chromium() -> str:
    """`$OVIP_CHROMIUM`, or the first of CANDIDATES on PATH; FileNotFoundError if none."""
    if os.environ.get("OVIP_CHROMIUM"):
        return os.environ["OVIP_CHROMIUM"]
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("no Chromium on PATH (Debian: apt-get install chromium; or set OVIP_CHROMIUM)")


class Chromium:
    """A headless browser process; use as a context manager. `open(path)` returns a `Page`."""

    def __init__(
        self, width: int = 1280, height: int = 900, timeout: float = 60.0, binary: str | None = None
    ):
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.TemporaryDirectory(prefix="ovip-chromium-")
        commands_r, self._commands_w = os.pipe()
        self._events_r, events_w = os.pipe()

        def pipes_at_3_and_4():  # in the child, before exec: the protocol's descriptors
            a, b = fcntl.fcntl(commands_r, fcntl.F_DUPFD, 10), fcntl.fcntl(events_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.stderr = open(Path(self.profile.name) / "stderr.log", "w+b")  # noqa: SIM115 (closed in close())
        args = [
            binary or find_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile.name}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        # close_fds=False: the pipes moved to 3 and 4 must survive; Python's own descriptors are not inheritable
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            close_fds=False,
            preexec_fn=pipes_at_3_and_4,
        )
        os.close(commands_r)
        os.close(events_w)
        self._next_id = 0
        self._inbox: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._events_r, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self._inbox.put(json.loads(m))
        self._inbox.put(None)  # the browser closed its end

    def _receive(self, deadline: float) -> dict:
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise BrowserError(f"Chromium did not answer within {self.timeout} s") from None
        if message is None:
            raise BrowserError(f"Chromium exited: {self.stderr_tail()}")
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept for `wait_event`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") != self._next_id:
                self._events.append(reply)
                continue
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self._events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event.get("params", {})
            seen = len(self._events)
            self._events.append(self._receive(deadline))

    def events(self, session: str) -> list[dict]:
        return [e for e in self._events if e.get("sessionId") == session]

    def open(self, path: str | Path) -> Page:
        """Load a file (or URL) in a new tab and wait for its load event."""
        url = Path(path).resolve().as_uri() if "://" not in str(path) else str(path)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.call("Page.navigate", {"url": url}, session)
        self.wait_event("Page.loadEventFired", session)
        return Page(self, session)

    def stderr_tail(self, n: int = 2000) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("Browser.close")
            except BrowserError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._commands_w, self._events_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stderr.close()
        self.profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited); a thrown error is a BrowserError."""
        reply = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression[:80]!r} threw: {reply['exceptionDetails']}")
        return reply.get("result", {}).get("value")

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions of this page so far, as text."""
        out = []
        for event in self.browser.events(self.session):
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append(
                    "Uncaught " + (details.get("exception", {}).get("description") or details.get("text", ""))
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(
                    "console.error: "
                    + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                )
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        return out

    def screenshot(
        self,
        path: str | Path,
        full_page: bool = False,
        max_height: int | None = None,
        start: str | None = None,
    ) -> Path:
        """A PNG of the viewport, or of the whole page (cut at `max_height` CSS pixels), or of the page from the
        top of the element that the CSS selector `start` finds."""
        params: dict = {"format": "png"}
        if full_page or max_height or start:
            size = self.browser.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
            top = 0.0
            if start:
                top = self.evaluate(
                    f"(() => {{ const e = document.querySelector({json.dumps(start)}); "
                    "return e ? e.getBoundingClientRect().top + window.scrollY : null; })()"
                )
                if top is None:
                    raise BrowserError(f"no element matches {start!r}")
            rest = size["height"] - top
            height = (
                min(rest, max_height) if max_height else rest if full_page else min(rest, self.browser.height)
            )
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": top, "width": size["width"], "height": height, "scale": 1},
            )
        data = self.browser.call("Page.captureScreenshot", params, self.session)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
