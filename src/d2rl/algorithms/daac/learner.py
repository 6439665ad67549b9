"""DAAC's losses and learner (the config and paper notes are in ``d2rl.algorithms.daac``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from d2rl.algorithms.daac import DAACConfig
from d2rl.algorithms.on_policy import (
    ActorCriticPolicy,
    OnPolicyLearner,
    build_actor_critic,
    explained_variance,
    rollout_storage,
    set_lr,
)
from d2rl.algorithms.ppo.learner import ppo_loss
from d2rl.algorithms.separate_networks import (
    check_separate,
    flat_batch,
    policy_network_params,
    policy_terms,
    value_loss,
    value_network_params,
)
from d2rl.buffers.rollout import Rollout, minibatches
from d2rl.core import BuildContext, Built, RolloutSchedule, check_stop
from d2rl.errors import D2RLError
from d2rl.modules.mlp import orthogonal_init


class AdvantageHead(nn.Module):
    """Policy features ``[B, F]`` and actions -> ``A(s, a)`` ``[B]``: a linear layer on the features
    joined with the action (one-hot ``[B, A]`` when discrete, the ``[B, D]`` vector otherwise)."""

    def __init__(self, in_dim: int, num_actions: int, discrete: bool) -> None:
        super().__init__()
        self.num_actions, self.discrete = num_actions, discrete
        self.linear = orthogonal_init(nn.Linear(in_dim + num_actions, 1), gain=1.0)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            a = nn.functional.one_hot(action.long(), self.num_actions).to(features.dtype)
        else:
            a = action.reshape(action.shape[0], -1).to(features.dtype)
        return self.linear(torch.cat([features, a], dim=-1)).squeeze(-1)


class DAACLearner(OnPolicyLearner):
    """Policy epochs on every rollout; value epochs on every ``n_pi``-th."""

    cfg: DAACConfig

    def __init__(
        self, policy: ActorCriticPolicy, cfg: DAACConfig, num_envs: int, discrete: bool, num_actions: int
    ):
        super().__init__(policy, cfg, num_envs)
        model = policy.model
        check_separate(model, "daac")
        out_dim: Any = model.actor_encoder.out_dim
        self.advantage_head = AdvantageHead(int(out_dim), num_actions, discrete)
        self.updates = 0  # policy updates so far (the value network trains when updates % n_pi == 0)
        self.last_value_loss = float("nan")

    def policy_params(self) -> list[nn.Parameter]:
        return [*policy_network_params(self.policy.model), *self.advantage_head.parameters()]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        c = self.cfg
        return [
            torch.optim.Adam(self.policy_params(), lr=c.lr, eps=c.adam_eps),
            torch.optim.Adam(value_network_params(self.policy.model), lr=c.lr, eps=c.adam_eps),
        ]

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter]) -> None:
        check_stop()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm, foreach=True)
        opt.step()

    def policy_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's clipped surrogate and entropy bonus (no value term) + ``alpha_a (A(s,a) - A_GAE)^2``."""
        cfg = self.cfg
        pi = policy_terms(self.policy.model, mb["obs"], mb["action"])
        a = mb["advantage"]
        loss, metrics = ppo_loss(
            pi["logprob"],
            mb["logprob"],
            a,
            mb["ret"],  # no value term: the value network trains apart (vf_coef 0, loss 0)
            mb["value"],
            mb["ret"],
            pi["entropy"],
            cfg.clip_coef,
            False,
            0.0,
            cfg.ent_coef,
        )
        metrics.pop("loss/value")
        adv_loss = (self.advantage_head(pi["features"], mb["action"]) - a).square().mean()
        metrics["loss/advantage"] = adv_loss.detach()
        return loss + cfg.adv_coef * adv_loss, metrics

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg, model = self.cfg, self.policy.model
        adv, ret = self.advantages(rollout)
        policy_opt, value_opt = self.raw_optimizers()
        lr = set_lr(policy_opt, cfg.lr, cfg.anneal_lr, rollout)
        set_lr(value_opt, cfg.lr, cfg.anneal_lr, rollout)
        data = flat_batch(rollout, adv, ret, cfg.norm_adv)
        sums: dict[str, float] = {}
        n = 0
        params = self.policy_params()
        for _epoch in range(cfg.policy_epochs):
            for mb in minibatches(data, cfg.num_minibatches):
                loss, metrics = self.policy_loss(mb)
                self._step(policy_opt, loss, params)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                n += 1
        out = {k: v / max(n, 1) for k, v in sums.items()}
        if self.updates % cfg.n_pi == 0:
            total, m = 0.0, 0
            v_params = value_network_params(model)
            clip = cfg.clip_coef if cfg.clip_vloss else None
            for _epoch in range(cfg.value_epochs):
                for mb in minibatches(data, cfg.num_minibatches):
                    v_loss = value_loss(model.value(mb["obs"]), mb["value"], mb["ret"], clip)
                    self._step(value_opt, v_loss, v_params)
                    total, m = total + v_loss.item(), m + 1
            self.last_value_loss = total / max(m, 1)
        self.updates += 1
        out["loss/value"] = self.last_value_loss
        ev = explained_variance(data["value"], data["ret"])
        if math.isfinite(ev):  # nan when the returns are constant
            out["stats/explained_variance"] = ev
        out["train/lr"] = lr
        return out


def build(cfg: DAACConfig, ctx: BuildContext) -> Built:
    ctx.require(("discrete", "box"), "daac")
    for key in ("num_minibatches", "n_pi", "num_steps"):
        if int(getattr(cfg, key)) < 1:
            raise D2RLError(f"algo.{key}={getattr(cfg, key)} must be positive")
    if (cfg.num_steps * ctx.num_envs) % cfg.num_minibatches:
        raise D2RLError(
            f"algo.num_minibatches={cfg.num_minibatches} must divide num_steps*num_envs="
            f"{cfg.num_steps * ctx.num_envs}"
        )
    policy = ActorCriticPolicy(
        build_actor_critic(ctx, shared_encoder=False), ctx.obs_shape, cfg.normalize_obs
    )
    return Built(
        learner=DAACLearner(policy, cfg, ctx.num_envs, ctx.discrete, ctx.num_actions),
        storage=rollout_storage(ctx, cfg.num_steps, cfg.normalize_obs),
        schedule=RolloutSchedule(cfg.num_steps),
    )
