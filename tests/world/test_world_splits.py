"""Splits are reproducible from the world seed, written in the standard format, and read back."""

import hashlib
import json
from pathlib import Path

from ovip.config.world import EVAL_SPLITS, WorldConfig
from ovip.world.build import build_world
from ovip.world.splits import load_split, make_split, write_split

SMALL = WorldConfig(pretrain_size=6, preference_size=8, eval_sizes={s: 5 for s in EVAL_SPLITS})


def digest(folder):
    h = hashlib.sha256((folder / "data.jsonl").read_bytes())
    for png in sorted((folder / "images").iterdir()):
        h.update(png.name.encode() + png.read_bytes())
    return h.hexdigest()


def test_splits_are_deterministic_under_a_seed(tmp_path):
    a = write_split(SMALL, "amber_gen", tmp_path / "a")
    b = write_split(SMALL, "amber_gen", tmp_path / "b")
    assert digest(a) == digest(b)
    c = write_split(WorldConfig(seed=1, eval_sizes={"amber_gen": 5}), "amber_gen", tmp_path / "c")
    assert digest(a) != digest(c)
    assert [e.reference for e in make_split(SMALL, "pretrain")] == [
        e.reference for e in make_split(SMALL, "pretrain")
    ]


def test_split_files_follow_the_format(tmp_path):
    folders = build_world(tmp_path, SMALL)
    assert set(folders) == {"pretrain", "preference", *EVAL_SPLITS}
    for name, folder in folders.items():
        lines = [json.loads(x) for x in (folder / "data.jsonl").read_text().splitlines()]
        assert lines, name
        for r in lines:
            assert set(r) == {"id", "image", "query", "reference", "task", "scene"}
            assert r["image"].startswith("images/") and (folder / r["image"]).exists()
            assert r["task"] in ("describe", "exist", "attribute", "color", "count", "relation")
        meta = json.loads((folder / "split.json").read_text())
        assert meta["split"] == name and meta["size"] == len(lines)
    assert len((folders["pretrain"] / "data.jsonl").read_text().splitlines()) == 6 * (
        1 + SMALL.pretrain_qa_per_scene
    )
    assert {
        json.loads(x)["task"] for x in (folders["amber_gen"] / "data.jsonl").read_text().splitlines()
    } == {"describe"}
    examples, meta = load_split(folders["general"])
    assert len(examples) == 5 and examples[0].image.size == (64, 64)
    assert examples[0].meta["task"] != "describe" and "groups" in examples[0].meta["scene"]


def test_build_world_reuses_current_splits(tmp_path):
    folders = build_world(tmp_path, SMALL, splits=["mmhal"])
    stamp = (folders["mmhal"] / "data.jsonl").stat().st_mtime_ns
    build_world(tmp_path, SMALL, splits=["mmhal"])
    assert (folders["mmhal"] / "data.jsonl").stat().st_mtime_ns == stamp
    bigger = WorldConfig(pretrain_size=6, preference_size=8, eval_sizes={**SMALL.eval_sizes, "mmhal": 7})
    build_world(tmp_path, bigger, splits=["mmhal"])
    assert len((folders["mmhal"] / "data.jsonl").read_text().splitlines()) == 7


def test_evaluation_splits_never_reuse_a_training_scene():
    cfg = WorldConfig(pretrain_size=300, preference_size=300, eval_sizes={s: 100 for s in EVAL_SPLITS})
    train = {e.image_seed for s in ("pretrain", "preference") for e in make_split(cfg, s)}
    evals = {e.image_seed for s in EVAL_SPLITS for e in make_split(cfg, s)}
    assert train and evals and not train & evals


def _write_amber_gen(out_dir):
    write_split(WorldConfig(eval_sizes={"amber_gen": 40}), "amber_gen", out_dir)


def test_processes_writing_the_same_split_at_once_leave_whole_files(tmp_path):
    """Two evaluations sharing a cache build the same split at the same moment: every file is renamed into place
    whole, so both finish and no temporary file is left behind."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_amber_gen, args=(tmp_path,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    folder = tmp_path / "amber_gen"
    assert not [f for f in folder.rglob("*") if ".tmp" in f.name]
    examples, meta = load_split(folder)
    assert len(examples) == 40 and meta["size"] == 40
    assert all(Path(ex.image_path).exists() for ex in examples)
