"""PPO's loss and learner (the config and paper notes are in ``d2rl.algorithms.ppo``)."""

from __future__ import annotations

import math

import torch

from d2rl.algorithms.on_policy import (
    ActorCriticPolicy,
    OnPolicyLearner,
    build_on_policy,
    check_sequences,
    explained_variance,
    set_lr,
)
from d2rl.algorithms.ppo import PPOConfig
from d2rl.buffers.rollout import Rollout
from d2rl.core import BuildContext, Built, check_stop
from d2rl.errors import D2RLError
from d2rl.modules.cnn import option
from d2rl.modules.regularization import feature_matching_loss, random_convs, reset_random_convs


def ppo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantage: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    ret: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    clip_vloss: bool,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate objective (paper eq. 7) + value loss + entropy bonus (eq. 9). All ``[B]``."""
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    pg_loss = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    if clip_vloss:
        v_clipped = old_value + (new_value - old_value).clamp(-clip_coef, clip_coef)
        v_loss = 0.5 * torch.max((new_value - ret).square(), (v_clipped - ret).square()).mean()
    else:
        v_loss = 0.5 * (new_value - ret).square().mean()
    ent = entropy.mean()
    loss = pg_loss - ent_coef * ent + vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # Schulman's k3 estimator
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()
    return loss, {
        "loss/policy": pg_loss.detach(),
        "loss/value": v_loss.detach(),
        "loss/entropy": ent.detach(),
        "stats/approx_kl": approx_kl,
        "stats/clipfrac": clipfrac,
    }


class PPOLearner(OnPolicyLearner):
    """Epochs of minibatch updates of the clipped objective on each fresh rollout."""

    cfg: PPOConfig

    def __init__(self, policy: ActorCriticPolicy, cfg: PPOConfig, num_envs: int) -> None:
        super().__init__(policy, cfg, num_envs)
        self.randomized = bool(random_convs(policy))  # network.random_conv=true

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused Adam: ~3.5x faster per step than the default for-loop implementation on CPU here
        return torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr, eps=self.cfg.adam_eps, fused=True)

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg, model = self.cfg, self.policy.model
        adv, ret = self.advantages(rollout)
        (opt,) = self.raw_optimizers()
        lr = set_lr(opt, cfg.lr, cfg.anneal_lr, rollout)
        d = rollout.data
        fields = {
            "obs": d["obs"],
            "action": d["action"],
            "logprob": d["logprob"],
            "value": d["value"],
            "advantage": adv,
            "ret": ret,
        }  # [T, N, ...]
        sample = self.minibatch_sampler(rollout, fields, cfg.num_minibatches, cfg.bptt_len)
        params = list(self.policy.parameters())
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for _epoch in range(cfg.update_epochs):
            for mb, state in sample():
                logprob, entropy, value = self.evaluate(mb, state)
                a = mb["advantage"]
                if cfg.norm_adv:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                loss, metrics = ppo_loss(
                    logprob,
                    mb["logprob"],
                    a,
                    value,
                    mb["value"],
                    mb["ret"],
                    entropy,
                    cfg.clip_coef,
                    cfg.clip_vloss,
                    cfg.vf_coef,
                    cfg.ent_coef,
                )
                if self.randomized and cfg.random_conv_fm_coef > 0:
                    fm = feature_matching_loss(model.actor_encoder, mb["obs"])
                    loss = loss + cfg.random_conv_fm_coef * fm
                    metrics["loss/feature_matching"] = fm.detach()
                check_stop()  # a long update still answers Ctrl-C / SIGTERM within a minibatch
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
                opt.step()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
            if cfg.target_kl is not None and metrics["stats/approx_kl"] > cfg.target_kl:
                break
        if self.randomized:  # a new random network for the next rollout and its update
            reset_random_convs(self.policy, cfg.random_conv_clean_prob)
        out = {k: float(v) / n for k, v in sums.items()}
        ev = explained_variance(d["value"].flatten(), ret.flatten())
        if math.isfinite(ev):  # undefined (nan) when the returns are constant: not logged
            out["stats/explained_variance"] = ev
        out["train/lr"] = lr
        return out


def build(cfg: PPOConfig, ctx: BuildContext) -> Built:
    if str(option(ctx.network_cfg, "core", "none")) != "none":
        check_sequences(cfg.num_steps, cfg.bptt_len)  # minibatches: whole sequences, as even as can be
    elif (cfg.num_steps * ctx.num_envs) % cfg.num_minibatches:
        raise D2RLError(
            f"algo.num_minibatches={cfg.num_minibatches} must divide num_steps*num_envs="
            f"{cfg.num_steps * ctx.num_envs}"
        )
    return build_on_policy(PPOLearner, cfg, ctx, "ppo")
