"""Every experiment recipe (conf/experiment/*.yaml) composes with the real config: a misspelt key,
group or option fails here rather than at a user's first run."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import d2rl
from d2rl.registry import get_algorithm, get_network
from d2rl.train import as_dataclass

EXPERIMENTS = sorted(p.stem for p in (Path(d2rl.__file__).parent / "conf" / "experiment").glob("*.yaml"))


def _leaves(node, prefix: str):  # type: ignore[no-untyped-def]
    """(dotted key, value) of every leaf a recipe sets: a dict merges into the base, so its keys are
    checked one by one rather than the dict as a whole."""
    for key, value in node.items():
        if OmegaConf.is_dict(value):
            yield from _leaves(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_its_keys_exist(name: str) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"])
    recipe = OmegaConf.load(Path(d2rl.__file__).parent / "conf" / "experiment" / f"{name}.yaml")
    # every value the recipe sets arrives in the composed config (nothing shadowed or dropped)
    for group in ("algo", "env", "replay", "trainer", "network"):
        for key, value in _leaves(recipe.get(group) or {}, group):
            assert OmegaConf.select(cfg, key) == value, f"{name}: {key}"
    # and the typed configs accept them (a misspelt algo/network key fails here)
    as_dataclass(get_algorithm(cfg.algo.name).config_class, cfg.algo)
    as_dataclass(get_network(cfg.network.name).config_class, cfg.network)
    source = (Path(d2rl.__file__).parent / "conf" / "experiment" / f"{name}.yaml").read_text()
    assert any(w in source for w in ("et al.", "http", "baselines", "arXiv")), f"{name} cites no source"


@pytest.mark.parametrize("name", ["dqn_atari_nature", "rainbow_atari", "sac_mujoco", "ppo_atari_baselines"])
def test_the_published_protocols_are_there(name: str) -> None:
    assert name in EXPERIMENTS
