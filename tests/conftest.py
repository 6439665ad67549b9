from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).parent))

import probes
from d2rl.config import register_configs
from d2rl.registry import register_config_nodes

probes.register()
register_configs()
register_config_nodes()

# Small but real runs: no progress bar, no periodic eval, tiny final eval.
FAST = [
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=2",
    "logger.learning_curve=false",
]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the real config (as `d2rl` does) with overrides; output goes to tmp_path/run."""

    def _make(*overrides: str, fast: bool = True, output_dir: Path | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_module("d2rl.conf", version_base="1.3"):
            ov = [*(FAST if fast else []), f"output_dir={output_dir or tmp_path / 'run'}", *overrides]
            return compose("config", overrides=ov)

    return _make
