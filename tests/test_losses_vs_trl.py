"""Our DPO (Eq. 4) and GRPO losses against TRL's own implementations on the same inputs.

TRL computes both inside its trainers (`DPOTrainer._compute_loss`, `GRPOTrainer._compute_loss`) from a model's
per-token log-probs. We give a trainer instance only what those methods read and a stand-in model whose
outputs are the chosen per-token log-probs, so TRL's arithmetic runs on exactly our inputs. TRL is a test-only
dependency (the `test` extra).
"""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import trl  # the test extra installs it: a missing TRL is a failed install, never a skipped check

from ovip import losses


def accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


class StandIn:
    """A 'model' whose forward returns fixed per-token log-probs (and the extra outputs TRL logs)."""

    training = True

    def __init__(self, per_token):
        self.per_token = per_token

    def __call__(self, **kwargs):
        z = torch.zeros_like(self.per_token)
        return SimpleNamespace(
            log_probs=self.per_token, entropy=z, mean_logits=z, is_top1=z.bool(), aux_loss=None
        )


def test_dpo_matches_trl_sigmoid_loss():
    torch.manual_seed(0)
    B, T = 3, 5
    per_token = torch.randn(2 * B, T - 1) - 2  # TRL's rows: B chosen then B rejected, shifted by one position
    mask = torch.ones(2 * B, T, dtype=torch.long)
    mask[:, 0] = 0  # the first position is prompt
    mask[1, -1] = 0  # a shorter chosen answer
    per_token = per_token * mask[:, 1:]
    ref_chosen, ref_rejected = torch.randn(B) - 6, torch.randn(B) - 6
    t = trl.DPOTrainer.__new__(trl.DPOTrainer)
    t.model, t.accelerator, t.beta = StandIn(per_token), accelerator(), 0.1
    t.aux_loss_enabled, t.ld_alpha, t.precompute_ref_logps, t.f_divergence_type = (
        False,
        None,
        True,
        "reverse_kl",
    )
    t.loss_types, t.loss_weights, t._tp_size, t._total_train_tokens = ["sigmoid"], [1.0], 1, 0
    t.use_weighting = False
    t._metrics = defaultdict(lambda: defaultdict(list))
    inputs = {
        "input_ids": torch.zeros(2 * B, T, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, T),
        "completion_mask": mask,
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    theirs = t._compute_loss(t.model, inputs, return_outputs=False)
    logps = per_token.sum(1)
    ours = losses.text_loss(logps[:B], ref_chosen, logps[B:], ref_rejected, beta=0.1).mean()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_matches_trl_token_level_loss(beta):
    torch.manual_seed(1)
    N, T = 4, 6
    logps = torch.randn(N, T) - 1
    old = logps + 0.3 * torch.randn(N, T)  # off-policy samples, so the clipping matters
    ref = logps + 0.2 * torch.randn(N, T)
    mask = torch.ones(N, T)
    mask[0, 4:] = 0
    mask[2, 2:] = 0
    adv = torch.tensor([1.0, -0.5, 0.25, -0.75])
    t = trl.GRPOTrainer.__new__(trl.GRPOTrainer)
    t.model, t.accelerator = StandIn(logps), accelerator()
    t.beta, t.epsilon_low, t.epsilon_high, t.loss_type = beta, 0.2, 0.2, "bnpo"
    t.top_entropy_quantile, t.off_policy_mask_threshold, t.importance_sampling_level = 1.0, None, "token"
    t.use_vllm, t.vllm_importance_sampling_correction, t.aux_loss_enabled = False, False, False
    t._entropy_bonus_enabled, t.current_gradient_accumulation_steps = False, 1
    t.args = SimpleNamespace(use_bias_correction_kl=False, delta=None)
    t._metrics = defaultdict(lambda: defaultdict(list))
    t._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    inputs = {
        "prompt_ids": torch.zeros(N, 2, dtype=torch.long),
        "prompt_mask": torch.ones(N, 2),
        "completion_ids": torch.zeros(N, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
    }
    theirs = t._compute_loss(t.model, inputs)
    ours, _ = losses.grpo_loss(logps, old, ref, mask, adv, epsilon=0.2, beta=beta)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


class TwoInputs(StandIn):
    """A stand-in whose per-token log-probs depend on which batch it is called with: the examples, or the KL
    batch of mismatched pairs (TRL's `KTOTrainer` calls the model on both)."""

    def __init__(self, main_ids, per_token, kl_per_token):
        self.main_ids, self.kl = main_ids, kl_per_token
        super().__init__(per_token)

    def __call__(self, **kwargs):
        out = super().__call__(**kwargs)
        if kwargs["input_ids"] is not self.main_ids:
            out.log_probs = self.kl
        return out


@pytest.mark.parametrize("kl_sign", [1.0, -1.0])  # a positive z0, and a negative one that the clamp zeroes
def test_kto_matches_trl_kto_loss(kl_sign):
    """Our KTO loss and reference point against TRL's `KTOTrainer._compute_loss` (loss_type "kto"), on the same
    summed log-probs: 3 desirable and 2 undesirable examples, and the mismatched pairs of TRL's KL batch."""
    torch.manual_seed(2)
    B, T = 5, 6
    mask = torch.ones(B, T, dtype=torch.long)
    mask[:, :2] = 0  # the prompt
    mask[1, -1] = 0
    per_token = (torch.randn(B, T - 1) - 2) * mask[:, 1:]
    kl_per_token = (torch.randn(B, T - 1) - 2) * mask[:, 1:]
    ref, ref_kl = per_token.sum(1) + 0.5 * torch.randn(B), kl_per_token.sum(1) - kl_sign * torch.rand(B)
    label = torch.tensor([True, False, True, True, False])
    ids = torch.zeros(B, T, dtype=torch.long)
    t = trl.KTOTrainer.__new__(trl.KTOTrainer)
    t.model, t.accelerator = TwoInputs(ids, per_token, kl_per_token), accelerator()
    t.beta, t.loss_type, t.calculate_KL, t.precompute_ref_logps = 0.1, "kto", True, True
    t.desirable_weight, t.undesirable_weight, t.aux_loss_enabled = 1.0, 1.0, False
    t._tp_size, t._total_train_tokens = 1, 0
    t._metrics = defaultdict(lambda: defaultdict(list))
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones(B, T),
        "completion_mask": mask,
        "KL_input_ids": torch.zeros(B, T, dtype=torch.long),
        "KL_attention_mask": torch.ones(B, T),
        "KL_completion_mask": mask,
        "label": label,
        "ref_logps": ref,
        "ref_KL_logps": ref_kl,
    }
    theirs = t._compute_loss(t.model, inputs, return_outputs=False)
    z0 = losses.kto_reference_point(kl_per_token.sum(1), ref_kl)
    ours = losses.kto_loss(per_token.sum(1), ref, label, z0, beta=0.1).mean()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    assert (float(z0) > 0) == (kl_sign > 0)


def trl_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """TRL `GRPOTrainer`'s group advantages (scale_rewards="group"), as its `_generate_and_score_completions`
    computes them: the group's nan-mean and TRL's own `nanstd`, then (r - mean) / (std + 1e-4)."""
    from trl.trainer.utils import nanstd

    mean = torch.nanmean(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    std = nanstd(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    return torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)


def test_grpo_advantages_over_all_k_samples_match_trl_with_duplicates():
    """k = 8 with six copies of one answer: each copy keeps its judged score and counts in the group, so TRL's
    +0.540 (six times) and -1.620 (twice), not +/-0.707 over the two distinct answers; a second group with
    three distinct answers, one repeated, and an all-equal group (advantage 0 everywhere, kept)."""
    from ovip.config import Config
    from ovip.records import Example, Judgment
    from ovip.train.objective import GRPO
    from ovip.train.stages import Rollout

    groups = [
        (["a"] * 6 + ["b"] * 2, {"a": 9.0, "b": 2.0}),
        (["x", "y", "x", "z", "x", "y", "z", "z"], {"x": 7.5, "y": 1.0, "z": 4.0}),
        (["same"] * 8, {"same": 6.0}),
    ]
    grpo, ours, rewards = GRPO(Config()), [], []
    for i, (samples, score) in enumerate(groups):
        distinct = list(dict.fromkeys(samples))
        rollout = Rollout(Example(f"e{i}", "q", "ref"), None, len(samples), distinct, samples)
        picked = grpo.select(i, rollout, [Judgment(r, score[r]) for r in distinct])
        assert [c.response for c in picked] == samples  # one experience per sample, duplicates included
        ours += [c.advantage for c in picked]
        rewards += [score[r] for r in samples]
    theirs = trl_advantages(torch.tensor(rewards), 8)
    torch.testing.assert_close(torch.tensor(ours), theirs, atol=1e-5, rtol=1e-5)
    assert [round(a, 3) for a in ours[:8]] == [0.54] * 6 + [-1.62] * 2
    assert ours[16:] == [0.0] * 8
