"""The per-prompt sampler (`ovip.policy.rollout`) against transformers' own sampling, on the world model: what the
per-row generators cost, and how often batching changes a sample.

    python benchmarks/bench_sampler.py                          # the world recipe's base model (pretrained once)
    python benchmarks/bench_sampler.py --pretrain-steps 400     # the world architecture, a short pretraining

1. Throughput: `generate_samples` (each sample from its own generator; `RowSampler` warps, draws and forces
   the token) against `generate(do_sample=True)` with transformers' temperature and top-p warpers and one
   global seed per call (ovip's sampler before per-prompt seeds), on the same world preference prompts with the
   world recipe's rollout settings (k = 16, temperature 1.2, top_p 0.8, 64 new tokens, 16 prompts per call).
   For each thread count in `--threads`, both sides are warmed once, then measured in `--repeats` pairs whose
   order alternates (A B, B A, ...), so drift in machine load hits both; each pair gives a ratio (new / old
   seconds; > 1 is slower), printed as median and range with the thread count and the load average. The
   samples differ between the two (other random streams), and a call decodes until its longest answer ends,
   so the seconds per decoding step are compared too: the samplers' own cost, whatever the draws.
2. Batch invariance: each prompt sampled alone, then all of them in one padded call, with the same seeds. A
   sample is "flipped" when its tokens differ: float rounding of the padded batch moved a uniform across a
   boundary of the cumulative distribution. Also the largest log-prob difference among identical samples.

`--pretrain-steps N` uses the default world's architecture pretrained for N steps on a 3000-scene split
(cached under $OVIP_CACHE like the real one) instead of the full 2200-step pretraining (~7.5 min).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def load_model(pretrain_steps: int | None, device: str):
    from ovip.world.config import WorldConfig

    from ovip.config import load
    from ovip.policy.model import Policy
    from ovip.world.build import ensure_base_model
    from ovip.world.resolve import model_path, world_cache

    if pretrain_steps is None:
        path = model_path(load("world"))
    else:
        short = WorldConfig(pretrain_size=3000, pretrain={"steps": pretrain_steps, "vision_steps": 200})
        path = str(ensure_base_model(world_cache(), short))
    policy = Policy.from_pretrained(path, finetune="none", device=device)
    return policy.model.eval(), policy.processor, path


def world_prompts(n: int):
    from ovip.world.config import WorldConfig

    from ovip.world.splits import as_examples, make_split

    cfg = WorldConfig()
    examples = as_examples(cfg, make_split(cfg, "preference", n))
    return [e.image for e in examples], [e.query for e in examples]


@torch.no_grad()
def old_sample(model, processor, images, queries, k, temperature, top_p, max_new_tokens, seed):
    """ovip's sampler before per-prompt seeds: one `generate(do_sample=True)` with transformers' warpers after
    `torch.manual_seed(seed)`; returns the new tokens [prompts * k, T]."""
    from ovip.policy.batch import prompt_inputs

    inputs = prompt_inputs(processor, images, queries)
    inputs = inputs.to(next(model.parameters()).device)
    torch.manual_seed(seed)
    out = model.generate(
        **inputs, do_sample=True, num_return_sequences=k, max_new_tokens=max_new_tokens, temperature=temperature,
        top_p=top_p, top_k=0, pad_token_id=processor.tokenizer.pad_token_id,
    )  # fmt: skip
    return out[:, inputs["input_ids"].shape[1] :]


def lengths(new_tokens: torch.Tensor, eos: int) -> tuple[float, int]:
    """(mean answer length in tokens, end-of-sequence included; decoding steps of the call)."""
    ends = new_tokens == eos
    per_answer = torch.where(ends.any(1), ends.int().argmax(1) + 1, new_tokens.shape[1])
    return float(per_answer.float().mean()), new_tokens.shape[1]


def _clock(fn, device: str) -> tuple[float, object]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def throughput(model, processor, images, queries, args) -> dict:
    from ovip.policy.rollout import generate_samples, prompt_seed

    settings = dict(k=args.k, temperature=1.2, top_p=0.8, max_new_tokens=args.max_new_tokens)
    eos = processor.tokenizer.eos_token_id
    calls = {"old": 0, "new": 0}

    def old():
        calls["old"] += 1
        return lengths(old_sample(model, processor, images, queries, seed=calls["old"], **settings), eos)

    def new():
        calls["new"] += 1
        seeds = [prompt_seed(calls["new"], i) for i in range(len(queries))]
        per_answer = [
            len(s.token_ids)
            for g in generate_samples(model, processor, images, queries, seeds=seeds, **settings)
            for s in g
        ]
        return statistics.mean(per_answer), max(per_answer)

    old(), new()  # warm both
    load_before = os.getloadavg()[0]
    times, tokens, steps = ({"old": [], "new": []} for _ in range(3))
    for r in range(args.repeats):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for name, fn in order:
            seconds, (length, n_steps) = _clock(fn, args.device)
            times[name].append(seconds)
            tokens[name].append(length)
            steps[name].append(n_steps)
    ratios = [n / o for n, o in zip(times["new"], times["old"], strict=True)]
    # A call runs until its longest answer ends, so its time follows its step count, which the two samplers'
    # different draws change: seconds per decoding step compare the samplers' own cost.
    per_step = {k: [t / n for t, n in zip(times[k], steps[k], strict=True)] for k in times}
    step_ratios = [n / o for n, o in zip(per_step["new"], per_step["old"], strict=True)]
    rows = len(queries) * args.k
    return {
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "old_s": statistics.median(times["old"]),
        "new_s": statistics.median(times["new"]),
        "old_tokens_per_answer": statistics.mean(tokens["old"]),
        "new_tokens_per_answer": statistics.mean(tokens["new"]),
        "old_steps": statistics.mean(steps["old"]),
        "new_steps": statistics.mean(steps["new"]),
        "old_ms_per_step": 1000 * statistics.median(per_step["old"]),
        "new_ms_per_step": 1000 * statistics.median(per_step["new"]),
        "step_ratio": statistics.median(step_ratios),
        "step_ratio_min": min(step_ratios),
        "step_ratio_max": max(step_ratios),
        "old_answers_per_s": rows / statistics.median(times["old"]),
        "new_answers_per_s": rows / statistics.median(times["new"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def invariance(model, processor, images, queries, args) -> dict:
    from ovip.policy.rollout import generate_samples, prompt_seed

    settings = dict(k=args.k, temperature=1.2, top_p=0.8, max_new_tokens=args.max_new_tokens)
    seeds = [prompt_seed(0, i) for i in range(len(queries))]
    batched = generate_samples(model, processor, images, queries, seeds=seeds, **settings)
    alone = [
        generate_samples(model, processor, [im], [q], seeds=[s], **settings)[0]
        for im, q, s in zip(images, queries, seeds, strict=True)
    ]
    pairs = [(a, b) for ga, gb in zip(batched, alone, strict=True) for a, b in zip(ga, gb, strict=True)]
    flipped = sum(a.token_ids != b.token_ids for a, b in pairs)
    same = [(a, b) for a, b in pairs if a.token_ids == b.token_ids]
    gap = max((abs(x - y) for a, b in same for x, y in zip(a.logprobs, b.logprobs, strict=True)), default=0.0)
    return {
        "samples": len(pairs),
        "tokens": sum(len(a.token_ids) for a, _ in pairs),
        "flipped": flipped,
        "max_logprob_diff": gap,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to measure at")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument(
        "--pretrain-steps", type=int, help="a short-pretrained world model instead of the recipe's"
    )
    args = p.parse_args()
    model, processor, path = load_model(args.pretrain_steps, args.device)
    images, queries = world_prompts(args.prompts)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {path} ({params / 1e6:.2f}M parameters), device {args.device}, {os.cpu_count()} CPUs, "
        f"{args.prompts} prompts x k={args.k}, {args.max_new_tokens} new tokens"
    )
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        r = throughput(model, processor, images, queries, args)
        results.append(r)
        print(
            f"throughput | {threads} thread(s) | old {r['old_s']:.3f}s ({r['old_answers_per_s']:.0f} answers/s, "
            f"{r['old_tokens_per_answer']:.1f} tokens each) vs new {r['new_s']:.3f}s "
            f"({r['new_answers_per_s']:.0f} answers/s, {r['new_tokens_per_answer']:.1f} tokens each) -> new/old "
            f"{r['ratio']:.2f}x (range {r['ratio_min']:.2f}-{r['ratio_max']:.2f} over {r['repeats']} pairs) | load "
            f"{r['load_before']:.2f} -> {r['load_after']:.2f}"
        )
        print(
            f"per step   | {threads} thread(s) | old {r['old_ms_per_step']:.2f} ms ({r['old_steps']:.1f} steps a call) "
            f"vs new {r['new_ms_per_step']:.2f} ms ({r['new_steps']:.1f} steps) -> new/old {r['step_ratio']:.2f}x "
            f"(range {r['step_ratio_min']:.2f}-{r['step_ratio_max']:.2f})"
        )
    torch.set_num_threads(1)
    inv = invariance(model, processor, images, queries, args)
    print(
        f"invariance | {args.prompts} prompts alone vs in one call: {inv['flipped']} of {inv['samples']} samples "
        f"({inv['tokens']} tokens) differ; max |log-prob difference| among the others {inv['max_logprob_diff']:.1e}"
    )
    print(json.dumps({"throughput": results, "invariance": inv}))


if __name__ == "__main__":
    main()
