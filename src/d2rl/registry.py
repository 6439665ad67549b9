"""The one name -> implementation table, read from Python entry points.

Groups: ``d2rl.algorithms`` (AlgorithmSpec), ``d2rl.networks`` (NetworkSpec) and ``d2rl.envs``
(EnvSuiteSpec). Built-ins register through d2rl's own pyproject.toml, exactly as a plugin does.
A plugin that fails to load is reported by name and skipped; the others keep working. It is
reported by ``d2rl-list`` and when it is selected, never as a warning on every run.

Loading a group imports only the spec modules (config dataclasses and metadata, see
``d2rl.specs``); implementations are imported when chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from d2rl.errors import D2RLError
from d2rl.specs import AlgorithmSpec, EnvSuiteSpec, NetworkSpec

log = logging.getLogger(__name__)

ALGORITHMS = "d2rl.algorithms"
NETWORKS = "d2rl.networks"
ENVS = "d2rl.envs"


SpecT = TypeVar("SpecT", AlgorithmSpec, NetworkSpec, EnvSuiteSpec)
__all__ = ["AlgorithmSpec", "EnvSuiteSpec", "NetworkSpec"]


@dataclass
class Entry(Generic[SpecT]):
    spec: SpecT
    provider: str  # distribution (package) that declared the entry point


@dataclass
class Group(Generic[SpecT]):
    name: str
    entries: dict[str, Entry[SpecT]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # name -> why it could not be loaded

    def get(self, name: str, what: str) -> SpecT:
        if name in self.entries:
            return self.entries[name].spec
        if name in self.broken:
            raise D2RLError(self.broken[name])
        known = ", ".join(sorted(self.entries)) or "none"
        raise D2RLError(f"unknown {what} '{name}'; registered: {known} (see `d2rl-list`)")


_SPEC_TYPES: dict[str, Any] = {
    ALGORITHMS: (AlgorithmSpec,),
    NETWORKS: (NetworkSpec,),
    ENVS: (EnvSuiteSpec,),
}
_REQUIRED = {
    ALGORITHMS: ("config_class", "builder", "action_spaces"),
    NETWORKS: ("config_class", "builder"),
    ENVS: ("make_vec",),
}


def _provider(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "unknown"


def _load(group: str, ep: EntryPoint) -> Any:
    spec: Any = ep.load()
    if not isinstance(spec, _SPEC_TYPES[group]):
        missing = [f for f in _REQUIRED[group] if not hasattr(spec, f)]
        raise TypeError(
            f"is a {type(spec).__name__}, expected d2rl.specs.{_SPEC_TYPES[group][0].__name__}"
            + (f" (missing {', '.join(missing)})" if missing else "")
        )
    if spec.name != ep.name:
        raise TypeError(f"declares name '{spec.name}' but its entry point is called '{ep.name}'")
    path = spec.config_search_path
    if path and path.startswith("pkg://"):
        import importlib.util

        package = path[len("pkg://") :].replace("/", ".")
        try:
            found = importlib.util.find_spec(package) is not None
        except ImportError:
            found = False
        if not found:
            raise TypeError(f"config_search_path '{path}' does not resolve (no package '{package}')")
    return spec


@functools.cache
def load_group(group: str) -> Group[Any]:
    """Load every entry point of ``group``; failures are reported by plugin name, not raised."""
    out: Group[Any] = Group(group)
    providers: dict[str, list[str]] = {}
    eps = list(entry_points(group=group))
    for ep in eps:
        providers.setdefault(ep.name, []).append(_provider(ep))
    for ep in eps:
        if ep.name in out.broken or ep.name in out.entries:
            continue
        names = providers[ep.name]
        if len(set(names)) > 1:
            out.broken[ep.name] = (
                f"'{ep.name}' in {group} is registered by several packages ({', '.join(sorted(set(names)))});"
                " uninstall one of them"
            )
        else:
            try:
                out.entries[ep.name] = Entry(_load(group, ep), names[0])
                continue
            except Exception as e:  # a broken plugin must not take the others down
                out.broken[ep.name] = (
                    f"plugin '{ep.name}' from package '{names[0]}' ({ep.value}) failed to load: "
                    f"{type(e).__name__}: {e}"
                )
        log.debug(out.broken[ep.name])
    return out


def algorithms() -> Group[AlgorithmSpec]:
    return load_group(ALGORITHMS)


def networks() -> Group[NetworkSpec]:
    return load_group(NETWORKS)


def env_suites() -> Group[EnvSuiteSpec]:
    return load_group(ENVS)


def get_algorithm(name: str) -> AlgorithmSpec:
    return algorithms().get(name, "algorithm")


def get_network(name: str) -> NetworkSpec:
    return networks().get(name, "network")


def get_env_suite(name: str) -> EnvSuiteSpec:
    return env_suites().get(name, "env suite")


def config_search_paths() -> list[str]:
    """Hydra search-path entries (``pkg://...``/``file://...``) that loaded plugins ship YAML in."""
    paths: list[str] = []
    for group in (ALGORITHMS, NETWORKS, ENVS):
        for entry in load_group(group).entries.values():
            path = entry.spec.config_search_path
            if path and path not in paths:
                paths.append(path)
    return paths


def yaml_files(group: str) -> dict[str, Any]:
    """``{name: file}`` of the YAML configs of ``group`` in d2rl's conf/ and every plugin's search
    path (the first found wins, as in Hydra's search path)."""
    from importlib.resources import files
    from pathlib import Path

    dirs: list[Any] = [Path(__file__).parent / "conf" / group]
    for path in config_search_paths():
        scheme, _, where = path.partition("://")
        try:
            dirs.append(files(where) / group if scheme == "pkg" else Path(where) / group)
        except (ImportError, TypeError):  # a plugin's missing package: Hydra reports it when composing
            continue
    out: dict[str, Any] = {}
    for base in dirs:
        if base.is_dir():
            for f in base.iterdir():
                if f.name.endswith(".yaml"):
                    out.setdefault(f.name[: -len(".yaml")], f)
    return out


def preset_bases(group: str = "algo") -> dict[str, str]:
    """``{preset: algorithm}`` for the algo YAML presets (``rainbow`` -> ``dqn``), followed through
    presets of presets to the registered algorithm their defaults list starts from; with
    ``group="env"``, ``{env preset: the suite preset it is built on}`` (``procgen_coinrun`` -> ``procgen``)."""
    import yaml

    direct: dict[str, str] = {}
    for name, f in yaml_files(group).items():
        try:
            defaults = (yaml.safe_load(f.read_text()) or {}).get("defaults") or []
        except (OSError, yaml.YAMLError):
            continue
        first = next((d for d in defaults if isinstance(d, str) and d != "_self_"), None)
        if first:
            direct[name] = first
    out = {}
    for name, base in direct.items():
        seen = {name}
        while base in direct and base not in seen:
            seen.add(base)
            base = direct[base]
        out[name] = base
    return out


def register_config_nodes() -> list[str]:
    """Store each algorithm's and network's config dataclass in Hydra's ConfigStore.

    ``algo=<name>`` and ``network=<name>`` then compose (and validate) with no YAML file. An
    algorithm's ``default_network`` becomes an override in its ``algo`` node (pixel env presets,
    later in the defaults list, and ``network=`` win over it); its ``env_defaults`` an
    ``algo_env/<name>`` node (also for its presets); a ``tuned/<algo>_<env>`` file also applies to
    the algorithm's presets that have none of their own, and to the env presets built on ``<env>``
    (``tuned/ppo_procgen.yaml`` -> ``ppo_procgen_coinrun``, ...) that have none of their own. Returns the extra config search paths
    plugins ask for (added to Hydra's search path by ``hydra_plugins.d2rl_searchpath``).
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cs = ConfigStore.instance()
    algos = algorithms().entries
    for name, entry in algos.items():
        node = _node(entry.spec.config_class, name)
        default_network = getattr(entry.spec, "default_network", None)
        if default_network:
            cs.store(group="algo_schema", name=name, node=node, package="algo")
            overrides = [{"/algo_schema": name}, {"override /network@_global_.network": default_network}]
            cs.store(group="algo", name=name, node={"defaults": [*overrides, "_self_"]})
        else:
            cs.store(group="algo", name=name, node=node)
    for name, nentry in networks().entries.items():
        cs.store(group="network", name=name, node=_node(nentry.spec.config_class, name))
    presets = preset_bases()
    for alias, base in [(n, n) for n in algos] + list(presets.items()):
        env_defaults = getattr(algos[base].spec, "env_defaults", None) if base in algos else None
        if env_defaults:
            cs.store(group="algo_env", name=alias, package="_global_", node={"env": dict(env_defaults)})
    tuned = yaml_files("tuned")
    names = sorted({*algos, *presets}, key=len, reverse=True)
    owner = {t: next((n for n in names if t.startswith(n + "_")), None) for t in tuned}  # longest prefix
    for preset, base in presets.items():
        for tname, f in tuned.items():
            if owner[tname] == base and f"{preset}{tname[len(base) :]}" not in tuned:
                node = OmegaConf.create(f.read_text())
                cs.store(group="tuned", name=f"{preset}{tname[len(base) :]}", package="_global_", node=node)
    # per-suite defaults: tuned/<algo>_<env> also tunes the env presets derived from <env>
    env_bases = preset_bases("env")
    for tname, f in tuned.items():
        algo = owner[tname]
        if algo is None:
            continue
        env = tname[len(algo) + 1 :]
        for derived, base in env_bases.items():
            if base == env and f"{algo}_{derived}" not in tuned:
                node = OmegaConf.create(f.read_text())
                cs.store(group="tuned", name=f"{algo}_{derived}", package="_global_", node=node)
    return config_search_paths()


def _node(config_class: type, name: str) -> Any:
    if not dataclasses.is_dataclass(config_class):
        raise D2RLError(f"config_class of '{name}' must be a dataclass")
    node: Any = config_class()
    if not hasattr(node, "name"):
        raise D2RLError(f"config_class of '{name}' needs a `name: str` field")
    node.name = name
    return node
