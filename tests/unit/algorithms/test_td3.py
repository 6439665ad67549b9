"""TD3 target by hand: clipped double Q, target policy smoothing, DDPG's single critic."""

from __future__ import annotations

import torch

from d2rl.algorithms.td3 import smoothed_target_action, td3_target


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


def test_ou_exploration_restarts_with_each_episode_and_stays_in_bounds() -> None:
    import gymnasium as gym
    import numpy as np
    from omegaconf import OmegaConf

    from d2rl.algorithms.td3 import TD3Agent, TD3Config
    from d2rl.collector import EpisodeTracker

    replay = OmegaConf.create({"kind": "uniform", "capacity": 100, "save_in_checkpoint": False})
    cfg = TD3Config(hidden_sizes=[8], noise_type="ou", exploration_noise=0.5)
    agent = TD3Agent(cfg, (2,), gym.spaces.Box(-1.0, 1.0, (1,), np.float32), 2, replay, 0)
    agent.tracker = EpisodeTracker(2)
    agent.tracker.lengths[:] = [3, 0]  # env 1 starts a new episode
    agent.ou_state[:] = 0.7
    actions = agent.explore(torch.zeros(2, 2))
    assert actions.abs().max() <= 1.0
    assert abs(float(agent.ou_state[0, 0]) - 0.7) < 0.3  # carried on (mean-reverting step + noise)
    assert abs(float(agent.ou_state[1, 0])) < 0.3  # restarted from 0
