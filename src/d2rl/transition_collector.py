"""Off-policy collection: steps a SAME_STEP-autoreset VectorEnv and writes transitions to a replay buffer.

Where an episode ends, the step returns the next episode's first obs and the real last obs in
``info["final_obs"]``; that final obs is stored as the transition's ``next_obs`` (so a truncated
episode bootstraps from it) and the reset obs starts the next transition. A life loss in a
running game (``info["life_loss"]``) is passed to the buffer as ``frames_continue``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from d2rl.buffers.replay import ReplayBuffer
from d2rl.envs import env_facts
from d2rl.episodes import EpisodeTracker


class TransitionCollector:
    """Keeps the envs' current obs between calls; times env stepping, acting and buffer writes."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int) -> None:
        self.envs = envs
        self.tracker = EpisodeTracker(envs.num_envs, episode_stats=env_facts(envs).episode_stats)
        self.timings = {"env": 0.0, "act": 0.0, "store": 0.0}
        self.obs, _ = envs.reset(seed=seed)

    def collect(
        self, buffer: ReplayBuffer, vector_steps: int, act: Callable[[np.ndarray, int], np.ndarray]
    ) -> int:
        """Run ``vector_steps`` steps; ``act(obs [N, *obs], step_offset) -> actions [N, ...]``.

        ``step_offset`` counts env steps taken so far in this call (for exploration schedules).
        Returns the number of env steps taken.
        """
        envs, tracker, timings = self.envs, self.tracker, self.timings
        n = envs.num_envs
        obs = self.obs
        clock = time.perf_counter
        for t in range(vector_steps):
            t0 = clock()
            action = act(obs, t * n)
            t1 = clock()
            next_obs, reward, terminated, truncated, info = envs.step(action)
            t2 = clock()
            done = terminated | truncated
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                final = info["final_obs"]
                for i in np.flatnonzero(done):
                    real_next[i] = final[i]
            buffer.add(
                obs, action, reward, real_next, terminated, truncated, frames_continue=info.get("life_loss")
            )
            tracker.step(reward, done, info)
            obs = next_obs
            t3 = clock()
            timings["act"] += t1 - t0
            timings["env"] += t2 - t1
            timings["store"] += t3 - t2
        self.obs = obs
        return vector_steps * n
