"""The questions a model answers for a benchmark: `load_items(benchmark, data_dir) -> [Item]`.

Generation reads the same data folder that scoring (`ovip.eval.run`) reads, plus an `images/` folder:

  amber_gen / amber_dis  query_generative.json / query_discriminative.json  [{"id", "image", "query"}]
                         (AMBER's data/query files); images/AMBER_<n>.jpg
  chair / objecthal      questions.jsonl  {"id", "question", "image"} (image: a file name under images/,
                         e.g. COCO_val2014_000000000042.jpg); ids are the keys of ground_truth.json
  mmhal                  response_template.json; images/ holds the files named by each record's image_src
                         (as `huggingface-cli download Shengcao1006/MMHal-Bench` lays them out); ids 0..95
  llava_bench            questions.jsonl {"question_id", "image", "text"}; images/001.jpg ... 024.jpg
  textvqa / realworldqa  questions.jsonl, one item per line:
  mmstar / cvbench         {"id", "question", "image", "answer" | "answers", ["category"], ["source"]}
                         and images/<image>. "question" is the prompt exactly as the model sees it (options
                         and answer instruction included, as LLaVA's eval prompts write them); "answers" is
                         TextVQA's list of (10) human answers, "answer" the others' reference (an option
                         letter for MMStar / CV-Bench, "(B)" or "B"); "source" (ADE20K, COCO or Omni3D) is
                         required by CV-Bench, "category" optional (MMStar per-category accuracy)

`expected_ids` gives the ids a complete responses file holds (used to report partial files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ovip.eval import amber

GENERAL = ("textvqa", "realworldqa", "mmstar", "cvbench")  # general capability: questions.jsonl + images/

@dataclass(frozen=True)
class Item:
    """One benchmark question: `id` exactly as the responses file stores it, `image` the file to show."""

    id: int | str
    image: Path
    query: str


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {what} (see the layout in `ovip.eval.items`)")
    return path


def load_items(benchmark: str, data_dir: str | Path) -> list[Item]:
    """Every question of `benchmark` under `data_dir`, in the benchmark's order. Images are not opened."""
    data_dir = Path(data_dir)
    images = data_dir / "images"
    if benchmark in ("amber_gen", "amber_dis"):
        task = "generative" if benchmark == "amber_gen" else "discriminative"
        _need(data_dir / f"query_{task}.json", "AMBER's query file, which names each id's image and question")
        return [Item(q["id"], images / q["image"], q["query"]) for q in amber.load_queries(data_dir, task)]
    if benchmark in ("chair", "objecthal") or benchmark in GENERAL:
        path = _need(data_dir / "questions.jsonl", 'one {"id", "question", "image"} per line')
        records = _jsonl(path)
        no_image = [r.get("id") for r in records if "image" not in r]
        if no_image:
            raise ValueError(f"{path}: {len(no_image)} questions have no 'image' file name (ids: {_head(no_image)})")
        return [Item(r["id"], images / r["image"], r["question"]) for r in records]
    if benchmark == "mmhal":
        path = _need(data_dir / "response_template.json", "MMHal-Bench's 96 records")
        records = json.loads(path.read_text(encoding="utf-8"))
        return [Item(i, images / r["image_src"].rsplit("/", 1)[-1], r["question"]) for i, r in enumerate(records)]
    if benchmark == "llava_bench":
        path = _need(data_dir / "questions.jsonl", "LLaVA-Bench's 60 questions")
        return [Item(q["question_id"], images / q["image"], q["text"]) for q in _jsonl(path)]
    raise ValueError(f"no question loader for benchmark {benchmark!r}")


def check_images(items: list[Item]) -> None:
    """Raise FileNotFoundError naming the ids whose image file is absent."""
    missing = [it for it in items if not it.image.is_file()]
    if missing:
        folder = missing[0].image.parent
        raise FileNotFoundError(f"{len(missing)} of {len(items)} images are missing under {folder} "
                                f"(ids: {_head([it.id for it in missing])})")


def expected_ids(benchmark: str, data_dir: str | Path) -> list[str]:
    """The ids (as strings) a complete responses file answers; the same sources `evaluate_responses` uses."""
    data_dir = Path(data_dir)
    if benchmark in ("amber_gen", "amber_dis"):
        task = "generative" if benchmark == "amber_gen" else "discriminative"
        if (data_dir / f"query_{task}.json").exists():
            return [str(q["id"]) for q in amber.load_queries(data_dir, task)]
        data = amber.load_amber(data_dir)
        return [str(e["id"]) for e in data.annotations if (e["type"] == "generative") == (task == "generative")]
    if benchmark in ("chair", "objecthal"):
        return list(json.loads((data_dir / "ground_truth.json").read_text(encoding="utf-8")))
    if benchmark == "mmhal":
        return [str(i) for i in range(len(json.loads((data_dir / "response_template.json").read_text())))]
    if benchmark == "llava_bench":
        return [str(q["question_id"]) for q in _jsonl(data_dir / "questions.jsonl")]
    if benchmark in GENERAL:
        return [str(q["id"]) for q in _jsonl(_need(data_dir / "questions.jsonl", 'one {"id", ...} per line'))]
    raise ValueError(f"unknown benchmark {benchmark!r}")


def _head(ids: list, show: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:show])
    return shown + (f", ... ({len(ids) - show} more)" if len(ids) > show else "")
