"""PPG's phases and learner (the config and paper notes are in ``d2rl.algorithms.ppg``)."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from d2rl.algorithms.on_policy import (
    ActorCriticPolicy,
    OnPolicyLearner,
    build_actor_critic,
    explained_variance,
    rollout_storage,
    set_lr,
)
from d2rl.algorithms.ppg import PPGConfig
from d2rl.algorithms.ppo.learner import ppo_loss
from d2rl.algorithms.separate_networks import (
    check_separate,
    flat_batch,
    policy_kl,
    policy_terms,
    value_loss,
)
from d2rl.buffers.rollout import Rollout, minibatches
from d2rl.core import BuildContext, Built, RolloutSchedule, check_stop
from d2rl.errors import D2RLError
from d2rl.modules.heads import CategoricalHead
from d2rl.modules.mlp import orthogonal_init

log = logging.getLogger(__name__)


class PPGLearner(OnPolicyLearner):
    """Policy phase on each rollout; every ``n_pi`` rollouts, the auxiliary phase on all of them."""

    cfg: PPGConfig

    def __init__(self, policy: ActorCriticPolicy, cfg: PPGConfig, num_envs: int) -> None:
        super().__init__(policy, cfg, num_envs)
        model = policy.model
        check_separate(model, "ppg")
        # the policy network's auxiliary value head (trained in the auxiliary phase only)
        out_dim: Any = model.actor_encoder.out_dim
        self.aux_value_head = orthogonal_init(nn.Linear(int(out_dim), 1), gain=1.0)
        # the policy phase's rollouts: obs [n_pi * T * N, *obs] (their storage dtype: uint8 pixels
        # stay uint8) and value targets [n_pi * T * N]; allocated at the first rollout, not checkpointed
        self.aux_obs: torch.Tensor | None = None
        self.aux_ret: torch.Tensor | None = None
        self.stored = 0  # rollouts held for the next auxiliary phase

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        c = self.cfg
        policy_phase = torch.optim.Adam(self.policy.parameters(), lr=c.lr, eps=c.adam_eps)
        aux_params = [*self.policy.parameters(), *self.aux_value_head.parameters()]
        aux_phase = torch.optim.Adam(aux_params, lr=c.aux_lr, eps=c.adam_eps)
        return [policy_phase, aux_phase]

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter]) -> None:
        check_stop()  # a long phase still answers Ctrl-C / SIGTERM within a minibatch
        opt.zero_grad()
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm, foreach=True)
        opt.step()

    # -- policy phase -------------------------------------------------------------------------
    def policy_loss(
        self, mb: dict[str, torch.Tensor], train_pi: bool, train_v: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's clipped objective on the policy network (``train_pi``) + ``vf_coef * 0.5 (V - V_targ)^2``
        on the value network (``train_v``); the networks share no parameters, so one sum trains both."""
        cfg, model = self.cfg, self.policy.model
        if not train_pi:
            v_loss = value_loss(model.value(mb["obs"]), mb["value"], mb["ret"])
            return cfg.vf_coef * v_loss, {"loss/value": v_loss.detach()}
        pi = policy_terms(model, mb["obs"], mb["action"])
        value = model.value(mb["obs"]) if train_v else mb["ret"]  # mb["ret"]: no value term (loss 0)
        loss, metrics = ppo_loss(
            pi["logprob"],
            mb["logprob"],
            mb["advantage"],
            value,
            mb["value"],
            mb["ret"],
            pi["entropy"],
            cfg.clip_coef,
            False,  # PPG trains V on unclipped targets
            cfg.vf_coef if train_v else 0.0,
            cfg.ent_coef,
        )
        if not train_v:
            metrics.pop("loss/value")
        return loss, metrics

    def policy_phase(self, data: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> dict[str, float]:
        cfg = self.cfg
        params = list(self.policy.parameters())
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for epoch in range(max(cfg.policy_epochs, cfg.value_epochs)):
            train_pi, train_v = epoch < cfg.policy_epochs, epoch < cfg.value_epochs
            for mb in minibatches(data, cfg.num_minibatches):
                loss, metrics = self.policy_loss(mb, train_pi, train_v)
                self._step(opt, loss, params)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
        return {k: v / counts[k] for k, v in sums.items()}

    # -- auxiliary phase ----------------------------------------------------------------------
    def store(self, data: dict[str, torch.Tensor]) -> None:
        B = data["ret"].shape[0]
        if self.aux_obs is None or self.aux_obs.shape[0] != self.cfg.n_pi * B:
            obs = data["obs"]
            self.aux_obs = torch.empty((self.cfg.n_pi * B, *obs.shape[1:]), dtype=obs.dtype)
            self.aux_ret = torch.empty(self.cfg.n_pi * B)
        assert self.aux_ret is not None
        self.aux_obs[self.stored * B : (self.stored + 1) * B] = data["obs"]
        self.aux_ret[self.stored * B : (self.stored + 1) * B] = data["ret"]
        self.stored += 1

    @torch.no_grad()
    def _old_policy(self, obs: torch.Tensor, chunk: int) -> dict[str, torch.Tensor]:
        """The policy before the phase on every stored obs: ``old_logp [M, A]`` (categorical) or
        ``old_mean``, ``old_log_std [M, D]`` (Gaussian)."""
        model = self.policy.model
        outs = [model.policy_head(model.actor_encoder(obs[i : i + chunk])) for i in range(0, len(obs), chunk)]
        if isinstance(model.policy_head, CategoricalHead):
            return {"old_logp": torch.cat(outs)}
        return {"old_mean": torch.cat([o[0] for o in outs]), "old_log_std": torch.cat([o[1] for o in outs])}

    def auxiliary_phase(self, opt: torch.optim.Optimizer) -> dict[str, float]:
        """E_aux epochs over the stored rollouts: ``L_aux + beta_clone KL(pi_old || pi)`` on the policy
        network (its auxiliary value head fits V_targ) and ``0.5 (V - V_targ)^2`` on the value network."""
        cfg, model = self.cfg, self.policy.model
        assert self.aux_obs is not None and self.aux_ret is not None
        num_minibatches = min(cfg.aux_minibatches_per_rollout * cfg.n_pi, len(self.aux_ret))
        chunk = max(1, len(self.aux_ret) // num_minibatches)
        data = {"obs": self.aux_obs, "ret": self.aux_ret, **self._old_policy(self.aux_obs, chunk)}
        params = [*self.policy.parameters(), *self.aux_value_head.parameters()]
        sums = {"loss/aux_kl": 0.0, "loss/aux_value": 0.0, "loss/aux_true_value": 0.0}
        n = 0
        for _epoch in range(cfg.aux_epochs):
            for mb in minibatches(data, num_minibatches):
                features = model.actor_encoder(mb["obs"])
                new = model.policy_head(features)
                old = mb["old_logp"] if "old_logp" in mb else (mb["old_mean"], mb["old_log_std"])
                kl = policy_kl(model.policy_head, old, new).mean()
                aux_v = value_loss(self.aux_value_head(features).squeeze(-1), mb["ret"], mb["ret"])
                true_v = value_loss(model.value(mb["obs"]), mb["ret"], mb["ret"])
                loss = aux_v + cfg.beta_clone * kl + cfg.aux_value_coef * true_v
                self._step(opt, loss, params)
                for k, v in zip(sums, (kl, aux_v, true_v), strict=True):
                    sums[k] += v.item()
                n += 1
        return {k: v / max(n, 1) for k, v in sums.items()}

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg = self.cfg
        adv, ret = self.advantages(rollout)
        opt, aux_opt = self.raw_optimizers()
        lr = set_lr(opt, cfg.lr, cfg.anneal_lr, rollout)
        data = flat_batch(rollout, adv, ret, cfg.norm_adv)
        out = self.policy_phase(data, opt)
        ev = explained_variance(data["value"], data["ret"])
        if math.isfinite(ev):  # nan when the returns are constant
            out["stats/explained_variance"] = ev
        out["train/lr"] = lr
        self.store(data)
        if self.stored == cfg.n_pi:
            if rollout.round + 1 < rollout.total_rounds:  # as the paper's code: none after the last rollout
                set_lr(aux_opt, cfg.aux_lr, cfg.anneal_lr, rollout)
                out.update(self.auxiliary_phase(aux_opt))
            self.stored = 0
        return out


def build(cfg: PPGConfig, ctx: BuildContext) -> Built:
    ctx.require(("discrete", "box"), "ppg")
    for key in ("num_minibatches", "n_pi", "aux_epochs", "aux_minibatches_per_rollout", "num_steps"):
        if int(getattr(cfg, key)) < (0 if key == "aux_epochs" else 1):
            raise D2RLError(f"algo.{key}={getattr(cfg, key)} must be positive")
    batch = cfg.num_steps * ctx.num_envs
    if batch % cfg.num_minibatches:
        raise D2RLError(f"algo.num_minibatches={cfg.num_minibatches} must divide num_steps*num_envs={batch}")
    phase = cfg.n_pi * batch
    if ctx.total_env_steps <= phase:
        log.warning(
            "ppg: trainer.total_env_steps=%d ends before the first auxiliary phase (every "
            "n_pi*num_steps*num_envs = %d env steps)",
            ctx.total_env_steps,
            phase,
        )
    policy = ActorCriticPolicy(
        build_actor_critic(ctx, shared_encoder=False), ctx.obs_shape, cfg.normalize_obs
    )
    return Built(
        learner=PPGLearner(policy, cfg, ctx.num_envs),
        storage=rollout_storage(ctx, cfg.num_steps, cfg.normalize_obs),
        schedule=RolloutSchedule(cfg.num_steps),
    )
