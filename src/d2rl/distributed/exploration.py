"""What an Ape-X actor does differently from the local Loop, as small adapters on the Policy and
Learner (the algorithms stay untouched): per-actor exploration and actor-side initial priorities."""

from __future__ import annotations

from typing import Any

import torch

from d2rl.core import Policy


def actor_epsilon(rank: int, num_actors: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X: ``eps_i = base^(1 + alpha * i / (N - 1))`` (Horgan et al. 2018, sec. 4); 1 actor: ``base``."""
    frac = rank / (num_actors - 1) if num_actors > 1 else 0.0
    return float(base ** (1.0 + alpha * frac))


def actor_noise_scale(rank: int, num_actors: int, high: float = 1.0, low: float = 0.3) -> float:
    """Ape-X SAC: geometric from ``high`` (actor 0) to ``low`` (actor N-1)."""
    frac = rank / (num_actors - 1) if num_actors > 1 else 0.0
    return float(high * (low / high) ** frac)


class ScaledNoisePolicy(Policy):
    """A stochastic Box policy whose exploration noise is scaled: ``mode + s * (sample - mode)``."""

    def __init__(self, policy: Policy, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = policy, scale

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        if not explore or self.scale == 1.0:
            return self.inner.act(obs, state, explore, env_step)
        sample, extras, new_state = self.inner.act(obs, state, True, env_step)
        mode, _, _ = self.inner.act(obs, state, False, env_step)
        return mode + self.scale * (sample - mode), extras, new_state


def explore_as_actor(
    policy: Policy, rank: int, num_actors: int, dcfg: Any, num_envs: int = 0
) -> tuple[Policy, dict[str, float]]:
    """The policy actor ``rank`` acts with, and its exploration parameters (for logs).

    R2D2 (``epsilons``, one per env): Ape-X's epsilons over all ``num_actors * num_envs`` envs.
    DQN family (an ``epsilon`` schedule): a constant per-actor epsilon. Box actor-critics with a
    stochastic policy (SAC): a per-actor noise scale. Anything else acts as it is.
    """
    from d2rl.algorithms.dqn.learner import EpsilonSchedule

    if hasattr(policy, "epsilons") and num_envs > 0:  # R2D2: one epsilon per env over all actors' envs
        total = num_actors * num_envs
        eps = [actor_epsilon(rank * num_envs + j, total, float(dcfg.epsilon_base), float(dcfg.epsilon_alpha))
               for j in range(num_envs)]
        policy.epsilons = torch.tensor(eps)  # type: ignore[assignment]
        return policy, {"epsilon_min": min(eps), "epsilon_max": max(eps)}
    epsilon = getattr(policy, "epsilon", None)
    if isinstance(epsilon, EpsilonSchedule):
        eps = actor_epsilon(rank, num_actors, float(dcfg.epsilon_base), float(dcfg.epsilon_alpha))
        policy.epsilon = EpsilonSchedule(eps, eps, 0.0, 0)  # type: ignore[assignment]
        return policy, {"epsilon": eps}
    if getattr(policy, "scale", None) is not None and hasattr(policy, "actor"):
        s = actor_noise_scale(rank, num_actors, float(dcfg.noise_scale_max), float(dcfg.noise_scale_min))
        return ScaledNoisePolicy(policy, s), {"noise_scale": s}
    return policy, {}


@torch.no_grad()
def td_priorities(learner: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """``[B]`` initial priorities of n-step transitions from the learner copy's own TD errors (the
    value the learner would write back after sampling them), or None when the algorithm has none.

    R2D2 sequences: the learner's mixed sequence priorities. DQN family: ``learner.loss(batch).priorities`` (its distribution's TD error against the
    target network); SAC/TD3-style learners: mean ``|td|`` over the critics of ``learner.losses``.
    """
    if isinstance(batch.get("state"), tuple):  # sequences (R2D2): [L, B] fields, loss -> (loss, priorities, m)
        batch = {**batch, "weights": torch.ones(batch["reward"].shape[1])}
        return learner.loss(batch)[1].detach().float()
    batch = {**batch, "weights": torch.ones(batch["reward"].shape[0])}
    if hasattr(learner, "loss") and hasattr(learner, "q_target"):
        return learner.loss(batch).priorities.detach().float()
    losses = getattr(learner, "losses", None)
    if losses is None:
        return None
    scale = getattr(learner.policy, "scale", None)
    if scale is not None:  # the learner works on actions in [-1, 1]
        batch["action"] = scale.from_env(batch["action"])
    out = losses(batch)
    td = getattr(out, "td", None)
    return None if td is None else td.abs().mean(0).float()
