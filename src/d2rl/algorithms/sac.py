"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
arXiv:1812.05905), with its discrete-action form (Christodoulou 2019, arXiv:1910.07207) and the
Tsallis actor-critic (TAC; Lee et al. 2020, "Generalized Tsallis Entropy Reinforcement Learning
and Its Application to Soft Mobile Robots", RSS) as options of the same implementation.

- Box actions: tanh-squashed Gaussian policy with the change-of-variables log-prob (paper app. C),
  twin critics with the clipped double-Q target (eq. 3 with ``min_i Q_i``), reparameterised policy
  loss (eq. 7 / 12), automatic temperature toward ``target_entropy`` (eq. 18; default ``-dim(A)``).
- Discrete actions (Christodoulou 2019): the critic outputs ``Q(s, .)`` for all actions and every
  expectation over the policy is computed exactly (``sum_a pi(a|s) ...``) instead of sampled.
- ``entropic_index`` ``q != 1`` replaces ``log pi`` by the Tsallis q-logarithm
  ``ln_q(pi) = (pi^(q-1) - 1) / (q - 1)`` in the target, the policy loss and the temperature loss
  (TAC); ``q = 1`` is SAC.

Deviations: the temperature loss is written in ``log alpha`` (as stable-baselines3 and the authors'
softlearning code: ``-log_alpha * (log pi + H_target)``); discrete ``target_entropy_scale`` is
0.89 (CleanRL's value; Christodoulou used 0.98, which is often too high to reach); with
``q != 1`` the automatic temperature uses the same target entropy in Tsallis units (a heuristic;
the TAC paper tunes a fixed alpha). Env steps and gradient steps alternate in chunks (see
``replay_actor_critic``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from d2rl.algorithms.replay_actor_critic import ReplayActorCritic, check_spaces
from d2rl.modules.actors import CategoricalActor, SquashedGaussianActor
from d2rl.modules.ensemble import EnsembleMLP
from d2rl.registry import LegacyAlgorithmSpec as AlgorithmSpec


@dataclass
class SACConfig:
    name: str = "sac"
    actor_lr: float = 3e-4  # paper: 3e-4 for all networks
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])  # paper: 256-256 ReLU
    activation: str = "relu"
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005  # Polyak factor of the target critics
    target_update_period: int = 1  # gradient steps between target updates
    n_step: int = 1
    learning_starts_env_steps: int = 5_000  # uniform random actions before the first update
    steps_per_iteration: int = 64  # vector steps collected per training_step
    gradient_steps_per_env_step: float = 1.0
    alpha_auto: bool = True  # false: fixed temperature alpha_init
    alpha_init: float = 1.0
    target_entropy: float | None = None  # None: -dim(A) (box) / target_entropy_scale*log|A| (discrete)
    target_entropy_scale: float = 0.89
    entropic_index: float = 1.0  # Tsallis q; 1 = Shannon (SAC), != 1 = TAC
    log_std_min: float = -20.0
    log_std_max: float = 2.0


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


class SACAgent(ReplayActorCritic):
    def __init__(
        self,
        cfg: SACConfig,
        observation_shape: tuple[int, ...],
        action_space: gym.Space,
        num_envs: int,
        replay_cfg: Any,
        seed: int,
    ) -> None:
        super().__init__(
            observation_shape,
            action_space,
            num_envs,
            replay_cfg,
            cfg.gamma,
            cfg.n_step,
            cfg.batch_size,
            cfg.learning_starts_env_steps,
            cfg.steps_per_iteration,
            cfg.gradient_steps_per_env_step,
            seed,
        )
        self.cfg = cfg
        self.actor: Any
        obs_dim, A = observation_shape[0], self.action_dim
        hidden, act = list(cfg.hidden_sizes), cfg.activation
        if self.discrete:
            self.actor = CategoricalActor(obs_dim, A, hidden, act)
            self.critic = EnsembleMLP(2, obs_dim, hidden, A, act)  # Q(s, .) for all actions
            default_target = cfg.target_entropy_scale * math.log(A)
        else:
            self.actor = SquashedGaussianActor(obs_dim, A, hidden, act, cfg.log_std_min, cfg.log_std_max)
            self.critic = EnsembleMLP(2, obs_dim + A, hidden, 1, act)
            default_target = -float(A)
        self.critic_target = EnsembleMLP(2, self.critic.weights[0].shape[1], hidden, self.critic.out_dim, act)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.target_entropy = float(cfg.target_entropy) if cfg.target_entropy is not None else default_target
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha_init)), requires_grad=cfg.alpha_auto)
        self._online: list[torch.Tensor] = list(self.critic.parameters())
        self._target: list[torch.Tensor] = list(self.critic_target.parameters())
        self._updates = 0

    @classmethod
    def from_config(  # type: ignore[override]
        cls,
        algo_cfg: Any,
        network: Any,
        network_cfg: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        total_env_steps: int,
        replay_cfg: Any = None,
    ) -> SACAgent:
        cfg = SACConfig(**{k: algo_cfg[k] for k in algo_cfg})
        shape = check_spaces("sac", observation_space, action_space)
        agent = cls(cfg, shape, action_space, num_envs, replay_cfg, int(np.random.randint(2**31)))
        agent.plan(total_env_steps)
        return agent

    # -- acting -------------------------------------------------------------------------------
    def act_normalized(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if self.discrete:
            log_pi = self.actor(obs)
            if deterministic:
                return log_pi.argmax(-1)
            u = torch.rand((obs.shape[0], 1))
            return (log_pi.exp().cumsum(-1) < u).sum(-1).clamp_max(self.action_dim - 1)
        if deterministic:
            return self.actor.mode(obs)
        return self.actor.sample(obs)[0]

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act_normalized(obs, deterministic=False)

    # -- learning -----------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        groups = [
            {"params": list(self.critic.parameters()), "lr": cfg.critic_lr},
            {"params": list(self.actor.parameters()), "lr": cfg.actor_lr},
        ]
        if cfg.alpha_auto:
            groups.append({"params": [self.log_alpha], "lr": cfg.alpha_lr})
        # one fused Adam over all three parameter sets: one step call per update, not three
        return torch.optim.Adam(groups, fused=True)

    def on_train_start(self) -> None:
        self._opt = self.trainer.optimizers[0]  # the raw torch optimizer: no wrapper per step

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic + actor + temperature loss of one batch (actions in ``[-1, 1]``).

        The three losses touch disjoint parameters (the actor loss reads the critic through
        detached weights, the temperature loss a detached entropy), so one backward pass of their
        sum gives each its own gradient. Deviation: the actor sees the critic before this step's
        critic update (the paper's pseudo-code updates the critic first).
        """
        cfg, q_index = self.cfg, self.cfg.entropic_index
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        alpha = self.log_alpha.detach().exp()
        # critic (paper eq. 5 with the clipped double-Q target)
        with torch.no_grad():
            if self.discrete:
                next_log_pi = self.actor(next_obs)  # [B, A]
                next_q = self.critic_target(next_obs)  # [2, B, A]
            else:
                next_action, next_log_pi = self.actor.sample(next_obs)
                next_q = self.critic_target(torch.cat([next_obs, next_action], -1)).squeeze(-1)  # [2, B]
            y = soft_target(
                batch["reward"], batch["discount"], batch["terminated"], next_q, next_log_pi, alpha, q_index
            )
        if self.discrete:
            q_all = self.critic(obs)  # [2, B, A]
            q = q_all.gather(-1, action.long().view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)  # [2, B]
        else:
            q = self.critic(torch.cat([obs, action], -1)).squeeze(-1)  # [2, B]
        td = q - y
        if "weights" in batch:  # prioritized replay: importance-sampling weights
            critic_loss = 0.5 * (batch["weights"] * td.square()).mean(-1).sum()
            self.prioritize(batch, td.detach().abs().mean(0))
        else:
            critic_loss = 0.5 * td.square().mean(-1).sum()
        # actor (eq. 7 / 12): minimise alpha ln_q pi - min_i Q_i, critic weights held constant
        if self.discrete:
            log_pi = self.actor(obs)  # [B, A]
            pi = log_pi.exp()
            q_pi = self.critic(obs, detach_params=True).min(0).values  # [B, A]
            actor_loss = (pi * (alpha * log_q(log_pi, q_index) - q_pi)).sum(-1).mean()
            entropy = -(pi * log_q(log_pi, q_index)).sum(-1).detach()  # [B]
        else:
            new_action, log_pi = self.actor.sample(obs)
            q_pi = self.critic(torch.cat([obs, new_action], -1), detach_params=True).min(0).values.squeeze(-1)
            actor_loss = (alpha * log_q(log_pi, q_index) - q_pi).mean()
            entropy = -log_q(log_pi, q_index).detach()
        loss = critic_loss + actor_loss
        metrics = {"loss/q": critic_loss.detach(), "loss/policy": actor_loss.detach(), "train/alpha": alpha}
        if cfg.alpha_auto:
            alpha_loss = temperature_loss(self.log_alpha, entropy, self.target_entropy)
            loss = loss + alpha_loss
            metrics["loss/alpha"] = alpha_loss.detach()
        metrics["stats/entropy"] = entropy.mean()
        metrics["stats/q"] = q.detach().mean()
        return loss, metrics

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, metrics = self.losses(batch)
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        self._updates += 1
        if self._updates % self.cfg.target_update_period == 0:
            with torch.no_grad():
                torch._foreach_lerp_(self._target, self._online, self.cfg.tau)
        return metrics


SPEC = AlgorithmSpec(
    name="sac",
    config_class=SACConfig,
    agent_class=SACAgent,
    action_spaces=("box", "discrete"),
    description="Soft Actor-Critic (Haarnoja et al. 2018); discrete (Christodoulou 2019); Tsallis (TAC)",
)
