"""R2D2: recurrent DQN from replayed sequences (Kapturowski et al. 2019, "Recurrent Experience Replay in
Distributed Reinforcement Learning", ICLR). ``distributed=local`` runs it in one process (R2D1).

- Sequence replay with the recurrent state stored at each sequence's first slot
  (``d2rl.buffers.sequence``): ``burn_in`` slots unrolled without gradient (online and target
  networks from the stored state), then the loss on ``seq_len`` slots; consecutive sequences of an
  episode overlap by ``seq_overlap`` steps; an episode's end is padded and masked.
- n-step double-Q targets within a sequence with the invertible value rescaling
  ``h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x`` (Pohlen et al. 2018): ``y_t = h(sum_k gamma^k r_{t+k}
  + gamma^n h^-1(Q_target(s_{t+n}, argmax_a Q(s_{t+n}, a))))``.
- Prioritized sequence sampling: ``p = eta max|delta| + (1 - eta) mean|delta|``, ``eta = 0.9``,
  priority exponent 0.9, importance-sampling exponent 0.6; target network copied every
  ``target_update_period`` learner steps (paper: 2500).
- Per-env epsilon-greedy: env ``i`` of ``N`` explores with ``epsilon_base ** (1 + epsilon_alpha i / (N - 1))``
  (Ape-X's per-actor epsilons, 0.4 and 7); uniform random actions before learning starts.
  Evaluation is greedy and carries the state.

The recurrent core is the network's ``network.core`` (lstm by default for r2d2: conf/algo_env/r2d2.yaml;
gru, dnc and transformer work too) after any encoder (mlp, nature_cnn, impala_resnet, ...).

Defaults smaller than the paper's, to fit a 2-core machine: ``seq_len`` 20 (paper 80),
``seq_overlap`` 10 (40), ``burn_in`` 10 (40), batch 32 sequences (64), target update every 500
learner steps (2500), gamma 0.99 (0.997), LSTM 256 units on the network's encoder (paper: 512 on
a conv torso, with the previous action and reward as inputs, which d2rl leaves out).
Deviations: the loss is ``0.5 delta^2`` averaged over a sequence's trained steps with a valid
target (then weighted by the importance weights); steps whose n-step target would need an
observation beyond the sequence's end get no loss in that sequence (the next, overlapping one
trains them when ``seq_overlap >= n_step``); replay capacity is ``replay.capacity`` env steps, i.e.
``replay.capacity // (seq_len - seq_overlap)`` sequences (paper: 4M observations, 100k sequences).
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class R2D2Config:
    name: str = "r2d2"
    lr: float = 1e-4  # Adam (paper: 1e-4, eps 1e-3)
    adam_eps: float = 1e-3
    gamma: float = 0.99  # paper: 0.997
    n_step: int = 5  # paper: 5
    batch_size: int = 32  # sequences per gradient step (paper: 64)
    seq_len: int = 20  # trained slots per sequence (paper: 80)
    seq_overlap: int = 10  # steps shared by consecutive sequences of an episode (paper: 40)
    burn_in: int = 10  # slots before the trained ones, unrolled without gradient (paper: 40)
    learning_starts_env_steps: int = 5_000  # uniform random actions and no updates before this
    update_period_env_steps: int = 8  # `gradient_steps` learner steps per this many env steps
    gradient_steps: int = 1
    iteration_env_steps: int = 256  # env steps per training_step (a multiple of num_envs)
    target_update_period: int = 500  # learner steps between target copies (paper: 2500)
    double: bool = True
    dueling: bool = False  # the paper's R2D2 is dueling
    head_hidden_size: int = 0  # > 0: a ReLU layer in the Q head (per dueling stream)
    value_rescaling: bool = True
    value_rescaling_eps: float = 1e-3
    max_grad_norm: float = 40.0  # 0 disables clipping
    # prioritized sequence replay (replay=uniform samples uniformly)
    priority_exponent: float = 0.9  # alpha
    importance_sampling_exponent: float = 0.6  # beta (fixed, as in the paper)
    priority_eta: float = 0.9  # p = eta max|delta| + (1 - eta) mean|delta|
    # per-env exploration (Ape-X): epsilon_i = epsilon_base ** (1 + epsilon_alpha * i / (N - 1))
    epsilon_base: float = 0.4
    epsilon_alpha: float = 7.0


SPEC = AlgorithmSpec(
    name="r2d2",
    config_class=R2D2Config,
    builder="d2rl.algorithms.r2d2.learner:build",
    action_spaces=("discrete",),
    observations=("vector", "pixels"),
    recurrent=True,
    description="R2D2: recurrent DQN on prioritized sequence replay with burn-in and value rescaling",
)
