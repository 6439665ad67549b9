"""Steps a SAME_STEP-autoreset VectorEnv with the current policy (no grad) into a buffer.

With SAME_STEP autoreset the step that ends an episode returns the next episode's first obs
and puts the real last obs in ``info["final_obs"]``; so every stored transition belongs to one
episode and a truncated episode can be bootstrapped from its real final observation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.buffers.rollout import RolloutBuffer


@dataclass
class EpisodeTracker:
    """Per-env running return/length of the raw (unnormalised) reward."""

    num_envs: int
    window: int = 20
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    finished: list[tuple[float, int]] = field(default_factory=list)  # since the last drain
    recent: deque[float] = field(init=False)
    episodes: int = 0

    def __post_init__(self) -> None:
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.recent = deque(maxlen=self.window)

    def step(self, reward: np.ndarray, done: np.ndarray, info: dict | None = None) -> None:
        """``info["episode"]`` (``{"r": [N], "l": [N]}`` with mask ``info["_episode"]``, gymnasium's
        RecordEpisodeStatistics layout), when the env gives it, is preferred to the summed reward:
        suites that clip rewards or end episodes at a life loss report whole-game, unclipped values there.
        """
        self.returns += reward
        self.lengths += 1
        if info is not None and "episode" in info:
            ended = np.asarray(info["_episode"], dtype=bool)
            ep = info["episode"]
            for i in np.flatnonzero(ended):
                self.finished.append((float(ep["r"][i]), int(ep["l"][i])))
                self.recent.append(float(ep["r"][i]))
            self.episodes += int(ended.sum())
        elif done.any():
            for i in np.flatnonzero(done):
                self.finished.append((float(self.returns[i]), int(self.lengths[i])))
                self.recent.append(float(self.returns[i]))
            self.episodes += int(done.sum())
        self.returns[done] = 0.0
        self.lengths[done] = 0

    def drain(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    def recent_mean(self) -> float | None:
        return float(np.mean(self.recent)) if self.recent else None


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
        self.tracker = EpisodeTracker(envs.num_envs)
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
