"""Phasic Policy Gradient (Cobbe, Hilton, Klimov & Schulman 2020, arXiv:2009.04416).

Separate policy and value networks ("dual" architecture, the paper's default). Training alternates:

- **policy phase**: ``n_pi`` PPO iterations; each rollout trains the policy network on the clipped
  surrogate + entropy (``policy_epochs`` = E_pi epochs) and the value network on ``0.5 (V - V_targ)^2``
  (``value_epochs`` = E_V epochs); observations and value targets of every rollout are kept;
- **auxiliary phase**: ``aux_epochs`` = E_aux epochs over all ``n_pi`` stored rollouts, training the
  policy network's auxiliary value head on ``V_targ`` under a behavioural-cloning penalty
  ``beta_clone * KL(pi_old || pi)`` (``pi_old``: the policy before the phase) and the value network
  again on ``V_targ``, with a separate Adam optimizer.

Defaults are the paper's Procgen hyperparameters (its Table 1 / Appendix A, and
openai/phasic-policy-gradient train.py): 64 envs x 256 steps, gamma 0.999, lambda 0.95, Adam lr 5e-4
(both phases), 8 minibatches, E_pi = E_V = 1, N_pi = 32, E_aux = 6, beta_clone = 1, auxiliary
minibatches of 1/16 of a rollout (16 N_pi per aux epoch), clip 0.2, entropy 0.01, reward
normalisation, no gradient clipping, no lr annealing. ``conf/tuned/ppg_procgen.yaml`` scales the
number of envs to this machine (the stored observations of N_pi rollouts); ``ppg_cartpole.yaml``
tunes CartPole.

Deviations: auxiliary minibatches shuffle single samples (the paper: whole env segments, which only
matters for recurrent networks); a time-limit truncation is bootstrapped with ``gamma * V(final_obs)``;
a resumed run starts a fresh policy phase (the stored rollouts are not checkpointed: up to N_pi
rollouts of observations); the auxiliary phase is skipped after the last rollout of the run (as in
the paper's code, which stops when the budget is spent).
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class PPGConfig:
    name: str = "ppg"
    lr: float = 5e-4  # policy phase Adam (paper: 5e-4)
    aux_lr: float = 5e-4  # auxiliary phase Adam (paper: 5e-4)
    anneal_lr: bool = False  # paper: constant
    adam_eps: float = 1e-8  # paper code: torch's default
    num_steps: int = 256  # rollout length per env (paper: 256)
    gamma: float = 0.999
    gae_lambda: float = 0.95
    num_minibatches: int = 8  # policy phase, per epoch (paper: 8)
    policy_epochs: int = 1  # E_pi
    value_epochs: int = 1  # E_V
    n_pi: int = 32  # N_pi: policy iterations (rollouts) per phase
    aux_epochs: int = 6  # E_aux
    aux_minibatches_per_rollout: int = 16  # an aux epoch has this x n_pi minibatches (paper: 64 envs / 4)
    beta_clone: float = 1.0  # weight of KL(pi_old || pi) in the auxiliary phase
    aux_value_coef: float = 1.0  # the value network's own loss in the auxiliary phase (paper: vf_true 1)
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    # value loss weight; the loss is 0.5 (V - V_targ)^2, so 1.0 = the paper code's vfcoef 0.5 * MSE
    vf_coef: float = 1.0
    norm_adv: bool = True  # over the whole rollout (paper code), not per minibatch
    max_grad_norm: float | None = None  # paper: no clipping
    normalize_obs: bool = False
    normalize_reward: bool = True  # paper: return-based reward normalisation


SPEC = AlgorithmSpec(
    name="ppg",
    config_class=PPGConfig,
    builder="d2rl.algorithms.ppg.learner:build",
    action_spaces=("discrete", "box"),
    description="Phasic Policy Gradient (Cobbe et al. 2020): policy and auxiliary phases",
)
