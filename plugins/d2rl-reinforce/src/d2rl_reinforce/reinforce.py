"""REINFORCE with a learned baseline (Williams 1992, "Simple statistical gradient-following
algorithms for connectionist reinforcement learning"; baseline as in Sutton & Barto 2018, 13.4).

    loss = -mean(log pi(a_t|s_t) * (G_t - V(s_t)))  +  vf_coef * 0.5 * mean((V(s_t) - G_t)^2)
           - ent_coef * mean(H(pi(.|s_t)))

``G_t`` is the discounted reward-to-go. Built from d2rl's parts (docs/plugins.md): the acting
policy, networks and storage of ``d2rl.algorithms.on_policy`` (GAE with lambda = 1 gives exactly
``G_t - V(s_t)``); d2rl's Loop collects the rollouts. The whole algorithm is the loss, the
learner's ``training_step`` and ``build``.

Deviations from the paper: experience comes in chunks of ``num_steps`` per env, so an episode
still running at the end of a chunk is bootstrapped with ``gamma^k V(s_T)`` (as in A2C), and
a time-limit truncation with ``gamma V(final_obs)``; one gradient step per chunk with Adam and
global grad-norm clipping; an entropy bonus (0 turns it off); optional advantage normalisation.
"""

from __future__ import annotations

import torch

from d2rl.algorithms.on_policy import ActorCriticPolicy, advantages, build_actor_critic, rollout_storage
from d2rl.buffers.rollout import Rollout
from d2rl.core import BuildContext, Built, Learner, RolloutSchedule
from d2rl.errors import D2RLError
from d2rl_reinforce.specs import ReinforceConfig


def reinforce_loss(
    logprob: torch.Tensor,
    advantage: torch.Tensor,
    value: torch.Tensor,
    ret: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Score-function policy gradient with baseline + value regression + entropy bonus. All ``[B]``.

    ``advantage`` = ``G_t - V(s_t)`` computed with the value *before* the update (a constant here).
    """
    pg_loss = -(logprob * advantage).mean()
    v_loss = 0.5 * (value - ret).square().mean()
    ent = entropy.mean()
    loss = pg_loss + vf_coef * v_loss - ent_coef * ent
    return loss, {
        "loss/policy": pg_loss.detach(),
        "loss/value": v_loss.detach(),
        "loss/entropy": ent.detach(),
    }


class ReinforceLearner(Learner):
    """One Adam step per rollout."""

    def __init__(self, policy: ActorCriticPolicy, cfg: ReinforceConfig) -> None:
        super().__init__()
        self.policy, self.cfg = policy, cfg

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr)

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg = self.cfg
        # lambda = 1: advantage = G_t - V(s_t), ret = G_t (bootstrapped only where the rollout cuts)
        adv, ret = advantages(rollout, self.policy, cfg.gamma, 1.0)
        d, B = rollout.data, rollout.num_steps * rollout.num_envs
        obs, action = d["obs"].flatten(0, 1), d["action"].flatten(0, 1)  # [T * N, ...]
        logprob, entropy, value = self.policy.model.evaluate(obs, action)
        a = adv.reshape(B)
        if cfg.norm_adv:
            a = (a - a.mean()) / (a.std() + 1e-8)
        loss, metrics = reinforce_loss(logprob, a, value, ret.reshape(B), entropy, cfg.vf_coef, cfg.ent_coef)
        (opt,) = self.raw_optimizers()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.policy.parameters()), cfg.max_grad_norm)
        opt.step()
        return {k: float(v) for k, v in metrics.items()}


def build(cfg: ReinforceConfig, ctx: BuildContext) -> Built:
    """d2rl calls this with the config dataclass and the run's build context."""
    if cfg.num_steps < 1:
        raise D2RLError(f"algo.num_steps must be >= 1, got {cfg.num_steps}")
    policy = ActorCriticPolicy(
        build_actor_critic(ctx, shared_encoder=False), ctx.obs_shape, normalize_obs=False
    )
    return Built(
        learner=ReinforceLearner(policy, cfg),
        storage=rollout_storage(ctx, cfg.num_steps, normalize_obs=False),
        schedule=RolloutSchedule(cfg.num_steps),
    )
