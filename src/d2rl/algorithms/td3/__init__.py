"""Twin Delayed DDPG (TD3; Fujimoto et al. 2018, arXiv:1802.09477) with DDPG (Lillicrap et al.
2015, arXiv:1509.02971) as a preset of the same implementation (``conf/algo/ddpg.yaml``:
one critic, no target policy smoothing, an actor update every step).

TD3's three changes to DDPG are switches here: ``twin_critic`` (clipped double Q, eq. 10),
``target_policy_noise`` (target policy smoothing, eq. 14) and ``policy_delay`` (delayed actor and
target updates, sec. 5.2). Exploration adds Gaussian noise (``noise_type=gaussian``, TD3) or an
Ornstein-Uhlenbeck process (``noise_type=ou``, DDPG's original choice; restarted with each
episode) to the deterministic action, then clips to the action box. Pixels (``network=nature_cnn``
etc.): one encoder shared by actor and critics, trained by the critic loss only, with a Polyak
target encoder read by the target actor and critics (as DrQ, Kostrikov et al. 2020; see
``d2rl.algorithms.actor_critic.nets``).

Deviations: networks are 256-256 ReLU (TD3 paper's 400-300 in its first version); noise scales are in
the normalised ``[-1, 1]`` action units (the paper's MuJoCo tasks have that range already);
DDPG's preset keeps TD3's architecture, learning rates and batch size ("OurDDPG" of Fujimoto et al.)
rather than Lillicrap's 400-300 network, L2 weight decay and batch 64; the OU process is
discretised with ``ou_dt`` (OpenAI baselines). Env and gradient steps alternate in rounds of
``round_env_steps`` (the behaviour policy is up to one round stale). With pixels: no image
augmentation, and the actor head reads the shared encoder's features (re-encoded after the
critic step, as DrQ's tied encoder does).
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.algorithms.actor_critic import ActorCriticConfig
from d2rl.specs import AlgorithmSpec


@dataclass
class TD3Config(ActorCriticConfig):
    name: str = "td3"
    learning_starts_env_steps: int = 25_000  # paper: 25k random steps (MuJoCo)
    twin_critic: bool = True  # clipped double Q (false: DDPG's single critic)
    policy_delay: int = 2  # critic steps per actor/target update (DDPG: 1)
    target_policy_noise: float = 0.2  # std of the smoothing noise (DDPG: 0)
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1  # std of the Gaussian noise (noise_type=gaussian), TD3 paper
    noise_type: str = "gaussian"  # gaussian | ou
    ou_theta: float = 0.15  # Lillicrap et al. 2015 (noise_type=ou)
    ou_sigma: float = 0.2  # Lillicrap et al. 2015 (noise_type=ou)
    ou_dt: float = 1e-2  # not in the paper; OpenAI baselines' OrnsteinUhlenbeckActionNoise


SPEC = AlgorithmSpec(
    name="td3",
    config_class=TD3Config,
    builder="d2rl.algorithms.td3.learner:build",
    action_spaces=("box",),
    observations=("vector", "pixels"),
    default_network="identity",
    description="TD3 (Fujimoto et al. 2018); DDPG (Lillicrap et al. 2015) as the `ddpg` preset",
)
