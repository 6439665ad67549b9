from importlib.metadata import EntryPoint

import pytest

from d2rl import registry
from d2rl.algorithms.ppo import SPEC as PPO_SPEC
from d2rl.errors import D2RLError


def test_builtins_come_from_entry_points() -> None:
    algos = registry.algorithms()
    assert algos.entries["ppo"].spec is PPO_SPEC
    assert algos.entries["ppo"].provider == "d2rl"
    assert "mlp" in registry.networks().entries
    assert "gym" in registry.env_suites().entries


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(D2RLError, match="unknown algorithm 'nope'.*ppo"):
        registry.get_algorithm("nope")


def _group_with(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> registry.Group:
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    registry.load_group.cache_clear()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a broken plugin is reported by name, never as a warning
            return registry.load_group(registry.ALGORITHMS)
    finally:
        monkeypatch.undo()
        registry.load_group.cache_clear()


def test_broken_plugin_is_named_and_others_survive(monkeypatch: pytest.MonkeyPatch) -> None:
    good = EntryPoint("ppo", "d2rl.algorithms.ppo:SPEC", registry.ALGORITHMS)
    bad = EntryPoint("broken", "no_such_module_xyz:SPEC", registry.ALGORITHMS)
    wrong = EntryPoint("wrong", "d2rl.networks:MLP", registry.ALGORITHMS)  # a NetworkSpec
    group = _group_with(monkeypatch, [good, bad, wrong])
    assert "ppo" in group.entries
    with pytest.raises(D2RLError, match="plugin 'broken'.*failed to load.*ModuleNotFoundError"):
        group.get("broken", "algorithm")
    with pytest.raises(D2RLError, match="plugin 'wrong'.*expected d2rl.specs.AlgorithmSpec"):
        group.get("wrong", "algorithm")


def test_duplicate_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Dist:
        def __init__(self, name: str) -> None:
            self.name = name

    a = EntryPoint("ppo", "d2rl.algorithms.ppo:SPEC", registry.ALGORITHMS)._for(Dist("pkg-a"))  # type: ignore[attr-defined]
    b = EntryPoint("ppo", "d2rl.algorithms.ppo:SPEC", registry.ALGORITHMS)._for(Dist("pkg-b"))  # type: ignore[attr-defined]
    group = _group_with(monkeypatch, [a, b])
    with pytest.raises(D2RLError, match="registered by several packages.*pkg-a, pkg-b"):
        group.get("ppo", "algorithm")


def test_config_search_path_that_does_not_resolve_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses
    import sys
    import types

    from d2rl.algorithms.a2c import SPEC as A2C

    mod = types.ModuleType("d2rl_fake_plugin_xyz")
    mod.SPEC = dataclasses.replace(A2C, name="fake", config_search_path="pkg://no_such_pkg_xyz.conf")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "d2rl_fake_plugin_xyz", mod)
    group = _group_with(monkeypatch, [EntryPoint("fake", "d2rl_fake_plugin_xyz:SPEC", registry.ALGORITHMS)])
    with pytest.raises(D2RLError, match="config_search_path 'pkg://no_such_pkg_xyz.conf' does not resolve"):
        group.get("fake", "algorithm")


def test_presets_follow_their_algorithm() -> None:
    bases = registry.preset_bases()
    assert bases["rainbow"] == "dqn" and bases["miqn"] == "dqn"
