"""The roles every algorithm is built from (docs/architecture.md).

- ``Policy`` acts, never learns: ``act(obs, state, explore, env_step) -> action, extras, state``.
  Its weights (``policy.state_dict()``) load into a process with no learner, optimizer or envs.
- ``Learner`` is the LightningModule: it owns the networks (its Policy among them), target networks
  and optimizers, never envs; ``training_step(experience)`` updates and returns metrics.
- Storage (``d2rl.buffers``) holds experience; the Loop (``d2rl.loops``) steps envs with the
  Policy, writes Storage and feeds the Learner on the algorithm's schedule.
- An algorithm's builder ``build(cfg, ctx: BuildContext) -> Built`` makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import lightning as L
import torch
from torch import nn

from d2rl.envs import EnvFacts, obs_shape
from d2rl.errors import D2RLError


class Policy(nn.Module):
    """Maps a batch of observations (and recurrent state) to actions as the env expects them.

    ``extras`` carry what storage needs (``logprob``, ``value``, ...); a policy that normalises
    observations may return the normalised ones as ``extras["obs"]``, which on-policy storage
    keeps in place of the raw ones. Recurrent policies override ``initial_state`` and
    ``reset_state``; the Loop resets the state of envs whose episode ended.
    """

    def initial_state(self, batch_size: int) -> Any:
        return None

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        """``done [B]`` bool: start those envs' state afresh."""
        return state

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        raise NotImplementedError

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """``[B, A]``: the differentiable scores the greedy action is chosen from (Q-values, pre-softmax
        logits, or the mean action for Box spaces). Grad-CAM explains them; optional for a policy."""
        raise NotImplementedError(f"{type(self).__name__} does not expose action scores")


class Learner(L.LightningModule):
    """Base of every algorithm's learner (manual optimisation).

    Subclasses set ``self.policy`` (a ``Policy`` sharing the learner's networks), implement
    ``configure_optimizers`` and ``training_step(experience, batch_idx) -> dict[str, float]``.
    """

    policy: Policy

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def raw_optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers without Lightning's wrappers (~0.1 ms a call in hot loops)."""
        opts = self.optimizers()
        return [getattr(o, "optimizer", o) for o in (opts if isinstance(opts, list) else [opts])]


@dataclass(frozen=True)
class RolloutSchedule:
    """On-policy: each learner step gets a fresh rollout of ``num_steps`` vector steps, collected
    with the parameters the previous update left."""

    num_steps: int


@dataclass(frozen=True)
class ReplaySchedule:
    """Off-policy: each round collects ``round_env_steps`` env steps (rounded up to whole vector
    steps) into replay, then the learner gets the gradient steps owed for them
    (``gradient_steps_per_env_step``, fractions carried over) as ``batch_size`` batches. Before
    ``learning_starts_env_steps`` the Loop acts uniformly at random and no update runs."""

    batch_size: int
    learning_starts_env_steps: int
    round_env_steps: int
    gradient_steps_per_env_step: float


@dataclass(frozen=True)
class BuildContext:
    """What a builder may know about the run: spaces, env facts, network and replay choices."""

    observation_space: gym.Space
    action_space: gym.Space
    num_envs: int
    facts: EnvFacts
    network: Any  # d2rl.specs.NetworkSpec chosen by network=
    network_cfg: Any  # its config dataclass
    replay_cfg: Any  # d2rl.config.ReplayConfig
    total_env_steps: int
    seed: int

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return obs_shape(self.observation_space)

    @property
    def pixels(self) -> bool:
        return bool(self.facts.pixels)

    def encoder(self) -> nn.Module:
        """A fresh encoder of the chosen network for this observation: ``[B, *obs]`` -> ``[B, out_dim]``."""
        return self.network.build(self.network_cfg, self.obs_shape)  # type: ignore[no-any-return]

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Discrete)

    @property
    def num_actions(self) -> int:
        """``n`` for Discrete, the flat dimension for Box."""
        space: Any = self.action_space
        return int(space.n) if self.discrete else int(math.prod(space.shape))

    def require(self, kinds: tuple[str, ...], name: str) -> None:
        """Refuse an action space the algorithm can't act in (one line)."""
        from d2rl.envs import action_space_kind

        kind = action_space_kind(self.action_space)
        if kind not in kinds:
            raise D2RLError(f"{name} supports {', '.join(kinds)} actions, got {kind} ({self.action_space})")


@dataclass
class Built:
    """What a builder returns: the Learner (holding its Policy), its Storage and its schedule."""

    learner: Learner
    storage: Any  # d2rl.buffers.RolloutStorage | d2rl.buffers.replay.ReplayBuffer | None (acting only)
    schedule: RolloutSchedule | ReplaySchedule

    @property
    def policy(self) -> Policy:
        return self.learner.policy


class StopTraining(Exception):
    """Raised inside the Loop (or a Learner's update) once a stop was requested (SIGINT/SIGTERM)."""


class _StopFlag:
    """Set by the signal handlers ``train()`` installs; checked every vector step and minibatch."""

    requested: str | None = None  # the signal's name once a stop was asked for


def request_stop(reason: str) -> None:
    _StopFlag.requested = reason


def clear_stop() -> None:
    _StopFlag.requested = None


def check_stop() -> None:
    """Raise ``StopTraining`` if a stop was requested; cheap enough for every step."""
    if _StopFlag.requested is not None:
        raise StopTraining(_StopFlag.requested)
