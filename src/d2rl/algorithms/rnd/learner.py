"""RND's learner: PPO (``ppo_loss``) on combined extrinsic + intrinsic advantages, plus the predictor's
distillation loss (the config and the paper's notes are in ``d2rl.algorithms.rnd``)."""

from __future__ import annotations

import math

import torch

from d2rl.algorithms.on_policy import (
    ActorCriticPolicy,
    OnPolicyLearner,
    build_actor_critic,
    explained_variance,
    rollout_storage,
    set_lr,
)
from d2rl.algorithms.ppo.learner import ppo_loss
from d2rl.algorithms.rnd import RNDConfig
from d2rl.algorithms.rnd.networks import (
    EXT,
    INT,
    IntrinsicRewardNormalizer,
    RNDObs,
    TwoValueActorCritic,
    frame_channels,
    prediction_error,
    rnd_networks,
)
from d2rl.buffers.rollout import Rollout, compute_gae, minibatches
from d2rl.core import BuildContext, Built, RolloutSchedule, check_stop
from d2rl.errors import D2RLError

CHUNK = 4096  # observations per forward pass when scoring a whole rollout


def next_observations(rollout: Rollout, policy: ActorCriticPolicy) -> torch.Tensor:
    """``[T, N, *obs]``: the observation after each step (``obs[t + 1]``, then ``last_obs``), as
    storage keeps them (normalised by the policy with ``normalize_obs``). After an episode end it is
    the next episode's first observation: the intrinsic stream does not stop."""
    obs = rollout.data["obs"]
    last = policy.normalize(rollout.last_obs) if policy.obs_norm is not None else rollout.last_obs
    return torch.cat([obs[1:], last.to(obs.dtype).unsqueeze(0)], dim=0)


@torch.no_grad()
def two_stream_gae(
    ext_reward: torch.Tensor,
    int_reward: torch.Tensor,
    done: torch.Tensor,
    values: torch.Tensor,
    last_values: torch.Tensor,
    gamma_ext: float,
    gamma_int: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GAE for both streams: the extrinsic one episodic (``done`` cuts it), the intrinsic one not.

    ``ext_reward``, ``int_reward``, ``done``: ``[T, N]``; ``values``: ``[T, N, 2]``; ``last_values``:
    ``[N, 2]``. Returns (extrinsic advantages ``[T, N]``, intrinsic advantages ``[T, N]``, returns
    ``[T, N, 2]``).
    """
    v, last = values.numpy(), last_values.numpy()
    adv_e, ret_e = compute_gae(
        ext_reward.numpy(), v[..., EXT], done.numpy(), last[:, EXT], gamma_ext, gae_lambda
    )
    never = torch.zeros_like(done).numpy()
    adv_i, ret_i = compute_gae(int_reward.numpy(), v[..., INT], never, last[:, INT], gamma_int, gae_lambda)
    ret = torch.stack([torch.from_numpy(ret_e), torch.from_numpy(ret_i)], dim=-1)
    return torch.from_numpy(adv_e), torch.from_numpy(adv_i), ret


def combine_advantages(adv_ext: torch.Tensor, adv_int: torch.Tensor, ext_coef: float, int_coef: float):  # type: ignore[no-untyped-def]
    """The advantage PPO optimises (paper section 2.3): ``ext_coef * A_E + int_coef * A_I``."""
    return ext_coef * adv_ext + int_coef * adv_int


class RNDLearner(OnPolicyLearner):
    """PPO epochs on each rollout with the two-stream advantage; the predictor learns alongside."""

    cfg: RNDConfig
    policy: ActorCriticPolicy
    init_rollouts_seen: torch.Tensor

    def __init__(
        self,
        policy: ActorCriticPolicy,
        cfg: RNDConfig,
        num_envs: int,
        rnd_obs: RNDObs,
        target: torch.nn.Module,
        predictor: torch.nn.Module,
    ) -> None:
        super().__init__(policy, cfg, num_envs)
        self.rnd_obs, self.target, self.predictor = rnd_obs, target, predictor
        self.int_norm = IntrinsicRewardNormalizer(num_envs, cfg.gamma_int)
        self.register_buffer("init_rollouts_seen", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [*self.policy.parameters(), *self.predictor.parameters()]
        return torch.optim.Adam(params, lr=self.cfg.lr, eps=self.cfg.adam_eps)

    @torch.no_grad()
    def intrinsic_rewards(self, next_obs: torch.Tensor) -> torch.Tensor:
        """``[T, N, *obs]`` -> raw prediction errors ``[T, N]`` on the normalised, clipped input."""
        T, N = next_obs.shape[:2]
        flat = next_obs.reshape(T * N, *next_obs.shape[2:])
        parts = [
            prediction_error(self.predictor, self.target, self.rnd_obs(flat[i : i + CHUNK]))
            for i in range(0, T * N, CHUNK)
        ]
        return torch.cat(parts).reshape(T, N)

    @torch.no_grad()
    def advantages_and_returns(
        self, rollout: Rollout, next_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Combined advantages ``[T, N]``, two-head returns ``[T, N, 2]`` and reward statistics;
        ``next_obs [T, N, *obs]`` from ``next_observations``."""
        cfg, data, policy = self.cfg, rollout.data, self.policy
        self.rnd_obs.update(next_obs.flatten(0, 1))
        raw_int = self.intrinsic_rewards(next_obs)
        int_reward = self.int_norm(raw_int)
        done = data["terminated"] | data["truncated"]
        ext_reward = data["reward"]
        if self.reward_scaler is not None:
            ext_reward = torch.stack([self.reward_scaler(ext_reward[t], done[t]) for t in range(len(done))])
        if rollout.final_obs is not None and rollout.final_obs.shape[0]:  # time-limit cut: bootstrap V_E
            ext_reward = ext_reward.clone()
            v_final = policy.value(rollout.final_obs)[:, EXT]
            ext_reward[rollout.final_t, rollout.final_env] += cfg.gamma * v_final
        adv_e, adv_i, ret = two_stream_gae(
            ext_reward,
            int_reward,
            done,
            data["value"],
            policy.value(rollout.last_obs),
            cfg.gamma,
            cfg.gamma_int,
            cfg.gae_lambda,
        )
        stats = {
            "train/intrinsic_reward": float(raw_int.mean()),
            "train/intrinsic_reward_normalized": float(int_reward.mean()),
            "train/intrinsic_return_std": self.int_norm.std,
            "train/extrinsic_reward": float(data["reward"].mean()),
            "stats/advantage_ext_std": float(adv_e.std()),
            "stats/advantage_int_std": float(adv_i.std()),
        }
        return combine_advantages(adv_e, adv_i, cfg.ext_coef, cfg.int_coef), ret, stats

    def predictor_loss(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Distillation loss on a random ``update_proportion`` of the minibatch ``[B, *obs]``."""
        err = prediction_error(self.predictor, self.target, self.rnd_obs(next_obs))  # [B]
        mask = (torch.rand_like(err) < self.cfg.update_proportion).to(err.dtype)
        return (err * mask).sum() / mask.sum().clamp_min(1.0)

    def training_step(self, rollout: Rollout, batch_idx: int) -> dict[str, float]:
        cfg, model = self.cfg, self.policy.model
        if int(self.init_rollouts_seen) < cfg.obs_norm_init_rollouts:  # statistics only (paper A.4)
            self.rnd_obs.update(next_observations(rollout, self.policy).flatten(0, 1))
            self.init_rollouts_seen += 1
            return {"train/obs_norm_init_rollouts": float(self.init_rollouts_seen)}
        next_obs = next_observations(rollout, self.policy)
        adv, ret, stats = self.advantages_and_returns(rollout, next_obs)
        (opt,) = self.raw_optimizers()
        lr = set_lr(opt, cfg.lr, cfg.anneal_lr, rollout)
        B = rollout.num_steps * rollout.num_envs
        d = rollout.data
        data = {
            "obs": d["obs"].reshape(B, *d["obs"].shape[2:]),
            "next_obs": next_obs.reshape(B, *d["obs"].shape[2:]),
            "action": d["action"].reshape(B, *d["action"].shape[2:]),
            "logprob": d["logprob"].reshape(B),
            "value": d["value"].reshape(B, 2),
            "advantage": adv.reshape(B),
            "ret": ret.reshape(B, 2),
        }
        params = [*self.policy.parameters(), *self.predictor.parameters()]
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for _epoch in range(cfg.update_epochs):
            for mb in minibatches(data, cfg.num_minibatches):
                logprob, entropy, value = model.evaluate(mb["obs"], mb["action"])  # value [B, 2]
                a = mb["advantage"]
                if cfg.norm_adv:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                # value [B, 2]: ppo_loss's mean runs over both heads, so 2 * vf_coef gives the paper's
                # sum of the two heads' losses, each 0.5 * vf_coef * mse
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
                    2.0 * cfg.vf_coef,
                    cfg.ent_coef,
                )
                rnd_loss = self.predictor_loss(mb["next_obs"])
                loss = loss + rnd_loss
                metrics["loss/predictor"] = rnd_loss.detach()
                check_stop()
                opt.zero_grad()
                loss.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
                opt.step()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
        out = {k: float(v) / n for k, v in sums.items()}
        out.update(stats)
        for key, col in (("stats/explained_variance", EXT), ("stats/explained_variance_int", INT)):
            ev = explained_variance(data["value"][:, col], data["ret"][:, col])
            if math.isfinite(ev):  # undefined (nan) when the returns are constant
                out[key] = ev
        out["train/lr"] = lr
        return out


def build(cfg: RNDConfig, ctx: BuildContext) -> Built:
    ctx.require(("discrete", "box"), "rnd")
    if (cfg.num_steps * ctx.num_envs) % cfg.num_minibatches:
        raise D2RLError(
            f"algo.num_minibatches={cfg.num_minibatches} must divide num_steps*num_envs="
            f"{cfg.num_steps * ctx.num_envs}"
        )
    if not 0.0 < cfg.update_proportion <= 1.0:
        raise D2RLError(f"algo.update_proportion must be in (0, 1], got {cfg.update_proportion}")
    model = TwoValueActorCritic(build_actor_critic(ctx, cfg.shared_encoder))
    policy = ActorCriticPolicy(model, ctx.obs_shape, cfg.normalize_obs)
    channels = frame_channels(ctx.facts, ctx.obs_shape)
    rnd_obs = RNDObs(ctx.obs_shape, channels, cfg.obs_clip)
    target, predictor = rnd_networks(rnd_obs.shape, ctx.pixels, cfg.rnd_hidden_size, cfg.rnd_output_size)
    return Built(
        learner=RNDLearner(policy, cfg, ctx.num_envs, rnd_obs, target, predictor),
        storage=rollout_storage(ctx, cfg.num_steps, cfg.normalize_obs, {"value": ((2,), torch.float32)}),
        schedule=RolloutSchedule(cfg.num_steps),
    )
