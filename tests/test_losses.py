"""Losses against values worked out by hand (derivations in the docstrings)."""

import math

import torch

from ovip import losses

t = torch.tensor


def close(x, y):
    torch.testing.assert_close(x, t([y], dtype=torch.float32), atol=1e-6, rtol=0)


def test_text_loss_eq4():
    """r(A+) = -10 - (-12) = 2, r(A-) = -20 - (-18) = -2; beta 0.1 -> -log sigma(0.4) = log(1 + e^-0.4)."""
    close(
        losses.text_loss(t([-10.0]), t([-12.0]), t([-20.0]), t([-18.0]), beta=0.1), math.log1p(math.exp(-0.4))
    )


def test_text_loss_is_log2_at_reference():
    """Policy == reference: every reward is 0, the loss is -log sigma(0) = log 2."""
    x = t([-5.0, -7.0])
    torch.testing.assert_close(losses.text_loss(x, x, x - 1, x - 1), torch.full((2,), math.log(2)))


def test_image_loss_eq5_single_sigmoid():
    """r(A+|I+) = 3, r(A+|Q) = 1, r(A+|I-) = -2; beta1 = 0.1, beta2 = 0.2:
    z = 0.1 * (3 - 1) + 0.2 * (1 - (-2)) = 0.2 + 0.6 = 0.8 -> log(1 + e^-0.8)."""
    out = losses.image_loss(
        t([-7.0]), t([-10.0]), t([-9.0]), t([-10.0]), t([-12.0]), t([-10.0]), beta1=0.1, beta2=0.2
    )
    close(out, math.log1p(math.exp(-0.8)))


def test_image_loss_equal_betas_telescopes_to_base():
    """With beta1 = beta2 the image-free term cancels: z = beta*[r(I+) - r(I-)], i.e. L_Image^base."""
    args = (t([-7.0]), t([-10.0]), t([-9.0]), t([-10.0]), t([-12.0]), t([-10.0]))
    base = losses.image_loss_base(args[0], args[1], args[4], args[5], beta=0.1)
    torch.testing.assert_close(losses.image_loss(*args, beta1=0.1, beta2=0.1), base)
    close(base, math.log1p(math.exp(-0.5)))  # 0.1 * (3 - (-2))


def test_image_loss_split_released_code():
    """cdpo = -log sigma(0.1*(3-1)) = log(1+e^-0.2); rdpo = -log sigma(0.1*(1+2)) = log(1+e^-0.3)."""
    args = (t([-7.0]), t([-10.0]), t([-9.0]), t([-10.0]), t([-12.0]), t([-10.0]))
    full = math.log1p(math.exp(-0.2)) + math.log1p(math.exp(-0.3))
    close(losses.image_loss_split(*args, beta=0.1), full)
    close(losses.image_loss_split(*args, beta=0.1, half=True), full / 2)


def test_image_loss_sym():
    """Forward term as above (z = 0.8 with beta2 = 0.2). Backward term on A-:
    r(A-|I-) = 4, r(A-|Q) = 0, r(A-|I+) = -1 -> z = 0.1*(4 - 0) + 0.2*(0 + 1) = 0.6."""
    z = t([0.0])
    out = losses.image_loss_sym(
        t([3.0]), z, t([1.0]), z, t([-2.0]), z, t([-1.0]), z, t([0.0]), z, t([4.0]), z, beta1=0.1, beta2=0.2
    )
    close(out, math.log1p(math.exp(-0.8)) + math.log1p(math.exp(-0.6)))


def test_anchor_and_bi_anchor():
    """anchor: r(A+|I+) = 5 -> log(1 + e^-0.5). bi-anchor adds log sigma(0.1 * r(A-|Q)) with r = -10:
    log sigma(-1) = -log(1 + e)."""
    close(losses.anchor_loss(t([5.0]), t([0.0])), math.log1p(math.exp(-0.5)))
    close(
        losses.bi_anchor_loss(t([5.0]), t([0.0]), t([-10.0]), t([0.0])),
        math.log1p(math.exp(-0.5)) - math.log1p(math.e),
    )


def test_sft_loss_is_per_token_nll():
    close(losses.sft_loss(t([-6.0]), t([3])), 2.0)


def test_rewards_metrics():
    m = losses.Rewards.of(t([0.0, 0.0]), t([-1.0, 1.0]), t([0.0, 0.0]), t([0.0, 0.0]), beta=0.5).metrics()
    assert m == {
        "rewards/chosen": 0.0,
        "rewards/rejected": 0.0,
        "rewards/margins": 0.0,
        "rewards/accuracies": 0.5,
    }


def test_gradient_direction_of_text_loss():
    """Minimising L_Text raises the chosen log-prob and lowers the rejected one."""
    chosen, rejected = t([-5.0], requires_grad=True), t([-5.0], requires_grad=True)
    losses.text_loss(chosen, t([-5.0]), rejected, t([-5.0])).sum().backward()
    assert chosen.grad.item() < 0 < rejected.grad.item()


def test_group_advantages_by_hand():
    """Group 0 scores (2, 4, 6): mean 4, sample std 2 -> (-1, 0, 1) (eps 0). A group of equal scores (5, 5) and
    a one-member group carry no preference: advantage 0 (with the default eps)."""
    adv = losses.group_advantages(t([2.0, 4.0, 6.0]), torch.tensor([0, 0, 0]), eps=0.0)
    torch.testing.assert_close(adv, t([-1.0, 0.0, 1.0]))
    adv = losses.group_advantages(t([5.0, 5.0, 3.0]), torch.tensor([1, 1, 2]))
    torch.testing.assert_close(adv, t([0.0, 0.0, 0.0]))


def test_grpo_loss_by_hand():
    """One sequence of 2 tokens and one of 1 (mask), A = (+1, -2), beta = 0.1, epsilon = 0.2.
    Token logps (policy) = (-1, -2 | -1), old = (-1, -2.5 | -0.5), ref = (-1, -2 | -2):
      seq 1: ratio (1, e^0.5 = 1.6487) -> clipped (1, 1.2); A = 1: -min(1, 1) = -1, -min(1.6487, 1.2) = -1.2
      seq 2: ratio e^-0.5 = 0.6065 -> clipped 0.8; A = -2: -min(-1.2131, -1.6) = 1.6
      KL tokens: 0, 0, exp(-1) - (-1) - 1 = 0.3679 -> with beta 0.1: +0.03679 on the last token
      loss = (-1 - 1.2 + 1.6 + 0.03679) / 3 tokens = -0.18774; mean KL = 0.3679 / 3."""
    logps = t([[-1.0, -2.0], [-1.0, 0.0]])
    old = t([[-1.0, -2.5], [-0.5, 0.0]])
    ref = t([[-1.0, -2.0], [-2.0, 0.0]])
    mask = t([[1.0, 1.0], [1.0, 0.0]])
    loss, kl = losses.grpo_loss(logps, old, ref, mask, t([1.0, -2.0]), epsilon=0.2, beta=0.1)
    kl3 = math.exp(-1) - (-1) - 1
    torch.testing.assert_close(loss, torch.tensor((-1 - 1.2 + 1.6 + 0.1 * kl3) / 3))
    torch.testing.assert_close(kl, torch.tensor(kl3 / 3))


def test_grpo_loss_on_policy_gradient_is_the_advantage_weighted_likelihood_gradient():
    """With old = policy (one update per batch) and beta = 0 the ratio is 1 and the gradient of the loss with
    respect to a token's log-prob is -A / n_tokens."""
    logps = t([[-1.0, -2.0], [-0.5, -0.1]]).requires_grad_()
    loss, _ = losses.grpo_loss(
        logps, logps.detach(), logps.detach(), torch.ones(2, 2), t([0.5, -1.0]), beta=0.0
    )
    loss.backward()
    torch.testing.assert_close(logps.grad, t([[-0.125, -0.125], [0.25, 0.25]]))


def test_kto_loss_by_hand():
    """r = policy - reference = (1, -2); z0 = 0.5; beta = 1. Desirable: 1 - sigmoid(1 - 0.5) = 1 - 0.62246 =
    0.37754; undesirable: 1 - sigmoid(0.5 - (-2)) = 1 - 0.92414 = 0.07586. With z0 from mismatched pairs whose
    log-ratios are (-1, -3), the mean -2 clamps to 0."""
    policy, reference = torch.tensor([0.0, -5.0]), torch.tensor([-1.0, -3.0])
    out = losses.kto_loss(policy, reference, torch.tensor([True, False]), torch.tensor(0.5), beta=1.0)
    torch.testing.assert_close(out, torch.tensor([0.37754, 0.07586]), atol=1e-5, rtol=0)
    weighted = losses.kto_loss(
        policy, reference, torch.tensor([True, False]), torch.tensor(0.5), 1.0, 2.0, 3.0
    )
    torch.testing.assert_close(weighted, torch.tensor([2 * 0.37754, 3 * 0.07586]), atol=1e-5, rtol=0)
    z0 = losses.kto_reference_point(torch.tensor([-2.0, -4.0]), torch.tensor([-1.0, -1.0]))
    assert float(z0) == 0.0
    assert float(losses.kto_reference_point(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))) == 2.0
