"""The parts SAC and TD3 share: action rescaling, the critic ensemble on the shared observation
encoder with its Polyak-averaged targets, checks, and the replay, schedule and update-loop builders.

Encoder sharing (as in SAC-AE, Yarats et al. 2019, arXiv:1910.01741, and DrQ, Kostrikov et al.
2020, arXiv:2004.13649): ONE encoder (the network chosen by ``network=``) feeds the actor and the
critics. The critic loss trains it; the actor's loss reads its features detached. The target
critics read a target encoder, Polyak-averaged with the same ``tau``. With ``network=identity``
(the default for vector observations) the encoder is the flattened observation: there is nothing
to learn or to average, and the actor and critics are the papers' MLPs on the raw state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from d2rl.algorithms.actor_critic import ActorCriticConfig
from d2rl.buffers.batches import ReplayBatches
from d2rl.buffers.make import make_replay_for
from d2rl.buffers.replay import ReplayBuffer
from d2rl.core import BuildContext, ReplaySchedule, check_stop
from d2rl.envs import finite_bounds
from d2rl.errors import D2RLError
from d2rl.modules.ensemble import ACTIVATIONS, EnsembleMLP


class ActionScale(nn.Module):
    """Maps the networks' ``[-1, 1]^A`` to a Box's ``[low, high]`` and back (``[B, A]``)."""

    def __init__(self, space: gym.spaces.Box) -> None:
        super().__init__()
        low = torch.as_tensor(space.low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(space.high, dtype=torch.float32).reshape(-1)
        # not in the state dict: they come from the env's action space
        self.register_buffer("center", (high + low) / 2, persistent=False)
        self.register_buffer("radius", (high - low) / 2, persistent=False)
        self.center: torch.Tensor
        self.radius: torch.Tensor

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` -> ``[low, high]``."""
        return torch.addcmul(self.center, action, self.radius)

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """``[low, high]`` -> ``[-1, 1]``."""
        return (action - self.center) / self.radius


def has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def check(ctx: BuildContext, cfg: ActorCriticConfig, name: str) -> None:
    """Refuse (one line) what these actor-critics cannot do: unbounded boxes, recurrent cores."""
    space = ctx.action_space
    if isinstance(space, gym.spaces.Box) and not finite_bounds(space):
        raise D2RLError(f"{name} needs finite action bounds to rescale its tanh policy, got {space}")
    core = getattr(ctx.network_cfg, "core", "none")
    if str(getattr(core, "value", core)) != "none":
        raise D2RLError(f"{name} has no recurrent policy; drop network.core={getattr(core, 'value', core)}")
    if cfg.activation not in ACTIVATIONS:
        raise D2RLError(f"algo.activation must be one of {', '.join(ACTIVATIONS)}, got '{cfg.activation}'")


class Critics(nn.Module):
    """``members`` Q-functions (one ensemble MLP) on encoder features, and their targets.

    ``in_dim``: features, plus the action for Box actions (``Q(s, a)``, ``out_dim = 1``) or
    features only for discrete ones (``Q(s, .)``, ``out_dim = |A|``). The encoder belongs to the
    Policy; the target encoder (a copy, when the encoder learns) belongs here.
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_dim: int,
        out_dim: int,
        members: int,
        hidden_sizes: list[int],
        activation: str,
    ) -> None:
        super().__init__()
        self.q = EnsembleMLP(members, in_dim, hidden_sizes, out_dim, activation)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.learned_encoder = has_parameters(encoder)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False) if self.learned_encoder else None
        # Polyak pairs (plain lists: not registered twice)
        self.online: list[torch.Tensor] = list(self.q.parameters())
        self.target: list[torch.Tensor] = list(self.q_target.parameters())
        if self.target_encoder is not None:
            self.online += list(encoder.parameters())
            self.target += list(self.target_encoder.parameters())

    def target_features(self, next_obs: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """``[B, *obs]`` -> ``[B, F]`` by the target encoder (the encoder itself if it has no weights)."""
        return (self.target_encoder or encoder)(next_obs)


def polyak(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) target + tau online``, one fused call for all tensors."""
    with torch.no_grad():
        torch._foreach_lerp_(target, online, tau)


def make_storage(cfg: ActorCriticConfig, ctx: BuildContext) -> ReplayBuffer:
    """Uniform or prioritized replay (``replay=``); uint8 pixels stay uint8; env-scale actions."""
    kind = str(ctx.replay_cfg.kind)
    if kind not in ("none", "uniform", "prioritized"):
        raise D2RLError(f"replay.kind must be none, uniform or prioritized, got '{kind}'")
    return make_replay_for(ctx, cfg.n_step, cfg.gamma)


def schedule(cfg: ActorCriticConfig) -> ReplaySchedule:
    return ReplaySchedule(
        cfg.batch_size, cfg.learning_starts_env_steps, cfg.round_env_steps, cfg.gradient_steps_per_env_step
    )


def run_updates(
    batches: ReplayBatches,
    scale: ActionScale | None,
    update: Callable[[dict[str, torch.Tensor], ReplayBatches], dict[str, torch.Tensor]],
) -> dict[str, float]:
    """One ``update(batch, batches)`` per batch of the round, Box actions mapped to ``[-1, 1]``;
    returns the metrics of the last one (one sync per round, not per step)."""
    metrics: dict[str, torch.Tensor] = {}
    for batch in batches:
        check_stop()
        if scale is not None:
            batch["action"] = scale.from_env(batch["action"])
        metrics = update(batch, batches)
    return {k: float(v) for k, v in metrics.items()}


def critic_loss(td: torch.Tensor, batch: dict[str, torch.Tensor], scale: float) -> torch.Tensor:
    """``scale * sum_i mean_b w_b td_ib^2`` over ``td [E, B]`` (``w``: PER importance weights, if any)."""
    sq = td.square()
    if "weights" in batch:
        sq = batch["weights"] * sq
    return scale * sq.mean(-1).sum()


def feature_dim(encoder: Any) -> int:
    """Width of an encoder's features (every network sets ``out_dim``)."""
    return int(encoder.out_dim)
