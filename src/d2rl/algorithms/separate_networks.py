"""What on-policy learners with separate policy and value networks share (PPG, DAAC): the policy
terms computed by the policy network alone, the value loss, a rollout as one flat batch, the
policy's parameters split by network, and the KL between two of the policy head's distributions.

The model is ``d2rl.modules.heads.ActorCritic`` built with two encoders (``actor_encoder`` +
``policy_head``: the policy network; ``critic_encoder`` + ``value_head``: the value network).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from d2rl.buffers.rollout import Rollout
from d2rl.errors import D2RLError
from d2rl.modules.heads import ActorCritic, CategoricalHead


def check_separate(model: ActorCritic, name: str) -> None:
    if model.critic_encoder is None:
        raise D2RLError(f"{name} needs separate policy and value networks")


def policy_network_params(model: ActorCritic) -> list[nn.Parameter]:
    return [*model.actor_encoder.parameters(), *model.policy_head.parameters()]


def value_network_params(model: ActorCritic) -> list[nn.Parameter]:
    assert model.critic_encoder is not None
    return [*model.critic_encoder.parameters(), *model.value_head.parameters()]


def policy_terms(model: ActorCritic, obs: torch.Tensor, action: torch.Tensor) -> dict[str, Any]:
    """The policy network alone on ``obs [B, *obs]``: ``features [B, F]``, distribution ``params``,
    ``logprob [B]`` of ``action`` and ``entropy [B]``."""
    features = model.actor_encoder(obs)
    params = model.policy_head(features)
    head: Any = model.policy_head
    return {
        "features": features,
        "params": params,
        "logprob": head.log_prob(params, action),
        "entropy": head.entropy(params),
    }


def flat_batch(
    rollout: Rollout, adv: torch.Tensor, ret: torch.Tensor, norm_adv: bool
) -> dict[str, torch.Tensor]:
    """A rollout's ``[T, N, ...]`` fields as one ``[T*N, ...]`` batch: ``obs``, ``action``,
    ``logprob``, ``value`` (at collection), ``advantage`` (normalised over the whole rollout with
    ``norm_adv``, as both papers' code does) and ``ret``."""
    B, d = rollout.num_steps * rollout.num_envs, rollout.data
    a = adv.reshape(B)
    if norm_adv:
        a = (a - a.mean()) / (a.std() + 1e-8)
    return {
        "obs": d["obs"].reshape(B, *d["obs"].shape[2:]),
        "action": d["action"].reshape(B, *d["action"].shape[2:]),
        "logprob": d["logprob"].reshape(B),
        "value": d["value"].reshape(B),
        "advantage": a,
        "ret": ret.reshape(B),
    }


def value_loss(
    new_value: torch.Tensor, old_value: torch.Tensor, ret: torch.Tensor, clip: float | None = None
) -> torch.Tensor:
    """``0.5 E[(V - R)^2]``; with ``clip``, the PPO baselines' clipped form (``V`` kept within ``clip``
    of the value at collection, the larger loss taken). All ``[B]``."""
    if clip is None:
        return 0.5 * (new_value - ret).square().mean()
    v_clipped = old_value + (new_value - old_value).clamp(-clip, clip)
    return 0.5 * torch.max((new_value - ret).square(), (v_clipped - ret).square()).mean()


def policy_kl(head: nn.Module, old: Any, new: Any) -> torch.Tensor:
    """``KL(old || new)`` ``[B]`` between two outputs of ``head``: categorical log-probabilities
    ``[B, A]`` or diagonal-Gaussian ``(mean, log_std)`` ``[B, D]`` each."""
    if isinstance(head, CategoricalHead):
        return (old.exp() * (old - new)).sum(-1)
    (m0, s0), (m1, s1) = old, new
    return (s1 - s0 + ((2 * s0).exp() + (m0 - m1).square()) / (2 * (2 * s1).exp()) - 0.5).sum(-1)
