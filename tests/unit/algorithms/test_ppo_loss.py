import math

import torch

from d2rl.algorithms.ppo.learner import ppo_loss


def _loss(**kw):  # type: ignore[no-untyped-def]
    base = dict(clip_coef=0.2, clip_vloss=False, vf_coef=0.5, ent_coef=0.01)
    base.update(kw)
    return ppo_loss(**base)


def test_ppo_loss_tiny_batch_by_hand() -> None:
    # ratios: e^0.1 (inside the clip range for A>0? 1.105 < 1.2 yes), e^0.5 (clipped at 1.2 for A>0),
    # e^-0.5 (A<0: max(-A*r, -A*clip(r)) = max(0.607, 0.8) -> 0.8 uses the clipped ratio)
    old = torch.zeros(3)
    new = torch.tensor([0.1, 0.5, -0.5])
    adv = torch.tensor([1.0, 1.0, -1.0])
    value = torch.tensor([1.0, 2.0, 0.0])
    ret = torch.tensor([0.0, 2.0, 1.0])
    ent = torch.tensor([0.5, 0.5, 0.5])
    loss, m = _loss(
        new_logprob=new,
        old_logprob=old,
        advantage=adv,
        new_value=value,
        old_value=value,
        ret=ret,
        entropy=ent,
    )
    pg = (-math.exp(0.1) - 1.2 + 0.8) / 3
    v = 0.5 * (1.0 + 0.0 + 1.0) / 3
    assert math.isclose(m["loss/policy"].item(), pg, rel_tol=1e-6)
    assert math.isclose(m["loss/value"].item(), v, rel_tol=1e-6)
    assert math.isclose(loss.item(), pg + 0.5 * v - 0.01 * 0.5, rel_tol=1e-6)
    assert math.isclose(m["stats/clipfrac"].item(), 2 / 3, rel_tol=1e-6)


def test_value_clipping_takes_the_pessimistic_error() -> None:
    old_v = torch.tensor([0.0])
    new_v = torch.tensor([1.0])  # moved 1.0; clipped to 0.2
    ret = torch.tensor([1.0])
    z = torch.zeros(1)
    _, unclipped = _loss(
        new_logprob=z, old_logprob=z, advantage=z, new_value=new_v, old_value=old_v, ret=ret, entropy=z
    )
    _, clipped = _loss(
        new_logprob=z,
        old_logprob=z,
        advantage=z,
        new_value=new_v,
        old_value=old_v,
        ret=ret,
        entropy=z,
        clip_vloss=True,
    )
    assert unclipped["loss/value"].item() == 0.0
    assert math.isclose(clipped["loss/value"].item(), 0.5 * 0.8**2, rel_tol=1e-6)


def test_gradient_vanishes_outside_the_clip_region() -> None:
    new = torch.tensor([0.5], requires_grad=True)  # ratio 1.65 > 1.2 with A > 0: no gradient
    loss, _ = _loss(
        new_logprob=new,
        old_logprob=torch.zeros(1),
        advantage=torch.ones(1),
        new_value=torch.zeros(1),
        old_value=torch.zeros(1),
        ret=torch.zeros(1),
        entropy=torch.zeros(1),
    )
    loss.backward()
    assert new.grad is not None and new.grad.item() == 0.0
