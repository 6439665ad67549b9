"""SAC's policy, losses, learner and builder (the config and paper notes are in ``d2rl.algorithms.sac``)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from d2rl.algorithms.actor_critic.nets import (
    ActionScale,
    Critics,
    check,
    critic_loss,
    feature_dim,
    make_storage,
    polyak,
    run_updates,
    schedule,
)
from d2rl.algorithms.sac import SACConfig
from d2rl.buffers.batches import ReplayBatches
from d2rl.core import BuildContext, Built, Learner, Policy
from d2rl.modules.actors import CategoricalActor, SquashedGaussianActor


# -- losses (pure functions, tested by hand in tests/unit/algorithms/test_sac.py) ---------------
def log_q(log_p: torch.Tensor, q: float) -> torch.Tensor:
    """Tsallis q-logarithm of ``p`` given ``log p``: ``(p^(q-1) - 1)/(q-1)``; ``log p`` at q=1."""
    if q == 1.0:
        return log_p
    return torch.expm1((q - 1.0) * log_p) / (q - 1.0)


def soft_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    next_q: torch.Tensor,
    next_log_pi: torch.Tensor,
    alpha: torch.Tensor | float,
    q: float = 1.0,
) -> torch.Tensor:
    """``y = r + discount (1 - d) (min_i Q'_i(s', a') - alpha ln_q pi(a'|s'))``, ``a' ~ pi``.

    Box: ``next_q [E, B]``, ``next_log_pi [B]``. Discrete: ``next_q [E, B, A]``, ``next_log_pi [B, A]``,
    and the expectation over ``a'`` is exact.
    """
    soft_q = next_q.min(0).values - alpha * log_q(next_log_pi, q)
    if soft_q.dim() == 2:  # discrete
        soft_q = (next_log_pi.exp() * soft_q).sum(-1)
    return reward + discount * (1.0 - terminated) * soft_q


def temperature_loss(log_alpha: torch.Tensor, entropy: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``J(alpha) = E[log_alpha * (H - H_target)]``: alpha grows while the policy's entropy
    estimate ``H [B]`` (``-ln_q pi(a|s)``, detached) is below the target (paper eq. 18)."""
    return (log_alpha * (entropy.detach() - target_entropy)).mean()


class SACPolicy(Policy):
    """Encoder + squashed-Gaussian actor (Box; ``scale`` maps to the env's bounds) or categorical
    actor (discrete, ``scale`` None). ``explore`` samples; otherwise the mode."""

    encoder: nn.Module
    actor: Any  # SquashedGaussianActor | CategoricalActor
    scale: ActionScale | None

    def __init__(self, encoder: nn.Module, actor: nn.Module, scale: ActionScale | None) -> None:
        super().__init__()
        self.encoder, self.actor, self.scale = encoder, actor, scale

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        features = self.encoder(obs)
        if self.scale is None:
            log_pi = self.actor(features)  # [B, A]
            if not explore:
                return log_pi.argmax(-1), {}, state
            u = torch.rand((obs.shape[0], 1))  # inverse-CDF sample: cheaper than torch.distributions
            action = (log_pi.exp().cumsum(-1) < u).sum(-1).clamp_max(log_pi.shape[-1] - 1)
            return action, {}, state
        action = self.actor.sample_action(features) if explore else self.actor.mode(features)
        return self.scale.to_env(action), {}, state

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """``log pi(.|s)`` ``[B, A]`` (discrete) or the squashed mean action ``[B, A]`` (Box)."""
        features = self.encoder(obs)
        return self.actor(features) if self.scale is None else self.actor.mode(features)


class SACLosses(NamedTuple):
    critic: torch.Tensor
    actor: torch.Tensor
    alpha: torch.Tensor | None  # None with a fixed temperature
    td: torch.Tensor  # [E, B] TD errors, detached (PER priorities: mean |td| over the critics)
    metrics: dict[str, torch.Tensor]


class SACLearner(Learner):
    """One fused Adam step per batch on the sum of the critic, actor and temperature losses."""

    policy: SACPolicy
    critics: Critics

    def __init__(self, cfg: SACConfig, policy: SACPolicy, critics: Critics, target_entropy: float) -> None:
        super().__init__()
        self.cfg, self.policy, self.critics = cfg, policy, critics
        self.target_entropy = target_entropy
        self.discrete = policy.scale is None
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha_init)), requires_grad=cfg.alpha_auto)
        self._updates = 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        groups = [
            {
                "params": [*self.critics.q.parameters(), *self.policy.encoder.parameters()],
                "lr": cfg.critic_lr,
            },
            {"params": list(self.policy.actor.parameters()), "lr": cfg.actor_lr},
        ]
        if cfg.alpha_auto:
            groups.append({"params": [self.log_alpha], "lr": cfg.alpha_lr})
        # one fused Adam over all parameter sets: one step call per update, not three
        return torch.optim.Adam(groups, fused=True)

    def on_train_start(self) -> None:
        (self._opt,) = self.raw_optimizers()  # no Lightning wrapper per step

    def losses(self, batch: dict[str, torch.Tensor]) -> SACLosses:
        """Critic, actor and temperature losses of one batch (actions in ``[-1, 1]``).

        They touch disjoint parameters: the actor loss reads the critics through detached weights
        and the encoder's features detached, the temperature loss a detached entropy.
        """
        cfg, q_index, actor, encoder = (
            self.cfg,
            self.cfg.entropic_index,
            self.policy.actor,
            self.policy.encoder,
        )
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        alpha = self.log_alpha.detach().exp()
        features = encoder(obs)  # [B, F]; the critic loss trains the encoder through these
        # critic (paper eq. 5 with the clipped double-Q target)
        with torch.no_grad():
            next_features = encoder(next_obs)
            target_features = (
                self.critics.target_features(next_obs, encoder)
                if self.critics.learned_encoder
                else next_features
            )
            if self.discrete:
                next_log_pi = actor(next_features)  # [B, A]
                next_q = self.critics.q_target(target_features)  # [E, B, A]
            else:
                next_action, next_log_pi = actor.sample(next_features)
                next_q = self.critics.q_target(torch.cat([target_features, next_action], -1)).squeeze(-1)
            y = soft_target(
                batch["reward"], batch["discount"], batch["terminated"], next_q, next_log_pi, alpha, q_index
            )
        if self.discrete:
            q_all = self.critics.q(features)  # [E, B, A]
            E = q_all.shape[0]
            q = q_all.gather(-1, action.long().view(1, -1, 1).expand(E, -1, 1)).squeeze(-1)  # [E, B]
        else:
            q = self.critics.q(torch.cat([features, action], -1)).squeeze(-1)  # [E, B]
        td = q - y
        q_loss = critic_loss(td, batch, 0.5)
        # actor (eq. 7 / 12): minimise alpha ln_q pi - min_i Q_i; critic weights and features constant
        f = features.detach()
        if self.discrete:
            log_pi = actor(f)  # [B, A]
            pi = log_pi.exp()
            q_pi = self.critics.q(f, detach_params=True).min(0).values  # [B, A]
            actor_loss = (pi * (alpha * log_q(log_pi, q_index) - q_pi)).sum(-1).mean()
            entropy = -(pi * log_q(log_pi, q_index)).sum(-1).detach()  # [B]
        else:
            new_action, log_pi = actor.sample(f)
            q_pi = (
                self.critics.q(torch.cat([f, new_action], -1), detach_params=True).min(0).values.squeeze(-1)
            )
            actor_loss = (alpha * log_q(log_pi, q_index) - q_pi).mean()
            entropy = -log_q(log_pi, q_index).detach()
        metrics = {"loss/q": q_loss.detach(), "loss/policy": actor_loss.detach(), "train/alpha": alpha}
        alpha_loss = None
        if cfg.alpha_auto:
            alpha_loss = temperature_loss(self.log_alpha, entropy, self.target_entropy)
            metrics["loss/alpha"] = alpha_loss.detach()
        metrics["stats/entropy"] = entropy.mean()
        metrics["stats/q"] = q.detach().mean()
        return SACLosses(q_loss, actor_loss, alpha_loss, td.detach(), metrics)

    def update(self, batch: dict[str, torch.Tensor], batches: ReplayBatches) -> dict[str, torch.Tensor]:
        out = self.losses(batch)
        if "weights" in batch:  # prioritized replay
            batches.update_priorities(batch, out.td.abs().mean(0))
        loss = out.critic + out.actor
        if out.alpha is not None:
            loss = loss + out.alpha
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        self._updates += 1
        if self._updates % self.cfg.target_update_period == 0:
            polyak(self.critics.target, self.critics.online, self.cfg.tau)
        return out.metrics

    def training_step(self, batches: ReplayBatches, batch_idx: int) -> dict[str, float]:
        return run_updates(batches, self.policy.scale, self.update)


def build(cfg: SACConfig, ctx: BuildContext) -> Built:
    ctx.require(("box", "discrete"), cfg.name)
    check(ctx, cfg, cfg.name)
    encoder = ctx.encoder()
    features, A, hidden, act = feature_dim(encoder), ctx.num_actions, list(cfg.hidden_sizes), cfg.activation
    scale: ActionScale | None = None
    actor: nn.Module
    if ctx.discrete:
        actor = CategoricalActor(features, A, hidden, act)
        critics = Critics(encoder, features, A, 2, hidden, act)  # Q(s, .) for all actions
        default_target = cfg.target_entropy_scale * math.log(A)
    else:
        actor = SquashedGaussianActor(features, A, hidden, act, cfg.log_std_min, cfg.log_std_max)
        critics = Critics(encoder, features + A, 1, 2, hidden, act)
        scale = ActionScale(ctx.action_space)  # type: ignore[arg-type]
        default_target = -float(A)
    target_entropy = float(cfg.target_entropy) if cfg.target_entropy is not None else default_target
    learner = SACLearner(cfg, SACPolicy(encoder, actor, scale), critics, target_entropy)
    return Built(learner=learner, storage=make_storage(cfg, ctx), schedule=schedule(cfg))
