"""Evaluation: run whole episodes with the (by default deterministic) policy."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.core import Policy
from d2rl.envs import make_vec_env
from d2rl.errors import D2RLError

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


FrameVisitor = Callable[[np.ndarray | None, np.ndarray, Any, np.ndarray], object]


def play_episode(
    policy: Policy,
    env_cfg: Any,
    seed: int,
    deterministic: bool = True,
    view: str | None = "render",
    visit: FrameVisitor | None = None,
) -> tuple[float, int]:
    """Play one evaluation episode in the suite's own env (``make_vec``, ``evaluation=True``).

    Before each agent step ``visit(frame, obs, state, action)`` sees what the agent acted on: the
    frame ``[H, W, 3]`` uint8 (``view="render"``: the suite's full-resolution RGB render;
    ``"network"``: the observation as the network sees it, see ``video.network_view``; None: no
    frame), the observation ``[*obs]``, the policy's recurrent state before the step and the action.
    Returns the undiscounted return and the number of agent steps.
    """
    from d2rl.envs import env_facts
    from d2rl.video import display_available, network_view

    if view not in ("render", "network", None):
        raise D2RLError(f"video.view must be 'render' or 'network', got '{view}'")
    render = view == "render"
    if render and not display_available():  # pygame-drawn envs render off-screen without SDL's complaint
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        envs = make_vec_env(
            env_cfg, seed, num_envs=1, evaluation=True, **({"render_mode": "rgb_array"} if render else {})
        )
    except (gym.error.Error, TypeError, ValueError) as e:  # an env without rgb_array rendering
        raise D2RLError(f"env '{env_cfg.id}' cannot render frames ({str(e).splitlines()[0]})") from e
    actor = Actor(policy, 1, deterministic, envs.single_action_space)
    was_training = policy.training
    policy.eval()
    total, steps = 0.0, 0
    try:
        obs, _ = envs.reset(seed=seed)
        done = False
        while not done:
            frame = None
            if render:
                rendered = envs.render()
                if rendered is None or np.asarray(rendered[0]).ndim != 3:  # type: ignore[index]
                    raise D2RLError(f"env '{env_cfg.id}' renders no RGB frames; use video.view=network")
                frame = np.asarray(rendered[0])  # type: ignore[index]
            elif view == "network":
                frame = network_view(obs[0], env_facts(envs).frame_stack)
            state = actor.state
            action = actor(obs)
            if visit is not None:
                visit(frame, obs[0], state, action[0])
            obs, reward, terminated, truncated, _ = envs.step(action)
            total += float(reward[0])
            steps += 1
            done = bool(terminated[0] or truncated[0])
    finally:
        envs.close()
        policy.train(was_training)
    return total, steps


def render_fps(env_cfg: Any) -> float:
    """Frames per second of a video: the suite's agent-step rate where known, else 30."""
    suite = str(env_cfg.suite)
    if suite == "atari":
        return 15.0  # 60 Hz emulator, 4 frames an agent step
    if suite == "procgen":
        return 15.0
    if suite == "dmc":
        return 50.0 / float(dict(env_cfg.kwargs or {}).get("action_repeat", 1))
    return 30.0


def record_video(
    policy: Policy,
    env_cfg: Any,
    video_dir: Path,
    seed: int,
    deterministic: bool = True,
    view: str = "render",
    name: str = "eval",
    keep_frames: int = 0,
) -> tuple[Path, list[np.ndarray]]:
    """Record one evaluation episode to ``<video_dir>/<name>.mp4``, one frame per agent step.

    ``view="render"``: the suite's full-resolution RGB render; ``view="network"``: the observation
    as the network sees it (e.g. the newest 84x84 grey frame of an Atari stack, scaled up).
    Returns the path and the first ``keep_frames`` frames (for TensorBoard).
    """
    from d2rl.video import VideoWriter

    path = Path(video_dir) / f"{name}.mp4"
    writer = VideoWriter(path, render_fps(env_cfg))
    frames: list[np.ndarray] = []

    def visit(frame: np.ndarray | None, obs: np.ndarray, state: Any, action: np.ndarray) -> None:
        assert frame is not None
        writer.append(frame)
        if len(frames) < keep_frames:
            frames.append(frame)

    try:
        with torch.no_grad():
            play_episode(policy, env_cfg, seed, deterministic, view=view, visit=visit)
    finally:
        if writer.frames:
            writer.close()
    return path, frames
