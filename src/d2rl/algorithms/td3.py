"""Twin Delayed DDPG (TD3; Fujimoto et al. 2018, arXiv:1802.09477) with DDPG (Lillicrap et al.
2015, arXiv:1509.02971) as a preset of the same implementation (``conf/algo/ddpg.yaml``:
one critic, no target policy smoothing, an actor update every step).

TD3's three changes to DDPG are switches here: ``twin_critic`` (clipped double Q, eq. 10),
``target_policy_noise`` (target policy smoothing, eq. 14) and ``policy_delay`` (delayed actor and
target updates, sec. 5.2). Exploration adds Gaussian noise (``noise_type=gaussian``, TD3) or an
Ornstein-Uhlenbeck process (``noise_type=ou``, DDPG's original choice) to the deterministic action,
then clips to the action box.

Deviations: networks are 256-256 ReLU (TD3 paper's 400-300 in its first version); noise scales are in
the normalised ``[-1, 1]`` action units (the paper's MuJoCo tasks have that range already);
DDPG's preset keeps TD3's architecture, learning rates and batch size ("OurDDPG" of Fujimoto et al.)
rather than Lillicrap's 400-300 network, L2 weight decay and batch 64. Env and gradient steps
alternate in chunks (see ``replay_actor_critic``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.algorithms.replay_actor_critic import ReplayActorCritic, check_spaces
from d2rl.modules.actors import DeterministicActor
from d2rl.modules.ensemble import EnsembleMLP
from d2rl.registry import LegacyAlgorithmSpec as AlgorithmSpec


@dataclass
class TD3Config:
    name: str = "td3"
    actor_lr: float = 3e-4  # TD3 paper (v3 / author code): 3e-4
    critic_lr: float = 3e-4
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    n_step: int = 1
    learning_starts_env_steps: int = 25_000  # paper: 25k random steps (MuJoCo)
    steps_per_iteration: int = 64  # vector steps collected per training_step
    gradient_steps_per_env_step: float = 1.0
    twin_critic: bool = True  # clipped double Q (false: DDPG's single critic)
    policy_delay: int = 2  # critic steps per actor/target update (DDPG: 1)
    target_policy_noise: float = 0.2  # std of the smoothing noise (DDPG: 0)
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1  # std (gaussian) or sigma (ou)
    noise_type: str = "gaussian"  # gaussian | ou
    ou_theta: float = 0.15  # Lillicrap et al. 2015
    ou_dt: float = 1e-2


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


class TD3Agent(ReplayActorCritic):
    def __init__(
        self,
        cfg: TD3Config,
        observation_shape: tuple[int, ...],
        action_space: gym.Space,
        num_envs: int,
        replay_cfg: Any,
        seed: int,
    ) -> None:
        super().__init__(
            observation_shape,
            action_space,
            num_envs,
            replay_cfg,
            cfg.gamma,
            cfg.n_step,
            cfg.batch_size,
            cfg.learning_starts_env_steps,
            cfg.steps_per_iteration,
            cfg.gradient_steps_per_env_step,
            seed,
        )
        if cfg.noise_type not in ("gaussian", "ou"):
            from d2rl.errors import D2RLError

            raise D2RLError(f"algo.noise_type must be 'gaussian' or 'ou', got '{cfg.noise_type}'")
        self.cfg = cfg
        obs_dim, A = observation_shape[0], self.action_dim
        hidden, act = list(cfg.hidden_sizes), cfg.activation
        members = 2 if cfg.twin_critic else 1
        self.actor = DeterministicActor(obs_dim, A, hidden, act)
        self.actor_target = DeterministicActor(obs_dim, A, hidden, act)
        self.critic = EnsembleMLP(members, obs_dim + A, hidden, 1, act)
        self.critic_target = EnsembleMLP(members, obs_dim + A, hidden, 1, act)
        for online, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            target.load_state_dict(online.state_dict())
            target.requires_grad_(False)
        self._online: list[torch.Tensor] = [*self.critic.parameters(), *self.actor.parameters()]
        self._target: list[torch.Tensor] = [*self.critic_target.parameters(), *self.actor_target.parameters()]
        self.ou_state = torch.zeros(num_envs, A)
        self._updates = 0
        self._last_actor_loss = torch.tensor(float("nan"))

    @classmethod
    def from_config(  # type: ignore[override]
        cls,
        algo_cfg: Any,
        network: Any,
        network_cfg: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        total_env_steps: int,
        replay_cfg: Any = None,
    ) -> TD3Agent:
        cfg = TD3Config(**{k: algo_cfg[k] for k in algo_cfg})
        shape = check_spaces(str(cfg.name), observation_space, action_space)
        agent = cls(cfg, shape, action_space, num_envs, replay_cfg, int(np.random.randint(2**31)))
        agent.plan(total_env_steps)
        return agent

    # -- acting -------------------------------------------------------------------------------
    def act_normalized(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor(obs)

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        action = self.actor(obs)  # [N, A]
        if cfg.noise_type == "ou":
            assert self.tracker is not None
            new_episode = torch.from_numpy(self.tracker.lengths == 0)
            self.ou_state[new_episode] = 0.0  # the process restarts with each episode
            # dx = theta (0 - x) dt + sigma sqrt(dt) N(0, 1)
            self.ou_state += -cfg.ou_theta * self.ou_state * cfg.ou_dt + cfg.exploration_noise * (
                cfg.ou_dt**0.5
            ) * torch.randn_like(action)
            noise = self.ou_state
        else:
            noise = cfg.exploration_noise * torch.randn_like(action)
        return (action + noise).clamp(-1.0, 1.0)

    # -- learning -----------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.critic.parameters(), lr=self.cfg.critic_lr, fused=True),
            torch.optim.Adam(self.actor.parameters(), lr=self.cfg.actor_lr, fused=True),
        ]

    def on_train_start(self) -> None:
        self._opts = list(self.trainer.optimizers)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        critic_opt, actor_opt = self._opts
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        with torch.no_grad():
            next_action = self.actor_target(next_obs)  # [B, A]
            if cfg.target_policy_noise > 0:
                noise = cfg.target_policy_noise * torch.randn_like(next_action)
                next_action = smoothed_target_action(next_action, noise, cfg.target_noise_clip)
            next_q = self.critic_target(torch.cat([next_obs, next_action], -1)).squeeze(-1)  # [E, B]
            y = td3_target(batch["reward"], batch["discount"], batch["terminated"], next_q)
        q = self.critic(torch.cat([obs, action], -1)).squeeze(-1)  # [E, B]
        td = q - y
        if "weights" in batch:  # prioritized replay
            critic_loss = (batch["weights"] * td.square()).mean(-1).sum()
            self.prioritize(batch, td.detach().abs().mean(0))
        else:
            critic_loss = td.square().mean(-1).sum()
        critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_opt.step()
        self._updates += 1
        if self._updates % cfg.policy_delay == 0:
            # deterministic policy gradient through Q_1 only (eq. 6), critic weights held constant
            q_pi = self.critic(torch.cat([obs, self.actor(obs)], -1), detach_params=True)[0]
            actor_loss = -q_pi.mean()
            actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            actor_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(self._target, self._online, cfg.tau)
            self._last_actor_loss = actor_loss.detach()
        return {
            "loss/q": critic_loss.detach(),
            "loss/policy": self._last_actor_loss,
            "stats/q": q.detach().mean(),
        }


SPEC = AlgorithmSpec(
    name="td3",
    config_class=TD3Config,
    agent_class=TD3Agent,
    action_spaces=("box",),
    description="TD3 (Fujimoto et al. 2018); DDPG (Lillicrap et al. 2015) as the `ddpg` preset",
)
