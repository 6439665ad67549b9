"""Evaluation: run whole episodes with the (by default deterministic) policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from d2rl.agent import Agent
from d2rl.envs import make_vec_env


@torch.no_grad()
def evaluate(
    agent: Agent, env_cfg: Any, episodes: int, seed: int, deterministic: bool = True, max_envs: int = 16
) -> np.ndarray:
    """Returns the undiscounted return of each of ``episodes`` episodes.

    Each env of the eval vector env plays exactly one episode per round, so short episodes
    are not over-represented.
    """
    returns: list[float] = []
    round_ = 0
    while len(returns) < episodes:
        n = min(max_envs, episodes - len(returns))
        envs = make_vec_env(env_cfg, seed + 1000 * round_, num_envs=n, evaluation=True)
        obs, _ = envs.reset(seed=seed + 1000 * round_)
        ep_ret = np.zeros(n)
        active = np.ones(n, dtype=bool)
        while active.any():
            obs, reward, terminated, truncated, _ = envs.step(agent.act(obs, deterministic))
            ep_ret += reward * active
            active &= ~(terminated | truncated)
        envs.close()
        returns.extend(ep_ret.tolist())
        round_ += 1
    return np.asarray(returns)


@torch.no_grad()
def record_video(agent: Agent, env_cfg: Any, video_dir: Path, seed: int, deterministic: bool = True) -> Path:
    """Record one episode to an mp4 with gymnasium's RecordVideo."""
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    kwargs = dict(env_cfg.kwargs or {})
    if env_cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(env_cfg.max_episode_steps)
    env = RecordVideo(
        gym.make(env_cfg.id, render_mode="rgb_array", **kwargs),
        str(video_dir),
        episode_trigger=lambda i: i == 0,
        name_prefix="eval",
        disable_logger=True,
    )
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = agent.act(np.asarray(obs)[None], deterministic)[0]
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.close()
    videos = sorted(video_dir.glob("eval*.mp4"))
    if not videos:
        raise RuntimeError(f"RecordVideo wrote no mp4 into {video_dir}")
    return videos[-1]
