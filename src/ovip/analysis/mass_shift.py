"""Probability-mass shift across judge-score bins before vs after training (§4, Fig. 5).

For each of N prompts of the world's preference split, k answers are sampled from the base model (the policy
with its adapter disabled, `Policy.reference`), exact duplicates dropped, and each distinct answer is scored by
the world judge against the prompt's reference (Eq. 1) and given its sequence log-prob log pi(A | I, Q) under the
base model and under the trained adapter (`policy.logprobs.sequence_logps`). `analysis.stats.probability_mass_shift`
then renormalises the probabilities within each prompt (a softmax of the log-probs over its sampled answers)
and sums them per score bin 0..10: where training moved the mass among the answers the base model produces.

Deterministic under `seed` (batch b samples with seed + b). Left out: the paper's smoothing of the 11 bins
into a curve (the figure draws the bins).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ovip.analysis.output import markdown_table, pyplot, write_outputs
from ovip.analysis.stats import MassShift, probability_mass_shift


@dataclass(frozen=True)
class ScoredAnswer:
    """One distinct sampled answer: its judge score (0-10) and summed log-probs before and after training."""

    example_id: str
    response: str
    score: float
    logp_before: float
    logp_after: float


def score_samples(policy, examples, judge, k: int, sampling: dict, seed: int, batch_size: int = 8):
    """k base-model answers per example (distinct ones kept), judged, with log-probs before and after.

    examples: `records.Example`s with image, query and reference; sampling: temperature, top_p, max_new_tokens.
    """
    import torch

    from ovip.policy.batch import Condition
    from ovip.policy.logprobs import sequence_logps
    from ovip.policy.rollout import sample

    out: list[ScoredAnswer] = []
    for start in range(0, len(examples), batch_size):
        part = examples[start : start + batch_size]
        images, queries = [e.image for e in part], [e.query for e in part]
        with policy.reference() as base:
            seeds = [seed + start + i for i in range(len(part))]  # one per example, whatever the batch size
            groups = sample(base, policy.processor, images, queries, k=k, seeds=seeds, **sampling)
        rows = [(e, r) for e, g in zip(part, groups, strict=True) for r in dict.fromkeys(g)]
        conditions = [Condition(e.image, e.query, r) for e, r in rows]
        with policy.reference() as base:
            before = sequence_logps(base, policy.processor, conditions, micro_batch_size=batch_size * k)
        with torch.no_grad():
            after = sequence_logps(
                policy.model, policy.processor, conditions, micro_batch_size=batch_size * k
            )
        for (e, r), lb, la in zip(rows, before.logps.tolist(), after.logps.tolist(), strict=True):
            out.append(ScoredAnswer(e.id, r, judge.score(e.query, r, e.reference), lb, la))
    return out


def shift(answers: list[ScoredAnswer]) -> MassShift:
    """`probability_mass_shift` over the answers, probabilities exp(logp - the prompt's largest logp): the
    within-prompt renormalisation cancels the offset and nothing underflows."""
    top: dict[str, tuple[float, float]] = {}
    for a in answers:
        b, f = top.get(a.example_id, (-math.inf, -math.inf))
        top[a.example_id] = (max(b, a.logp_before), max(f, a.logp_after))
    return probability_mass_shift(
        [a.score for a in answers],
        [math.exp(a.logp_before - top[a.example_id][0]) for a in answers],
        [math.exp(a.logp_after - top[a.example_id][1]) for a in answers],
        prompt_ids=[a.example_id for a in answers],
    )


def analyze_mass_shift(
    run_dir: Path,
    output: Path | None = None,
    n_prompts: int = 64,
    k: int = 16,
    seed: int = 0,
    device: str | None = None,
) -> dict:
    """Write mass_shift.{json,md,png} under `output` (default RUN_DIR/analysis); returns the JSON's content.

    The base model, world and device (unless `device` is given) are the run's (`RUN_DIR/config.yaml`), the
    adapter its newest checkpoint's.
    """
    from ovip.config import load
    from ovip.policy.model import Policy, resolve_adapter
    from ovip.world.judge import WorldJudge
    from ovip.world.resolve import model_path
    from ovip.world.splits import as_examples, make_split

    if n_prompts < 1 or k < 1:
        raise ValueError(f"--prompts and --k must be >= 1, got {n_prompts} and {k}")
    run_dir = Path(run_dir)
    cfg = load(run_dir / "config.yaml")
    if cfg.train.data != "world":
        raise ValueError(f"{run_dir}: mass-shift samples the world's preference split; this run trained on "
                         f"{cfg.train.data!r}")  # fmt: skip
    adapter = resolve_adapter(run_dir)
    wc = cfg.world
    policy = Policy.from_pretrained(
        model_path(cfg),
        dtype=cfg.model.dtype,
        device=device or cfg.model.device,
        adapter=str(adapter),
        finetune="none",
    )
    policy.model.eval()
    examples = as_examples(wc, make_split(wc, "preference", size=n_prompts))
    sampling = {
        "temperature": cfg.rollout.temperature,
        "top_p": cfg.rollout.top_p,
        "max_new_tokens": cfg.rollout.max_new_tokens,
    }
    answers = score_samples(policy, examples, WorldJudge(wc.categories, wc.colors), k, sampling, seed)
    result = shift(answers)
    data = {
        "analysis": "mass_shift",
        "run": str(run_dir),
        "adapter": str(adapter),
        "prompts": n_prompts,
        "k": k,
        "seed": seed,
        "sampling": sampling,
        "distinct_answers": len(answers),
        "shift": result.as_dict(),
        "answers": [asdict(a) for a in answers],
    }
    rows = [
        {"score bin": b, "before": x, "after": y, "change": c}
        for b, x, y, c in zip(result.bins, result.before, result.after, result.change, strict=True)
    ]
    md = (
        f"# Probability-mass shift (Fig. 5)\n\nRun `{run_dir}`, adapter `{adapter}`: {n_prompts} preference "
        f"prompts, k = {k} base-model samples each (seed {seed}), {len(answers)} distinct answers. Mass per world "
        f"judge score bin, averaged over prompts; change in bins < 4 (low score): {result.low_score_change:+.4f}."
        "\n\n" + markdown_table(["score bin", "before", "after", "change"], rows, digits=4)
    )
    paths = write_outputs(Path(output or run_dir / "analysis"), "mass_shift", data, md, _figure(result))
    return {**data, "files": {key: str(p) for key, p in paths.items()}}


def _figure(result: MassShift):
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True, constrained_layout=True)
    xs = result.bins
    top.bar([x - 0.2 for x in xs], result.before, width=0.4, label="before (base)")
    top.bar([x + 0.2 for x in xs], result.after, width=0.4, label="after (trained)")
    top.set_ylabel("probability mass")
    top.legend()
    bottom.bar(xs, result.change, color=["tab:green" if c >= 0 else "tab:red" for c in result.change])
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylabel("change")
    bottom.set_xlabel("judge score bin")
    bottom.set_xticks(xs)
    top.set_title("Probability mass over the base model's samples, by judge score")
    return fig
