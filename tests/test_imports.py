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


# The packages from the bottom up; a module may import its own layer and the ones below it, never above.
LAYERS = (
    ("errors", "logs", "progress", "config", "records", "losses", "pairs", "buffer"),  # foundations
    ("services", "policy", "data"),  # transport, the policy model, data files
    ("eval",),  # benchmark metrics and scorers
    ("world",),  # the built-in world (its benchmarks use eval's metrics)
    ("feedback", "negatives", "eval_cli"),  # judges and describers, negative images, `ovip eval`
    ("train",),  # the online loop and its methods
    ("analysis", "export"),  # what reads run folders and models
    ("experiment", "report"),  # experiments, reports
    ("cli", "__main__", "__init__"),  # the command line
)
# Imports that run back up the layers, each with its reason (docs/architecture.md).
UPWARD: dict[tuple[str, str], str] = {}


def _imports(path) -> set[str]:
    """Every `ovip.*` module `path` imports, function-level imports included."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ovip")}
        elif isinstance(node, ast.ImportFrom) and node.module == "ovip":  # from ovip import losses
            found |= {f"ovip.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ovip."):
            found.add(node.module)
    return found


def test_imports_run_down_the_layers():
    from pathlib import Path

    root = Path(ovip.__file__).parent
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    top = lambda module: module.split(".")[1] if "." in module else "__init__"  # noqa: E731
    upward = []
    for path in root.rglob("*.py"):
        here = top("ovip." + ".".join(path.relative_to(root).with_suffix("").parts))
        assert here in layer, f"{path}: its package is in no layer of LAYERS"
        for module in _imports(path):
            there = top(module)
            if layer[there] > layer[here] and (here, there) not in UPWARD:
                upward.append(f"{path.relative_to(root)} -> {module}")
    assert not upward, "imports that run back up the layers:\n" + "\n".join(sorted(upward))
    assert len(UPWARD) <= 1


def test_no_import_circle():
    """No two modules import each other, directly or around a loop (function-level imports included)."""
    from pathlib import Path

    root = Path(ovip.__file__).parent
    name = lambda p: "ovip." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")  # noqa: E731
    graph = {name(p): set() for p in root.rglob("*.py")}
    for path in root.rglob("*.py"):
        for module in _imports(path):
            target = module if module in graph else module.rsplit(".", 1)[0]
            if target in graph and target != name(path) and not name(path).startswith(target + "."):
                graph[name(path)].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
