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
