"""Where a benchmark's files are inside `ovip eval --data DIR`: the layouts the benchmarks are released in.

Every lookup tries a short list of names relative to DIR and returns the first that exists; when none does,
the FileNotFoundError names them all. The accepted layouts (docs/evaluation.md has the full table):

  AMBER          the repository junyangwang0410/AMBER (DIR/data/annotations.json, DIR/data/relation.json,
                 DIR/data/safe_words.txt, DIR/data/query/query_*.json), its data/ folder, or all of those
                 files side by side; images in DIR/image/ or DIR/images/ (AMBER_1.jpg ...)
  CHAIR /        synonyms.txt (CHAIR) or synonyms_refine.txt (RLAIF-V); ground truth as ground_truth.json
  Object HalBench  ({image_id: [objects]}) or COCO 2014's annotations (DIR/annotations/instances_val2014.json,
                 captions_val2014.json, and the train2014 pair if present); questions in questions.jsonl or
                 the released obj_halbench_300_with_image.jsonl (base64 images inside)
  MMHal-Bench    response_template.json (the HF dataset) or mmhal-bench_answer_template.json (the git copy);
                 images/ named by each record's image_src
  LLaVA-Bench    questions.jsonl, context.jsonl, answers_gpt4.jsonl and images/ (the HF dataset as is)
"""

from __future__ import annotations

from pathlib import Path

AMBER_ROOTS = (".", "data")
IMAGE_DIRS = ("images", "image")
SYNONYMS = {
    "chair": ("synonyms.txt", "synonyms_refine.txt"),
    "objecthal": ("synonyms_refine.txt", "synonyms.txt"),
}
OBJECTHAL_QUESTIONS = ("questions.jsonl", "obj_halbench_300_with_image.jsonl")
MMHAL_TEMPLATES = ("response_template.json", "mmhal-bench_answer_template.json")
COCO_FILES = (
    "instances_val2014.json",
    "captions_val2014.json",
    "instances_train2014.json",
    "captions_train2014.json",
)


def find(data_dir: str | Path, names, what: str) -> Path:
    """The first of `names` (relative to `data_dir`) that exists; else FileNotFoundError naming them all."""
    found = optional(data_dir, names)
    if found is None:
        tried = ", ".join(str(Path(data_dir) / n) for n in names)
        raise FileNotFoundError(f"{what}: none of {tried} exists (layouts: docs/evaluation.md)")
    return found


def optional(data_dir: str | Path, names) -> Path | None:
    for name in names:
        path = Path(data_dir) / name
        if path.exists():
            return path
    return None


def amber_root(data_dir: str | Path) -> Path:
    """The folder that holds AMBER's annotations.json, relation.json and safe_words.txt."""
    return find(data_dir, [f"{r}/annotations.json" for r in AMBER_ROOTS], "AMBER's annotations.json").parent


def amber_query(data_dir: str | Path, task: str) -> Path | None:
    """AMBER's query_generative.json / query_discriminative.json, beside the annotations or in query/."""
    names = [f"{r}/{q}query_{task}.json" for r in AMBER_ROOTS for q in ("", "query/")]
    return optional(data_dir, names)


def images_dir(data_dir: str | Path, override: str | Path | None = None) -> Path:
    """`override` (`--images`) if given, else DIR/images or DIR/image (AMBER's folder name); DIR/images if
    neither exists, so that a missing image is reported under the usual name."""
    if override is not None:
        return Path(override)
    return optional(data_dir, IMAGE_DIRS) or Path(data_dir) / "images"


def synonyms(data_dir: str | Path, benchmark: str) -> Path:
    return find(data_dir, SYNONYMS[benchmark], "the COCO synonym list")


def objecthal_questions(data_dir: str | Path) -> Path | None:
    return optional(data_dir, OBJECTHAL_QUESTIONS)


def coco_annotations(data_dir: str | Path) -> list[Path]:
    """COCO 2014 instance/caption files found in DIR/annotations/ or DIR/ (the official zip's layout)."""
    return [p for name in COCO_FILES if (p := optional(data_dir, (f"annotations/{name}", name))) is not None]


def mmhal_template(data_dir: str | Path) -> Path:
    return find(data_dir, MMHAL_TEMPLATES, "MMHal-Bench's 96-record template")
