"""REINFORCE with a learned baseline (Williams 1992, "Simple statistical gradient-following
algorithms for connectionist reinforcement learning"; baseline as in Sutton & Barto 2018, 13.4).

    loss = -mean(log pi(a_t|s_t) * (G_t - V(s_t)))  +  vf_coef * 0.5 * mean((V(s_t) - G_t)^2)
           - ent_coef * mean(H(pi(.|s_t)))

``G_t`` is the discounted reward-to-go. Built from d2rl's parts: the RolloutCollector, the
RolloutBuffer (GAE with lambda = 1 gives exactly ``G_t - V(s_t)``) and the policy heads.

Deviations from the paper: experience comes in chunks of ``num_steps`` per env, so an episode
still running at the end of a chunk is bootstrapped with ``gamma^k V(s_T)`` (as in A2C), and
a time-limit truncation with ``gamma V(final_obs)``; one gradient step per chunk with Adam and
global grad-norm clipping; an entropy bonus (0 turns it off); optional advantage normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from d2rl.agent import Agent
from d2rl.buffers.rollout import RolloutBuffer
from d2rl.collector import RolloutCollector
from d2rl.envs import obs_shape
from d2rl.errors import D2RLError
from d2rl.modules.heads import ActorCritic, CategoricalHead, GaussianHead
from d2rl.registry import AlgorithmSpec


@dataclass
class ReinforceConfig:
    name: str = "reinforce"
    lr: float = 1e-3
    num_steps: int = 256  # env steps per env per update (one gradient step per chunk)
    gamma: float = 0.99
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    norm_adv: bool = True
    max_grad_norm: float = 1.0


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


class ReinforceAgent(Agent):
    def __init__(
        self,
        model: ActorCritic,
        cfg: ReinforceConfig,
        obs_shape: tuple[int, ...],
        action_space: gym.Space,
        num_envs: int,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.cfg = cfg
        self.num_envs = num_envs
        self._obs_shape = obs_shape
        box = isinstance(action_space, gym.spaces.Box)
        self._action_shape = tuple(action_space.shape) if box else ()
        self._action_dtype = torch.float32 if box else torch.long
        if box:
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))
        self.collector: RolloutCollector | None = None
        self.buffer: RolloutBuffer | None = None

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
    ) -> ReinforceAgent:
        cfg = ReinforceConfig(**{k: algo_cfg[k] for k in algo_cfg})
        if cfg.num_steps < 1:
            raise D2RLError(f"algo.num_steps must be >= 1, got {cfg.num_steps}")
        shape = obs_shape(observation_space)
        actor, critic = network.build(network_cfg, shape), network.build(network_cfg, shape)
        if isinstance(action_space, gym.spaces.Discrete):
            head: nn.Module = CategoricalHead(actor.out_dim, int(action_space.n))
        elif isinstance(action_space, gym.spaces.Box):
            head = GaussianHead(actor.out_dim, math.prod(action_space.shape))
        else:
            raise D2RLError(f"reinforce cannot act in {action_space}")
        agent = cls(ActorCritic(actor, critic, head), cfg, shape, action_space, num_envs)
        agent.plan(total_env_steps)
        return agent

    def policy(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        params = self.model.dist_params(obs)
        head = self.model.policy_head
        action = head.mode(params) if deterministic else head.sample(params)
        if self._action_dtype is torch.float32:
            action = torch.max(torch.min(action, self.action_high), self.action_low)
        return action

    def attach(self, envs: gym.vector.VectorEnv, seed: int) -> None:
        self.buffer = RolloutBuffer(
            self.cfg.num_steps, self.num_envs, self._obs_shape, self._action_shape, self._action_dtype
        )
        self.collector = RolloutCollector(
            envs, self.model.act, self.model.value, lambda obs, update: obs, None, self.cfg.gamma, seed
        )
        self.tracker = self.collector.tracker

    def env_steps_per_iteration(self) -> int:
        return self.cfg.num_steps * self.num_envs

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, float]:
        assert self.collector is not None and self.buffer is not None, "call attach(envs, seed) first"
        cfg = self.cfg
        with self.timer(self, "collect"):
            self.env_steps += self.collector.collect(self.buffer)
            # lambda = 1: advantage = G_t - V(s_t), ret = G_t (bootstrapped only where the chunk cuts)
            self.buffer.finish(self.collector.last_values(), cfg.gamma, 1.0)
        with self.timer(self, "update"):
            data = self.buffer.flat()  # each [T * N, ...]
            logprob, entropy, value = self.model.evaluate(data["obs"], data["action"])
            adv = data["advantage"]
            if cfg.norm_adv:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            loss, metrics = reinforce_loss(
                logprob, adv, value, data["ret"], entropy, cfg.vf_coef, cfg.ent_coef
            )
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            self.clip_gradients(opt, gradient_clip_val=cfg.max_grad_norm, gradient_clip_algorithm="norm")
            opt.step()
        self.iteration += 1
        return {k: float(v) for k, v in metrics.items()}


SPEC = AlgorithmSpec(
    name="reinforce",
    config_class=ReinforceConfig,
    agent_class=ReinforceAgent,
    action_spaces=("discrete", "box"),
    description="REINFORCE with a learned baseline (Williams 1992) [example plugin]",
    config_search_path="pkg://d2rl_reinforce.conf",
)
