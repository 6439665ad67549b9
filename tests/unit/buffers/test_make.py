"""make_replay: frame dedup only where the suite declares a frame stack, never from a shape."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from d2rl.buffers import make_replay
from d2rl.buffers.prioritized import PrioritizedReplayBuffer
from d2rl.config import ReplayConfig
from d2rl.envs import EnvFacts


def _space(shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, shape, np.uint8)


@pytest.mark.parametrize(
    ("shape", "facts", "dedup", "frame_stack"),
    [
        ((3, 64, 64), EnvFacts(pixels=True, rgb=True), True, 1),  # Procgen RGB: not a stack
        ((3, 96, 96), EnvFacts(pixels=True, rgb=True), True, 1),  # CarRacing RGB
        ((4, 84, 84), EnvFacts(pixels=True, frame_stack=4, lives=True), True, 4),  # Atari
        ((4, 84, 84), EnvFacts(pixels=True, frame_stack=4), False, 1),  # dedup_frames=false
        ((4, 84, 84), EnvFacts(), True, 1),  # a plugin that declares nothing: no guessing
        ((12, 96, 96), EnvFacts(pixels=True, rgb=True, frame_stack=4), True, 4),  # 4 RGB frames
    ],
)
def test_dedup_follows_the_declared_frame_stack(
    shape: tuple[int, ...], facts: EnvFacts, dedup: bool, frame_stack: int
) -> None:
    cfg = ReplayConfig(kind="uniform", capacity=100, dedup_frames=dedup)
    buf = make_replay(cfg, _space(shape), gym.spaces.Discrete(3), 2, n_step=3, gamma=0.9, facts=facts)
    assert buf.frame_stack == frame_stack and buf.obs_shape == shape
    assert (buf.n_step, buf.gamma, buf.num_envs) == (3, 0.9, 2)
    assert buf.obs[0, 0].size * frame_stack == np.prod(shape)  # one frame per row when deduped


def test_prioritized_and_box_actions() -> None:
    cfg = ReplayConfig(kind="prioritized", capacity=100, alpha=0.5)
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buf = make_replay(cfg, gym.spaces.Box(-1, 1, (5,), np.float32), space, 1, 1, 0.99, EnvFacts(), seed=3)
    assert isinstance(buf, PrioritizedReplayBuffer) and buf.alpha == 0.5
    assert buf.action.shape[2:] == (2,) and buf.action.dtype == np.float32


def test_prioritized_beta_is_annealed_by_progress() -> None:
    """beta goes linearly from replay.beta_initial to replay.beta_final as the Loop reports progress."""
    cfg = ReplayConfig(kind="prioritized", capacity=100, beta_initial=0.4, beta_final=1.0)
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buf = make_replay(cfg, space, gym.spaces.Discrete(2), 1, 1, 0.99, EnvFacts())
    assert isinstance(buf, PrioritizedReplayBuffer) and buf.beta == 0.4
    buf.set_progress(0.5)
    assert buf.beta == pytest.approx(0.7)
    buf.set_progress(1.5)  # clamped
    assert buf.beta == 1.0


def test_observations_are_stored_as_the_loop_sees_them() -> None:
    """uint8 pixels stay uint8; float64 states (MuJoCo) are stored as float32, as the Loop acts on them."""
    cfg = ReplayConfig(kind="uniform", capacity=10)
    act = gym.spaces.Discrete(2)
    f64 = make_replay(cfg, gym.spaces.Box(-1, 1, (3,), np.float64), act, 1, 1, 0.99, EnvFacts())
    assert f64.obs.dtype == np.float32
    pix = make_replay(cfg, _space((3, 8, 8)), act, 1, 1, 0.99, EnvFacts(pixels=True))
    assert pix.obs.dtype == np.uint8
