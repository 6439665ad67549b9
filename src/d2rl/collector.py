"""Steps a SAME_STEP-autoreset VectorEnv with the current policy (no grad) into a buffer.

With SAME_STEP autoreset the step that ends an episode returns the next episode's first obs
and puts the real last obs in ``info["final_obs"]``; so every stored transition belongs to one
episode and a truncated episode can be bootstrapped from its real final observation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.buffers.rollout import RolloutBuffer
from d2rl.envs import env_facts
from d2rl.episodes import EpisodeTracker

__all__ = ["EpisodeTracker", "RolloutCollector"]


class RolloutCollector:
    """Fills a RolloutBuffer; keeps the env's current obs between calls."""

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        act: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        value: Callable[[torch.Tensor], torch.Tensor],
        normalize_obs: Callable[[torch.Tensor, bool], torch.Tensor],
        scale_reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
        gamma: float,
        seed: int,
    ) -> None:
        self.envs = envs
        self.act, self.value, self.normalize_obs, self.scale_reward = act, value, normalize_obs, scale_reward
        self.gamma = gamma
        self.tracker = EpisodeTracker(envs.num_envs, episode_stats=env_facts(envs).episode_stats)
        space: Any = envs.single_action_space
        self.box_action = isinstance(space, gym.spaces.Box)
        self.low = torch.as_tensor(space.low) if self.box_action else None
        self.high = torch.as_tensor(space.high) if self.box_action else None
        # uint8 pixels stay uint8 (4x less memory in the buffer); pixel networks divide by 255
        self.obs_dtype = torch.uint8 if envs.single_observation_space.dtype == np.uint8 else torch.float32
        obs, _ = envs.reset(seed=seed)
        self.obs = torch.as_tensor(obs, dtype=self.obs_dtype)

    @torch.no_grad()
    def collect(self, buffer: RolloutBuffer) -> int:
        """Run ``buffer.num_steps`` vector steps; returns the number of env steps taken."""
        envs, tracker = self.envs, self.tracker
        for t in range(buffer.num_steps):
            obs = self.normalize_obs(self.obs, True)
            action, logprob, value = self.act(obs)
            buffer.obs[t] = obs
            buffer.action[t] = action
            buffer.logprob[t] = logprob
            buffer.value[t] = value
            env_action = action.numpy()
            if self.box_action:
                env_action = np.clip(env_action, self.low.numpy(), self.high.numpy())  # type: ignore[union-attr]
            next_obs, reward, terminated, truncated, info = envs.step(env_action)
            done = terminated | truncated
            tracker.step(reward, done, info)
            reward_t = torch.as_tensor(reward, dtype=torch.float32)
            done_t = torch.from_numpy(done)
            if self.scale_reward is not None:
                reward_t = self.scale_reward(reward_t, done_t)
            cut = truncated & ~terminated
            if cut.any():  # bootstrap a time-limit cut from the real final observation
                idx = np.flatnonzero(cut)
                final = torch.as_tensor(np.stack([info["final_obs"][i] for i in idx]), dtype=torch.float32)
                reward_t[idx] += self.gamma * self.value(self.normalize_obs(final, False))
            buffer.reward[t] = reward_t
            buffer.done[t] = done_t
            self.obs = torch.as_tensor(next_obs, dtype=self.obs_dtype)
        return buffer.num_steps * envs.num_envs

    @torch.no_grad()
    def last_values(self) -> torch.Tensor:
        return self.value(self.normalize_obs(self.obs, False))
