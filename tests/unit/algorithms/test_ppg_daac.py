"""PPG and DAAC: their losses on tiny batches with hand-computed answers, the auxiliary phase's
schedule and uint8 storage, and DAAC's value-network schedule."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.algorithms.daac import DAACConfig
from d2rl.algorithms.daac.learner import AdvantageHead
from d2rl.algorithms.daac.learner import build as build_daac
from d2rl.algorithms.ppg import PPGConfig
from d2rl.algorithms.ppg.learner import build as build_ppg
from d2rl.algorithms.separate_networks import policy_kl, value_loss
from d2rl.buffers.rollout import Rollout
from d2rl.modules.heads import CategoricalHead, GaussianHead


def test_categorical_kl_by_hand() -> None:
    head = CategoricalHead(2, 2)
    old = torch.tensor([[0.5, 0.5]]).log()
    new = torch.tensor([[0.25, 0.75]]).log()
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(policy_kl(head, old, new)[0]) == pytest.approx(expected)
    assert float(policy_kl(head, old, old)[0]) == pytest.approx(0.0)


def test_gaussian_kl_by_hand() -> None:
    head = GaussianHead(2, 1)
    old = (torch.tensor([[0.0]]), torch.tensor([[0.0]]))  # N(0, 1)
    new = (torch.tensor([[1.0]]), torch.tensor([[math.log(2.0)]]))  # N(1, 4)
    # KL(N(m0, s0^2) || N(m1, s1^2)) = log(s1/s0) + (s0^2 + (m0-m1)^2) / (2 s1^2) - 1/2
    assert float(policy_kl(head, old, new)[0]) == pytest.approx(math.log(2.0) + 2.0 / 8.0 - 0.5)


def test_value_loss_plain_and_clipped_by_hand() -> None:
    new, old, ret = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.5])
    assert float(value_loss(new, old, ret)) == pytest.approx(0.5 * (1.0 + 0.25) / 2)
    # clip 0.2: V kept at 0.2 for the first sample -> (0.2 - 2)^2 = 3.24 > 1; second unchanged
    assert float(value_loss(new, old, ret, 0.2)) == pytest.approx(0.5 * (3.24 + 0.25) / 2)


def test_advantage_head_sees_the_one_hot_action() -> None:
    head = AdvantageHead(in_dim=2, num_actions=3, discrete=True)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 0.0, 10.0, 20.0, 30.0]]))
        head.linear.bias.zero_()
    out = head(torch.tensor([[1.0, 5.0], [2.0, 5.0]]), torch.tensor([2, 0]))
    assert out.tolist() == [31.0, 12.0]


def _rollout(T: int, N: int, obs: torch.Tensor, round_: int, total: int) -> Rollout:
    g = torch.Generator().manual_seed(round_)
    return Rollout(
        data={
            "obs": obs,
            "action": torch.randint(0, 2, (T, N), generator=g),
            "reward": torch.rand(T, N, generator=g),
            "terminated": torch.zeros(T, N, dtype=torch.bool),
            "truncated": torch.zeros(T, N, dtype=torch.bool),
            "first": torch.zeros(T, N, dtype=torch.bool),
            "logprob": torch.full((T, N), math.log(0.5)),
            "value": torch.zeros(T, N),
        },
        last_obs=obs[-1],
        final_obs=None,
        final_t=torch.zeros(0, dtype=torch.long),
        final_env=torch.zeros(0, dtype=torch.long),
        initial_state=None,
        round=round_,
        total_rounds=total,
        env_steps=(round_ + 1) * T * N,
    )


def test_ppg_auxiliary_phase_every_n_pi_rollouts_on_uint8_pixels(make_ctx) -> None:  # type: ignore[no-untyped-def]
    T, N = 4, 2
    space = gym.spaces.Box(0, 255, (3, 36, 36), np.uint8)
    ctx = make_ctx(space, gym.spaces.Discrete(2), network="nature_cnn", num_envs=N, features=8)
    cfg = PPGConfig(num_steps=T, num_minibatches=2, n_pi=2, aux_epochs=1, aux_minibatches_per_rollout=2)
    built = build_ppg(cfg, ctx)
    learner = built.learner
    assert built.storage.data["obs"].dtype == torch.uint8
    opts = learner.configure_optimizers()
    learner.raw_optimizers = lambda: opts  # type: ignore[method-assign]
    obs = torch.randint(0, 256, (T, N, 3, 36, 36), dtype=torch.uint8)
    head_before = learner.aux_value_head.weight.detach().clone()
    out = learner.training_step(_rollout(T, N, obs, 0, 5), 0)
    assert "loss/aux_kl" not in out and learner.stored == 1
    assert learner.aux_obs is not None and learner.aux_obs.dtype == torch.uint8
    assert learner.aux_obs.shape == (2 * T * N, 3, 36, 36)
    assert torch.equal(learner.aux_obs[: T * N], obs.reshape(T * N, 3, 36, 36))
    assert torch.equal(learner.aux_value_head.weight, head_before)  # policy phase: aux head untouched
    out = learner.training_step(_rollout(T, N, obs, 1, 5), 1)  # the n_pi-th rollout: auxiliary phase
    assert all(math.isfinite(out[k]) for k in ("loss/aux_kl", "loss/aux_value", "loss/aux_true_value"))
    assert learner.stored == 0
    assert not torch.equal(learner.aux_value_head.weight, head_before)
    learner.training_step(_rollout(T, N, obs, 2, 4), 2)
    out = learner.training_step(_rollout(T, N, obs, 3, 4), 3)  # the run's last rollout: no phase
    assert "loss/aux_kl" not in out and learner.stored == 0


def test_ppg_starts_with_the_old_policy_kl_at_zero(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), network="mlp", num_envs=2)
    cfg = PPGConfig(
        num_steps=4, num_minibatches=1, n_pi=1, aux_epochs=1, aux_minibatches_per_rollout=1, aux_lr=0.0
    )
    learner = build_ppg(cfg, ctx).learner
    opts = learner.configure_optimizers()
    learner.raw_optimizers = lambda: opts  # type: ignore[method-assign]
    out = learner.training_step(_rollout(4, 2, torch.rand(4, 2, 3), 0, 3), 0)
    assert out["loss/aux_kl"] == pytest.approx(0.0, abs=1e-7)  # one minibatch, before any aux step


def test_daac_value_network_trains_every_n_pi_updates(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), network="mlp", num_envs=2)
    learner = build_daac(DAACConfig(num_steps=4, num_minibatches=2, n_pi=2, value_epochs=1), ctx).learner
    opts = learner.configure_optimizers()
    learner.raw_optimizers = lambda: opts  # type: ignore[method-assign]
    critic = learner.policy.model.critic_encoder
    actor = learner.policy.model.actor_encoder
    assert {id(p) for p in opts[0].param_groups[0]["params"]}.isdisjoint(
        id(p) for p in opts[1].param_groups[0]["params"]
    )
    snapshots = []
    for r in range(3):
        before = [p.detach().clone() for p in critic.parameters()]
        actor_before = [p.detach().clone() for p in actor.parameters()]
        out = learner.training_step(_rollout(4, 2, torch.rand(4, 2, 3), r, 3), r)
        changed = any(not torch.equal(a, b) for a, b in zip(before, critic.parameters(), strict=True))
        assert any(not torch.equal(a, b) for a, b in zip(actor_before, actor.parameters(), strict=True))
        assert math.isfinite(out["loss/advantage"])
        snapshots.append(changed)
    assert snapshots == [True, False, True]  # updates 0 and 2 (n_pi = 2)
