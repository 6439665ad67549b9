"""A2C's loss and learner (config and paper notes in ``d2rl.algorithms.a2c``)."""

from __future__ import annotations

import math

import torch

from d2rl.algorithms.a2c import A2CConfig
from d2rl.algorithms.on_policy import OnPolicyLearner, build_on_policy, explained_variance, set_lr
from d2rl.buffers.rollout import Rollout
from d2rl.core import BuildContext, Built


def a2c_loss(
    logprob: torch.Tensor,
    advantage: torch.Tensor,
    value: torch.Tensor,
    ret: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``-E[log pi(a|s) A] + vf_coef * E[(R - V)^2] - ent_coef * E[H]`` (all ``[B]``; A detached)."""
    pg_loss = -(logprob * advantage.detach()).mean()
    v_loss = (ret - value).square().mean()  # SB3: F.mse_loss(returns, values)
    ent = entropy.mean()
    loss = pg_loss + vf_coef * v_loss - ent_coef * ent
    return loss, {
        "loss/policy": pg_loss.detach(),
        "loss/value": v_loss.detach(),
        "loss/entropy": ent.detach(),
    }


class A2CLearner(OnPolicyLearner):
    """One RMSprop step per rollout."""

    cfg: A2CConfig

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c = self.cfg
        return torch.optim.RMSprop(self.policy.parameters(), lr=c.lr, alpha=c.rms_alpha, eps=c.rms_eps)

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg, model = self.cfg, self.policy.model
        adv, ret = self.advantages(rollout)
        (opt,) = self.raw_optimizers()
        lr = set_lr(opt, cfg.lr, cfg.anneal_lr, rollout)
        d, B = rollout.data, rollout.num_steps * rollout.num_envs
        if self.policy.recurrent:  # one minibatch: every env's whole rollout from its stored state
            sample = self.minibatch_sampler(
                rollout, {"obs": d["obs"], "action": d["action"], "adv": adv, "ret": ret}, 1
            )
            ((mb, state),) = list(sample())
            logprob, entropy, value = self.evaluate(mb, state)
            a, r = mb["adv"], mb["ret"]
        else:
            logprob, entropy, value = model.evaluate(
                d["obs"].reshape(B, *d["obs"].shape[2:]), d["action"].reshape(B, *d["action"].shape[2:])
            )
            a, r = adv.reshape(B), ret.reshape(B)
        if cfg.norm_adv:
            a = (a - a.mean()) / (a.std() + 1e-8)
        loss, metrics = a2c_loss(logprob, a, value, r, entropy, cfg.vf_coef, cfg.ent_coef)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.policy.parameters()), cfg.max_grad_norm, foreach=True)
        opt.step()
        out = {k: float(v) for k, v in metrics.items()}
        ev = explained_variance(d["value"].reshape(B), ret.reshape(B))
        if math.isfinite(ev):  # undefined (nan) when the returns are constant: not logged
            out["stats/explained_variance"] = ev
        out["train/lr"] = lr
        return out


def build(cfg: A2CConfig, ctx: BuildContext) -> Built:
    return build_on_policy(A2CLearner, cfg, ctx, "a2c")
