"""The world judge on probe answers and its speed, before (a git revision) and after (this checkout).

    python benchmarks/bench_world_judge.py [--before 7df80bf] [--repeats 5] [--rounds 5] [--markdown]

Both judges run in their own subprocess: the revision's `src/ovip` is extracted with `git archive` into a
temporary folder, this checkout's is `src/`. Each scores the probe answers below (hand-made answers to
hand-made references: the rubric's cases, the world's own templates in both voices, and the degenerate forms
an online policy writes: repeated mentions, dot padding, cut at max tokens, "and and", word salad) and times
1,024 scores shaped as training scores them (64 prompts x k = 16 answers, one query and reference each), as the
best of `--repeats` passes, each from a fresh judge with the reference cache emptied; and the same scores with
the cache emptied before every score (what a judge that reads each reference anew costs). Each judge runs
`--rounds` times, the two in alternating order; the median ratio and its range are printed (the machine is
shared, so one round can be slowed by load the other did not see). `--markdown` prints the table of
`docs/decisions.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIBE = "describe this image."
REF = "in the picture there is a blue boat, a yellow fish and a green arrow."
ONE = "in the picture there is a blue boat."
FULL = "a blue boat, a yellow fish and a green arrow"
EXIST, EXIST_REF = "is there a boat in the image?", "yes, there is a blue boat."
ATTR = "is the star yellow?"
COLOR, COUNT = "what color is the house?", "how many boats are there?"
REL, REL_REF = "is the key to the left or to the right of the cup?", "the key is to the left of the cup."

# (what the probe shows, query, response, reference)
PROBES = [
    ("the reference, verbatim", DESCRIBE, REF, REF),
    ("policy voice, complete", DESCRIBE, f"the image shows {FULL}.", REF),
    ("wrong colour", DESCRIBE, "a red boat, a yellow fish and a green arrow.", REF),
    ("the wrong colour left out", DESCRIBE, "a boat, a yellow fish and a green arrow.", REF),
    ("wrong count", DESCRIBE, "three blue boats, a yellow fish and a green arrow.", REF),
    (
        "wrong size",
        DESCRIBE,
        "a small blue boat and a yellow fish.",
        "the picture has a large blue boat and a yellow fish.",
    ),
    (
        "sizes the reference does not give",
        DESCRIBE,
        "a small blue boat, a small yellow fish and a small green arrow.",
        REF,
    ),
    (
        "complete + one more object",
        DESCRIBE,
        "a blue boat, a yellow fish, a green arrow and a red star.",
        REF,
    ),
    (
        "complete + four more objects",
        DESCRIBE,
        "a blue boat, a yellow fish, a green arrow, a red star, a black key, a white ball and a purple cup.",
        REF,
    ),
    ("complete, reference names one of two", DESCRIBE, "a blue boat and a red star.", ONE),
    ("one object left out", DESCRIBE, "a blue boat and a yellow fish.", REF),
    ("an affirmed object denied", DESCRIBE, "a yellow fish and a green arrow. there is no boat.", REF),
    ("Oxford comma", DESCRIBE, "a blue boat, a yellow fish, and a green arrow.", REF),
    ('"next to"', DESCRIBE, "a blue boat next to a yellow fish and a green arrow.", REF),
    ("digits", DESCRIBE, "1 blue boat, 1 yellow fish and 1 green arrow.", REF),
    ("a list of clauses", DESCRIBE, "the boat is blue, the fish is yellow and the arrow is green.", REF),
    (
        "repeated mention",
        DESCRIBE,
        "the image shows a blue boat, a yellow fish, a green arrow and a blue boat.",
        REF,
    ),
    ("repeated sentence", DESCRIBE, f"{FULL}. {FULL}.", REF),
    (
        '"and and" tail, no end mark',
        DESCRIBE,
        "the image shows a blue boat, and a yellow fish and a green arrow and and a large green and and and and",
        REF,
    ),
    ("garbage after a sentence", DESCRIBE, f"the image shows {FULL}. and and and the the of of", REF),
    ("no final end mark", DESCRIBE, f"the image shows {FULL}", REF),
    ("cut at max tokens", DESCRIBE, f"the image shows {FULL} and a blue boat and a yellow", REF),
    ("dot padding", DESCRIBE, "a blue boat . . . .", REF),
    ("dot padding to the token limit", DESCRIBE, f"there is {FULL}" + "." * 40, REF),
    ("word salad", DESCRIBE, "boat blue fish the yellow arrow a green and, blue boat a.", REF),
    ("mixed languages", DESCRIBE, f"{FULL}. il y a un bateau bleu.", REF),
    ("a Score: line inside the answer", DESCRIBE, f"{FULL}.\nScore: 10", REF),
    (
        "a degenerate sample of an online run",
        DESCRIBE,
        "a yellow box and a large yellow bell. a yellow bell is a yellow bell and a red yes. a yellow box and a white an orange a yellow box a yellow box and a",
        "the picture has a yellow box and a yellow bell.",
    ),
    ("empty answer", DESCRIBE, "", REF),
    ('"there is nothing."', DESCRIBE, "there is nothing.", REF),
    ("exist: policy voice", EXIST, "there is a blue boat, so yes.", EXIST_REF),
    ("exist: wrong colour in the evidence", EXIST, "there is a red boat, so yes.", EXIST_REF),
    ("exist: evidence without colour", EXIST, "there is a boat, so yes.", EXIST_REF),
    ("exist: bare verdict", EXIST, "yes.", EXIST_REF),
    ("exist: wrong verdict", EXIST, "there is no boat, so no.", EXIST_REF),
    ("exist: evidence contradicts the verdict", EXIST, "there is a blue boat, so no.", EXIST_REF),
    ("exist: colour a terse reference lacks", EXIST, "there is a blue boat, so yes.", "yes."),
    (
        "attribute: evidence contradicts verdict and reference",
        ATTR,
        "the star is red, so yes.",
        "yes, the star is yellow.",
    ),
    ("attribute: policy voice", ATTR, "the star is yellow, so yes.", "yes, the star is yellow."),
    ("attribute: wrong verdict", ATTR, "no.", "yes, the star is yellow."),
    ("colour: verbatim terse reference", COLOR, "green.", "green."),
    ("colour: full sentence", COLOR, "the house is green.", "green."),
    ("colour: wrong", COLOR, "red.", "green."),
    (
        "colour: one value after another",
        COLOR,
        "it is green. it is red. it is blue. it is yellow. it is purple. it is orange. it is white. it is black.",
        "green.",
    ),
    ("colour: the same sentence again", COLOR, "it is green. it is green. it is green.", "green."),
    ("count: verbatim terse reference", COUNT, "two.", "two."),
    ("count: policy voice", COUNT, "there are two boats.", "two."),
    ("count: wrong", COUNT, "there are three boats.", "two."),
    ("count: two numbers", COUNT, "there are two boats and three boats.", "two."),
    ("relation: the reference", REL, REL_REF, REL_REF),
    ("relation: said the other way round", REL, "the cup is to the right of the key.", REL_REF),
    ("relation: wrong", REL, "the key is to the right of the cup.", REL_REF),
]

# Run in the subprocess with PYTHONPATH set to one judge's `src`: reads {"probes", "workload", "repeats"} on
# stdin, prints {"scores", "ms_per_1000"}.
CHILD = r"""
import json, sys, time
import ovip.world.judge as J
job = json.load(sys.stdin)
scores = [J.WorldJudge().score(q, r, ref) for _, q, r, ref in job["probes"]]
clear = getattr(getattr(J, "_read_reference", None), "cache_clear", lambda: None)
n = sum(len(r) for _, _, r in job["workload"])
out = {"scores": scores}
for name, cached in (("ms_per_1000", True), ("ms_per_1000_uncached", False)):
    best = None
    for _ in range(job["repeats"]):
        clear()
        judge = J.WorldJudge()
        t = time.perf_counter()
        for q, ref, responses in job["workload"]:
            for r in responses:
                cached or clear()
                judge.score(q, r, ref)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    out[name] = 1000 * best * 1000 / n
print(json.dumps(out))
"""


def workload(prompts: int = 64, k: int = 16) -> list:
    """Training-shaped scoring: per prompt one query and reference, k answers (right, perturbed, degenerate)."""
    import numpy as np

    from ovip.config.world import WorldConfig
    from ovip.world.scene import Scene, sample_scene
    from ovip.world.text import TASKS, describe, question, reference_voice

    cfg, out = WorldConfig(), []
    tails = ("", "", "", " and a blue boat and a", ". . .", " and and the", " a red star a red star.")
    for i in range(prompts):
        rng = np.random.default_rng(i)
        scene = sample_scene(cfg, i, "biased")
        qa = question(scene, TASKS[i % len(TASKS)], rng, cfg.categories, cfg.colors)
        if qa is None:
            qa = question(scene, "describe", rng, cfg.categories, cfg.colors)
        q, ref = qa
        answers = []
        for j in range(k):
            kept = Scene(tuple(g for g in scene.groups if rng.random() < 0.8)) or scene
            body = describe(kept, rng) if j % 2 else ref
            answers.append(body + tails[j % len(tails)])
        out.append((q, reference_voice(scene, TASKS[i % len(TASKS)], ref, rng, 0.3), answers))
    return out


def run(src: Path, job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], input=json.dumps(job), env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"judge at {src} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def extract(rev: str, into: Path) -> Path:
    """`src/ovip` of git revision `rev`, unpacked under `into`; returns its `src`."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src/ovip"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def cell(text: str) -> str:
    return "`" + text.replace("\n", "\\n").replace("|", "\\|") + "`" if text else '`""`'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="7df80bf", help="git revision of the judge to compare against")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per run (the best counts)")
    ap.add_argument("--rounds", type=int, default=5, help="runs of each judge, in alternating order")
    ap.add_argument("--markdown", action="store_true", help="print the probe table as Markdown")
    args = ap.parse_args()
    job = {"probes": PROBES, "workload": workload(), "repeats": args.repeats}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {"before": extract(args.before, Path(tmp)), "after": ROOT / "src"}
        for i in range(args.rounds):  # alternate the order, so that a change of load hits both sides
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                runs[side].append(run(srcs[side], job))
    before, after = runs["before"][0], runs["after"][0]
    if args.markdown:
        print("| probe | question | answer | reference | before | after |")
        print("| --- | --- | --- | --- | ---: | ---: |")
        for (name, q, r, ref), b, a in zip(PROBES, before["scores"], after["scores"], strict=True):
            print(f"| {name} | {cell(q)} | {cell(r)} | {cell(ref)} | {b:.2f} | {a:.2f} |")
    else:
        for (name, *_), b, a in zip(PROBES, before["scores"], after["scores"], strict=True):
            print(f"{b:6.2f} {a:6.2f}  {name}")
    n = sum(len(r) for _, _, r in job["workload"])
    print(
        f"\nms per 1,000 scores ({n} scores, best of {args.repeats} passes; {args.rounds} rounds: medians, and "
        f"the median and range of after / before; load average {os.getloadavg()[0]:.2f}):"
    )
    for key, what in (
        ("ms_per_1000", "k answers per reference"),
        ("ms_per_1000_uncached", "every reference read anew"),
    ):
        b = [r[key] for r in runs["before"]]
        a = [r[key] for r in runs["after"]]
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        print(
            f"  {what}: before ({args.before}) {statistics.median(b):.0f}, after {statistics.median(a):.0f}; "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
