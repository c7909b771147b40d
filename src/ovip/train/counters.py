"""What the loop counts, per log window and in total, and how it reacts to failing services.

`Counters` are running totals (saved with checkpoints). A metrics line describes the window since the
previous line (`Counters.metrics(since=...)`: `judge/failure_rate`, `pairs/per_prompt`, ...), so an outage
mid-run shows in the lines it spans; running totals are the `*_total` keys. A judge's cache hits are not
calls: `judge/calls_total` and the denominator of `judge/failure_rate` are the requests that were made, and
`judge/cache_hits` counts the others. `ErrorBudget` is the error
budget of `train.max_failure_rate` over each service's last `train.failure_window` calls; `ErrorLog` writes
every service error to the log (RUN_DIR/train.log) and the first of each kind to the console too.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import asdict, dataclass, fields

from ovip.train.stages import Feedback, PairCandidate, SampledBatch

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """Running totals, saved with checkpoints; differences between two of them make a window's metrics."""

    prompts: int = 0
    rollout_failures: int = 0  # prompts whose sampling failed (a policy server's request): no samples
    responses: int = 0
    distinct_responses: int = 0
    duplicate_prompts: int = 0  # prompts whose k samples hold fewer than `min_distinct(k)` distinct responses
    judged: int = 0  # judgments, cache hits included
    judge_cache_hits: int = 0  # judgments given without a request (`Judgment.cached`)
    judge_failures: int = 0  # calls whose final attempt gave no score
    score_sum: float = 0.0
    pairs: int = 0
    fallback_pairs: int = 0
    prompts_without_pair: int = 0
    descriptions: int = 0
    description_failures: int = 0
    negatives: int = 0
    negative_failures: int = 0
    experiences: int = 0
    batches: int = 0
    staleness_sum: int = 0
    staleness_max: int = 0
    nonfinite_steps: int = 0
    nonfinite_streak: int = 0

    def copy(self) -> Counters:
        return Counters(**asdict(self))

    @classmethod
    def of(cls, saved: dict) -> Counters:
        """Counters from a checkpoint's state (keys that older versions saved and these lack are dropped)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    @classmethod
    def combine(cls, parts: list[Counters]) -> Counters:
        """The counters of all ranks as one run's: totals summed, the worst staleness kept, and the non-finite
        step counts, which every rank keeps alike (the step is decided together), taken once."""
        if len(parts) == 1:
            return parts[0].copy()
        out = {}
        for name, value in asdict(parts[0]).items():
            values = [getattr(p, name) for p in parts]
            if name == "staleness_max":
                out[name] = max(values)
            elif name in ("nonfinite_steps", "nonfinite_streak"):
                out[name] = value
            else:
                out[name] = sum(values)
        return cls(**out)

    def add_batch(self, batch: SampledBatch, feedback: Feedback, negatives: bool, step: int) -> None:
        """Count one batch's samples, judgments and candidates; `step` is the step the loop is at (staleness)."""
        for rollout, judgments, n_pairs in zip(
            batch.rollouts, feedback.judgments, feedback.pairs_per_prompt, strict=True
        ):
            scores = [j.score for j in judgments]
            self.prompts += 1
            self.rollout_failures += rollout.error is not None
            self.responses += rollout.sampled
            self.distinct_responses += len(rollout.responses)
            self.duplicate_prompts += len(rollout.responses) < min_distinct(rollout.sampled)
            self.judged += len(judgments)
            self.judge_cache_hits += sum(j.cached for j in judgments)
            self.judge_failures += sum(s is None for s in scores)
            self.score_sum += sum(s for s in scores if s is not None)
            self.prompts_without_pair += not n_pairs
        staleness = step - batch.step
        self.batches += 1
        self.staleness_sum += staleness
        self.staleness_max = max(self.staleness_max, staleness)
        for cand in feedback.candidates:
            fallback = isinstance(cand, PairCandidate) and cand.fallback
            if not negatives:  # a pair (or sample, or answer) with nothing to draw
                self.pairs += 1
                self.fallback_pairs += fallback
                continue
            self.descriptions += 1
            self.description_failures += not cand.description.ok
            if cand.description.ok:
                self.negatives += 1
                self.negative_failures += not cand.negative.ok
                self.pairs += cand.negative.ok
                self.fallback_pairs += cand.negative.ok and fallback

    def why_no_updates(self, batch_size: int) -> str:
        """Why a run made no optimizer step, from its counters."""
        return (
            f"no optimizer step: {self.prompts} prompts gave {self.experiences} experiences, fewer than "
            f"train.batch_size {batch_size} (judge failures {self.judge_failures}/"
            f"{self.judged - self.judge_cache_hits} calls, prompts without a pair {self.prompts_without_pair}, description failures "
            f"{self.description_failures}/{self.descriptions}, negative-image failures "
            f"{self.negative_failures}/{self.negatives})"
        )

    def metrics(self, since: Counters | None = None) -> dict[str, float]:
        """Rates over the window since `since` (the whole run when None), and running totals."""
        w = {
            k: v - getattr(since, k) if since is not None and isinstance(v, (int, float)) else v
            for k, v in asdict(self).items()
        }
        div = lambda a, b: a / b if b else 0.0  # noqa: E731
        return {
            "judge/failure_rate": div(w["judge_failures"], w["judged"] - w["judge_cache_hits"]),
            "judge/cache_hits": w["judge_cache_hits"],
            "judge/mean_score": div(w["score_sum"], w["judged"] - w["judge_failures"]),
            "pairs/per_prompt": div(w["pairs"], w["prompts"]),
            "pairs/fallback_rate": div(w["fallback_pairs"], w["pairs"]),
            "pairs/prompts_without_pair": div(w["prompts_without_pair"], w["prompts"]),
            "rollout/failure_rate": div(w["rollout_failures"], w["prompts"]),
            "rollout/distinct_per_prompt": div(w["distinct_responses"], w["prompts"]),
            "rollout/duplicate_rate": div(w["duplicate_prompts"], w["prompts"]),
            "rollout/staleness": div(w["staleness_sum"], w["batches"]),
            "describer/failure_rate": div(w["description_failures"], w["descriptions"]),
            "negatives/failure_rate": div(w["negative_failures"], w["negatives"]),
            "negatives/description_failures": w["description_failures"],
            "negatives/failures": w["negative_failures"],
            "prompts/total": self.prompts,
            "rollout/failures_total": self.rollout_failures,
            "judge/calls_total": self.judged - self.judge_cache_hits,
            "judge/cache_hits_total": self.judge_cache_hits,
            "judge/failures_total": self.judge_failures,
            "pairs/total": self.pairs,
            "negatives/description_failures_total": self.description_failures,
            "negatives/failures_total": self.negative_failures,
            "rollout/staleness_max": self.staleness_max,
            "experiences/total": self.experiences,
            "train/nonfinite_steps": self.nonfinite_steps,
        }


def min_distinct(k: int) -> int:
    """Fig. 10's bar for "multiple identical responses appear": fewer than 14 distinct of 16 samples, scaled to
    k samples (ceil(14 k / 16): 7 of 8, 4 of 4)."""
    return -(-14 * k // 16)


class ServiceFailure(RuntimeError):
    """A service failed more than `train.max_failure_rate` of its recent calls; the run stopped."""


class NonFiniteTraining(RuntimeError):
    """`train.max_nonfinite_steps` updates in a row had a non-finite loss or gradient; the run stopped."""


class NoUpdates(RuntimeError):
    """The run ended without a single optimizer step; the message says why."""


class ErrorBudget:
    """The last `window` call outcomes of each service; `exceeded()` names a service whose full window holds
    more than `max_rate` failures."""

    def __init__(self, max_rate: float, window: int):
        self.max_rate, self.window = max_rate, window
        self.calls: dict[str, deque[bool]] = {}

    def record(self, service: str, failed: bool) -> None:
        self.calls.setdefault(service, deque(maxlen=self.window)).append(failed)

    def record_batch(
        self, batch: SampledBatch, feedback: Feedback, negatives: bool, errors: ErrorLog
    ) -> None:
        """Every call of a batch: the rollout's per prompt, the judge's per judgment, the describer's and the
        image service's per pair (when the method draws); each failure noted in `errors`."""
        for rollout in batch.rollouts:
            self.record("rollout", rollout.error is not None)
            if rollout.error is not None:
                errors.note("rollout", rollout.error)
        for judgments in feedback.judgments:
            for j in judgments:
                if j.cached:  # no call was made
                    continue
                self.record("judge", not j.ok)
                if not j.ok:
                    errors.note("judge", j.error)
        for cand in feedback.candidates if negatives else ():
            self.record("describer", not cand.description.ok)
            if not cand.description.ok:
                errors.note("describer", cand.description.error)
            elif cand.negative is not None:
                self.record("negatives", not cand.negative.ok)
                if not cand.negative.ok:
                    errors.note("negatives", cand.negative.error)

    def check(
        self, batch: SampledBatch, feedback: Feedback, negatives: bool, errors: ErrorLog, ranks
    ) -> str | None:
        """Record a batch's calls (`record_batch`); the stop message if any rank's budget is exceeded, or a
        policy server answered for another adapter than asked (`SampledBatch.stale`: at once). With several
        ranks a collective: one rank's stop is every rank's."""
        self.record_batch(batch, feedback, negatives, errors)
        exceeded = batch.stale or self.exceeded()
        if ranks.world > 1:
            stops = [f"rank {r}: {text}" for r, text in ranks.gather((ranks.rank, exceeded)) if text]
            exceeded = "; ".join(stops) or None
        return exceeded

    def exceeded(self) -> str | None:
        for service, calls in self.calls.items():
            if len(calls) == self.window and sum(calls) > self.max_rate * self.window:
                return (
                    f"{service}: {sum(calls)} of its last {self.window} calls failed "
                    f"(train.max_failure_rate {self.max_rate:g} over train.failure_window {self.window})"
                )
        return None


class ErrorLog:
    """Every service error is logged once: the first of each kind at WARNING, which the console and train.log
    show; the others at INFO marked `console=False`, which only train.log shows (`ovip.logs.ConsoleHandler` and
    `run_log`'s console skip them at any level). A kind is the service and the error's leading words
    ("judge: HTTP 500")."""

    def __init__(self):
        self.seen: set[str] = set()
        self.first: dict[str, str] = {}

    def note(self, service: str, error: str | None) -> None:
        error = error or "failed without an error text"
        kind = f"{service}: {_kind(error)}"
        if kind in self.seen:
            log.info("%s failed: %s", service, error, extra={"console": False})
            return
        self.seen.add(kind)
        self.first[kind] = f"{service}: {error}"
        log.warning(
            "%s failed: %s [the first error of this kind; all errors go to train.log]", service, error
        )


def _kind(error: str) -> str:
    match = re.match(r"(HTTP \d+|[A-Za-z][A-Za-z '-]*)", error)
    return match.group(1).strip() if match else error[:40]
