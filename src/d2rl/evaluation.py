"""Evaluation: run whole episodes with the (by default deterministic) policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.core import Policy
from d2rl.envs import make_vec_env

END_OF_TRAINING = 1 << 62  # the env_step stochastic evaluation acts at: schedules at their final values


def as_obs_tensor(obs: np.ndarray) -> torch.Tensor:
    """Env observations -> a tensor: uint8 pixels stay uint8, everything else float32."""
    t = torch.as_tensor(obs)
    return t if t.dtype in (torch.uint8, torch.float32) else t.float()


class Actor:
    """Acts with a Policy on numpy observations, carrying recurrent state across steps."""

    def __init__(self, policy: Policy, num_envs: int, deterministic: bool, action_space: gym.Space) -> None:
        self.policy, self.deterministic = policy, deterministic
        self.state = policy.initial_state(num_envs)
        box = isinstance(action_space, gym.spaces.Box)
        self.bounds = (action_space.low, action_space.high) if box else None  # type: ignore[attr-defined]

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        # stochastic evaluation explores as at the end of training (e.g. DQN: the final epsilon)
        action, _, self.state = self.policy.act(
            as_obs_tensor(obs), self.state, not self.deterministic, END_OF_TRAINING
        )
        out = action.numpy()
        return np.clip(out, *self.bounds) if self.bounds is not None else out

    def episode_ended(self, done: np.ndarray) -> None:
        if self.state is not None and done.any():
            self.state = self.policy.reset_state(self.state, torch.from_numpy(done))


@torch.no_grad()
def evaluate(
    policy: Policy, env_cfg: Any, episodes: int, seed: int, deterministic: bool = True, max_envs: int = 16
) -> np.ndarray:
    """Returns the undiscounted, unclipped return of each of ``episodes`` whole episodes.

    Each env of the eval vector env plays exactly one episode per round, so short episodes
    are not over-represented. The policy acts in eval mode (batch norm, dropout).
    """
    returns: list[float] = []
    round_ = 0
    was_training = policy.training
    policy.eval()
    try:
        while len(returns) < episodes:
            n = min(max_envs, episodes - len(returns))
            envs = make_vec_env(env_cfg, seed + 1000 * round_, num_envs=n, evaluation=True)
            actor = Actor(policy, n, deterministic, envs.single_action_space)
            obs, _ = envs.reset(seed=seed + 1000 * round_)
            ep_ret = np.zeros(n)
            active = np.ones(n, dtype=bool)
            while active.any():
                obs, reward, terminated, truncated, _ = envs.step(actor(obs))
                ep_ret += reward * active
                done = terminated | truncated
                active &= ~done
                actor.episode_ended(done)
            envs.close()
            returns.extend(ep_ret.tolist())
            round_ += 1
    finally:
        policy.train(was_training)
    return np.asarray(returns)


@torch.no_grad()
def record_video(
    policy: Policy, env_cfg: Any, video_dir: Path, seed: int, deterministic: bool = True
) -> Path:
    """Record one episode to an mp4 with gymnasium's RecordVideo."""
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
    actor = Actor(policy, 1, deterministic, env.action_space)
    was_training = policy.training
    policy.eval()
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = actor(np.asarray(obs)[None])[0]
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.close()
    policy.train(was_training)
    videos = sorted(video_dir.glob("eval*.mp4"))
    if not videos:
        raise RuntimeError(f"RecordVideo wrote no mp4 into {video_dir}")
    return videos[-1]
