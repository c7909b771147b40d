"""Pretraining of the tiny base VLM on the biased split: where its hallucinations come from.

Two stages, as LLaVA-1.5 is built (a pretrained CLIP, frozen, under a language model tuned on instructions):

1. Vision tower. We have no pretrained CLIP, so we make one in seconds: each patch token of the CLIP
   tower is classified into the category / colour / size of the object centred in it (or "none"),
   through throw-away linear heads. (From pixels through the language model alone the tower learns
   shapes far too slowly for a CPU budget; measured when the world was built.)
2. Instruction tuning (SFT) with the vision tower frozen: token cross-entropy over response tokens
   (end-of-turn included) averaged per sequence, then over the batch; computed with the policy layer's one
   log-prob function
   (`ovip.policy.logprobs`), so the base model is trained on exactly the sequences the OViP trainer
   later scores.

The biased split's co-occurrence priors (B with A at p = 0.97, B then usually small, in the cell right of
A and so named right after it) let the language prior beat weak visual evidence; evaluation scenes break
them. Longer stage-2 training slowly teaches the model to check B (CHAIR falls), so `steps` sets how much
the base model hallucinates.

The run is fixed by its config: a set number of steps, seeded data order and initialisation, a set thread
count; nothing depends on the clock or on how busy the machine is, so the same config and thread count give
bit-identical weights on any machine with the same torch. The model is trained into a temporary folder and
renamed into place only when finished, with `pretrain.json` (config fingerprint, steps, threads, torch
version, wall time, losses) beside it; `pretrain` skips the work when that file matches the config
(`ensure_base_model` in build.py), and an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ovip.config.world import WorldConfig
from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.progress import Progress
from ovip.world.cache import MARKER
from ovip.world.cache import base_model_is_finished as is_finished
from ovip.world.model import build, save
from ovip.world.splits import make_split


def lr_at(step: int, cfg: WorldConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to 10% of it."""
    p = cfg.pretrain
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    t = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
    return p.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def patch_targets(cfg: WorldConfig, scene, n: int) -> torch.Tensor:
    """[n*n, 3] long: (category + 1 or 0 for none, colour or -100, size or -100) of each patch's object;
    -100 throughout for a small object's patch when `pretrain.vision_small_objects` is off."""
    out = torch.tensor([[0, -100, -100]] * (n * n))
    for g in scene.groups:
        for x, y in g.positions:
            k = min(int(y * n), n - 1) * n + min(int(x * n), n - 1)
            if g.size == "small" and not cfg.pretrain.vision_small_objects:
                out[k] = torch.tensor([-100, -100, -100])
                continue
            out[k] = torch.tensor(
                [cfg.categories.index(g.category) + 1, cfg.colors.index(g.color), int(g.size == "small")]
            )
    return out


def pretrain_vision(
    model, processor, cfg: WorldConfig, examples, images: dict, progress: bool = True
) -> list[float]:
    """Stage 1: per-patch supervised classification through the vision tower (module docstring)."""
    p = cfg.pretrain
    tower = model.model.vision_tower
    n = cfg.image_size // cfg.model.patch_size
    sizes = (len(cfg.categories) + 1, len(cfg.colors), 2)
    head = torch.nn.Linear(tower.config.hidden_size, sum(sizes)).to(p.device)
    opt = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=p.vision_lr, weight_decay=0.0)
    scenes = {e.image_id: e for e in examples}
    ids = list(scenes)
    order = random.Random(p.seed + 1)
    losses: list[float] = []
    for step in Progress(range(p.vision_steps), desc="pretrain vision tower", disable=not progress):
        batch = order.sample(ids, min(64, len(ids)))
        for i in batch:
            if i not in images:
                images[i] = scenes[i].render(cfg.image_size)
        pixels = processor.image_processor([images[i] for i in batch], return_tensors="pt")["pixel_values"]
        target = torch.stack([patch_targets(cfg, scenes[i].scene, n) for i in batch]).to(p.device)
        for group in opt.param_groups:
            group["lr"] = p.vision_lr * min(1.0, (step + 1) / 20)
        feats = tower(pixels.to(p.device)).last_hidden_state[:, 1:]  # the features LLaVA reads ("default")
        logits = head(feats).split(sizes, dim=-1)
        loss = sum(
            torch.nn.functional.cross_entropy(lg.flatten(0, 1), target[..., k].flatten())
            for k, lg in enumerate(logits)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def pretrain(
    out_dir: str | Path,
    cfg: WorldConfig,
    force: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float, object, object], None] | None = None,
) -> Path:
    """Train the tiny VLM from scratch by SFT on the pretraining split; save model + processor in `out_dir`.

    `on_step(step, loss, model, processor)` is called after every optimizer step (logging, probes).
    """
    out_dir = Path(out_dir)
    if not force and is_finished(out_dir, cfg):
        return out_dir
    # The thread count is the pretraining's own setting: restore the caller's afterwards, so that a quickstart
    # that pretrains first trains and evaluates with the same threads as one that finds the model cached.
    threads_before = torch.get_num_threads()
    try:
        return _train(out_dir, cfg, progress, on_step)
    finally:
        torch.set_num_threads(threads_before)


def _train(out_dir: Path, cfg: WorldConfig, progress: bool, on_step) -> Path:
    p = cfg.pretrain
    torch.set_num_threads(p.threads)
    t0 = time.perf_counter()
    examples = make_split(cfg, "pretrain")
    images: dict[str, object] = {}  # image_id -> PIL image, rendered once
    model, processor = build(cfg)
    model.to(p.device).train()
    vision_losses = (
        pretrain_vision(model, processor, cfg, examples, images, progress) if p.vision_steps else []
    )
    if p.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    trainable = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    decay = [q for n, q in trainable if q.ndim >= 2 and "embed" not in n]
    no_decay = [q for n, q in trainable if q.ndim < 2 or "embed" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": p.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=p.lr,
        betas=(0.9, 0.98),
    )
    order = random.Random(p.seed)
    perm: list[int] = []
    losses: list[float] = []
    bar = Progress(range(p.steps), desc="instruction-tune world VLM", disable=not progress)
    for step in bar:
        if len(perm) < p.batch_size:
            perm += order.sample(range(len(examples)), len(examples))
        batch = [examples[perm.pop()] for _ in range(p.batch_size)]
        conditions = []
        for ex in batch:
            if ex.image_id not in images:
                images[ex.image_id] = ex.render(cfg.image_size)
            conditions.append(Condition(images[ex.image_id], ex.query, ex.reference))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        out = sequence_logps(model, processor, conditions)
        # per-sequence mean token cross-entropy, then mean over sequences: a short yes/no answer weighs as
        # much as a long description, so its one verdict token is not drowned by description tokens
        loss = (-out.logps / out.token_counts).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for _, q in trainable], 1.0)
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1], model, processor)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.cpu().eval()
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, processor, tmp)
    info = {
        "finished": True,
        "fingerprint": cfg.fingerprint("model", "pretrain"),
        "steps": len(losses),
        "vision_steps": len(vision_losses),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": p.device,
        "wall_s": round(time.perf_counter() - t0, 1),
        "loss_first": losses[0],
        "loss_last50": sum(losses[-50:]) / len(losses[-50:]),
        "vision_loss_last20": sum(vision_losses[-20:]) / max(1, len(vision_losses[-20:])),
        "examples": len(examples),
        "parameters": sum(q.numel() for q in model.parameters()),
        "config": cfg.to_dict(),
    }
    (tmp / MARKER).write_text(json.dumps(info, indent=1, default=list))
    shutil.rmtree(out_dir, ignore_errors=True)  # an older, unfinished or differently keyed model
    tmp.rename(out_dir)
    return out_dir
