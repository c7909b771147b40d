"""The package's layering: evaluation and the built-in world never import training (the loop, its setup)."""

import pkgutil
import subprocess
import sys

import ovip


def modules(package: str) -> list[str]:
    pkg = __import__(f"ovip.{package}", fromlist=["_"])
    return [f"ovip.{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def test_eval_and_world_do_not_import_train():
    names = modules("eval") + modules("world") + ["ovip.eval_cli"]
    assert len(names) > 20, names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'ovip.train' or m.startswith('ovip.train.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"eval/world import training modules: {out.stdout}"
    assert ovip.__name__ == "ovip"


def test_no_lazy_import_of_train_either():
    """Function-level imports count too: no module of eval/ or world/ (nor the eval CLI) names ovip.train."""
    from pathlib import Path

    root = Path(ovip.__file__).parent
    files = [*(root / "eval").glob("*.py"), *(root / "world").glob("*.py"), root / "eval_cli.py"]
    offenders = [str(f.relative_to(root)) for f in files if "ovip.train" in f.read_text()]
    assert not offenders, offenders


def test_no_import_circle_between_training_experiments_and_the_report():
    """The report reads what training and experiments write (files) and imports neither the experiment runner
    nor the quickstart; training imports no report (the quickstart, which ends with a report, is an
    experiment: ovip.experiment.quickstart). The report may read training's constants (`train.timers`)."""
    from pathlib import Path

    root = Path(ovip.__file__).parent
    train = [f for f in (root / "train").glob("*.py") if "ovip.report" in f.read_text()]
    report = [f for f in (root / "report").glob("*.py") if "ovip.experiment" in f.read_text()]
    report += [f for f in (root / "report").glob("*.py") if "ovip.train.quickstart" in f.read_text()]
    assert not train and not report, [str(f.relative_to(root)) for f in train + report]
    assert not (root / "train" / "quickstart.py").exists()
