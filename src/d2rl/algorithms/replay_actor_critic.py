"""What DDPG, TD3 and SAC share: replay, collection, action rescaling and the iteration loop.

One ``training_step`` collects ``steps_per_iteration`` vector steps into the replay buffer, then
runs the matching gradient steps (``gradient_steps_per_env_step`` per env step, once
``learning_starts_env_steps`` random-action steps are stored), so Lightning's per-step overhead is
paid once per chunk. Deviation from the papers' strict alternation of one env step and one
gradient step: within a chunk the behaviour policy is up to one chunk stale (64 steps by default).

Networks act in the normalised box ``[-1, 1]^A``; ``to_env`` maps to the env's ``[low, high]``
(and the buffer stores env-scale actions, mapped back with ``from_env`` when sampled).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.agent import Agent
from d2rl.buffers.prioritized import PrioritizedReplayBuffer
from d2rl.buffers.replay import ReplayBuffer
from d2rl.envs import finite_bounds, obs_shape
from d2rl.errors import D2RLError
from d2rl.transition_collector import TransitionCollector

_REPLAY_PREFIX = "replay."


def check_spaces(name: str, observation_space: gym.Space, action_space: gym.Space) -> tuple[int, ...]:
    """Vector observations and (for Box actions) finite bounds; returns the obs shape."""
    shape = obs_shape(observation_space)
    if len(shape) != 1:
        raise D2RLError(
            f"{name} learns from vector observations, got shape {shape}; use a state-based env "
            "(e.g. a dmc task without env.kwargs.pixels)"
        )
    if isinstance(action_space, gym.spaces.Box) and not finite_bounds(action_space):
        raise D2RLError(f"{name} needs finite action bounds to rescale its tanh policy, got {action_space}")
    return shape


class ReplayActorCritic(Agent):
    """Subclasses set up their networks, then implement ``explore``, ``act_normalized`` and ``update``."""

    uses_replay = True

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        action_space: gym.Space,
        num_envs: int,
        replay_cfg: Any,
        gamma: float,
        n_step: int,
        batch_size: int,
        learning_starts_env_steps: int,
        steps_per_iteration: int,
        gradient_steps_per_env_step: float,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.num_envs = num_envs
        self.action_space = action_space
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.batch_size = batch_size
        self.learning_starts_env_steps = learning_starts_env_steps
        self.steps_per_iteration = steps_per_iteration
        self.gradient_steps_per_env_step = gradient_steps_per_env_step
        self._grad_credit = 0.0  # fractional gradient steps carried to the next iteration
        if self.discrete:
            self.action_dim = int(action_space.n)  # type: ignore[attr-defined]
            action_shape: tuple[int, ...] = ()
            action_dtype: Any = np.int64
        else:
            self.action_dim = int(np.prod(action_space.shape or ()))
            action_shape, action_dtype = (self.action_dim,), np.float32
            low = np.asarray(action_space.low, np.float32).reshape(-1)  # type: ignore[attr-defined]
            high = np.asarray(action_space.high, np.float32).reshape(-1)  # type: ignore[attr-defined]
            self._low_np, self._high_np = low, high
            self.register_buffer("action_low", torch.as_tensor(low))
            self.register_buffer("action_high", torch.as_tensor(high))
        self.action_low: torch.Tensor
        self.action_high: torch.Tensor
        kind = str(replay_cfg.kind) if replay_cfg is not None else "none"
        capacity = int(replay_cfg.capacity) if replay_cfg is not None else 100_000
        self.save_replay = bool(replay_cfg.save_in_checkpoint) if replay_cfg is not None else False
        args = (capacity, num_envs, observation_shape, np.float32, action_shape, action_dtype)
        if kind == "prioritized":
            self.buffer: ReplayBuffer = PrioritizedReplayBuffer(
                *args,
                n_step=n_step,
                gamma=gamma,
                seed=seed,
                alpha=float(replay_cfg.alpha),
                priority_eps=float(replay_cfg.priority_eps),
                importance_weights=bool(replay_cfg.importance_weights),
            )
            self._beta = (float(replay_cfg.beta_initial), float(replay_cfg.beta_final))
        elif kind in ("none", "uniform"):
            self.buffer = ReplayBuffer(*args, n_step=n_step, gamma=gamma, seed=seed)
        else:
            raise D2RLError(f"replay.kind must be none, uniform or prioritized, got '{kind}'")
        self.rng = np.random.default_rng(seed)
        self.collector: TransitionCollector | None = None

    # -- acting -------------------------------------------------------------------------------
    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` -> ``[low, high]``."""
        return self.action_low + 0.5 * (action + 1.0) * (self.action_high - self.action_low)

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """``[low, high]`` -> ``[-1, 1]``."""
        return 2.0 * (action - self.action_low) / (self.action_high - self.action_low) - 1.0

    @abstractmethod
    def act_normalized(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Observations ``[B, obs]`` -> actions in ``[-1, 1]^A`` (or discrete ids ``[B]``)."""

    @abstractmethod
    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """Behaviour policy (with exploration noise): ``[N, obs]`` -> ``[-1, 1]^A`` or ids."""

    def policy(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        action = self.act_normalized(obs.float(), deterministic)
        return action if self.discrete else self.to_env(action)

    @torch.no_grad()
    def _behaviour(self, obs: np.ndarray, offset: int) -> np.ndarray:
        if self.env_steps + offset < self.learning_starts_env_steps:  # uniform random warm-up
            if self.discrete:
                return self.rng.integers(0, self.action_dim, self.num_envs)
            return self.rng.uniform(self._low_np, self._high_np, (self.num_envs, self.action_dim)).astype(
                np.float32
            )
        action = self.explore(torch.as_tensor(obs, dtype=torch.float32))
        return action.numpy() if self.discrete else self.to_env(action).numpy()

    def attach(self, envs: gym.vector.VectorEnv, seed: int) -> None:
        self.collector = TransitionCollector(envs, seed)
        self.tracker = self.collector.tracker
        if self.env_steps > 0:  # resumed: the restored episodes in flight are cut off
            self.buffer.cut_episodes()

    def env_steps_per_iteration(self) -> int:
        return self.steps_per_iteration * self.num_envs

    # -- learning -----------------------------------------------------------------------------
    @abstractmethod
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on a batch (actions in ``[-1, 1]``); returns detached metrics."""

    def _batches(self, count: int) -> list[dict[str, torch.Tensor]]:
        """``count`` batches; uniform replay draws them in one call (same distribution, less overhead)."""
        B = self.batch_size
        big = self._fix(self.buffer.sample(count * B))
        return [{k: v[i * B : (i + 1) * B] for k, v in big.items()} for i in range(count)]

    def _fix(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.discrete:
            batch["action"] = self.from_env(batch["action"])
        return batch

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, float]:
        assert self.collector is not None, "call attach(envs, seed) first"
        with self.timer(self, "collect"):
            steps = self.collector.collect(self.buffer, self.steps_per_iteration, self._behaviour)
            self.env_steps += steps
        metrics: dict[str, torch.Tensor] = {}
        if self.env_steps >= self.learning_starts_env_steps:
            with self.timer(self, "update"):
                self._grad_credit += steps * self.gradient_steps_per_env_step
                count = int(self._grad_credit)
                self._grad_credit -= count
                if isinstance(self.buffer, PrioritizedReplayBuffer):
                    lo, hi = self._beta
                    self.buffer.beta = lo + (hi - lo) * min(
                        1.0, self.iteration / max(1, self.total_iterations)
                    )
                    for _ in range(count):
                        metrics = self.update(self._fix(self.buffer.sample(self.batch_size)))
                elif count > 0:
                    for b in self._batches(count):
                        metrics = self.update(b)
        self.iteration += 1
        # metrics of the chunk's last gradient step (one sync per iteration, not per step)
        return {k: float(v) for k, v in metrics.items()}

    def prioritize(self, batch: dict[str, torch.Tensor], td_error: torch.Tensor) -> None:
        if isinstance(self.buffer, PrioritizedReplayBuffer):
            self.buffer.update_priorities(batch["indices"], td_error.detach().numpy())

    # -- checkpointing: the replay contents travel with the weights ---------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        state = super().state_dict(*args, **kwargs)
        if self.save_replay:
            for k, v in self.buffer.state_dict().items():
                state[_REPLAY_PREFIX + k] = v
            state[_REPLAY_PREFIX + "grad_credit"] = torch.tensor(self._grad_credit)
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        state = dict(state_dict)
        replay = {k[len(_REPLAY_PREFIX) :]: state.pop(k) for k in list(state) if k.startswith(_REPLAY_PREFIX)}
        # the replay contents are restored when they fit (a resumed run); an agent built only to
        # act (evaluation, another num_envs) takes the weights alone
        if replay and tuple(replay["obs"].shape) == self.buffer.obs.shape:
            self._grad_credit = float(replay.pop("grad_credit", 0.0))
            self.buffer.load_state_dict(replay)
        return super().load_state_dict(state, strict=strict, assign=assign)
