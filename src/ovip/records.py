"""Small typed records that the stages of one online step exchange (Algorithm 1, Table 6).

Every stage takes and returns these; none of them carries a model, a config or a logger.
Images are PIL images in memory; on disk they live in a content-addressed store
(`ovip.negatives.store.ImageStore`) and records that are persisted keep the path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar, Protocol, runtime_checkable

from PIL import Image


@dataclass
class Example:
    """One training or evaluation item (I+, Q, A*).

    `image` is loaded lazily by the data layer when `image_path` is given; `id` is stable across runs and
    is what error reports and resume cursors refer to; `source` says where the record was read
    ("data.jsonl:12", "data.json[11]", "shard.parquet row 11") for error messages.
    """

    id: str
    query: str
    reference: str
    image: Image.Image | None = None
    image_path: str | None = None
    meta: dict = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Answer:
    """One generated answer: its text, and whether generation stopped at max_new_tokens without an
    end-of-sequence token (`cut`; None when unknown, e.g. answers read from a file)."""

    text: str
    cut: bool | None = None


@dataclass
class Judgment:
    """G_r's verdict on one response (Eq. 1): `score` in [0, 10], or None when the judge failed.

    A failed judgment (`ok=False`) is counted in `judge/failure_rate` and the response is dropped from
    pair selection; it is never turned into a score. `cached`: given without a request of its own (the
    judge's cache of earlier verdicts, or a response repeated in one call), so counted in `judge/cache_hits`,
    not as a call.
    """

    response: str
    score: float | None
    raw: str = ""
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.score is not None


@dataclass
class Description:
    """T- = G_diff(Q, A+, A-): a description of an image in which the rejected answer is right (Eq. 3 input)."""

    text: str | None
    raw: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.text)


@dataclass
class NegativeImage:
    """I- = Diff(T-), or None with an error when synthesis failed (counted in `negatives/failures`)."""

    image: Image.Image | None
    path: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


@dataclass
class PairExperience:
    """One preference pair in the buffer (Appendix F): everything L_OViP (Eq. 6) needs.

    `reference_logps` maps each scored condition (`CONDITIONS`, plus `EXTRA_CONDITIONS` for the symmetric
    image loss and the bi-anchor) to log pi_ref, computed once when the experience enters the buffer: the
    reference never changes within a run. Methods without negative images leave `negative_image_path` and
    `description` empty.
    """

    example_id: str
    query: str
    image_path: str
    negative_image_path: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    fallback: bool
    description: str
    reference_logps: dict[str, float]
    step: int = 0
    negative_seed: int = 0  # the seed I- was drawn with (`ovip.train.stages.derive_seed`)
    kind: ClassVar[str] = "pair"

    @property
    def image_paths(self) -> tuple[str, ...]:
        return (self.image_path, self.negative_image_path) if self.negative_image_path else (self.image_path,)


@dataclass
class SampleExperience:
    """One judged sample of a prompt's k responses with its weight in the update: GRPO's group-relative
    advantage (Shao et al., 2024)."""

    example_id: str
    query: str
    image_path: str
    response: str
    score: float
    advantage: float
    step: int = 0
    kind: ClassVar[str] = "sample"

    @property
    def image_paths(self) -> tuple[str, ...]:
        return (self.image_path,)


@dataclass
class AnswerExperience:
    """A target answer to imitate: the reference answer A* of the `sft` baseline."""

    example_id: str
    query: str
    image_path: str
    response: str
    step: int = 0
    kind: ClassVar[str] = "answer"

    @property
    def image_paths(self) -> tuple[str, ...]:
        return (self.image_path,)


Experience = PairExperience | SampleExperience | AnswerExperience
EXPERIENCE_KINDS = {cls.kind: cls for cls in (PairExperience, SampleExperience, AnswerExperience)}


def experience_row(experience: Experience) -> dict:
    """An experience as one JSON object (experiences.jsonl, checkpoints): its fields and its `kind`."""
    return {"kind": experience.kind, **asdict(experience)}


def experience_from_row(row: dict) -> Experience:
    """The experience of `experience_row`. Rows written before experiences had kinds are pairs, GRPO
    samples (`rejected` empty, not a fallback) or SFT answers (`rejected` empty, a fallback)."""
    row = dict(row)
    kind = row.pop("kind", None)
    if kind is None and row.get("rejected") == "":
        kind = "answer" if row.get("fallback") else "sample"
        row = {"example_id": row["example_id"], "query": row["query"], "image_path": row["image_path"],
               "response": row["chosen"], "step": row.get("step", 0),
               **({"score": row["chosen_score"], "advantage": row.get("advantage", 0.0)} if kind == "sample" else {})}  # fmt: skip
    cls = EXPERIENCE_KINDS[kind or "pair"]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


# Order of the four sequences scored per experience (Algorithm 1, Table 6). `none` is the image-free condition.
CONDITIONS = ("chosen|image", "rejected|image", "chosen|none", "chosen|negative")
# Scored only when a loss needs them: L_Image-Sym and the bi-directional anchor (Appendix B.1).
EXTRA_CONDITIONS = ("rejected|none", "rejected|negative")


@runtime_checkable
class Judge(Protocol):
    """G_r: scores each response of one group against the reference answer (text only, as in the paper)."""

    def judge(self, query: str, responses: list[str], reference: str) -> list[Judgment]: ...


@runtime_checkable
class Describer(Protocol):
    """G_diff: describes an image in which `rejected` would be the right answer to `query`."""

    def describe(self, query: str, chosen: str, rejected: str) -> Description: ...


@runtime_checkable
class ImageSynthesizer(Protocol):
    """Diff (Eq. 3) or a model-free alternative (crop, random sample, the world renderer)."""

    def synthesize(self, description: str, positive: Image.Image, seed: int) -> NegativeImage: ...
