"""Every method computes what it computed when `golden_runs.json` was recorded (`tests/train/golden.py`).

The engine's structure may change; the numbers may not: the first optimizer steps' losses of every method
within 1e-6, the same numbers of steps and experiences, and a bit-identical final adapter. Float kernels differ
between CPUs, so the comparison runs on the machine kind the file was recorded on (CPU model, torch build, one
thread) and is skipped elsewhere, saying so; `python tests/train/golden.py --record` records it anew, which
only a change meant to alter a method's results may do (in its own commit)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_every_method_matches_its_golden_run(tmp_path):
    sys.path.insert(0, str(HERE))
    from golden import GOLDEN, METHODS, machine

    golden = json.loads(GOLDEN.read_text())
    here = {**machine(), "threads": 1}
    if here != golden["machine"]:
        pytest.skip(f"golden runs were recorded on {golden['machine']}, this is {here}: floats differ")
    out = tmp_path / "now.json"
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(HERE / "golden.py"), str(out)], env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    now = json.loads(out.read_text())
    assert now["machine"] == golden["machine"]
    assert set(now["methods"]) == set(golden["methods"]) == set(METHODS)
    for method, want in golden["methods"].items():
        got = now["methods"][method]
        assert (got["optimizer_steps"], got["experiences"]) == (
            want["optimizer_steps"],
            want["experiences"],
        ), method
        assert len(got["losses"]) == len(want["losses"]), method
        for step, (g, w) in enumerate(zip(got["losses"], want["losses"], strict=True)):
            assert set(g) == set(w), (method, step)
            for key in w:
                assert abs(g[key] - w[key]) <= 1e-6, (method, step, key, g[key], w[key])
        assert got["adapter_sha256"] == want["adapter_sha256"], method
