"""What on-policy actor-critic families share (PPO, A2C, and those built on them): the acting
policy, the network and storage builders, and advantage estimation over a ``Rollout``.

A new on-policy family costs its config, its loss and a ``training_step``; collection is the
Loop's, GAE and truncation bootstrapping are here.

Recurrence (``network.core=lstm|gru|dnc|transformer``): ``RecurrentActorCriticPolicy`` stores the
state entering every step in the rollout (fields ``core_state_<i>``, ``[T, N, K, ...]``); the
Loop zeroes the state of envs whose episode ended. Updates see whole sequences (or chunks of
``seq_len`` steps) with the states stored at their first step, masked inside the core wherever
an episode starts (``OnPolicyLearner.minibatch_sampler`` / ``evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from d2rl.buffers.rollout import (
    Rollout,
    RolloutStorage,
    compute_gae,
    minibatches,
    sequence_minibatches,
    to_sequences,
)
from d2rl.core import BuildContext, Built, Learner, Policy, RolloutSchedule
from d2rl.errors import D2RLError
from d2rl.modules.heads import ActorCritic, CategoricalHead, GaussianHead
from d2rl.modules.normalization import ObsNormalizer, ReturnScaler
from d2rl.modules.recurrent import build_core
from d2rl.modules.recurrent_actor_critic import RecurrentActorCritic, reset_state

STATE_FIELD = "core_state_"  # rollout fields core_state_0, core_state_1, ...: [T, N, K, ...]
Minibatch = tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...] | None]  # fields, initial state


class ActorCriticPolicy(Policy):
    """Samples from the actor's distribution (``explore``) or takes its mode; extras: ``logprob``,
    ``value`` and, with observation normalisation, the normalised ``obs`` that storage keeps.

    Acting in training (``explore=True``) updates the normalisation statistics, as the PPO
    baselines' VecNormalize does at collection time.
    """

    recurrent = False

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

    def state_fields(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Rollout fields for the recurrent state entering each step (none without a core)."""
        return {}

    @torch.no_grad()
    def bootstrap_values(self, rollout: Rollout) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``V(final_obs)`` ``[K]`` of episodes truncated inside the rollout (None if none were) and
        ``V(last_obs)`` ``[N]``."""
        return feed_forward_bootstrap(self, rollout)


def feed_forward_bootstrap(policy: Any, rollout: Rollout) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``policy.value`` of the truncated episodes' final observations (None if none) and of ``last_obs``."""
    final = rollout.final_obs
    has_final = final is not None and final.shape[0] > 0
    return (policy.value(final) if has_final else None), policy.value(rollout.last_obs)


class RecurrentActorCriticPolicy(ActorCriticPolicy):
    """``ActorCriticPolicy`` with a recurrent core: acting carries the state; the extras add the
    state entering the step (``core_state_<i>`` ``[B, K, ...]``) for the rollout to keep."""

    recurrent = True
    model: RecurrentActorCritic  # type: ignore[assignment]

    def __init__(self, model: RecurrentActorCritic, obs_shape: tuple[int, ...], normalize_obs: bool) -> None:
        super().__init__(model, obs_shape, normalize_obs)  # type: ignore[arg-type]

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return self.model.initial_state(batch_size)

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        return reset_state(state, done)

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        if state is None:
            state = self.initial_state(obs.shape[0])
        x = self.normalize(obs, update=explore)
        if not explore:
            params, new_state = self.model.dist_params(x, state)
            return self.model.policy_head.mode(params), {}, new_state  # type: ignore[operator]
        action, logprob, value, new_state = self.model.act(x, state)
        extras = {"logprob": logprob, "value": value}
        for i, s in enumerate(state):
            extras[f"{STATE_FIELD}{i}"] = s.transpose(0, 1)  # [B, K, ...]
        if self.obs_norm is not None:
            extras["obs"] = x
        return action, extras, new_state

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """As the feed-forward policy's, through the core one step from ``state`` (default: initial)."""
        if state is None:
            state = self.initial_state(obs.shape[0])
        first = torch.zeros(obs.shape[0], dtype=torch.bool)
        features, _, _ = self.model.features(self.normalize(obs), state, first, critic=False)
        head: Any = self.model.policy_head
        return head.linear(features) if isinstance(head, CategoricalHead) else head(features)[0]  # type: ignore[no-any-return]

    def value(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """``[B, *obs]`` raw observations one step from ``state`` (default: the initial state) -> ``[B]``."""
        if state is None:
            state = self.initial_state(obs.shape[0])
        return self.model.value(self.normalize(obs), state)

    def state_fields(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {
            f"{STATE_FIELD}{i}": ((s.shape[0], *s.shape[2:]), s.dtype)
            for i, s in enumerate(self.model.initial_state(1))
        }

    @staticmethod
    def stored_states(data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The states entering each step, ``[T, N, K, ...]`` each, from rollout fields."""
        n = sum(1 for k in data if k.startswith(STATE_FIELD))
        return tuple(data[f"{STATE_FIELD}{i}"] for i in range(n))

    @torch.no_grad()
    def bootstrap_values(self, rollout: Rollout) -> tuple[torch.Tensor | None, torch.Tensor]:
        """As the feed-forward policy's, each from the state after the step that led to it: one core
        step on the stored observation from the stored state (stored observations are normalised)."""
        d, states = rollout.data, self.stored_states(rollout.data)

        def after(t: torch.Tensor, env: torch.Tensor) -> tuple[torch.Tensor, ...]:
            entering = tuple(s[t, env].transpose(0, 1).contiguous() for s in states)  # [K, B, ...]
            return self.model.next_state(d["obs"][t, env], entering, d["first"][t, env])

        final = None
        if rollout.final_obs is not None and rollout.final_obs.shape[0]:
            final = self.value(rollout.final_obs, after(rollout.final_t, rollout.final_env))
        T, N = rollout.num_steps, rollout.num_envs
        last_t = torch.full((N,), T - 1, dtype=torch.long)
        state = after(last_t, torch.arange(N))
        state = reset_state(state, d["terminated"][T - 1] | d["truncated"][T - 1])
        return final, self.value(rollout.last_obs, state)


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


def build_recurrent_actor_critic(ctx: BuildContext, shared_encoder: bool) -> RecurrentActorCritic | None:
    """Encoder(s) + the ``network.core`` core(s) + heads; None when ``network.core=none``."""
    actor = ctx.encoder()
    actor_core = build_core(ctx.network_cfg, int(actor.out_dim))  # type: ignore[arg-type]
    if actor_core is None:
        return None
    critic = critic_core = None
    if not shared_encoder:
        critic = ctx.encoder()
        critic_core = build_core(ctx.network_cfg, int(critic.out_dim))  # type: ignore[arg-type]
    out_dim = int(actor_core.out_dim)  # type: ignore[arg-type]
    if isinstance(ctx.action_space, gym.spaces.Discrete):
        head: nn.Module = CategoricalHead(out_dim, ctx.num_actions)
    else:
        head = GaussianHead(out_dim, ctx.num_actions)
    return RecurrentActorCritic(actor, actor_core, head, critic, critic_core)


def build_policy(ctx: BuildContext, shared_encoder: bool, normalize_obs: bool) -> ActorCriticPolicy:
    """The actor-critic policy of the chosen network, recurrent when ``network.core`` names a core."""
    recurrent = build_recurrent_actor_critic(ctx, shared_encoder)
    if recurrent is not None:
        return RecurrentActorCriticPolicy(recurrent, ctx.obs_shape, normalize_obs)
    return ActorCriticPolicy(build_actor_critic(ctx, shared_encoder), ctx.obs_shape, normalize_obs)


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
    boot = getattr(policy, "bootstrap_values", None)  # duck-typed policies may have value() only
    final_value, last_value = boot(rollout) if boot is not None else feed_forward_bootstrap(policy, rollout)
    if final_value is not None:
        reward = reward.clone()
        reward[rollout.final_t, rollout.final_env] += gamma * final_value
    adv, ret = compute_gae(
        reward.numpy(),
        data["value"].numpy(),
        done.numpy(),
        last_value.numpy(),
        gamma,
        gae_lambda,
    )
    return torch.from_numpy(adv), torch.from_numpy(ret)


class OnPolicyLearner(Learner):
    """What PPO-style learners share: their acting policy (whose networks they train), the config,
    optional reward scaling, and GAE on each fresh rollout. Subclasses write ``training_step``."""

    policy: ActorCriticPolicy

    def __init__(self, policy: ActorCriticPolicy, cfg: Any, num_envs: int) -> None:
        super().__init__()
        self.policy, self.cfg = policy, cfg
        self.reward_scaler = ReturnScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None

    def advantages(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        return advantages(rollout, self.policy, cfg.gamma, cfg.gae_lambda, self.reward_scaler)

    def minibatch_sampler(
        self, rollout: Rollout, fields: dict[str, torch.Tensor], num_minibatches: int, seq_len: int = 0
    ) -> Callable[[], Iterator[Minibatch]]:
        """A function giving one epoch of minibatches of ``fields`` (``[T, N, ...]``).

        Feed-forward: shuffled single steps, fields ``[B, ...]``, state None. Recurrent: whole
        sequences of ``seq_len`` steps (0: the rollout) in time order, fields flat time-major
        ``[L * M, ...]`` with ``first`` added, and their stored initial states ``[K, M, ...]``.
        """
        if not self.policy.recurrent:
            B = rollout.num_steps * rollout.num_envs
            flat = {k: v.reshape(B, *v.shape[2:]) for k, v in fields.items()}
            return lambda: ((mb, None) for mb in minibatches(flat, num_minibatches))
        states = RecurrentActorCriticPolicy.stored_states(rollout.data)
        seqs, initial = to_sequences({**fields, "first": rollout.data["first"]}, states, seq_len)
        return lambda: sequence_minibatches(seqs, initial, num_minibatches)

    def evaluate(
        self, mb: dict[str, torch.Tensor], state: tuple[torch.Tensor, ...] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-prob, entropy and value ``[B]`` of a ``minibatch_sampler`` minibatch's actions."""
        model: Any = self.policy.model
        if state is None:
            return model.evaluate(mb["obs"], mb["action"])  # type: ignore[no-any-return]
        return model.evaluate_sequence(mb["obs"], mb["action"], mb["first"], state)  # type: ignore[no-any-return]


def build_on_policy(learner_class: type[OnPolicyLearner], cfg: Any, ctx: BuildContext, name: str) -> Built:
    """Actor-critic policy (``cfg.shared_encoder``, ``cfg.normalize_obs``), its learner, rollout
    storage of ``cfg.num_steps`` steps and the rollout schedule."""
    ctx.require(("discrete", "box"), name)
    policy = build_policy(ctx, cfg.shared_encoder, cfg.normalize_obs)
    return Built(
        learner=learner_class(policy, cfg, ctx.num_envs),
        storage=rollout_storage(ctx, cfg.num_steps, cfg.normalize_obs, policy.state_fields()),
        schedule=RolloutSchedule(cfg.num_steps),
    )


def check_sequences(num_steps: int, bptt_len: int) -> None:
    """Refuse (one line) a truncated-BPTT length that does not cut the rollout into whole chunks."""
    if bptt_len < 0 or (bptt_len and num_steps % bptt_len):
        raise D2RLError(
            f"algo.bptt_len={bptt_len} must be 0 (whole rollout) or divide algo.num_steps={num_steps}"
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
