"""Policy-layer benchmarks, each printed as a ratio measured side by side in one run.

    python benchmarks/bench_policy.py [--device cpu|cuda] [--repeats 3]

1. log-probs: one padded multi-condition forward (`sequence_logps`) vs one forward per sequence; values equal.
2. rollout: k samples in one generate call (image encoded once per prompt) vs k separate generate calls.
3. memory: peak memory of policy + reference via the disabled LoRA adapter vs policy alone (and vs a full
   fine-tune's frozen copy, for contrast). Each variant runs in a fresh subprocess; CPU reports peak RSS growth,
   CUDA reports torch.cuda.max_memory_allocated.

The model is a LLaVA of the real architecture, randomly initialised at a size where the measurements are not
dominated by Python overhead (about 60M parameters; see `--hidden`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from PIL import Image


def build(hidden: int, layers: int, device: str, dtype=torch.float32):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from ovip.policy.tiny import tiny_llava

    _, processor = tiny_llava(image_size=64, patch_size=8)
    vocab = len(processor.tokenizer)
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                              num_attention_heads=8, image_size=64, patch_size=8)
    text = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                       num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024,
                       pad_token_id=processor.tokenizer.pad_token_id, eos_token_id=processor.tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=processor.tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
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


def timed(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_logps(model, processor, device, repeats, n=32):
    from ovip.policy.logprobs import sequence_logps

    conds = conditions(n)
    with torch.no_grad():
        batched = sequence_logps(model, processor, conds).logps
        singles = torch.cat([sequence_logps(model, processor, [c]).logps for c in conds])
        max_diff = float((batched - singles).abs().max())
        t_batched = timed(lambda: sequence_logps(model, processor, conds), repeats, device)
        t_single = timed(lambda: [sequence_logps(model, processor, [c]) for c in conds], repeats, device)
    return {"sequences": n, "batched_s": t_batched, "per_sequence_s": t_single,
            "speedup": t_single / t_batched, "max_abs_diff": max_diff}


def bench_rollout(model, processor, device, repeats, prompts=4, k=16, tokens=24):
    from ovip.policy.rollout import sample

    images = [Image.new("RGB", (64, 64), (50 * i, 90, 200 - 40 * i)) for i in range(prompts)]
    queries = ["describe this image ."] * prompts
    shared = lambda: sample(model, processor, images, queries, k=k, max_new_tokens=tokens, seed=0)  # noqa: E731

    def separate():
        for j in range(k):
            sample(model, processor, images, queries, k=1, max_new_tokens=tokens, seed=j)

    t_shared = timed(shared, repeats, device)
    t_separate = timed(separate, repeats, device)
    return {"prompts": prompts, "k": k, "max_new_tokens": tokens, "shared_s": t_shared,
            "separate_s": t_separate, "speedup": t_separate / t_shared}


def memory_child(variant: str, hidden: int, layers: int, device: str) -> dict:
    """One variant's training step in this (fresh) process; returns its peak memory in bytes."""
    from ovip.policy.logprobs import sequence_logps
    from ovip.policy.model import LoraSpec, Policy

    def rss(field: str) -> int:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    if device.startswith("cuda"):
        start = 0
        peak = torch.cuda.max_memory_allocated
    else:
        # Peak RSS growth from here on: reset the kernel's high-water mark after the imports
        # (writing 5 to clear_refs resets VmHWM), so import-time spikes do not hide the model's memory.
        start = rss("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak = lambda: rss("VmHWM:")  # noqa: E731
    model, processor = build(hidden, layers, device)
    finetune = "full" if variant == "full_reference_copy" else "lora"
    policy = Policy(model, processor, finetune=finetune, lora=LoraSpec(r=16, alpha=32, dropout=0.0))
    conds = conditions(4)  # few sequences: weights, not activations, should dominate the peak
    if variant != "policy_only":
        with policy.reference() as ref:
            sequence_logps(ref, processor, conds)
    policy.model.train()
    loss = -sequence_logps(policy.model, processor, conds).logps.mean()
    loss.backward()
    return {"variant": variant, "peak_bytes": peak() - start}


def bench_memory(hidden, layers, device):
    hidden, layers = hidden * 2, layers * 2  # a bigger model, so that weights dominate allocator noise
    out = {}
    for variant in ("policy_only", "policy_plus_disabled_adapter_reference", "full_reference_copy"):
        cmd = [sys.executable, __file__, "--memory-child", variant, "--hidden", str(hidden), "--layers", str(layers),
               "--device", device]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        out[variant] = result["peak_bytes"]
    base = out["policy_only"]
    return {**{k: v / 2**20 for k, v in out.items()},
            "reference_overhead": out["policy_plus_disabled_adapter_reference"] / base - 1,
            "full_copy_overhead": out["full_reference_copy"] / base - 1}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--memory-child")
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.hidden, args.layers, args.device)))
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, processor = build(args.hidden, args.layers, args.device)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: LLaVA (CLIP + Llama), {params / 1e6:.1f}M parameters, device {args.device}, "
          f"{torch.get_num_threads()} threads")
    lp = bench_logps(model, processor, args.device, args.repeats)
    print(f"log-probs  : {lp['sequences']} sequences, batched {lp['batched_s']:.3f}s vs per-sequence "
          f"{lp['per_sequence_s']:.3f}s -> {lp['speedup']:.2f}x faster; max |diff| {lp['max_abs_diff']:.2e}")
    ro = bench_rollout(model, processor, args.device, args.repeats)
    print(f"rollout    : {ro['prompts']} prompts x k={ro['k']}, one call {ro['shared_s']:.3f}s vs k calls "
          f"{ro['separate_s']:.3f}s -> {ro['speedup']:.2f}x faster")
    mem = bench_memory(args.hidden, args.layers, args.device)
    print(f"memory     : policy alone {mem['policy_only']:.0f} MiB, + reference via disabled adapter "
          f"{mem['policy_plus_disabled_adapter_reference']:.0f} MiB (+{100 * mem['reference_overhead']:.1f}%), "
          f"full fine-tune with frozen copy {mem['full_reference_copy']:.0f} MiB "
          f"(+{100 * mem['full_copy_overhead']:.1f}%)")
    print(json.dumps({"logps": lp, "rollout": ro, "memory": mem}))


if __name__ == "__main__":
    main()
