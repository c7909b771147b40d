"""Policy-layer benchmarks: what batching and the adapter-disabled reference buy, measured so that noise shows.

    python benchmarks/bench_policy.py [--device cpu|cuda] [--threads 1,2] [--repeats 5] [--memory-runs 3]

1. log-probs: one padded multi-condition forward (`sequence_logps`) vs one forward per sequence; values equal.
2. rollout: k samples in one generate call (image encoded once per prompt) vs k separate generate calls.
   For both, each thread count in `--threads` is run in turn; both sides are warmed once, then measured in
   `--repeats` pairs whose order alternates (A B, B A, ...), so drift in machine load hits both sides. Each
   pair gives one ratio; the median and the range of those ratios are printed with the thread count and the
   1-minute load average before and after.
3. memory of the reference: counted, not sampled. (a) The bytes of distinct parameter and buffer storages
   held by policy + reference, against the policy alone: the reference as the disabled LoRA adapter shares
   every storage (+0 bytes); a full fine-tune's frozen copy adds one model. (b) The bytes autograd saves for
   the backward pass of one training step, with and without a reference forward before it (the reference
   runs under no_grad, so it saves nothing). Both are exact and the same on every run. For context, (c) the
   peak RSS growth of a fresh process per variant, repeated `--memory-runs` times (median and range), which
   is what moved by +20% between runs before; CUDA reports torch.cuda.max_memory_allocated there.

The model is a LLaVA of the real architecture, randomly initialised (about 30M parameters; see `--hidden`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from PIL import Image

VARIANTS = ("policy_only", "policy_plus_disabled_adapter_reference", "full_reference_copy")


def build(hidden: int, layers: int, device: str, dtype=torch.float32):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from ovip.policy.tiny import tiny_llava

    _, processor = tiny_llava(image_size=64, patch_size=8)
    vocab = len(processor.tokenizer)
    vision = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=8,
        image_size=64,
        patch_size=8,
    )
    text = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=1024,
        pad_token_id=processor.tokenizer.pad_token_id,
        eos_token_id=processor.tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=processor.tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    return model, processor


def conditions(n: int):
    from ovip.policy.batch import Condition

    words = "a red cube is on the left of the small blue ball and there are two green trees".split()
    out = []
    for i in range(n):
        image = Image.new("RGB", (64, 64), ((37 * i) % 255, (91 * i) % 255, 120)) if i % 4 != 2 else None
        response = " ".join(words[: 6 + (i * 5) % 12])
        out.append(Condition(image, "describe this image .", response))
    return out


def _clock(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(slow, fast, repeats: int, device: str) -> dict:
    """Warm both sides once, then `repeats` pairs in alternating order; ratio = slow / fast per pair."""
    slow(), fast()
    load_before = os.getloadavg()[0]
    slow_t, fast_t = [], []
    for r in range(repeats):
        order = (slow, fast) if r % 2 == 0 else (fast, slow)
        times = {fn: _clock(fn, device) for fn in order}
        slow_t.append(times[slow])
        fast_t.append(times[fast])
    ratios = [s / f for s, f in zip(slow_t, fast_t, strict=True)]
    return {
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "slow_s": statistics.median(slow_t),
        "fast_s": statistics.median(fast_t),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def bench_logps(model, processor, device, repeats, n=32):
    from ovip.policy.logprobs import sequence_logps

    conds = conditions(n)
    with torch.no_grad():
        batched = sequence_logps(model, processor, conds).logps
        singles = torch.cat([sequence_logps(model, processor, [c]).logps for c in conds])
        out = paired(
            lambda: [sequence_logps(model, processor, [c]) for c in conds],
            lambda: sequence_logps(model, processor, conds),
            repeats,
            device,
        )
    return {"sequences": n, "max_abs_diff": float((batched - singles).abs().max()), **out}


def bench_rollout(model, processor, device, repeats, prompts=4, k=16, tokens=24):
    from ovip.policy.rollout import sample

    images = [Image.new("RGB", (64, 64), (50 * i, 90, 200 - 40 * i)) for i in range(prompts)]
    queries = ["describe this image ."] * prompts

    def separate():
        for j in range(k):
            sample(model, processor, images, queries, k=1, max_new_tokens=tokens, seeds=[j] * prompts)

    def shared():
        return sample(model, processor, images, queries, k=k, max_new_tokens=tokens, seeds=[0] * prompts)

    return {"prompts": prompts, "k": k, "max_new_tokens": tokens, **paired(separate, shared, repeats, device)}


def _policy(variant: str, hidden: int, layers: int, device: str):
    from ovip.policy.model import LoraSpec, Policy

    model, processor = build(hidden, layers, device)
    finetune = "full" if variant == "full_reference_copy" else "lora"
    return Policy(model, processor, finetune=finetune, lora=LoraSpec(r=16, alpha=32, dropout=0.0)), processor


def _step(policy, processor, variant: str) -> None:
    """One training step's memory-relevant work: the reference forward (unless policy_only), then the
    policy's forward and backward. Four sequences, so that weights, not activations, dominate."""
    from ovip.policy.logprobs import sequence_logps

    conds = conditions(4)
    if variant != "policy_only":
        with policy.reference() as ref:
            sequence_logps(ref, processor, conds)
    policy.model.train()
    (-sequence_logps(policy.model, processor, conds).logps.mean()).backward()


def storage_bytes(*modules) -> int:
    """Bytes of the distinct storages behind the parameters and buffers of `modules` (shared ones once)."""
    seen = {}
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def counted_memory(hidden: int, layers: int, device: str) -> dict:
    """Exact byte counts per variant: weights held (policy + reference) and tensors saved for backward."""
    out = {}
    for variant in VARIANTS:
        policy, processor = _policy(variant, hidden, layers, device)
        with policy.reference() as ref:
            weights = (
                storage_bytes(policy.model) if variant == "policy_only" else storage_bytes(policy.model, ref)
            )
        params = {
            t.untyped_storage().data_ptr() for t in [*policy.model.parameters(), *policy.model.buffers()]
        }
        saved = {}

        def pack(t, params=params, saved=saved):  # distinct activation storages; weights are counted above
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _step(policy, processor, variant)
        out[variant] = {"weight_bytes": weights, "saved_for_backward_bytes": sum(saved.values())}
        del policy
    return out


def memory_child(variant: str, hidden: int, layers: int, device: str) -> dict:
    """Peak memory growth of one variant's step in this fresh process (RSS on CPU, allocator on CUDA)."""

    def rss(field: str) -> int:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    if device.startswith("cuda"):
        start, peak = 0, torch.cuda.max_memory_allocated
    else:  # reset the kernel's high-water mark after the imports (5 -> clear_refs resets VmHWM)
        start = rss("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak = lambda: rss("VmHWM:")  # noqa: E731
    policy, processor = _policy(variant, hidden, layers, device)
    _step(policy, processor, variant)
    return {"variant": variant, "peak_bytes": peak() - start}


def sampled_memory(hidden: int, layers: int, device: str, runs: int) -> dict:
    """Fresh-process peak per variant, `runs` times each (interleaved), as median and range in MiB."""
    samples = {v: [] for v in VARIANTS}
    for _ in range(runs):
        for variant in VARIANTS:
            cmd = [
                sys.executable,
                __file__,
                "--memory-child",
                variant,
                "--hidden",
                str(hidden),
                "--layers",
                str(layers),
                "--device",
                device,
            ]
            line = (
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            samples[variant].append(json.loads(line)["peak_bytes"] / 2**20)
    return {
        v: {"median_mib": statistics.median(s), "min_mib": min(s), "max_mib": max(s)}
        for v, s in samples.items()
    }


def _pct(a: float, b: float) -> float:
    return 100 * (a / b - 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to measure at")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory-runs", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--memory-child")
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.hidden, args.layers, args.device)))
        return
    model, processor = build(args.hidden, args.layers, args.device)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: LLaVA (CLIP + Llama), {params / 1e6:.1f}M parameters, device {args.device}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    speed = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        lp = bench_logps(model, processor, args.device, args.repeats)
        ro = bench_rollout(model, processor, args.device, args.repeats)
        speed.append({"logps": lp, "rollout": ro})
        for name, r, what in (
            ("log-probs", lp, f"{lp['sequences']} sequences one forward each vs batched"),
            ("rollout", ro, f"{ro['prompts']} prompts: k={ro['k']} calls vs one call"),
        ):
            print(
                f"{name:9} | {threads} thread(s) | {what}: {r['slow_s']:.3f}s vs {r['fast_s']:.3f}s -> "
                f"{r['ratio']:.2f}x (range {r['ratio_min']:.2f}-{r['ratio_max']:.2f} over {r['repeats']} pairs)"
                f" | load {r['load_before']:.2f} -> {r['load_after']:.2f}"
            )
        print(f"log-probs max |batched - per-sequence| = {lp['max_abs_diff']:.2e}")
    mem_hidden, mem_layers = args.hidden * 2, args.layers * 2  # bigger: weights dominate
    counted = counted_memory(mem_hidden, mem_layers, args.device)
    base = counted["policy_only"]
    for variant in VARIANTS[1:]:
        c = counted[variant]
        print(
            f"memory    | counted | {variant}: weights {c['weight_bytes'] / 2**20:.1f} MiB "
            f"({_pct(c['weight_bytes'], base['weight_bytes']):+.1f}% vs policy alone), saved for backward "
            f"{c['saved_for_backward_bytes'] / 2**20:.1f} MiB "
            f"({_pct(c['saved_for_backward_bytes'], base['saved_for_backward_bytes']):+.1f}%)"
        )
    sampled = sampled_memory(mem_hidden, mem_layers, args.device, args.memory_runs)
    for variant, s in sampled.items():
        print(
            f"memory    | fresh-process peak x{args.memory_runs} | {variant}: median {s['median_mib']:.0f} MiB "
            f"(range {s['min_mib']:.0f}-{s['max_mib']:.0f})"
        )
    print(json.dumps({"speed": speed, "memory_counted": counted, "memory_sampled": sampled}))


if __name__ == "__main__":
    main()
