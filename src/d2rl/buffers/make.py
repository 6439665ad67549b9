"""Replay buffers from the `replay` config group and what the env suite declares."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from d2rl.buffers.prioritized import PrioritizedReplayBuffer
from d2rl.buffers.replay import ReplayBuffer
from d2rl.envs import EnvFacts, obs_shape


def make_replay(
    replay_cfg: Any,
    observation_space: gym.Space,
    action_space: gym.Space,
    num_envs: int,
    n_step: int,
    gamma: float,
    facts: EnvFacts,
    seed: int | None = None,
) -> ReplayBuffer:
    """A uniform or prioritized buffer (``replay_cfg.kind``) for these spaces.

    Stacked frames are stored once per frame iff ``replay_cfg.dedup_frames`` and the suite
    declares a stack (``facts.frame_stack > 1``); an observation's shape alone never decides it.
    """
    shape = obs_shape(observation_space)
    # as the Loop's observation tensors (d2rl.evaluation.as_obs_tensor): uint8 pixels stay uint8,
    # anything else (e.g. MuJoCo's float64 states) is stored as float32
    dtype = np.uint8 if observation_space.dtype == np.uint8 else np.float32
    frame_stack = facts.frame_stack if replay_cfg.dedup_frames and facts.frame_stack > 1 else 1
    act_shape = tuple(action_space.shape or ())
    act_dtype = np.int64 if isinstance(action_space, gym.spaces.Discrete) else np.float32
    args = (replay_cfg.capacity, num_envs, shape, dtype, act_shape, act_dtype, n_step, gamma, frame_stack)
    if replay_cfg.kind == "prioritized":
        return PrioritizedReplayBuffer(
            *args,
            seed=seed,
            alpha=replay_cfg.alpha,
            priority_eps=replay_cfg.priority_eps,
            importance_weights=replay_cfg.importance_weights,
            beta_initial=replay_cfg.beta_initial,
            beta_final=replay_cfg.beta_final,
        )
    return ReplayBuffer(*args, seed=seed)


def make_replay_for(ctx: Any, n_step: int, gamma: float) -> ReplayBuffer:
    """``make_replay`` for the spaces, env count, facts and seed of a ``d2rl.core.BuildContext``."""
    return make_replay(
        ctx.replay_cfg,
        ctx.observation_space,
        ctx.action_space,
        ctx.num_envs,
        n_step,
        gamma,
        ctx.facts,
        ctx.seed,
    )
