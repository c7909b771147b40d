"""One `ovip` logger: console level, RUN_DIR/train.log, progress lines off a terminal, a bar on one."""

import fcntl
import logging
import os
import struct
import subprocess
import sys
import termios

import pytest

from ovip import logs
from ovip.progress import Progress


@pytest.fixture
def ovip_logger():
    logger = logging.getLogger("ovip")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_console_level_and_train_log(ovip_logger, tmp_path, capsys):
    logs.setup("warning")
    with logs.log_file(tmp_path / "train.log"):
        logging.getLogger("ovip.some.module").info("an info line")
        logging.getLogger("ovip.some.module").warning("a warning")
    logging.getLogger("ovip.some.module").info("after the run")
    err = capsys.readouterr().err
    assert "a warning" in err and "an info line" not in err
    text = (tmp_path / "train.log").read_text()
    assert (
        "INFO ovip.some.module: an info line" in text and "a warning" in text and "after the run" not in text
    )
    logs.setup("warning")  # again: one console handler, not two
    assert sum(isinstance(h, logs.ConsoleHandler) for h in ovip_logger.handlers) == 1


def test_log_level_from_the_environment_and_bad_names(monkeypatch):
    monkeypatch.setenv("OVIP_LOG_LEVEL", "debug")
    assert logs.parse_level(None) == logging.DEBUG
    monkeypatch.delenv("OVIP_LOG_LEVEL")
    assert logs.parse_level(None) == logging.INFO
    with pytest.raises(ValueError, match="log level must be one of"):
        logs.parse_level("loud")
    from ovip.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", "nowhere", "--log-level", "loud"])
    assert e.value.code == 2


def test_progress_lines_when_not_a_terminal(ovip_logger, monkeypatch, capsys):
    logs.setup("info")
    monkeypatch.setenv("OVIP_PROGRESS_SECONDS", "0")
    bar = Progress(total=4, desc="demo", unit="prompt")
    for _ in range(2):
        bar.update(2)
    bar.set_postfix(step=3, loss="0.5")
    bar.close()
    lines = [x for x in capsys.readouterr().err.splitlines() if "ovip.progress" in x]
    assert [x.split("ovip.progress: ")[1].split(",")[0] for x in lines] == [
        "demo: 0/4 prompt (0%)",
        "demo: 2/4 prompt (50%)",
        "demo: 4/4 prompt (100%)",
    ]
    monkeypatch.setenv("OVIP_PROGRESS_SECONDS", "3600")  # the default is 30 s: a start and an end line
    list(Progress(range(50), desc="quiet"))
    err = capsys.readouterr().err
    assert err.count("quiet:") == 2 and "quiet: 50/50 it (100%)" in err and "\r" not in err


def test_a_terminal_gets_a_bar_and_no_progress_lines():
    main_fd, child_fd = os.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    code = (
        "from ovip import logs; from ovip.progress import Progress\n"
        "logs.setup('info')\n"
        "for _ in Progress(range(3), desc='demo'): pass\n"
    )
    env = {**os.environ, "OVIP_PROGRESS_SECONDS": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], stdout=child_fd, stderr=child_fd, env=env, timeout=120
    )
    os.close(child_fd)
    out = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO once the terminal's other end is closed and drained
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\r" in text and "demo" in text and "3/3" in text
    assert "ovip.progress" not in text  # the bar shows progress; log lines would repeat it
