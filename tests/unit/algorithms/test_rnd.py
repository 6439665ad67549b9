"""RND's pieces on tiny inputs with answers computed by hand (d2rl.algorithms.rnd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from d2rl.algorithms.rnd import RNDConfig
from d2rl.algorithms.rnd.learner import combine_advantages, next_observations, two_stream_gae
from d2rl.algorithms.rnd.networks import (
    IntrinsicRewardNormalizer,
    RNDObs,
    frame_channels,
    prediction_error,
    rnd_networks,
)
from d2rl.buffers.rollout import Rollout
from d2rl.envs import EnvFacts


def test_intrinsic_rewards_are_divided_by_the_std_of_discounted_intrinsic_returns() -> None:
    norm = IntrinsicRewardNormalizer(num_envs=2, gamma=0.5)
    r = torch.tensor([[1.0, 0.0], [2.0, 4.0], [0.0, 2.0]])  # [T=3, N=2]
    out = norm(r)
    # returns per env, never reset: env 0: 1, 2.5, 1.25; env 1: 0, 4, 4
    returns = np.array([1.0, 0.0, 2.5, 4.0, 1.25, 4.0])
    assert norm.std == pytest.approx(returns.std(), rel=1e-3)  # (the prior's count is 1e-4)
    assert out.numpy() == pytest.approx(r.numpy() / returns.std(), rel=1e-3)


def test_intrinsic_returns_carry_over_rollouts_and_pool_all_seen() -> None:
    norm = IntrinsicRewardNormalizer(num_envs=1, gamma=0.9)
    norm(torch.tensor([[1.0], [1.0]]))
    assert float(norm.returns[0]) == pytest.approx(1.9)
    norm(torch.tensor([[0.0]]))  # the next rollout continues the same return (non-episodic)
    assert float(norm.returns[0]) == pytest.approx(1.71)
    seen = np.array([1.0, 1.9, 1.71])
    assert norm.std == pytest.approx(seen.std(), rel=1e-3)


def test_rnd_observations_are_normalised_and_clipped_to_5() -> None:
    rnd_obs = RNDObs((2,), None, clip=5.0)
    data = torch.tensor([[0.0, 9.0], [2.0, 10.0], [4.0, 11.0]])
    rnd_obs.update(data)
    mean, std = np.array([2.0, 10.0]), np.sqrt(np.array([8 / 3, 2 / 3]))
    x = torch.tensor([[3.0, 9.5], [100.0, -100.0]])
    out = rnd_obs(x).numpy()
    assert out[0] == pytest.approx((np.array([3.0, 9.5]) - mean) / std, rel=1e-2)  # prior: count 1e-4
    assert out[1].tolist() == [5.0, -5.0]  # far outside: clipped to [-5, 5]


def test_rnd_observation_update_in_chunks_equals_one_batch() -> None:
    x = torch.randn(50, 3)
    whole, chunked = RNDObs((3,), None, 5.0), RNDObs((3,), None, 5.0)
    whole.update(x)
    chunked.update(x, chunk=7)
    assert torch.allclose(whole.norm.rms.mean, chunked.norm.rms.mean)
    assert torch.allclose(whole.norm.rms.var, chunked.norm.rms.var)


def test_rnd_sees_only_the_newest_frame_of_a_stack() -> None:
    facts = EnvFacts(pixels=True, frame_stack=4)
    assert frame_channels(facts, (4, 8, 8)) == 1
    assert frame_channels(EnvFacts(), (3,)) is None
    rnd_obs = RNDObs((4, 8, 8), 1, 5.0)
    obs = torch.arange(4, dtype=torch.uint8).reshape(1, 4, 1, 1).expand(2, 4, 8, 8)
    assert rnd_obs.select(obs).shape == (2, 1, 8, 8)
    assert bool((rnd_obs.select(obs) == 3).all())


def test_target_is_fixed_and_predictor_trains() -> None:
    target, predictor = rnd_networks((5,), pixels=False, hidden=8, out=4)
    assert not any(p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in predictor.parameters())
    err = prediction_error(predictor, target, torch.randn(3, 5))
    assert err.shape == (3,) and bool((err >= 0).all())
    err.sum().backward()
    assert all(p.grad is None for p in target.parameters())


def test_pixel_rnd_networks_embed_one_84x84_frame_in_512() -> None:
    target, predictor = rnd_networks((1, 84, 84), pixels=True, hidden=0, out=512)
    x = torch.zeros(2, 1, 84, 84)
    assert target(x).shape == (2, 512) and predictor(x).shape == (2, 512)


def test_extrinsic_gae_is_episodic_and_intrinsic_gae_is_not() -> None:
    ext = torch.tensor([[0.5], [1.0]])  # [T=2, N=1]
    intr = torch.tensor([[0.1], [0.2]])
    done = torch.tensor([[True], [False]])  # the episode ends at step 0
    values = torch.tensor([[[1.0, 3.0]], [[2.0, 4.0]]])  # [T, N, 2]: (V_E, V_I)
    last = torch.tensor([[5.0, 6.0]])  # [N, 2]
    # lambda = 0: one-step TD errors
    adv_e, adv_i, ret = two_stream_gae(ext, intr, done, values, last, 0.9, 0.5, 0.0)
    assert adv_e[:, 0].tolist() == pytest.approx([0.5 - 1.0, 1.0 + 0.9 * 5.0 - 2.0])  # no bootstrap at done
    assert adv_i[:, 0].tolist() == pytest.approx(
        [0.1 + 0.5 * 4.0 - 3.0, 0.2 + 0.5 * 6.0 - 4.0]
    )  # bootstrapped
    assert ret[:, 0, 0].tolist() == pytest.approx([0.5, 5.5])  # advantage + V_E
    assert ret[:, 0, 1].tolist() == pytest.approx([2.1, 3.2])
    # lambda = 1: the extrinsic sum stops at the episode end, the intrinsic one runs through it
    adv_e, adv_i, _ = two_stream_gae(ext, intr, done, values, last, 0.9, 0.5, 1.0)
    assert float(adv_e[0, 0]) == pytest.approx(-0.5)
    assert float(adv_i[0, 0]) == pytest.approx(-0.9 + 0.5 * -0.8)


def test_advantages_combine_with_the_papers_coefficients() -> None:
    cfg = RNDConfig()
    assert (cfg.ext_coef, cfg.int_coef, cfg.gamma, cfg.gamma_int) == (2.0, 1.0, 0.999, 0.99)
    assert cfg.update_proportion == 0.25 and cfg.obs_clip == 5.0
    a_e, a_i = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    out = combine_advantages(a_e, a_i, cfg.ext_coef, cfg.int_coef)
    assert out.tolist() == [2.5, -1.0]


def test_next_observations_end_with_the_last_observation() -> None:
    obs = torch.arange(6, dtype=torch.float32).reshape(3, 2, 1)  # [T=3, N=2, 1]
    rollout = Rollout(
        data={"obs": obs, "reward": torch.zeros(3, 2)},
        last_obs=torch.tensor([[10.0], [11.0]]),
        final_obs=None,
        final_t=torch.zeros(0, dtype=torch.long),
        final_env=torch.zeros(0, dtype=torch.long),
        initial_state=None,
        round=0,
        total_rounds=1,
        env_steps=6,
    )

    class _NoNorm:
        obs_norm = None

    nxt = next_observations(rollout, _NoNorm())  # type: ignore[arg-type]
    assert nxt[:, :, 0].tolist() == [[2.0, 3.0], [4.0, 5.0], [10.0, 11.0]]
    assert math.isclose(float(nxt.sum()), 2 + 3 + 4 + 5 + 10 + 11)
