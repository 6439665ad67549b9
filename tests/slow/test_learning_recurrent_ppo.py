"""Recurrent PPO learning tests: tasks that need memory, solved with a core and not without one at
the same budget. Both assert the FINAL policy's return (train()'s final evaluation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from d2rl.train import train

FAST = ["trainer.torch_threads=1", "logger.tensorboard=false"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_memory_cue_length_10_needs_the_core(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, seed: int
) -> None:
    """env=memory_cue (length 10) with tuned/ppo_memory_cue.yaml (8000 env steps, 100 final eval
    episodes). Measured here: recurrent 1.0 for seeds 1, 2, 3; feed-forward
    0.06, -0.08, -0.04 (seeds 1, 2, 3)."""
    recurrent = train(make_cfg("algo=recurrent_ppo", "env=memory_cue", *FAST, f"seed={seed}"))
    assert recurrent["eval/return_mean"] >= 0.9
    feed_forward = train(
        make_cfg("algo=ppo", "env=memory_cue", *FAST, f"seed={seed}", output_dir=tmp_path / "ff")
    )
    assert feed_forward["eval/return_mean"] <= 0.3


CARTPOLE_POSITIONS = [
    "env=cartpole_positions",
    "algo.num_steps=32",
    "algo.num_minibatches=1",
    "algo.update_epochs=10",
    "algo.gae_lambda=0.9",
    "algo.gamma=0.98",
    "algo.ent_coef=0.0",
    "algo.lr=1e-3",
    "network.core_size=64",
    "trainer.total_env_steps=100000",
    "trainer.final_eval_episodes=20",
    "trainer.eval_period_env_steps=0",
    "trainer.checkpoint_period_env_steps=0",
]


@pytest.mark.slow
def test_cartpole_positions_needs_the_core(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """CartPole-v1 with the velocities hidden, 8 envs, 100k env steps, the same PPO settings with and
    without an LSTM core (64 units; separate actor and critic networks). Final policy, 20
    deterministic episodes. Measured here: recurrent 232.6 (seed 1; min 151, max 500) and 500.0
    (seed 2); feed-forward 43.65 (seed 1; max 63) and 46.55 (seed 2). Seed 1's training returns peaked near 450 at
    ~40k steps and fell back, so the threshold is 150 (not the 475 of "solved"); feed-forward must
    stay <= 100."""
    recurrent = train(make_cfg("algo=recurrent_ppo", *CARTPOLE_POSITIONS, *FAST, "seed=1"))
    feed_forward = train(
        make_cfg("algo=ppo", *CARTPOLE_POSITIONS, *FAST, "seed=1", output_dir=tmp_path / "ff")
    )
    assert recurrent["eval/return_mean"] >= 150.0
    assert feed_forward["eval/return_mean"] <= 100.0
