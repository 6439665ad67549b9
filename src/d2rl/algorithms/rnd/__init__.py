"""Exploration by Random Network Distillation (Burda et al. 2018, arXiv:1810.12894), on PPO.

A fixed, randomly initialised target network ``f`` and a predictor ``f_hat`` trained to match it
see the next observation ``s_{t+1}``, normalised by running mean/std and clipped to [-5, 5]; the
intrinsic reward is the prediction error ``||f_hat(s_{t+1}) - f(s_{t+1})||^2`` (mean over
features), divided by a running std of the intrinsic discounted return (never reset). The
actor-critic has two value heads: extrinsic (``gamma``, episodic) and intrinsic (``gamma_int``,
non-episodic: no done masking); the PPO advantage is ``ext_coef * A_E + int_coef * A_I``. The
predictor is trained on a random ``update_proportion`` of each minibatch, in the same optimiser
step as the PPO loss (``d2rl.algorithms.ppo.learner.ppo_loss``).

Defaults are the paper's (Appendix A.4, Table 5: "Default hyperparameters for PPO and RND") where
it gives one, else the authors' code (github.com/openai/random-network-distillation,
``run_atari.py``/``ppo_agent.py``); each field says which. Deviations: the networks are d2rl's
(``network=``; the paper's policy CNN is larger than Nature CNN), the observation statistics are
initialised by the first ``obs_norm_init_rollouts`` rollouts of the initial (near-uniform) policy
rather than a separate uniform-random agent, advantages are normalised per minibatch (as d2rl's
PPO), a time-limit cut of the extrinsic stream is bootstrapped with ``gamma * V_E(final_obs)``,
and ``num_envs`` comes from the env preset (paper: 128 parallel envs; ``experiment=rnd_montezuma``).
"""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec


@dataclass
class RNDConfig:
    name: str = "rnd"
    # -- PPO (paper Table 5 unless noted) --
    lr: float = 1e-4  # paper: 0.0001
    anneal_lr: bool = False  # paper: constant
    num_steps: int = 128  # rollout length per env (paper: 128)
    gamma: float = 0.999  # gamma_E, extrinsic (paper: 0.999; authors' code default 0.99)
    gamma_int: float = 0.99  # gamma_I, intrinsic (paper: 0.99)
    gae_lambda: float = 0.95  # paper: 0.95
    num_minibatches: int = 4  # paper: 4
    update_epochs: int = 4  # paper: 4
    norm_adv: bool = True  # authors' code: normadv
    clip_coef: float = 0.1  # paper: clip range [0.9, 1.1]
    clip_vloss: bool = False  # authors' code: unclipped value losses
    ent_coef: float = 0.001  # paper: 0.001
    vf_coef: float = 1.0  # authors' code: 0.5 * mse for each head, summed
    max_grad_norm: float = 0.0  # authors' code: 0.0 (no clipping); > 0 clips the global norm
    adam_eps: float = 1e-5  # as d2rl's PPO
    normalize_obs: bool = False  # the policy's own input normalisation (paper: pixels / 255 only)
    normalize_reward: bool = False  # extrinsic reward scaling (paper: Atari rewards clipped instead)
    shared_encoder: bool = True  # one trunk for policy and both value heads (paper: shared)
    # -- RND --
    ext_coef: float = 2.0  # extrinsic advantage coefficient (paper: 2)
    int_coef: float = 1.0  # intrinsic advantage coefficient (paper: 1)
    update_proportion: float = 0.25  # share of each minibatch the predictor trains on (paper: 0.25)
    obs_clip: float = 5.0  # RND input clip after normalisation (paper: [-5, 5])
    obs_norm_init_rollouts: int = 1  # rollouts that only initialise the RND observation statistics
    # (authors' code: 50 rollouts of 128 steps of a random agent; experiment=rnd_montezuma sets 50)
    rnd_output_size: int = 512  # target/predictor embedding width (paper: 512)
    rnd_hidden_size: int = 256  # vector observations only: MLP width of target/predictor (ours)


SPEC = AlgorithmSpec(
    name="rnd",
    config_class=RNDConfig,
    builder="d2rl.algorithms.rnd.learner:build",
    action_spaces=("discrete", "box"),
    description="PPO + Random Network Distillation exploration bonus (Burda et al. 2018)",
)
