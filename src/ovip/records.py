"""Small typed records that the stages of one online step exchange (Algorithm 1, Table 6).

Every stage takes and returns these; none of them carries a model, a config or a logger.
Images are PIL images in memory; on disk they live in a content-addressed store
(`ovip.negatives.store.ImageStore`) and records that are persisted keep the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

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
class PreferencePair:
    """(A+, A-) selected from one group by Eq. 2; `fallback` marks the (A*, worst) pair of Algorithm 1."""

    example: Example
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    fallback: bool = False


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
class Experience:
    """One buffer item (Appendix F): everything L_OViP (Eq. 6) needs for one pair.

    `reference_logps` maps each scored condition (`CONDITIONS`, plus `EXTRA_CONDITIONS` for the symmetric
    image loss and the bi-anchor) to log pi_ref, computed once when the experience enters the buffer: the
    reference never changes within a run.
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
    advantage: float = 0.0  # GRPO: the sample's group-relative advantage (`chosen` is the sample)


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
