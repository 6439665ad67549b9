"""train(cfg) smoke runs on the pixel suites: a few hundred PPO steps each, through the real config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from d2rl.registry import algorithms
from d2rl.train import train

SHORT = [
    "~tuned",
    "env.num_envs=4",
    "algo.num_steps=32",
    "algo.update_epochs=1",
    "algo.num_minibatches=2",
    "trainer.total_env_steps=256",
    "trainer.final_eval_episodes=1",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.torch_threads=1",
]

RUNS = {
    "atari_pong": ("ale_py", ["network=nature_cnn"]),
    "procgen_coinrun": ("procgen", ["network=impala_resnet"]),
    # 200-frame episodes keep the final evaluation short
    "carracing": ("Box2D", ["network=nature_cnn", "env.max_episode_steps=200"]),
}


@pytest.mark.parametrize("env", sorted(RUNS))
def test_ppo_smoke(make_cfg, tmp_path: Path, env: str) -> None:  # type: ignore[no-untyped-def]
    module, extra = RUNS[env]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    out = train(make_cfg(f"env={env}", *SHORT, *extra))
    assert out["env_steps"] == 256
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_eval"]["episodes"] == 1
    assert summary["network"] in ("nature_cnn", "impala_resnet")


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale_py not installed")
def test_dqn_smoke_on_atari(make_cfg) -> None:  # type: ignore[no-untyped-def]
    if "dqn" not in algorithms().entries:
        pytest.skip("algo=dqn has not landed yet")
    out = train(
        make_cfg(
            "algo=dqn",
            "env=atari_pong",
            "network=nature_cnn",
            "~tuned",
            "env.num_envs=4",
            "trainer.total_env_steps=512",
            "trainer.final_eval_episodes=1",
            "trainer.checkpoint_period_env_steps=0",
        )
    )
    assert out["env_steps"] >= 512


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale_py not installed")
def test_mlp_on_pixels_is_a_user_error(make_cfg) -> None:  # type: ignore[no-untyped-def]
    from d2rl.errors import D2RLError

    with pytest.raises(D2RLError, match="network=nature_cnn"):
        train(make_cfg("env=atari_pong", "network=mlp", "~tuned", "env.num_envs=1"))
