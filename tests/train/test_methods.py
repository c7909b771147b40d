"""The paper's baselines in the same engine: each method trains a few steps on the tiny world, and what it
turns a prompt into, and when it trains, is what `ovip.train.methods` says."""

import json

import pytest
import torch
import yaml

from ovip.config import LossConfig, load
from ovip.records import PairExperience as Experience
from ovip.train.conditions import FIELDS, Logps, needed_conditions
from ovip.train.objective import ovip_loss


@pytest.fixture(scope="module")
def runs(tiny_world, tmp_path_factory):
    """Every method trained once on the tiny world, in-process (the session's world cache and base model)."""
    import os

    from ovip.train.run import train

    root, recipe, environ = tiny_world
    out = tmp_path_factory.mktemp("methods")
    old = os.environ.get("OVIP_CACHE")
    os.environ["OVIP_CACHE"] = environ["OVIP_CACHE"]
    try:
        done = {}
        for method in (
            "ovip",
            "dpo-online",
            "dpo",
            "dpo-iterative",
            "ovip-offline",
            "mdpo",
            "sft",
            "grpo",
            "kto",
        ):
            cfg = load(recipe, ["--train.method", method, "--train.output_dir", str(out / method)])
            done[method] = (train(cfg, overwrite=True), out / method)
    finally:
        if old is None:
            os.environ.pop("OVIP_CACHE")
        else:
            os.environ["OVIP_CACHE"] = old
    return done


def experiences(run):
    return [json.loads(line) for line in (run / "experiences.jsonl").read_text().splitlines()]


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_every_method_trains(runs):
    for method, (summary, run) in runs.items():
        assert summary["step"] > 0, method
        assert (run / "checkpoints" / "latest").exists(), method


def test_methods_without_negatives_draw_none_and_train_on_the_text_loss(runs):
    for method in ("dpo-online", "dpo", "dpo-iterative"):
        _, run = runs[method]
        assert all(e["negative_image_path"] == "" for e in experiences(run)), method
        assert yaml.safe_load((run / "config.yaml").read_text())["loss"]["image"] == "none"
        assert all(m["loss/image"] == 0 for m in metrics(run))


def test_offline_methods_sample_everything_with_the_initial_model_first(runs):
    for method in ("dpo", "ovip-offline", "mdpo"):
        _, run = runs[method]
        assert {e["step"] for e in experiences(run)} == {0}, method  # all sampled before the first update
        m = metrics(run)
        assert all(x["prompts"] == m[-1]["prompts"] for x in m)  # every update after the whole data
        lrs = [x["lr"] for x in m]
        assert lrs[0] == max(lrs) and lrs == sorted(lrs, reverse=True)  # the phase runs its own cosine


def test_iterative_dpo_resamples_from_the_current_model(runs):
    steps = [e["step"] for e in experiences(runs["dpo-iterative"][1])]
    assert steps == sorted(steps) and len(set(steps)) > 1


def test_mdpo_is_crop_negatives_base_image_loss_and_anchor(runs):
    cfg = yaml.safe_load((runs["mdpo"][1] / "config.yaml").read_text())
    assert (cfg["negatives"]["kind"], cfg["loss"]["image"], cfg["loss"]["anchor_weight"]) == (
        "crop",
        "base",
        1.0,
    )
    assert all("loss/anchor" in m for m in metrics(runs["mdpo"][1]))


def test_sft_trains_on_the_reference_answers(runs, tiny_world, monkeypatch):
    from ovip.train.setup import load_training_examples

    _, recipe, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    from ovip.world.resolve import prepare

    examples, _ = load_training_examples(prepare(load(recipe)))
    references = {e.id: e.reference for e in examples}
    exps = experiences(runs["sft"][1])
    assert len(exps) == len(references)  # one experience per prompt, no sampling
    assert all(e["kind"] == "answer" and e["response"] == references[e["example_id"]] for e in exps)
    assert all("loss/sft" in m for m in metrics(runs["sft"][1]))


def test_grpo_keeps_every_judged_sample_with_its_group_advantage(runs):
    by_prompt = {}
    for e in experiences(runs["grpo"][1]):
        by_prompt.setdefault((e["example_id"], e["step"]), []).append(e)
    assert by_prompt
    for group in by_prompt.values():
        adv = torch.tensor([e["advantage"] for e in group])
        assert all(e["kind"] == "sample" for e in group)
        scores = torch.tensor([e["score"] for e in group])
        assert abs(float(adv.sum())) < 1e-4  # z-scores within a group sum to zero
        assert torch.equal(torch.argsort(adv), torch.argsort(scores)) or len(set(scores.tolist())) < len(
            group
        )
    assert all("loss/grpo" in m and "kl" in m for m in metrics(runs["grpo"][1]))


def test_kto_keeps_the_judged_samples_beyond_the_pair_thresholds(runs):
    """Online KTO: a sample above tau_pos is desirable (+1), below tau_neg undesirable (-1), the others are left
    out; the reference point z0 (logged as `kl`) is an estimate of a KL, never negative."""
    exps = experiences(runs["kto"][1])
    assert exps and all(e["kind"] == "sample" for e in exps)
    assert all(
        (e["advantage"] == 1.0) == (e["score"] > 5) and (e["advantage"] == -1.0) == (e["score"] < 5)
        for e in exps
    )
    assert {e["advantage"] for e in exps} <= {1.0, -1.0}  # the tiny world's answers may all be undesirable
    m = metrics(runs["kto"][1])
    assert all("loss/kto" in x and x["kl"] >= 0 for x in m)


def test_equal_betas_skip_the_image_free_forward_and_lose_nothing():
    """beta1 == beta2: Eq. 5 = L_Image^base exactly (the image-free reward cancels), so (A+|Q) is not scored;
    beta1 != beta2 scores it. Checked numerically on random log-probs, value and gradient."""
    assert "chosen|none" not in needed_conditions(LossConfig())
    assert "chosen|none" in needed_conditions(LossConfig(beta2=0.2))
    assert needed_conditions(LossConfig(image="none")) == ("chosen|image", "rejected|image")
    torch.manual_seed(0)
    names = tuple(FIELDS)[:4]
    pol = {n: (torch.randn(5) - 5).requires_grad_() for n in names}
    ref = Logps(**{FIELDS[n]: torch.randn(5) - 5 for n in names})
    cfg = LossConfig()
    full = ovip_loss(Logps(**{FIELDS[n]: pol[n] for n in names}), ref, cfg).total.sum()
    short = ovip_loss(Logps(**{FIELDS[n]: pol[n] for n in names if n != "chosen|none"}), ref, cfg).total.sum()
    torch.testing.assert_close(full, short)
    (grad,) = torch.autograd.grad(full, [pol["chosen|none"]])
    assert torch.count_nonzero(grad) == 0  # the image-free term does nothing with equal betas


def test_score_conditions_lays_out_each_experience_in_names_order():
    """The seam ovip_loss relies on: the values of one experience's conditions land in that experience's slot."""
    from PIL import Image

    from ovip.policy.tiny import tiny_llava
    from ovip.train.conditions import score_conditions

    model, processor = tiny_llava()
    images = {
        "a.png": Image.new("RGB", (32, 32), (200, 0, 0)),
        "b.png": Image.new("RGB", (32, 32), (0, 0, 200)),
    }
    exps = [
        Experience(
            f"e{i}",
            "what color is the ball ?",
            "a.png",
            "b.png",
            ["red", "a red ball"][i],
            ["blue", "a dog"][i],
            9.0,
            1.0,
            False,
            "d",
            {},
        )
        for i in range(2)
    ]
    names = ("chosen|image", "rejected|image", "chosen|none", "chosen|negative")
    together = score_conditions(model, processor, exps, names, images, "drop")
    for i, e in enumerate(exps):
        alone = score_conditions(model, processor, [e], names, images, "drop")
        for n in names:
            torch.testing.assert_close(
                getattr(together, FIELDS[n])[i], getattr(alone, FIELDS[n])[0], atol=1e-5, rtol=0
            )
    assert not torch.allclose(together.chosen, together.chosen_neg)  # another image, another value


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["--loss.image", "split"], "loss/image"),
        (["--loss.image", "base"], "loss/image"),
        (["--loss.image", "sym"], "loss/image"),
        (["--loss.beta2", "0.2"], "loss/image"),
        (["--loss.anchor_weight", "1"], "loss/anchor"),
        (["--loss.bi_anchor_weight", "1"], "loss/bi_anchor"),
        (["--loss.sft_weight", "1"], "loss/sft"),
        (["--loss.text_weight", "0"], "loss/image"),
    ],
)
def test_every_loss_variant_runs_through_the_loop(overrides, key, tiny_world, tmp_path, monkeypatch):
    """Appendix B.1's variants and the auxiliaries, each once through the real loop (a few steps)."""
    from ovip.train.run import train

    _, recipe, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    cfg = load(recipe, overrides + ["--train.output_dir", str(tmp_path / "run"), "--train.max_examples", "6"])
    summary = train(cfg, overwrite=True)
    assert summary["step"] > 0
    lines = metrics(tmp_path / "run")
    assert all(key in m and m[key] is not None and m[key] == m[key] for m in lines)
    if (
        "sym" in overrides
    ):  # L_Image-Sym scores the rejected answer under the negative image and without image
        assert {"rejected|none", "rejected|negative"} <= set(
            experiences(tmp_path / "run")[0]["reference_logps"]
        )
