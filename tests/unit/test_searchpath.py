"""hydra_plugins.d2rl_searchpath: a plugin's config_search_path joins d2rl's Hydra search path."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from d2rl import cli, registry


def test_plugin_yaml_composes_through_the_search_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "fake_world.yaml").write_text("id: FakeWorld-v0\nsuite: fake\nnum_envs: 3\n")
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "ppo_fake_world.yaml").write_text("# @package _global_\nalgo:\n  lr: 0.123\n")
    monkeypatch.setattr(registry, "config_search_paths", lambda: [f"file://{tmp_path}"])
    assert "fake_world" in cli.yaml_options("env") and "cartpole" in cli.yaml_options("env")
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=["env=fake_world"])
        assert cfg.env.id == "FakeWorld-v0" and cfg.env.suite == "fake" and cfg.env.num_envs == 3
        assert cfg.env.vectorization == "sync"  # the EnvConfig schema still types and fills it
        assert cfg.algo.lr == 0.123  # the plugin's tuned/<algo>_<env>.yaml is applied
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(("primary", "added"), [("pkg://d2rl.conf", True), ("pkg://other_app.conf", False)])
def test_acts_only_for_d2rl(primary: str, added: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    from hydra_plugins.d2rl_searchpath.d2rl_searchpath import D2RLPluginSearchPath

    monkeypatch.setattr(registry, "config_search_paths", lambda: ["pkg://some_plugin.conf"])
    sp = ConfigSearchPathImpl()
    sp.append("main", primary)
    D2RLPluginSearchPath().manipulate_search_path(sp)
    paths = [e.path for e in sp.get_path()]
    assert paths == ([primary, "pkg://some_plugin.conf"] if added else [primary])
