"""Videos of every suite (d2rl/evaluation.py record_video): the mp4 decodes, has one frame per agent
step of the episode, at the suite's full render resolution (or the network's view)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from d2rl.envs import make_vec_env
from d2rl.evaluation import play_episode, record_video
from d2rl.train import build_algorithm


def decode(path: Path) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def untrained_policy(cfg: DictConfig):  # type: ignore[no-untyped-def]
    envs = make_vec_env(cfg.env, 0, num_envs=1)
    try:
        built, _ = build_algorithm(cfg, envs, 0)
    finally:
        envs.close()
    return built.policy


# (overrides, python module the suite needs, render frame shape [H, W] (even-padded), deterministic)
SUITES = {
    "classic": (["env=cartpole", "env.max_episode_steps=25"], "pygame", (400, 600), True),
    "atari_native": (
        ["env=atari_pong", "env.kwargs.backend=native", "env.max_episode_steps=30"],
        "ale_py",
        (210, 160),
        True,
    ),
    "atari_gymnasium": (
        ["env=atari_breakout", "env.kwargs.backend=gymnasium", "env.max_episode_steps=30"],
        "ale_py",
        (210, 160),
        True,
    ),
    # procgen refuses env.max_episode_steps; in leaper a stochastic untrained agent dies within ~250 steps
    "procgen": (
        ["env=procgen_leaper", "env.kwargs.distribution_mode=easy", "network=nature_cnn"],
        "procgen",
        (512, 512),
        False,
    ),
    "dmc": (["env=dmc_cartpole_swingup", "env.max_episode_steps=20"], "dm_control", (240, 320), True),
    "carracing": (["env=carracing", "env.max_episode_steps=20"], "Box2D", (400, 600), True),
}


@pytest.fixture(autouse=True)
def one_torch_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # pixel networks on a busy CI machine: threads only contend
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("suite", list(SUITES))
def test_video_of_every_suite(suite: str, make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    overrides, module, shape, deterministic = SUITES[suite]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    cfg = make_cfg("algo=ppo", "env.num_envs=1", *overrides)
    policy = untrained_policy(cfg)
    torch.manual_seed(0)
    _, steps = play_episode(policy, cfg.env, seed=7, deterministic=deterministic, view=None)
    torch.manual_seed(0)
    path, kept = record_video(policy, cfg.env, tmp_path / "videos", 7, deterministic, keep_frames=3)
    frames = decode(path)
    assert len(frames) == steps > 1  # one frame per agent step: what the agent acted on
    assert frames[0].shape[:2] == shape  # the full-resolution render, not the network's input
    assert len(kept) == 3 and kept[0].shape[:2] == shape
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0  # the picture moves


def test_network_view_of_atari(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    if importlib.util.find_spec("ale_py") is None:
        pytest.skip("ale_py not installed")
    cfg = make_cfg("algo=ppo", "env=atari_pong", "env.num_envs=1", "env.max_episode_steps=12")
    path, _ = record_video(untrained_policy(cfg), cfg.env, tmp_path, 3, view="network", name="net")
    frames = decode(path)
    assert len(frames) == 12 and frames[0].shape == (336, 336, 3)  # the 84x84 grey frame, scaled 4x
    assert (frames[0][..., 0].astype(int) - frames[0][..., 2].astype(int)).std() < 3  # grey
