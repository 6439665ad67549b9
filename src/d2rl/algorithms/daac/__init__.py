"""Decoupled Advantage Actor-Critic, DAAC (Raileanu & Fergus 2021, "Decoupling Value and Policy for
Generalization in Reinforcement Learning", arXiv:2102.10330).

Separate policy and value networks. The policy network has an advantage head ``A(s, a)`` (its
features joined with the action, one-hot for discrete actions) and is trained on PPO's clipped
surrogate + ``alpha_a * (A(s, a) - A_GAE)^2`` - entropy bonus, so its features must predict the
advantage but never the value (which overfits to level-specific cues). The value network, which
only supplies GAE's baseline, is trained for ``value_epochs`` (E_V) epochs on the clipped value loss
every ``n_pi`` (N_pi) policy updates, with its own Adam optimizer.

Defaults are the paper's Procgen hyperparameters (its Appendix / rraileanu/idaac arguments.py, the
setting used for every game): 64 envs x 256 steps, gamma 0.999, lambda 0.95, Adam lr 5e-4 eps 1e-5,
8 minibatches, E_pi = 1, E_V = 9, N_pi = 1, alpha_a = 0.25, clip 0.2, entropy 0.01, gradient norm
0.5, reward normalisation. ``conf/tuned/daac_procgen.yaml`` scales them to this machine;
``daac_cartpole.yaml`` tunes CartPole.

As in the paper's code: advantages are normalised over the whole rollout and are both the policy
gradient's weights and the advantage head's target; the value epochs use the rollout of the
update on which they fall. Deviation: a time-limit truncation is bootstrapped with
``gamma * V(final_obs)``; Box actions enter the advantage head as the action vector.
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class DAACConfig:
    name: str = "daac"
    lr: float = 5e-4  # both networks (paper: 5e-4)
    anneal_lr: bool = False
    adam_eps: float = 1e-5
    num_steps: int = 256  # rollout length per env (paper: 256)
    gamma: float = 0.999
    gae_lambda: float = 0.95
    num_minibatches: int = 8
    policy_epochs: int = 1  # E_pi
    value_epochs: int = 9  # E_V
    n_pi: int = 1  # N_pi: the value network trains every n_pi policy updates
    adv_coef: float = 0.25  # alpha_a: weight of the advantage loss
    clip_coef: float = 0.2
    clip_vloss: bool = True  # paper code: clipped value loss
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    norm_adv: bool = True  # over the whole rollout (paper code)
    normalize_obs: bool = False
    normalize_reward: bool = True  # paper code: VecNormalize(ob=False)


SPEC = AlgorithmSpec(
    name="daac",
    config_class=DAACConfig,
    builder="d2rl.algorithms.daac.learner:build",
    action_spaces=("discrete", "box"),
    description="Decoupled Advantage Actor-Critic (Raileanu & Fergus 2021): separate policy/value nets",
)
