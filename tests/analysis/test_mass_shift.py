"""Probability-mass shift (Fig. 5): hand-worked bins, zero change when the model before and after is the same,
a change when the adapter moves the weights."""

import math

import pytest
import torch
from PIL import Image

from ovip.analysis.mass_shift import ScoredAnswer, score_samples, shift
from ovip.policy.model import Policy
from ovip.policy.tiny import tiny_llava
from ovip.records import Example
from ovip.world.judge import WorldJudge

SAMPLING = {"temperature": 1.2, "top_p": 0.8, "max_new_tokens": 6}


def test_bins_from_log_probs():
    """One prompt, two answers scored 2 and 8 with probabilities 3:1 before and 1:3 after, at log-probs near
    -1000 (exp underflows unless the prompt's largest is taken out first): bin 2 goes 0.75 -> 0.25, bin 8
    0.25 -> 0.75, the low-score change (bins < 4) is -0.5."""
    a = ScoredAnswer("p", "x", 2.0, -1000 + math.log(0.75), -1000 + math.log(0.25))
    b = ScoredAnswer("p", "y", 8.0, -1000 + math.log(0.25), -1000 + math.log(0.75))
    s = shift([a, b])
    assert s.before[2] == pytest.approx(0.75) and s.after[8] == pytest.approx(0.75)
    assert s.change[2] == pytest.approx(-0.5) and s.change[8] == pytest.approx(0.5)
    assert s.low_score_change == pytest.approx(-0.5)


def examples():
    return [
        Example(
            "a", "describe this image .", "there is a red ball .", Image.new("RGB", (32, 32), (200, 10, 10))
        ),
        Example(
            "b", "what color is the ball ?", "the ball is blue .", Image.new("RGB", (32, 32), (0, 0, 250))
        ),
    ]


def test_identical_models_move_no_mass():
    model, processor = tiny_llava()
    policy = Policy(model, processor, finetune="none")  # the reference is the model itself
    answers = score_samples(policy, examples(), WorldJudge(), k=4, sampling=SAMPLING, seed=0)
    assert len(answers) >= 2 and all(a.logp_before == a.logp_after for a in answers)
    s = shift(answers)
    assert s.change == [0.0] * 11 and sum(s.before) == pytest.approx(1.0)
    again = score_samples(policy, examples(), WorldJudge(), k=4, sampling=SAMPLING, seed=0)
    assert again == answers  # deterministic under the seed


def test_a_trained_adapter_moves_mass():
    model, processor = tiny_llava()
    policy = Policy(model, processor, finetune="lora")
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    answers = score_samples(policy, examples(), WorldJudge(), k=4, sampling=SAMPLING, seed=0)
    assert any(a.logp_before != a.logp_after for a in answers)
    s = shift(answers)
    assert sum(s.after) == pytest.approx(1.0) and sum(s.before) == pytest.approx(1.0)
