"""Agent: a LightningModule holding an algorithm's networks; one ``training_step`` is one
iteration (collect a chunk of experience, then update), so the Trainer's per-step overhead is
paid once per iteration, not once per gradient step."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import torch

from d2rl.collector import EpisodeTracker


class Agent(L.LightningModule):
    """Base of every algorithm's agent. Subclasses implement ``from_config``, ``attach``,
    ``env_steps_per_iteration``, ``policy`` (deterministic/stochastic action) and ``training_step``."""

    def __init__(self) -> None:
        super().__init__()
        self.env_steps = 0  # env steps collected so far (all envs)
        self.iteration = 0  # completed training iterations
        self.total_iterations = 1
        self.timings: dict[str, float] = {"collect": 0.0, "update": 0.0}
        self.tracker: EpisodeTracker | None = None

    @classmethod
    @abstractmethod
    def from_config(
        cls,
        algo_cfg: Any,
        network: Any,
        network_cfg: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        total_env_steps: int,
    ) -> Agent:
        """Build the agent; ``network`` is the NetworkSpec chosen by ``network=``."""

    @abstractmethod
    def attach(self, envs: gym.vector.VectorEnv, seed: int) -> None:
        """Bind the training envs (creates the collector and resets the envs with ``seed``)."""

    @abstractmethod
    def env_steps_per_iteration(self) -> int: ...

    @abstractmethod
    def policy(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Raw observations ``[B, *obs]`` -> actions ``[B, ...]`` as the env expects them."""

    def plan(self, total_env_steps: int) -> None:
        """Fix the number of iterations so the run reaches at least ``total_env_steps``."""
        per = self.env_steps_per_iteration()
        self.total_iterations = max(1, -(-total_env_steps // per))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """For evaluation: numpy observations ``[B, *obs]`` -> numpy actions."""
        return self.policy(torch.as_tensor(obs, dtype=torch.float32), deterministic).numpy()

    def counters(self) -> dict[str, int]:
        return {
            "env_steps": self.env_steps,
            "iteration": self.iteration,
            "total_iterations": self.total_iterations,
            "episodes": self.tracker.episodes if self.tracker else 0,
        }

    def load_counters(self, counters: dict[str, int]) -> None:
        self.env_steps = int(counters["env_steps"])
        self.iteration = int(counters["iteration"])
        self.total_iterations = int(counters["total_iterations"])
        self._episodes_offset = int(counters.get("episodes", 0))

    def episodes_done(self) -> int:
        return getattr(self, "_episodes_offset", 0) + (self.tracker.episodes if self.tracker else 0)

    class timer:
        """``with self.timer(self, "update"):`` accumulates wall time under a key."""

        def __init__(self, agent: Agent, key: str) -> None:
            self.agent, self.key = agent, key

        def __enter__(self) -> None:
            self.t0 = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            self.agent.timings[self.key] = (
                self.agent.timings.get(self.key, 0.0) + time.perf_counter() - self.t0
            )
