"""CHAIR (Rohrbach et al., 2018) and Object HalBench (RLHF-V / RLAIF-V, OViP variant) object matching.

Two ways to find the COCO objects a response mentions (Rohrbach et al., 2018, and Object HalBench as RLAIF-V evaluates it):

* `caption_objects` — the CHAIR caption parser: lowercase, tokenize, singularize, merge listed double
  words, drop "seat" next to "toilet", keep words of the synonym list, map to the canonical category.
* `extraction_messages` + `parse_extraction_reply` + `normalize_extracted` — Object HalBench's
  "GPT mode": an LLM lists the objects of the answer (one system message), each string is normalised
  and mapped to its category, deduplicated by extracted string per response.

Metrics come from `ovip.eval.metrics.object_metrics`: CHAIR_i (mention level), CHAIR_r (= Object
HalBench "Response Hall", over responses that mention >= 1 object), Hal (= original CHAIR_s over all
responses), recall and object F1 (Table 2's ObjectHal Chair_r and F1).

Ground truth is the union of an image's COCO instance categories and the objects the caption parser
finds in its reference captions (`coco_ground_truth`); COCO annotations are not shipped with ovip.
Deviations: `singularize` uses the `inflect` library (CHAIR used pattern.en's singularize, Object
HalBench WordNet's lemmatizer; neither ships its data on PyPI) and leaves the synonym list's own words as
they are ("bus", "scissors", "skis", "tennis"), so every COCO synonym is found in its plural form; pattern's
"glasses" -> "glas" quirk is not reproduced (the "wine glas" double word is kept, harmlessly). The LLM
mode's spaCy en_core_web_trf noun-chunk step is replaced by the caption parser run on each extracted string
(so "red car" -> car, but also "coffee cup" -> cup where RLAIF-V drops the chunk).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ovip.eval.metrics import ObjectMetrics, object_metrics

# Double words from chair.py, plus home plate / train track that Object HalBench adds.
_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate", "train track",
)  # fmt: skip
_ANIMALS = (
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "animal",
    "cub",
)


@dataclass(frozen=True)
class Synonyms:
    """The COCO synonym list: `canonical[word]` is the category of each synonym (first entry of its line).

    `double_words` maps two-word phrases to the word they count as: every listed double word and
    multi-word synonym to itself, "baby/adult <animal>" to the animal (so "baby" does not fire
    "person"), "passenger jet/train" to jet/train, "bow tie" to tie, "toilet seat" to toilet.
    """

    canonical: dict[str, str]
    double_words: dict[str, str]

    @cached_property
    def words(self) -> frozenset[str]:
        """Every word of the list and of its double words ("tennis" of "tennis racket"): left unsingularized."""
        return frozenset(w for phrase in (*self.canonical, *self.double_words) for w in phrase.split())


def parse_synonyms(text: str) -> Synonyms:
    """Parse synonyms.txt: one category per line, entries separated by ", ", canonical name first.

    Entries are split on ", " exactly, as chair.py does, so the two with a stray leading space
    (" motor bike", " cheesecake") never match; "motor bike" still matches through the double-word list.
    """
    canonical: dict[str, str] = {}
    for line in text.splitlines():
        entries = line.strip().split(", ")
        if entries and entries[0]:
            for entry in entries:
                canonical[entry] = entries[0]
    doubles = {w: w for w in _DOUBLE_WORDS}
    doubles.update({w: w for w in canonical if len(w.split(" ")) == 2 and not w.startswith(" ")})
    for animal in _ANIMALS:
        doubles[f"baby {animal}"] = doubles[f"adult {animal}"] = animal
    doubles.update(
        {
            "passenger jet": "jet",
            "passenger train": "train",
            "bow tie": "tie",
            "toilet seat": "toilet",
            "wine glas": "wine glass",
        }
    )
    return Synonyms(canonical, doubles)


def load_synonyms(path: str | Path) -> Synonyms:
    return parse_synonyms(Path(path).read_text(encoding="utf-8"))


@functools.cache
def _inflect():
    import inflect

    return inflect.engine()


_COMPOUND_TAILS = {"children": "child"}  # inflect knows "children" but not "grandchildren"


@functools.lru_cache(maxsize=65536)
def _singular(word: str) -> str:
    singular = _inflect().singular_noun(word)  # False when the word is not a plural noun
    if singular:
        return singular
    tail = next((t for t in _COMPOUND_TAILS if word.endswith(t)), None)
    return word[: -len(tail)] + _COMPOUND_TAILS[tail] if tail else word


def singularize(word: str, keep: frozenset[str] | set[str] = frozenset()) -> str:
    """The singular of a lowercase token: `inflect`'s singular_noun ("microwaves" -> "microwave", "stoves"
    -> "stove", "taxis" -> "taxi", "people" -> "person", "knives" -> "knife"), unless the word is in
    `keep`. inflect assumes its input is plural ("bus" -> "bu"), so words already in the synonym list
    (`Synonyms.words`: "bus", "glass", "scissors", "skis", "tennis") are kept as they are."""
    return word if word in keep or not word.isalpha() else _singular(word)


_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|[^\sa-z]")


def caption_objects(text: str, synonyms: Synonyms) -> tuple[list[str], list[str]]:
    """CHAIR's caption parser: (matched words, their canonical categories), duplicates kept."""
    words = [singularize(w, synonyms.words) for w in _WORD.findall(text.lower())]
    merged, i = [], 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        if pair in synonyms.double_words:
            merged.append(synonyms.double_words[pair])
            i += 2
        else:
            merged.append(words[i])
            i += 1
    if "toilet" in merged and "seat" in merged:  # a toilet seat is not a chair
        merged = [w for w in merged if w != "seat"]
    found = [w for w in merged if w in synonyms.canonical]
    return found, [synonyms.canonical[w] for w in found]


def coco_ground_truth(
    instances: Iterable[Mapping],
    captions: Iterable[Mapping],
    synonyms: Synonyms,
    image_ids: Iterable[int] | None = None,
) -> dict[int, set[str]]:
    """GT objects per image: COCO instance categories ∪ objects in the reference captions (§2.3).

    `instances` / `captions` are the loaded instances_*.json / captions_*.json dicts (train and val
    may be passed together); `image_ids` restricts the result to the evaluated images.
    """
    wanted = set(image_ids) if image_ids is not None else None
    truth: dict[int, set[str]] = {}
    for inst in instances:
        names = {c["id"]: c["name"] for c in inst["categories"]}
        for ann in inst["annotations"]:
            if wanted is None or ann["image_id"] in wanted:
                name = names[ann["category_id"]]
                truth.setdefault(ann["image_id"], set()).add(synonyms.canonical.get(name, name))
    for caps in captions:
        for ann in caps["annotations"]:
            if wanted is None or ann["image_id"] in wanted:
                truth.setdefault(ann["image_id"], set()).update(caption_objects(ann["caption"], synonyms)[1])
    return truth


# ---------------------------------------------------------------------------------------------------
# LLM extraction (Object HalBench "GPT mode"; OViP: gpt-4o-2024-05-13, temperature 0, max_tokens 512)
# ---------------------------------------------------------------------------------------------------

# The extraction prompt as published in the RLHF-V paper (Table 7) and used by RLAIF-V's
# eval_gpt_obj_halbench.py; its typos ("Please following") and the "()" for an empty list are kept.
EXTRACTION_PROMPT = """You are an expert in image objects extraction according to a question answer pair. \
We asked an examiner to answer a question about a picture.

[Start of Question]

<image> {question}

[End of Question]

[Start of Examiner's Answer]

{answer}

[End of Examiner's Answer]


Assume that the answer is correct, please identify all visible objects that are directly shown in the image. \
Please following the instructions in below:

1. You should only mention objects that are explicitly mentioned in the examiner's answer.
2. You should only extract the object names without the attributes of the objects.
3. You should not include the properties of the object, like the color, material, etc. as part of the object \
name in your result.
4. Make your answer precise. Present the results in a JSON list format: ["object_1", ..., "object_n"].
5. You should return an empty JSON list () if no visible objects can be found.
"""


def extraction_messages(question: str, answer: str) -> list[dict] | None:
    """The chat messages asking an LLM for the objects of one answer, or None when the answer has at most
    3 whitespace tokens (Object HalBench gives those an empty list without a call)."""
    answer = answer.replace("Assistant:", "").strip()
    if len(answer.split()) <= 3:
        return None
    return [{"role": "system", "content": EXTRACTION_PROMPT.format(question=question, answer=answer)}]


def parse_extraction_reply(reply: str | None) -> list[str] | None:
    """The JSON list of object strings in a reply, else the last line if it holds `["`; None = failed."""
    if not reply:
        return None
    for candidate in (reply.strip(), reply.strip().splitlines()[-1].strip()):
        if candidate.startswith("```"):
            candidate = candidate.strip("`").removeprefix("json").strip()
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    match = re.search(r"\[\s*(?:\"[^\"]*\"\s*,?\s*)*\]", reply)  # a list embedded in prose
    return json.loads(re.sub(r",\s*\]", "]", match.group(0))) if match else None


def normalize_extracted(objects: Sequence[str], synonyms: Synonyms) -> list[str]:
    """Extracted strings -> canonical COCO categories, deduplicated by extracted string per response.

    Two different synonyms of one category stay two entries, as in RLAIF-V (CHAIR_i counts them twice).
    """
    found: dict[str, str] = {}
    for obj in objects:
        words, cats = caption_objects(obj, synonyms)
        for word, cat in zip(words, cats, strict=True):
            found.setdefault(word, cat)
    if "toilet" in found.values():
        found.pop("seat", None)
    return list(found.values())


def chair_metrics(mentioned: Sequence[Sequence[str]], truth: Sequence[set[str]]) -> ObjectMetrics:
    """CHAIR_i / CHAIR_r / recall / F1 over canonical mentions (lists, duplicates as the parser gives)."""
    return object_metrics(mentioned, truth)


def chair_summary(m: ObjectMetrics, mode: str, n_failed: int = 0) -> dict:
    """The numbers Table 2 reports for ObjectHal (CHAIR_r, object F1) plus the rest, in %."""
    return {
        "benchmark": "objecthal" if mode == "llm" else "chair",
        "extraction": mode,
        "n": m.n_responses,
        "CHAIR_r": round(m.chair_r, 2),
        "CHAIR_s": round(m.hal, 2),
        "CHAIR_i": round(m.chair_i, 2),
        "recall": round(m.recall, 2),
        "F1": round(m.object_f1, 2),
        "n_extraction_failed": n_failed,
        "exact": m.as_dict(),
    }
