"""Hydra search-path plugin: adds the YAML folders that d2rl plugins ship (``config_search_path``
of their specs) to the search path of d2rl's own configs, so ``env=<suite>_<name>``, algorithm
presets and ``tuned/`` files from an installed plugin compose like built-in ones.

Hydra discovers this through the ``hydra_plugins`` namespace package; it acts only when the
primary config is d2rl's (``pkg://d2rl.conf``), so other Hydra apps are untouched.
"""

from __future__ import annotations

import logging

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

log = logging.getLogger(__name__)


def _is_d2rl(path: str | None) -> bool:
    return bool(path) and path.replace("/", ".").rstrip(".").endswith("d2rl.conf")  # type: ignore[union-attr]


class D2RLPluginSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(_is_d2rl(e.path) for e in search_path.get_path()):
            return
        from d2rl.registry import config_search_paths

        known = {e.path for e in search_path.get_path()}
        for path in config_search_paths():
            if path not in known:
                search_path.append(provider="d2rl-plugin", path=path)
