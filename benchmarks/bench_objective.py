"""What skipping the image-free condition saves when beta1 == beta2 (Eq. 5 then equals L_Image^base).

    python benchmarks/bench_objective.py [--threads 1] [--repeats 5] [--experiences 16]

One OViP training step's forward + backward over `--experiences` experiences, scoring the four conditions of
Eq. 4-5 (A+|I+) (A-|I+) (A+|Q) (A+|I-) against the three that the loss actually reads with equal betas. Both
sides are warmed, then timed in alternating order (A B, B A, ...); each pair gives one ratio; the median and
range are printed with the thread count and the load average. The two losses agree (printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from PIL import Image

from ovip.config import LossConfig
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import llava, word_tokenizer
from ovip.records import PairExperience as Experience
from ovip.train.conditions import Logps, score_conditions
from ovip.train.objective import ovip_loss

FOUR = ("chosen|image", "rejected|image", "chosen|none", "chosen|negative")
THREE = ("chosen|image", "rejected|image", "chosen|negative")


def step(policy, experiences, images, names) -> float:
    logps = score_conditions(policy.model, policy.processor, experiences, names, images, "drop")
    ref = Logps(
        **{k: v.detach() - 0.1 for k, v in vars(logps).items() if v is not None and k != "chosen_tokens"}
    )
    loss = ovip_loss(logps, ref, LossConfig()).total.mean()
    loss.backward()
    policy.model.zero_grad(set_to_none=True)
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--experiences", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = word_tokenizer(
        ["<s>", "</s>", "<image>", "USER:", "ASSISTANT:"],
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    model, processor = llava(tok, 64, 8, args.hidden, args.hidden, vision_layers=2, text_layers=4, heads=8)
    policy = Policy(model, processor, lora=LoraSpec(r=16, alpha=32, dropout=0.0))
    images = {
        "pos": Image.new("RGB", (64, 64), (200, 30, 30)),
        "neg": Image.new("RGB", (64, 64), (30, 30, 200)),
    }
    words = "a red ball and a blue cube on the left of a green tree".split()
    exps = [
        Experience(
            f"e{i}",
            "describe this image .",
            "pos",
            "neg",
            " ".join(words[: 6 + i % 7]) + " .",
            " ".join(words[i % 5 :]) + " .",
            9.0,
            1.0,
            False,
            "",
            {},
        )
        for i in range(args.experiences)
    ]
    same = abs(step(policy, exps, images, FOUR) - step(policy, exps, images, THREE))
    ratios, times = [], {"four": [], "three": []}
    for r in range(args.repeats):
        order = (("four", FOUR), ("three", THREE)) if r % 2 == 0 else (("three", THREE), ("four", FOUR))
        for name, names in order:
            t = time.perf_counter()
            step(policy, exps, images, names)
            times[name].append(time.perf_counter() - t)
        ratios.append(times["four"][-1] / times["three"][-1])
    load = os.getloadavg()[0]
    print(
        f"threads {torch.get_num_threads()}, load {load:.2f}, {args.experiences} experiences, hidden {args.hidden}"
    )
    print(
        f"4 conditions: median {statistics.median(times['four']):.3f} s; 3 conditions: "
        f"median {statistics.median(times['three']):.3f} s"
    )
    print(
        f"speed-up of skipping (A+|Q): median {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-"
        f"{max(ratios):.2f}); |loss difference| = {same:.2e}"
    )


if __name__ == "__main__":
    main()
