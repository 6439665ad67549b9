"""Advantage Actor-Critic (A2C): the synchronous variant of A3C (Mnih et al. 2016, "Asynchronous
Methods for Deep Reinforcement Learning", arXiv:1602.01783), as in OpenAI baselines' a2c.

One gradient step per rollout of ``num_steps`` x ``num_envs`` on the policy-gradient loss with
``A = R^(n) - V`` (n-step returns; ``gae_lambda=1`` gives them exactly), a value loss and an
entropy bonus; RMSprop. Defaults follow stable-baselines3's A2C (8 envs x 5 steps, RMSprop 7e-4,
alpha 0.99, eps 1e-5, ent 0.0, vf 0.5, grad clip 0.5), which follow the baselines'.

Deviation: a time-limit truncation is bootstrapped with ``gamma * V(final_obs)`` (as in PPO here
and stable-baselines3) instead of being treated as termination.
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class A2CConfig:
    name: str = "a2c"
    lr: float = 7e-4  # SB3 / baselines
    anneal_lr: bool = False  # baselines: linear decay; SB3: constant
    num_steps: int = 5  # n of the n-step return (SB3: 5)
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1: plain n-step advantages (A2C); < 1: GAE
    ent_coef: float = 0.0  # SB3: 0.0; baselines Atari: 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    rms_alpha: float = 0.99  # RMSprop decay (SB3/baselines)
    rms_eps: float = 1e-5
    norm_adv: bool = False
    normalize_obs: bool = False
    normalize_reward: bool = False
    shared_encoder: bool = False


SPEC = AlgorithmSpec(
    name="a2c",
    config_class=A2CConfig,
    builder="d2rl.algorithms.a2c.learner:build",
    action_spaces=("discrete", "box"),
    env_defaults={"num_envs": 8},
    recurrent=True,  # network.core=...: each update runs the core over every env's whole rollout  # SB3 / baselines: 8 (16 in the paper's Atari runs)
    description="Advantage Actor-Critic, synchronous (Mnih et al. 2016)",
)
