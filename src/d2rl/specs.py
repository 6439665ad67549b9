"""What an algorithm, network or env suite declares to the registry.

Cheap to import on purpose (no torch, no lightning): ``d2rl --help``, ``d2rl-list`` and config
errors read only these. The heavy implementation is named by a ``"package.module:function"``
string and imported only when it is chosen (``load``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

OBSERVATION_KINDS = ("vector", "pixels")


def load(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """``"pkg.module:attr"`` -> the attribute (imported now); a callable is returned as is."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"'{ref}' is not a 'package.module:function' reference")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm: its config dataclass and a builder.

    ``builder`` (``"pkg.module:build"``) is called as ``build(cfg, ctx)`` with the algorithm's
    config dataclass and a ``d2rl.core.BuildContext``, and returns a ``d2rl.core.Built``
    (Learner holding its Policy, Storage, schedule). ``env_defaults`` are ``env.*`` values the
    algorithm prefers (e.g. A2C's ``{"num_envs": 8}``) over env presets' values; tuned files and
    the command line override them. ``default_network`` is the network used when neither the env
    preset (pixel suites pick theirs) nor ``network=`` names one.
    """

    name: str
    config_class: type
    builder: str | Callable[..., Any]
    action_spaces: tuple[str, ...]  # of "discrete", "box", "multi_discrete", "multi_binary"
    observations: tuple[str, ...] = OBSERVATION_KINDS  # what it learns from: "vector", "pixels"
    env_defaults: Mapping[str, Any] = field(default_factory=dict)
    default_network: str | None = None  # e.g. "identity"; pixel env presets and network= override it
    recurrent: bool = False  # it can use a recurrent core (network.core=lstm|gru|dnc|transformer)
    description: str = ""
    config_search_path: str | None = None  # e.g. "pkg://my_plugin.conf": extra YAML presets

    def build(self, cfg: Any, ctx: Any) -> Any:
        return load(self.builder)(cfg, ctx)


@dataclass(frozen=True)
class NetworkSpec:
    """A network family: ``builder(cfg, obs_shape) -> nn.Module`` mapping ``[B, *obs_shape]`` to
    features ``[B, module.out_dim]``; ``accepts`` names the observation kinds it takes."""

    name: str
    config_class: type
    builder: str | Callable[..., Any]
    accepts: tuple[str, ...] = ("vector",)
    description: str = ""
    config_search_path: str | None = None

    def build(self, cfg: Any, obs_shape: tuple[int, ...]) -> Any:
        return load(self.builder)(cfg, obs_shape)


@dataclass(frozen=True)
class EnvSuiteSpec:
    """An environment suite: ``make_vec(env_cfg, num_envs, render_mode=None, evaluation=False)``
    returns a ``gymnasium.vector.VectorEnv`` in SAME_STEP autoreset mode (final obs in
    ``info["final_obs"]``) with its ``d2rl.envs.EnvFacts`` in the attribute ``d2rl_facts``.

    ``smoke`` lists override strings (``"env=atari_breakout env.kwargs.backend=gymnasium"``) that
    the algorithm x suite smoke matrix runs: a suite joins the matrix by declaring them.
    """

    name: str
    make_vec: str | Callable[..., Any]
    requires: tuple[str, ...] = ()  # importable modules the suite needs
    install_hint: str = ""
    description: str = ""
    config_search_path: str | None = None  # e.g. "pkg://my_plugin.conf" holding env/<suite>_<name>.yaml
    smoke: tuple[str, ...] = ()

    def make(self, env_cfg: Any, num_envs: int, **kwargs: Any) -> Any:
        return load(self.make_vec)(env_cfg, num_envs, **kwargs)
