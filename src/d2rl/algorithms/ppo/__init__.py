"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

Implementation details follow the reference baselines (openai/baselines ppo2, as catalogued by
Huang et al. 2022, "The 37 Implementation Details of PPO"): vectorised envs, GAE (Schulman et
al. 2016), per-minibatch advantage normalisation, clipped surrogate, optional value clipping,
entropy bonus, global gradient-norm clipping, linear learning-rate annealing, Adam eps 1e-5,
orthogonal init, optional observation normalisation and return-based reward scaling.

Recurrent PPO (``network.core=lstm|gru|dnc|transformer``, or the preset ``algo=recurrent_ppo``), as
the baselines' ppo2 with LSTM policies and CleanRL's ``ppo_atari_lstm``: the state entering each
step is stored in the rollout, minibatches are whole env sequences (or ``bptt_len`` chunks) from
their stored initial states, masked at episode starts (``d2rl.algorithms.on_policy``).

Deviations: a time-limit truncation is bootstrapped with ``gamma * V(final_obs)`` (as in
stable-baselines3) instead of being treated as termination; defaults are tuned for CartPole
(see ``PPOConfig``); the baselines' values are noted per field.
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class PPOConfig:
    name: str = "ppo"
    lr: float = 2.5e-4  # baselines Atari/classic: 2.5e-4
    anneal_lr: bool = True  # linear decay to 0 over the run
    num_steps: int = 128  # rollout length per env (baselines: 128)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True  # value clipping (baselines: on)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop the epoch loop early above this approx KL
    adam_eps: float = 1e-5
    normalize_obs: bool = False
    normalize_reward: bool = False
    # with network.random_conv=true (Network Randomization, Lee et al. 2020): the random input conv is
    # redrawn after every update, so each rollout and its update see one random network; a fraction
    # of iterations use clean inputs; the feature-matching loss pulls random-input features to clean ones
    random_conv_clean_prob: float = 0.1  # probability of an iteration on clean inputs
    random_conv_fm_coef: float = 0.002  # beta of the feature-matching loss (0: off)
    shared_encoder: bool = False  # one encoder for actor and critic (baselines' Atari CNN): half the cost
    # with network.core=lstm|gru|dnc|transformer (recurrent PPO): minibatches hold whole sequences of
    # bptt_len steps (0: the whole rollout of each env), each from the state stored at its first step
    bptt_len: int = 0


SPEC = AlgorithmSpec(
    name="ppo",
    config_class=PPOConfig,
    builder="d2rl.algorithms.ppo.learner:build",
    action_spaces=("discrete", "box"),
    recurrent=True,  # network.core=lstm|gru|dnc|transformer: recurrent PPO
    description="Proximal Policy Optimization (Schulman et al. 2017)",
)
