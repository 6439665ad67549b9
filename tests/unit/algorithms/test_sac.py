"""SAC maths by hand: squashed-Gaussian log-prob (numerically), soft targets, temperature loss."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.algorithms.sac import SACConfig
from d2rl.algorithms.sac.learner import build, log_q, soft_target, temperature_loss
from d2rl.errors import D2RLError
from d2rl.modules.actors import squashed_gaussian_sample


def _normal_pdf(u: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((u - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


@pytest.mark.parametrize(("mean", "log_std"), [(0.0, 0.0), (0.7, -1.0), (-1.5, 0.5)])
def test_squashed_gaussian_log_prob_matches_numerical_density(mean: float, log_std: float) -> None:
    """pi(a) = N(u) / |da/du| at u = atanh(a), the derivative of tanh taken by central differences."""
    noise = torch.linspace(-3, 3, 13, dtype=torch.float64).unsqueeze(-1)  # [13, 1]
    m = torch.full_like(noise, mean)
    s = torch.full_like(noise, log_std)
    a, logp = squashed_gaussian_sample(m, s, noise)
    u = (mean + math.exp(log_std) * noise).squeeze(-1).numpy()
    np.testing.assert_allclose(a.squeeze(-1).numpy(), np.tanh(u))
    h = 1e-6
    da_du = (np.tanh(u + h) - np.tanh(u - h)) / (2 * h)
    density = _normal_pdf(u, mean, math.exp(log_std)) / da_du
    np.testing.assert_allclose(logp.numpy(), np.log(density), rtol=1e-5, atol=1e-5)


def test_squashed_gaussian_density_integrates_to_one_and_is_stable() -> None:
    u = torch.linspace(-12, 12, 200_001, dtype=torch.float64).unsqueeze(-1)
    mean, log_std = torch.full_like(u, 0.3), torch.full_like(u, 0.2)
    a, logp = squashed_gaussian_sample(mean, log_std, (u - 0.3) / math.exp(0.2))
    # integrate pi(a) da over (-1, 1) by the trapezoid rule on the (monotone) grid of a
    total = torch.trapezoid(logp.exp(), a.squeeze(-1))
    assert float(total) == pytest.approx(1.0, abs=2e-3)
    # far in the tail tanh(u) rounds to 1 in float32, yet the log-prob stays finite
    _, far = squashed_gaussian_sample(torch.zeros(1, 2), torch.zeros(1, 2), torch.full((1, 2), 30.0))
    assert torch.isfinite(far).all()


def test_log_prob_of_several_dims_is_the_sum() -> None:
    mean, log_std, noise = torch.randn(5, 3), torch.randn(5, 3) * 0.3, torch.randn(5, 3)
    _, joint = squashed_gaussian_sample(mean, log_std, noise)
    parts = sum(
        squashed_gaussian_sample(mean[:, i : i + 1], log_std[:, i : i + 1], noise[:, i : i + 1])[1]
        for i in range(3)
    )
    torch.testing.assert_close(joint, parts)


def test_tsallis_log() -> None:
    p = torch.tensor([0.25, 0.5, 1.0])
    torch.testing.assert_close(log_q(p.log(), 1.0), p.log())
    torch.testing.assert_close(log_q(p.log(), 2.0), p - 1.0)  # ln_2(p) = p - 1
    torch.testing.assert_close(log_q(p.log(), 1.5), 2 * (p.sqrt() - 1))
    torch.testing.assert_close(log_q(p.log(), 1.0 + 1e-6), p.log(), atol=1e-5, rtol=0)


def test_soft_target_continuous_by_hand() -> None:
    next_q = torch.tensor([[1.0, 5.0], [2.0, 3.0]])  # [E=2, B=2] -> min: [1, 3]
    next_log_pi = torch.tensor([-1.0, 0.5])
    y = soft_target(
        torch.tensor([0.5, 1.0]),
        torch.tensor([0.9, 0.81]),
        torch.tensor([0.0, 1.0]),
        next_q,
        next_log_pi,
        0.2,
    )
    # env 0: 0.5 + 0.9 * (1 - 0.2 * -1) = 1.58; env 1 terminated: 1.0
    torch.testing.assert_close(y, torch.tensor([1.58, 1.0]))


def test_soft_target_discrete_is_an_exact_expectation() -> None:
    next_q = torch.tensor([[[1.0, 2.0]], [[3.0, 0.0]]])  # [E=2, B=1, A=2] -> min: [1, 0]
    pi = torch.tensor([[0.25, 0.75]])
    y = soft_target(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), next_q, pi.log(), 0.1)
    v = 0.25 * (1.0 - 0.1 * math.log(0.25)) + 0.75 * (0.0 - 0.1 * math.log(0.75))
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 * v]))


def test_temperature_loss_by_hand() -> None:
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    entropy = torch.tensor([1.0, 2.0])  # mean 1.5, above the target -1
    loss = temperature_loss(log_alpha, entropy, target_entropy=-1.0)
    assert float(loss.detach()) == pytest.approx(math.log(0.5) * 2.5)
    loss.backward()
    assert float(log_alpha.grad) == pytest.approx(2.5)  # positive: gradient descent lowers alpha
    log_alpha.grad = None
    temperature_loss(log_alpha, torch.tensor([-3.0]), -1.0).backward()
    assert float(log_alpha.grad) == pytest.approx(-2.0)  # entropy below target: alpha grows


def test_actions_are_rescaled_to_any_box(make_ctx) -> None:  # type: ignore[no-untyped-def]
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))
    built = build(SACConfig(hidden_sizes=[8]), make_ctx(gym.spaces.Box(-1, 1, (3,), np.float32), space))
    policy = built.policy
    norm = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])
    env = policy.scale.to_env(norm)
    torch.testing.assert_close(env, torch.tensor([[-2.0, 0.0], [0.0, 5.0], [2.0, 10.0]]))
    torch.testing.assert_close(policy.scale.from_env(env), norm)
    out, _, _ = policy.act(torch.randn(64, 3), explore=True)
    assert (out >= torch.tensor([-2.0, 0.0])).all() and (out <= torch.tensor([2.0, 10.0])).all()


def test_infinite_action_bounds_are_a_clear_error(make_ctx) -> None:  # type: ignore[no-untyped-def]
    obs = gym.spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(D2RLError, match="finite action bounds"):
        build(SACConfig(), make_ctx(obs, gym.spaces.Box(-np.inf, np.inf, (1,))))


def test_replay_contents_travel_with_the_state_dict(make_ctx) -> None:  # type: ignore[no-untyped-def]
    """The storage's state (checkpoint["storage"]) restores every transition; a policy built to
    act elsewhere (another num_envs) takes the weights alone."""
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs_space = gym.spaces.Box(-5.0, 5.0, (2,), np.float32)
    built = build(SACConfig(hidden_sizes=[8]), make_ctx(obs_space, space))
    for _ in range(5):
        built.storage.add(
            np.random.randn(2, 2).astype(np.float32),
            np.zeros((2, 1), np.float32),
            np.ones(2),
            np.random.randn(2, 2).astype(np.float32),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
    fresh = build(SACConfig(hidden_sizes=[8]), make_ctx(obs_space, space))
    fresh.storage.load_state_dict(built.storage.state_dict())
    fresh.learner.load_state_dict(built.learner.state_dict())
    assert len(fresh.storage) == 10
    np.testing.assert_array_equal(fresh.storage.obs, built.storage.obs)
    acting_only = build(SACConfig(hidden_sizes=[8]), make_ctx(obs_space, space, num_envs=1))
    acting_only.policy.load_state_dict(built.policy.state_dict())  # weights only
    torch.testing.assert_close(
        acting_only.policy.actor.net.layers[0].weight, built.policy.actor.net.layers[0].weight
    )


def test_acting_samples_as_the_loss_does_without_the_log_prob() -> None:
    from d2rl.modules.actors import SquashedGaussianActor

    actor = SquashedGaussianActor(3, 2, [8])
    x = torch.randn(5, 3)
    torch.manual_seed(1)
    a, _ = actor.sample(x)
    torch.manual_seed(1)
    torch.testing.assert_close(actor.sample_action(x), a)
