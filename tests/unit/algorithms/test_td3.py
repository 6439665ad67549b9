"""TD3 target by hand: clipped double Q, target policy smoothing, DDPG's single critic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from d2rl.algorithms.td3 import TD3Config
from d2rl.algorithms.td3.learner import build, ou_step, smoothed_target_action, td3_target


def test_td3_target_takes_the_min_of_the_twin_critics() -> None:
    next_q = torch.tensor([[2.0, -1.0, 4.0], [3.0, -2.0, 1.0]])  # [E=2, B=3] -> min [2, -2, 1]
    reward = torch.tensor([1.0, 0.0, 0.5])
    discount = torch.tensor([0.99, 0.99, 0.99])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    y = td3_target(reward, discount, terminated, next_q)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.99 * 2.0, 0.99 * -2.0, 0.5]))


def test_ddpg_target_with_one_critic() -> None:
    y = td3_target(torch.tensor([1.0]), torch.tensor([0.9]), torch.tensor([0.0]), torch.tensor([[5.0]]))
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 5.0]))


def test_target_policy_smoothing_clips_noise_then_action() -> None:
    action = torch.tensor([[0.0, 0.9, -0.95]])
    noise = torch.tensor([[0.7, 0.3, -0.1]])
    out = smoothed_target_action(action, noise, noise_clip=0.5)
    # noise clipped to 0.5 -> 0.5; 0.9 + 0.3 = 1.2 -> 1.0; -0.95 - 0.1 = -1.05 -> -1.0
    torch.testing.assert_close(out, torch.tensor([[0.5, 1.0, -1.0]]))


def test_ou_step_by_hand() -> None:
    x = torch.tensor([[0.5, -1.0]])
    noise = torch.tensor([[1.0, 2.0]])
    # x - theta x dt + sigma sqrt(dt) noise, theta 0.15, sigma 0.2, dt 0.01
    out = ou_step(x, 0.15, 0.2, 0.01, noise)
    torch.testing.assert_close(out, torch.tensor([[0.5 - 0.00075 + 0.02, -1.0 + 0.0015 + 0.04]]))


def test_ou_exploration_restarts_with_each_episode_and_stays_in_bounds(make_ctx) -> None:  # type: ignore[no-untyped-def]
    cfg = TD3Config(hidden_sizes=[8], noise_type="ou", ou_sigma=0.5)
    ctx = make_ctx(gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    policy = build(cfg, ctx).policy
    state = policy.initial_state(2)
    assert state.shape == (2, 1) and not state.any()
    state[:] = 0.7
    state = policy.reset_state(state, torch.tensor([False, True]))  # env 1 starts a new episode
    actions, _, state = policy.act(torch.zeros(2, 2), state, explore=True)
    assert actions.abs().max() <= 1.0
    assert abs(float(state[0, 0]) - 0.7) < 0.3  # carried on (mean-reverting step + noise)
    assert abs(float(state[1, 0])) < 0.3  # restarted from 0
    _, _, unchanged = policy.act(torch.zeros(2, 2), state, explore=False)
    assert unchanged is state  # acting greedily leaves the process alone


def test_ddpg_preset_ou_noise_is_lillicraps(make_cfg, make_ctx) -> None:  # type: ignore[no-untyped-def]
    """Lillicrap et al. 2015, sec. 7: OU noise with theta 0.15 and sigma 0.2, and sigma scales the steps."""
    algo = make_cfg("algo=ddpg", "env=pendulum", "algo.noise_type=ou", "algo.hidden_sizes=[8]").algo
    assert (algo.ou_theta, algo.ou_sigma) == (0.15, 0.2)
    cfg = TD3Config(**{k: algo[k] for k in algo})
    ctx = make_ctx(
        gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), num_envs=1
    )
    policy = build(cfg, ctx).policy
    torch.manual_seed(0)
    step = 0.2 * cfg.ou_dt**0.5 * torch.randn(1, 1)  # dx = -theta x dt + sigma sqrt(dt) N(0, 1), x = 0
    torch.manual_seed(0)
    _, _, state = policy.act(torch.zeros(1, 3), policy.initial_state(1), explore=True)  # a new episode: x = 0
    torch.testing.assert_close(state, step)
