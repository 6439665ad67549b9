"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
arXiv:1812.05905), with its discrete-action form (Christodoulou 2019, arXiv:1910.07207) and the
Tsallis actor-critic (TAC; Lee et al. 2020, "Generalized Tsallis Entropy Reinforcement Learning
and Its Application to Soft Mobile Robots", RSS) as options of the same implementation.

- Box actions: tanh-squashed Gaussian policy with the change-of-variables log-prob (paper app. C),
  twin critics with the clipped double-Q target (eq. 3 with ``min_i Q_i``), reparameterised policy
  loss (eq. 7 / 12), automatic temperature toward ``target_entropy`` (eq. 18; default ``-dim(A)``).
- Discrete actions (Christodoulou 2019): the critic outputs ``Q(s, .)`` for all actions and every
  expectation over the policy is computed exactly (``sum_a pi(a|s) ...``) instead of sampled.
- ``entropic_index`` ``q != 1`` replaces ``log pi`` by the Tsallis q-logarithm
  ``ln_q(pi) = (pi^(q-1) - 1) / (q - 1)`` in the target, the policy loss and the temperature loss
  (TAC); ``q = 1`` is SAC.
- Pixels (``network=nature_cnn`` etc.): one encoder shared by actor and critics, trained by the
  critic loss only, with a Polyak target encoder (SAC-AE, Yarats et al. 2019; DrQ, Kostrikov et
  al. 2020); see ``d2rl.algorithms.actor_critic.nets``.

Deviations: the temperature loss is written in ``log alpha`` (as stable-baselines3 and the authors'
softlearning code: ``-log_alpha * (log pi + H_target)``); discrete ``target_entropy_scale`` is
0.89 (CleanRL's value; Christodoulou used 0.98, which is often too high to reach); with
``q != 1`` the automatic temperature uses the same target entropy in Tsallis units (a heuristic;
the TAC paper tunes a fixed alpha). Critic, actor and temperature gradients come from one backward
pass of their sum, so the actor sees the critic (and encoder features) of before this step's critic
update (the paper's pseudo-code updates the critic first). Env and gradient steps alternate in
rounds of ``round_env_steps`` (the behaviour policy is up to one round stale). With pixels: no
image augmentation (DrQ) and no decoder (SAC-AE); the actor head reads the shared encoder's
features directly (SAC-AE gives the actor its own copy of the encoder's fc layer), and the target
encoder uses the critics' ``tau`` (as DrQ; SAC-AE averages it faster).
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.algorithms.actor_critic import ActorCriticConfig
from d2rl.specs import AlgorithmSpec


@dataclass
class SACConfig(ActorCriticConfig):
    name: str = "sac"
    alpha_lr: float = 3e-4  # paper: 3e-4 for all networks
    target_update_period: int = 1  # gradient steps between target updates
    alpha_auto: bool = True  # false: fixed temperature alpha_init
    alpha_init: float = 1.0
    target_entropy: float | None = None  # None: -dim(A) (box) / target_entropy_scale*log|A| (discrete)
    target_entropy_scale: float = 0.89
    entropic_index: float = 1.0  # Tsallis q; 1 = Shannon (SAC), != 1 = TAC
    log_std_min: float = -20.0
    log_std_max: float = 2.0


SPEC = AlgorithmSpec(
    name="sac",
    config_class=SACConfig,
    builder="d2rl.algorithms.sac.learner:build",
    action_spaces=("box", "discrete"),
    observations=("vector", "pixels"),
    default_network="identity",
    description="Soft Actor-Critic (Haarnoja et al. 2018); discrete (Christodoulou 2019); Tsallis (TAC)",
)
