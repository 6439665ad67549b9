"""What the off-policy actor-critics (SAC, TD3 and their presets) share.

This module is cheap to import (no torch): it holds the config fields both families have, which
``SACConfig`` and ``TD3Config`` extend. The networks they share (action rescaling, the critic
ensemble on the shared observation encoder and its Polyak targets, replay and schedule builders)
are in ``d2rl.algorithms.actor_critic.nets``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActorCriticConfig:
    """Network widths, learning rates and the replay schedule of an off-policy actor-critic.

    The actor and critic MLP heads (``hidden_sizes``) read the features of the encoder chosen by
    ``network=`` (``identity`` by default: the raw state, the papers' architecture).
    """

    name: str = ""
    actor_lr: float = 3e-4  # SAC and TD3 (v3 / author code): 3e-4 for every network
    critic_lr: float = 3e-4  # also the learning rate of a learned (pixel) encoder
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])  # both papers: 256-256 ReLU
    activation: str = "relu"  # relu | tanh | elu | silu
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005  # Polyak factor of the target networks (the target encoder's too)
    n_step: int = 1
    learning_starts_env_steps: int = 5_000  # uniform random actions and no update before this
    round_env_steps: int = 64  # env steps collected between two rounds of gradient steps
    gradient_steps_per_env_step: float = 1.0
