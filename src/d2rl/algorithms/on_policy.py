"""What on-policy actor-critic families share (PPO, A2C, and those built on them): the acting
policy, the network and storage builders, and advantage estimation over a ``Rollout``.

A new on-policy family costs its config, its loss and a ``training_step``; collection is the
Loop's, GAE and truncation bootstrapping are here.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import nn

from d2rl.buffers.rollout import Rollout, RolloutStorage, compute_gae
from d2rl.core import BuildContext, Built, Learner, Policy, RolloutSchedule
from d2rl.modules.heads import ActorCritic, CategoricalHead, GaussianHead
from d2rl.modules.normalization import ObsNormalizer, ReturnScaler


class ActorCriticPolicy(Policy):
    """Samples from the actor's distribution (``explore``) or takes its mode; extras: ``logprob``,
    ``value`` and, with observation normalisation, the normalised ``obs`` that storage keeps.

    Acting in training (``explore=True``) updates the normalisation statistics, as the PPO
    baselines' VecNormalize does at collection time.
    """

    def __init__(self, model: ActorCritic, obs_shape: tuple[int, ...], normalize_obs: bool) -> None:
        super().__init__()
        self.model = model
        self.obs_norm = ObsNormalizer(obs_shape) if normalize_obs else None

    def normalize(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if self.obs_norm is None:
            return obs
        obs = obs.float()
        if update:
            self.obs_norm.rms.update(obs)
        return self.obs_norm(obs)

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        x = self.normalize(obs, update=explore)
        if not explore:
            params = self.model.dist_params(x)
            return self.model.policy_head.mode(params), {}, state  # type: ignore[operator]
        action, logprob, value = self.model.act(x)
        extras = {"logprob": logprob, "value": value}
        if self.obs_norm is not None:
            extras["obs"] = x
        return action, extras, state

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """Pre-softmax logits ``[B, A]`` (discrete) or the Gaussian mean ``[B, A]`` (Box)."""
        features = self.model.actor_encoder(self.normalize(obs))
        head: Any = self.model.policy_head
        return head.linear(features) if isinstance(head, CategoricalHead) else head(features)[0]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs]`` raw observations -> ``[B]``."""
        return self.model.value(self.normalize(obs))


def build_actor_critic(ctx: BuildContext, shared_encoder: bool) -> ActorCritic:
    """Encoder(s) of the chosen network + a categorical or diagonal-Gaussian head + a value head."""
    actor = ctx.encoder()
    critic = None if shared_encoder else ctx.encoder()
    out_dim: Any = actor.out_dim
    if isinstance(ctx.action_space, gym.spaces.Discrete):
        head: nn.Module = CategoricalHead(int(out_dim), ctx.num_actions)
    else:
        head = GaussianHead(int(out_dim), ctx.num_actions)
    return ActorCritic(actor, critic, head)


def rollout_storage(
    ctx: BuildContext, num_steps: int, normalize_obs: bool, extras: dict[str, Any] | None = None
) -> RolloutStorage:
    """``[T, N]`` storage with ``logprob`` and ``value`` extras; uint8 pixels stay uint8 unless normalised."""
    space: Any = ctx.action_space
    box = isinstance(space, gym.spaces.Box)
    uint8 = ctx.observation_space.dtype == torch.uint8 or str(ctx.observation_space.dtype) == "uint8"
    return RolloutStorage(
        num_steps,
        ctx.num_envs,
        ctx.obs_shape,
        torch.uint8 if uint8 and not normalize_obs else torch.float32,
        (ctx.num_actions,) if box else (),
        torch.float32 if box else torch.long,
        {"logprob": ((), torch.float32), "value": ((), torch.float32), **(extras or {})},
    )


@torch.no_grad()
def advantages(
    rollout: Rollout,
    policy: ActorCriticPolicy,
    gamma: float,
    gae_lambda: float,
    reward_scaler: ReturnScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns ``[T, N]``. Rewards are first scaled (``reward_scaler``, stepping
    its running return through the rollout in time order) and a time-limit cut is bootstrapped
    with ``gamma * V(final_obs)``."""
    data = rollout.data
    done = data["terminated"] | data["truncated"]
    reward = data["reward"]
    if reward_scaler is not None:
        reward = torch.stack([reward_scaler(reward[t], done[t]) for t in range(rollout.num_steps)])
    if rollout.final_obs is not None and rollout.final_obs.shape[0]:
        reward = reward.clone()
        reward[rollout.final_t, rollout.final_env] += gamma * policy.value(rollout.final_obs)
    adv, ret = compute_gae(
        reward.numpy(),
        data["value"].numpy(),
        done.numpy(),
        policy.value(rollout.last_obs).numpy(),
        gamma,
        gae_lambda,
    )
    return torch.from_numpy(adv), torch.from_numpy(ret)


class OnPolicyLearner(Learner):
    """What PPO-style learners share: their acting policy (whose networks they train), the config,
    optional reward scaling, and GAE on each fresh rollout. Subclasses write ``training_step``."""

    def __init__(self, policy: ActorCriticPolicy, cfg: Any, num_envs: int) -> None:
        super().__init__()
        self.policy, self.cfg = policy, cfg
        self.reward_scaler = ReturnScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None

    def advantages(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        return advantages(rollout, self.policy, cfg.gamma, cfg.gae_lambda, self.reward_scaler)


def build_on_policy(learner_class: type[OnPolicyLearner], cfg: Any, ctx: BuildContext, name: str) -> Built:
    """Actor-critic policy (``cfg.shared_encoder``, ``cfg.normalize_obs``), its learner, rollout
    storage of ``cfg.num_steps`` steps and the rollout schedule."""
    ctx.require(("discrete", "box"), name)
    policy = ActorCriticPolicy(build_actor_critic(ctx, cfg.shared_encoder), ctx.obs_shape, cfg.normalize_obs)
    return Built(
        learner=learner_class(policy, cfg, ctx.num_envs),
        storage=rollout_storage(ctx, cfg.num_steps, cfg.normalize_obs),
        schedule=RolloutSchedule(cfg.num_steps),
    )


def set_lr(opt: torch.optim.Optimizer, lr: float, anneal: bool, rollout: Rollout) -> float:
    """Set the learning rate for this update: ``lr``, or annealed linearly to 0 over the run."""
    value = lr * (1.0 - rollout.round / rollout.total_rounds) if anneal else lr
    for group in opt.param_groups:
        group["lr"] = value
    return value


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var_y = returns.var()
    return float("nan") if var_y == 0 else float(1 - (returns - values).var() / var_y)
