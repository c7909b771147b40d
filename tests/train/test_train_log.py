"""`ovip train ... > log.txt 2>&1` leaves a readable log: progress as lines, no carriage-return redraws."""

import json
import subprocess
import sys


def test_train_into_a_file_writes_lines_not_bars(tiny_world, tmp_path):
    root, recipe, environ = tiny_world
    run, log = tmp_path / "run", tmp_path / "log.txt"
    # ovip.logs.setup sets this when stderr is not a terminal; an in-process CLI call earlier in the session
    # would hand it to this subprocess and hide what the subprocess does on its own
    environ = {k: v for k, v in environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    with open(log, "w") as f:  # stdout and stderr are a file, as with `> log.txt 2>&1`
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ovip.cli",
                "train",
                "--config",
                str(recipe),
                "--train.output_dir",
                str(run),
                "--train.max_examples",
                "4",
            ],
            env={**environ, "OVIP_PROGRESS_SECONDS": "0"},
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    raw = log.read_bytes()  # bytes: reading text would turn every "\r" into "\n"
    text = raw.decode()
    assert proc.returncode == 0, text[-3000:]
    assert (
        b"\r" not in raw
    )  # no tqdm redraws: not ovip's, nor those of transformers saving and loading weights
    progress = [line for line in text.splitlines() if " INFO ovip.progress: ovip: " in line]
    assert len(progress) >= 2  # one per batch of prompts (OVIP_PROGRESS_SECONDS=0) and one at the end
    assert progress[0].endswith("ovip: 0/4 prompt (0%), 0:00:00 elapsed")
    assert "ovip: 4/4 prompt (100%)" in progress[-1] and "step=" in progress[-1]
    summary = json.loads(text[text.index("{\n") : text.rindex("}") + 1])  # the summary printed on stdout
    assert summary["prompts"] == 4
    train_log = (run / "train.log").read_bytes().decode()
    assert "\r" not in train_log and "ovip.train.loop: run folder" in train_log
    assert "ovip: 4/4 prompt (100%)" in train_log


def test_the_console_shows_the_first_service_error_of_each_kind_and_train_log_all(tiny_world, tmp_path):
    """A tiny-world `ovip train` at the default log level against a judge served over HTTP that answers one in
    three of its prompts with HTTP 500 and another one in three with a reply that is no score: the console
    (stderr) shows each kind once, RUN_DIR/train.log shows every failed call."""
    import hashlib

    import yaml
    from conftest import http_services

    from ovip.feedback.serve import world_reply
    from ovip.services.chat_server import make_app, serve_in_thread
    from ovip.train.preflight import PROBE_QUERY

    root, recipe, environ = tiny_world
    world = world_reply()

    def reply(messages, params):
        text = messages[0]["content"]
        if "# Correct answer" in text and PROBE_QUERY not in text:  # a judge prompt, not the preflight's
            fault = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3
            if fault == 0:
                raise RuntimeError("injected")  # HTTP 500
            if fault == 1:
                return "Score: 7 out of 100"
        return world(messages, params)

    run = tmp_path / "run"
    with serve_in_thread(make_app(reply, model="world")) as chat_url:
        cfg = http_services(yaml.safe_load(recipe.read_text()), chat_url, "http://127.0.0.1:9/v1")
        cfg["negatives"] = {"kind": "world"}
        cfg["train"].update(output_dir=str(run), max_examples=6, max_failure_rate=1.0)
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(cfg))
        environ = {k: v for k, v in environ.items() if k != "OVIP_LOG_LEVEL"}  # the default level
        proc = subprocess.run(
            [sys.executable, "-m", "ovip.cli", "train", "--config", str(tmp_path / "recipe.yaml")],
            env=environ,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{\n") : proc.stdout.rindex("}") + 1])
    train_log = (run / "train.log").read_text()
    kinds = ("judge failed: HTTP 500", "judge failed: unparseable reply")
    in_file = [sum(line.count(kind) for line in train_log.splitlines()) for kind in kinds]
    on_console = [proc.stderr.count(kind) for kind in kinds]
    assert on_console == [1, 1], proc.stderr[-3000:]
    assert all(n >= 2 for n in in_file) and sum(in_file) == summary["judge/failures_total"]
