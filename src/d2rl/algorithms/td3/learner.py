"""TD3's policy, losses, learner and builder (the config and paper notes are in ``d2rl.algorithms.td3``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from d2rl.algorithms.actor_critic import nets
from d2rl.algorithms.td3 import TD3Config
from d2rl.buffers.batches import ReplayBatches
from d2rl.core import BuildContext, Built, Learner, Policy
from d2rl.errors import D2RLError
from d2rl.modules.actors import DeterministicActor


# -- pure functions, tested by hand in tests/unit/algorithms/test_td3.py ------------------------
def td3_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    next_q: torch.Tensor,
) -> torch.Tensor:
    """``y = r + discount (1 - d) min_i Q'_i(s', a~')`` (eq. 10); ``next_q [E, B]`` evaluated at the
    smoothed target action (``E = 1``: DDPG's single critic)."""
    return reward + discount * (1.0 - terminated) * next_q.min(0).values


def smoothed_target_action(next_action: torch.Tensor, noise: torch.Tensor, noise_clip: float) -> torch.Tensor:
    """``a~' = clip(pi'(s') + clip(eps, -c, c), -1, 1)`` (eq. 14); ``noise = sigma * N(0, 1)``."""
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def ou_step(x: torch.Tensor, theta: float, sigma: float, dt: float, noise: torch.Tensor) -> torch.Tensor:
    """One Euler step of the Ornstein-Uhlenbeck process ``dx = theta (0 - x) dt + sigma sqrt(dt) N(0, 1)``
    (Lillicrap et al. 2015; ``noise ~ N(0, 1)``)."""
    return x - theta * x * dt + sigma * math.sqrt(dt) * noise


class TD3Policy(Policy):
    """Encoder + deterministic tanh actor; ``explore`` adds Gaussian or OU noise, then clips to the box.

    The OU process is the policy's recurrent state (``[N, A]``), so the Loop restarts it with each
    episode (``reset_state``).
    """

    encoder: nn.Module
    actor: DeterministicActor
    scale: nets.ActionScale

    def __init__(
        self,
        encoder: nn.Module,
        actor: DeterministicActor,
        scale: nets.ActionScale,
        noise_type: str = "gaussian",
        exploration_noise: float = 0.1,
        ou_theta: float = 0.15,
        ou_sigma: float = 0.2,
        ou_dt: float = 1e-2,
    ) -> None:
        super().__init__()
        if noise_type not in ("gaussian", "ou"):
            raise D2RLError(f"algo.noise_type must be 'gaussian' or 'ou', got '{noise_type}'")
        self.encoder, self.actor, self.scale = encoder, actor, scale
        self.ou = noise_type == "ou"
        self.std, self.theta, self.sigma, self.dt = exploration_noise, ou_theta, ou_sigma, ou_dt
        self.action_dim = int(scale.center.shape[0])

    def initial_state(self, batch_size: int) -> Any:
        return torch.zeros(batch_size, self.action_dim) if self.ou else None

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        return None if state is None else state.masked_fill(done.unsqueeze(-1), 0.0)

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        action = self.actor(self.encoder(obs))  # [N, A] in [-1, 1]
        if explore:
            eps = torch.randn_like(action)
            if self.ou:
                state = ou_step(
                    torch.zeros_like(action) if state is None else state, self.theta, self.sigma, self.dt, eps
                )
                noise = state
            else:
                noise = self.std * eps
            action = (action + noise).clamp(-1.0, 1.0)
        return self.scale.to_env(action), {}, state

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        """The deterministic action ``[B, A]`` in [-1, 1]."""
        return self.actor(self.encoder(obs))


class TD3Learner(Learner):
    """A critic step per batch; every ``policy_delay`` steps an actor step and the target updates."""

    policy: TD3Policy
    critics: nets.Critics
    actor_target: DeterministicActor

    def __init__(self, cfg: TD3Config, policy: TD3Policy, critics: nets.Critics) -> None:
        super().__init__()
        self.cfg, self.policy, self.critics = cfg, policy, critics
        self.actor_target = copy.deepcopy(policy.actor).requires_grad_(False)
        self._online = [*critics.online, *policy.actor.parameters()]
        self._target = [*critics.target, *self.actor_target.parameters()]
        self._updates = 0
        self._last_actor_loss = torch.tensor(float("nan"))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        critic = [*self.critics.q.parameters(), *self.policy.encoder.parameters()]
        return [
            torch.optim.Adam(critic, lr=self.cfg.critic_lr, fused=True),
            torch.optim.Adam(self.policy.actor.parameters(), lr=self.cfg.actor_lr, fused=True),
        ]

    def on_train_start(self) -> None:
        self._opts = self.raw_optimizers()  # no Lightning wrappers per step

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss on the smoothed clipped double-Q target; also the TD errors and ``Q``, ``[E, B]`` detached."""
        cfg, encoder = self.cfg, self.policy.encoder
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        with torch.no_grad():
            target_features = self.critics.target_features(next_obs, encoder)
            next_action = self.actor_target(target_features)  # [B, A]
            if cfg.target_policy_noise > 0:
                noise = cfg.target_policy_noise * torch.randn_like(next_action)
                next_action = smoothed_target_action(next_action, noise, cfg.target_noise_clip)
            next_q = self.critics.q_target(torch.cat([target_features, next_action], -1)).squeeze(
                -1
            )  # [E, B]
            y = td3_target(batch["reward"], batch["discount"], batch["terminated"], next_q)
        q = self.critics.q(torch.cat([encoder(obs), action], -1)).squeeze(-1)  # [E, B]
        td = q - y
        return nets.critic_loss(td, batch, 1.0), td.detach(), q.detach()

    def actor_loss(self, features: torch.Tensor) -> torch.Tensor:
        """Deterministic policy gradient through ``Q_1`` only (eq. 6); critic weights and the
        encoder's ``features [B, F]`` held constant."""
        f = features.detach()
        return -self.critics.q(torch.cat([f, self.policy.actor(f)], -1), detach_params=True)[0].mean()

    def update(self, batch: dict[str, torch.Tensor], batches: ReplayBatches) -> dict[str, torch.Tensor]:
        critic_opt, actor_opt = self._opts
        q_loss, td, q = self.critic_loss(batch)
        if "weights" in batch:  # prioritized replay: mean |TD error| over the critics
            batches.update_priorities(batch, td.abs().mean(0))
        critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        critic_opt.step()
        self._updates += 1
        if self._updates % self.cfg.policy_delay == 0:
            with torch.no_grad():  # the encoder as the critic step left it
                features = self.policy.encoder(batch["obs"])
            actor_loss = self.actor_loss(features)
            actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            actor_opt.step()
            nets.polyak(self._target, self._online, self.cfg.tau)
            self._last_actor_loss = actor_loss.detach()
        return {"loss/q": q_loss.detach(), "loss/policy": self._last_actor_loss, "stats/q": q.mean()}

    def training_step(self, batches: ReplayBatches, batch_idx: int) -> dict[str, float]:
        return nets.run_updates(batches, self.policy.scale, self.update)


def build(cfg: TD3Config, ctx: BuildContext) -> Built:
    ctx.require(("box",), cfg.name)
    nets.check(ctx, cfg, cfg.name)
    encoder = ctx.encoder()
    features, A, hidden, act = (
        nets.feature_dim(encoder),
        ctx.num_actions,
        list(cfg.hidden_sizes),
        cfg.activation,
    )
    actor = DeterministicActor(features, A, hidden, act)
    critics = nets.Critics(encoder, features + A, 1, 2 if cfg.twin_critic else 1, hidden, act)
    policy = TD3Policy(
        encoder,
        actor,
        nets.ActionScale(ctx.action_space),  # type: ignore[arg-type]
        cfg.noise_type,
        cfg.exploration_noise,
        cfg.ou_theta,
        cfg.ou_sigma,
        cfg.ou_dt,
    )
    return Built(
        learner=TD3Learner(cfg, policy, critics),
        storage=nets.make_storage(cfg, ctx),
        schedule=nets.schedule(cfg),
    )
