from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from d2rl.config import register_configs
from d2rl.registry import register_config_nodes

register_configs()
register_config_nodes()


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose d2rl's real config (with this plugin's YAML on the search path) plus overrides."""

    def _make(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_module("d2rl.conf", version_base="1.3"):
            fast = [
                "trainer.progress_bar=false",
                "trainer.eval_period_env_steps=0",
                "logger.learning_curve=false",
                "logger.tensorboard=false",
                f"output_dir={tmp_path / 'run'}",
            ]
            return compose("config", overrides=[*fast, *overrides])

    return _make
