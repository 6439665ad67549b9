"""Shared check for pixel suites: DQN-style collection into the replay ``make_replay`` picks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import VectorWrapper

from d2rl.buffers import make_replay
from d2rl.buffers.replay import ReplayBuffer
from d2rl.config import ReplayConfig
from d2rl.core import Policy, ReplaySchedule
from d2rl.envs import env_facts
from d2rl.loops.local import LocalLoop


def _digest(a: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest()


class TransitionRecorder(VectorWrapper):
    """Remembers every (obs, real next obs) pair the env produced, as digests."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.pairs: set[tuple[bytes, bytes]] = set()
        self.last: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.last = np.array(obs)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        real = np.array(obs)
        for i in np.flatnonzero(terminated | truncated):
            real[i] = info["final_obs"][i]
        assert self.last is not None
        self.pairs.update((_digest(o), _digest(n)) for o, n in zip(self.last, real, strict=True))
        self.last = np.array(obs)
        return obs, reward, terminated, truncated, info


def collect_into_replay(
    envs: gym.vector.VectorEnv, vector_steps: int, dedup_frames: bool = True, seed: int = 0
) -> tuple[ReplayBuffer, LocalLoop]:
    """Random actions (the Loop's warm-up) through d2rl's Loop into the buffer ``make_replay`` picks
    for the suite's facts; then every sampled (obs, next_obs) must be a pair the env really produced."""
    recorder = TransitionRecorder(envs)
    cfg = ReplayConfig(kind="uniform", capacity=vector_steps * envs.num_envs + 64, dedup_frames=dedup_frames)
    buf = make_replay(
        cfg,
        envs.single_observation_space,
        envs.single_action_space,
        envs.num_envs,
        n_step=1,
        gamma=0.99,
        facts=env_facts(recorder),
        seed=seed,
    )
    n = envs.num_envs
    schedule = ReplaySchedule(32, learning_starts_env_steps=10**12, round_env_steps=vector_steps * n,
                              gradient_steps_per_env_step=0.0)  # fmt: skip
    collector = LocalLoop(recorder, Policy(), buf, schedule, vector_steps * n, seed,
                          episode_stats=env_facts(recorder).episode_stats)  # fmt: skip
    collector.start()
    collector.collect_round()
    batch = buf.sample(256)
    assert batch["obs"].shape[1:] == envs.single_observation_space.shape
    for o, n in zip(batch["obs"].numpy(), batch["next_obs"].numpy(), strict=True):
        assert (_digest(o), _digest(n)) in recorder.pairs
    return buf, collector


@pytest.fixture
def replay_check() -> Callable[..., tuple[ReplayBuffer, LocalLoop]]:
    return collect_into_replay
