"""DQN and its extensions as switches on one implementation.

- DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning", Nature):
  target network, Huber loss, epsilon-greedy with a linear schedule.
- Double DQN (van Hasselt et al. 2016, ``double``), dueling heads (Wang et al. 2016, ``dueling``),
  noisy nets (Fortunato et al. 2018, ``noisy``), C51 (Bellemare et al. 2017,
  ``distributional=c51``), n-step returns (``n_step``), prioritized replay (Schaul et al. 2016,
  ``replay=prioritized``); all of them together is Rainbow (Hessel et al. 2018, ``algo=rainbow``).
- IQN (Dabney et al. 2018, ``distributional=iqn``) and FQF (Yang et al. 2019, ``distributional=fqf``).
- Munchausen RL (Vieillard et al. 2020, ``munchausen``): M-DQN, and M-IQN with ``distributional=iqn``.
- Value rescaling (Pohlen et al. 2018, ``value_rescaling``): the network learns ``h(Q)`` and the
  target is ``h(r + gamma^m h^-1(Q'))``; scalar targets only (R2D2 uses it by default).

Where the code is: ``values`` holds one class per value distribution (its head, ``q_values`` and
loss), chosen by ``distributional`` from a dict; ``losses`` the pure loss functions; ``learner``
the epsilon-greedy policy, the learner (target network, optimizers) and the builder.

Deviations: a round collects ``iteration_env_steps`` env steps with the current policy, then runs
the gradient steps owed for them (``gradient_steps`` per ``update_period_env_steps``), so updates
lag acting by up to one round (as in stable-baselines3 with ``train_freq`` of the same size); the
target network is synced between rounds whenever ``target_update_period_env_steps`` env steps have
passed. PER priorities are ``|TD error|`` for scalar heads and the per-sample loss for
distributional ones (as in Rainbow). The Munchausen bonus is added to the first reward of an
n-step return only. FQF's fraction network reads detached encoder features and has its own RMSprop
optimizer (as in the paper); its loss is weighted by the PER importance weights like the quantile
loss (as in the widely used ``ku2482/fqf-iqn-qrdqn.pytorch``) and the gradient-norm clip covers
only the parameters the main step updates. IQN picks the greedy next action from K =
``num_policy_quantiles`` fresh samples, drawn apart from the N' = ``num_target_quantiles`` samples
of the target distribution (Dabney et al. 2018, Algorithm 1; Dopamine's ``num_quantile_samples``).

Architecture: with a pixel encoder, ``encoder_fc=false`` drops the encoder's fc layer and
``head_hidden_size=512`` gives each stream its own (noisy) 512-unit hidden layer on the conv
trunk, the shape of Wang et al. 2016, Fortunato et al. 2018 and Hessel et al. 2018 (``algo=rainbow``
sets both). ``encoder_fc=true head_hidden_size=0`` (the ``dqn`` defaults) keeps Mnih et al.'s
shared fc 512 below linear output layers. MLP encoders have no fc layer to drop: the head's
hidden layer goes on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class DQNConfig:
    name: str = "dqn"
    lr: float = 1e-4  # Adam; Mnih et al. used RMSprop 2.5e-4, CleanRL/SB3 Adam 1e-4
    anneal_lr: bool = False  # linear decay of lr to 0 over the run (as PPO's anneal_lr)
    adam_eps: float = 1e-8  # Rainbow: 1.5e-4
    gamma: float = 0.99
    batch_size: int = 32
    learning_starts_env_steps: int = 10_000  # random actions and no updates before this
    update_period_env_steps: int = 4  # a round of `gradient_steps` updates per this many env steps
    gradient_steps: int = 1
    target_update_period_env_steps: int = 1_000
    target_tau: float = 1.0  # 1: hard copy; < 1: Polyak averaging at each sync
    max_grad_norm: float = 10.0
    iteration_env_steps: int = 256  # env steps per training_step (rounded up to a multiple of num_envs)
    # exploration: epsilon from initial to final over the first `exploration_fraction` of the run
    epsilon_initial: float = 1.0
    epsilon_final: float = 0.05
    exploration_fraction: float = 0.1
    # Rainbow components
    double: bool = False
    dueling: bool = False
    noisy: bool = False
    n_step: int = 1
    distributional: str = "none"  # none | c51 | iqn | fqf
    num_atoms: int = 51  # C51
    v_min: float = -10.0
    v_max: float = 10.0
    head_hidden_size: int = 0  # > 0: a ReLU layer inside the head (per dueling stream); Rainbow: 512
    encoder_fc: bool = True  # false: drop a pixel encoder's fc layer (the head sits on the conv trunk)
    # quantile heads (IQN: N, N', K of Dabney et al.; FQF: N fractions)
    num_quantiles: int = 32
    num_target_quantiles: int = 32
    num_policy_quantiles: int = 32
    num_cosines: int = 64
    kappa: float = 1.0
    fraction_lr: float = 2.5e-9  # FQF fraction proposal network (RMSprop), Yang et al.
    fraction_entropy_coef: float = 0.0
    # Munchausen (Vieillard et al. 2020: alpha 0.9, tau 0.03, l0 -1)
    munchausen: bool = False
    munchausen_alpha: float = 0.9
    munchausen_tau: float = 0.03
    munchausen_clip: float = -1.0
    # the transformed Bellman operator (Pohlen et al. 2018): learn h(Q) with
    # h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x; scalar targets only (distributional=none)
    value_rescaling: bool = False
    value_rescaling_eps: float = 1e-3


SPEC = AlgorithmSpec(
    name="dqn",
    config_class=DQNConfig,
    builder="d2rl.algorithms.dqn.learner:build",
    action_spaces=("discrete",),
    observations=("vector", "pixels"),
    description="DQN with switches: double, dueling, noisy, C51, IQN, FQF, n-step, PER, Munchausen",
)
