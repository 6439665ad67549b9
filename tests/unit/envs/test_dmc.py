"""The dmc suite: flattened state obs, SAME_STEP autoreset with final obs, time-limit truncation."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("dm_control")

from d2rl.envs import make_vec_env
from d2rl.errors import D2RLError


def _cfg(env_id: str = "cartpole-swingup", **kw):  # type: ignore[no-untyped-def]
    base = {
        "id": env_id,
        "suite": "dmc",
        "num_envs": 2,
        "vectorization": "sync",
        "max_episode_steps": None,
        "kwargs": {},
    }
    base.update(kw)
    return OmegaConf.create(base)


def test_state_obs_are_flat_and_episodes_truncate_with_final_obs() -> None:
    envs = make_vec_env(_cfg(max_episode_steps=3), seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 5) and obs.dtype == np.float32  # cartpole: position 3 + velocity 2
    assert envs.single_action_space.shape == (1,)
    for _t in range(3):
        obs, reward, terminated, truncated, info = envs.step(np.zeros((2, 1), np.float32))
        assert reward.shape == (2,)
    assert truncated.all() and not terminated.any()
    assert info["final_obs"][0].shape == (5,)
    assert not np.array_equal(info["final_obs"][0], obs[0])  # obs is the next episode's first
    envs.close()


def test_dm_control_time_limit_is_a_truncation_and_action_repeat_shortens_it() -> None:
    envs = make_vec_env(_cfg(num_envs=1, kwargs={"action_repeat": 8}), seed=0)
    envs.reset(seed=0)
    ends = []
    for _ in range(125):  # 1000 control steps / 8
        _, _, terminated, truncated, _ = envs.step(np.zeros((1, 1), np.float32))
        ends.append(bool(terminated[0] or truncated[0]))
    assert ends == [False] * 124 + [True]
    assert truncated[0] and not terminated[0]
    envs.close()


def test_seeded_resets_repeat() -> None:
    a = make_vec_env(_cfg(), seed=0).reset(seed=3)[0]
    b = make_vec_env(_cfg(), seed=0).reset(seed=3)[0]
    np.testing.assert_array_equal(a, b)


def test_unknown_task_and_option_are_clear_errors() -> None:
    with pytest.raises(D2RLError, match="unknown dm_control task"):
        make_vec_env(_cfg("cartpole-fly"), seed=0)
    with pytest.raises(D2RLError, match="unknown dmc option"):
        make_vec_env(_cfg(kwargs={"pixel": True}), seed=0)


def test_pixel_observations() -> None:
    try:
        envs = make_vec_env(_cfg(num_envs=1, kwargs={"pixels": True, "image_size": 32}), seed=0)
        obs, _ = envs.reset(seed=0)
    except Exception as e:  # no headless OpenGL (EGL) on this machine
        pytest.skip(f"MuJoCo rendering unavailable: {e}")
    assert obs.shape == (1, 3, 32, 32) and obs.dtype == np.uint8 and obs.max() > 0
    envs.close()
