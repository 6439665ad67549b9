"""DQN's epsilon-greedy policy, learner and builder (config and paper notes: ``d2rl.algorithms.dqn``).

The Q-network of ``algo.distributional`` (``values``) belongs to the policy; the learner owns its
target copy, synced by env steps (``target_update_period_env_steps``, ``target_tau``), and the
optimizers. One ``training_step`` gets a round's gradient steps as ``ReplayBatches``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from d2rl.algorithms.dqn import DQNConfig
from d2rl.algorithms.dqn import losses as L
from d2rl.algorithms.dqn.values import QNetwork, ValueLoss, make_q_network
from d2rl.buffers import make_replay_for
from d2rl.buffers.batches import ReplayBatches
from d2rl.core import BuildContext, Built, Learner, Policy, ReplaySchedule, check_stop
from d2rl.errors import D2RLError
from d2rl.modules.q_heads import noisy_layers, without_final_fc


@dataclass(frozen=True)
class EpsilonSchedule:
    """Epsilon by env step: 1 before ``start_env_steps`` (the Loop acts uniformly then), otherwise
    linear from ``initial`` at step 0 to ``final`` at ``decay_env_steps``, then constant."""

    initial: float
    final: float
    decay_env_steps: float
    start_env_steps: int = 0

    def __call__(self, env_step: int) -> float:
        if env_step < self.start_env_steps:
            return 1.0
        frac = min(1.0, env_step / self.decay_env_steps) if self.decay_env_steps > 0 else 1.0
        return self.initial + frac * (self.final - self.initial)


class DQNPolicy(Policy):
    """Epsilon-greedy on ``q.q_values``; noisy layers draw fresh noise for every act. ``explore=False``
    is greedy with the noisy layers' mean weights (eval mode)."""

    q: QNetwork

    def __init__(self, q: QNetwork, num_actions: int, epsilon: EpsilonSchedule) -> None:
        super().__init__()
        self.q, self.num_actions, self.epsilon = q, num_actions, epsilon
        self._noisy = noisy_layers(q)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs]`` -> ``[B]`` argmax actions of the mean network."""
        was_training = self.q.training
        self.q.train(False)
        try:
            return self.q.q_values(obs).argmax(-1)
        finally:
            self.q.train(was_training)

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """Q-values ``[B, A]`` (the mean of a value distribution)."""
        return self.q.q_values(obs)

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        if not explore:
            return self.greedy(obs), {}, state
        n, eps = obs.shape[0], self.epsilon(env_step)
        if eps >= 1.0:
            return torch.randint(self.num_actions, (n,)), {}, state
        for layer in self._noisy:
            layer.reset_noise()
        action = self.q.q_values(obs).argmax(-1)  # [N]
        if eps > 0.0:
            action = torch.where(torch.rand(n) < eps, torch.randint(self.num_actions, (n,)), action)
        return action, {}, state


class DQNLearner(Learner):
    """Per batch: the value distribution's loss against the target network, PER importance
    weights, a clipped Adam step (and FQF's fraction step), new priorities."""

    policy: DQNPolicy
    q_target: QNetwork
    last_target_sync: torch.Tensor
    gradient_steps_done: torch.Tensor

    def __init__(self, cfg: DQNConfig, policy: DQNPolicy, total_env_steps: int) -> None:
        super().__init__()
        self.cfg, self.policy, self.total_env_steps = cfg, policy, total_env_steps
        self.q_target = copy.deepcopy(policy.q).requires_grad_(False)
        # counters, checkpointed with the weights
        self.register_buffer("last_target_sync", torch.zeros((), dtype=torch.int64))
        self.register_buffer("gradient_steps_done", torch.zeros((), dtype=torch.int64))
        self._noisy = noisy_layers(policy.q) + noisy_layers(self.q_target)
        self._opts: list[torch.optim.Optimizer] = []

    @property
    def q(self) -> QNetwork:
        """The online Q-network (the policy's)."""
        return self.policy.q

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        cfg, q = self.cfg, self.q
        main = [p for name, p in q.named_parameters() if not name.startswith("fractions.")]
        opts: list[torch.optim.Optimizer] = [torch.optim.Adam(main, lr=cfg.lr, eps=cfg.adam_eps, fused=True)]
        if q.fractions is not None:  # FQF (Yang et al. 2019): RMSprop on the fraction proposal
            opts.append(
                torch.optim.RMSprop(q.fractions.parameters(), lr=cfg.fraction_lr, alpha=0.95, eps=1e-5)
            )
        return opts

    def on_train_start(self) -> None:
        self._opts = self.raw_optimizers()  # no Lightning wrappers per step

    def sync_target(self, env_steps: int) -> None:
        """Move the target toward the online network once per ``target_update_period_env_steps``
        crossed since the last sync (``tau`` compounded over the syncs missed within a round)."""
        cfg = self.cfg
        period = cfg.target_update_period_env_steps
        syncs = env_steps // period - int(self.last_target_sync) // period
        if syncs <= 0:
            return
        tau = 1.0 - (1.0 - cfg.target_tau) ** syncs
        with torch.no_grad():
            for p_t, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                p_t.lerp_(p, tau)
            for b_t, b in zip(self.q_target.buffers(), self.q.buffers(), strict=True):
                b_t.copy_(b)
        self.last_target_sync.fill_(env_steps)

    def loss(self, batch: dict[str, torch.Tensor]) -> ValueLoss:
        """The value distribution's loss on ``batch`` against the target network."""
        return self.q.loss(batch, self.q_target)

    def update(
        self, batch: dict[str, torch.Tensor], opts: list[torch.optim.Optimizer]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One gradient step on ``batch`` (``opts``: main, then FQF's fraction optimizer); returns
        the new priorities ``[B]`` and the metrics (tensors: no sync per step)."""
        cfg = self.cfg
        for layer in self._noisy:  # fresh noise in the online and target networks
            layer.reset_noise()
        out = self.loss(batch)
        weights = batch.get("weights")  # PER importance weights [B]
        loss = L.weighted_mean(out.per_sample, weights)
        main = opts[0]
        main.zero_grad()
        loss.backward()
        if cfg.max_grad_norm > 0:  # only what this step updates: not the fraction network
            params = [p for group in main.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        main.step()
        if out.fraction is not None:
            opts[1].zero_grad()
            L.weighted_mean(out.fraction, weights).backward()
            opts[1].step()
        out.metrics["loss/q"] = loss.detach()
        return out.priorities, out.metrics

    def training_step(self, experience: ReplayBatches, batch_idx: int) -> dict[str, float]:
        cfg, env_steps = self.cfg, experience.env_steps
        metrics: dict[str, float] = {"train/epsilon": self.policy.epsilon(env_steps)}
        if env_steps < cfg.learning_starts_env_steps:
            return metrics
        self.sync_target(env_steps)
        opts = self._opts or self.raw_optimizers()
        if cfg.anneal_lr:
            lr = cfg.lr * max(0.0, 1.0 - env_steps / max(1, self.total_env_steps))
            for group in opts[0].param_groups:
                group["lr"] = lr
            metrics["train/lr"] = lr
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for batch in experience:
            check_stop()
            priorities, step_metrics = self.update(batch, opts)
            experience.update_priorities(batch, priorities)
            for k, v in step_metrics.items():
                sums[k] = sums[k] + v if k in sums else v
            n += 1
        self.gradient_steps_done += n
        metrics.update({k: float(v) / n for k, v in sums.items()})
        return metrics


def check(cfg: DQNConfig, ctx: BuildContext) -> None:
    """Refuse (one line) settings the DQN family cannot run."""
    if cfg.n_step < 1 or cfg.update_period_env_steps < 1 or cfg.gradient_steps < 0:
        raise D2RLError("algo.n_step and algo.update_period_env_steps must be >= 1, gradient_steps >= 0")
    kind = str(ctx.replay_cfg.kind)
    if kind not in ("none", "uniform", "prioritized"):
        raise D2RLError(f"{cfg.name} supports replay=uniform or replay=prioritized, got '{kind}'")


def build(cfg: DQNConfig, ctx: BuildContext) -> Built:
    ctx.require(("discrete",), cfg.name)
    check(cfg, ctx)
    encoder = ctx.encoder()
    q = make_q_network(encoder if cfg.encoder_fc else without_final_fc(encoder), ctx.num_actions, cfg)
    epsilon = EpsilonSchedule(
        cfg.epsilon_initial,
        cfg.epsilon_final,
        cfg.exploration_fraction * ctx.total_env_steps,
        cfg.learning_starts_env_steps,
    )
    policy = DQNPolicy(q, ctx.num_actions, epsilon)
    storage = make_replay_for(ctx, cfg.n_step, cfg.gamma)
    schedule = ReplaySchedule(
        batch_size=cfg.batch_size,
        learning_starts_env_steps=cfg.learning_starts_env_steps,
        round_env_steps=cfg.iteration_env_steps,
        gradient_steps_per_env_step=cfg.gradient_steps / cfg.update_period_env_steps,
    )
    return Built(learner=DQNLearner(cfg, policy, ctx.total_env_steps), storage=storage, schedule=schedule)
