"""Plugins: each kind of backend is an entry-point group, and docqa's own backends are entry points too.

`docqa.stores` (by URL scheme), `docqa.embedders`, `docqa.parsers`, `docqa.generators`, `docqa.rerankers` and
`docqa.engines` (ingest engines: local, ray) hold
`name = module:object` entries. docqa declares its built-ins in its pyproject.toml exactly as a third-party
package declares its own, and they are found and loaded the same way, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from indexes.errors import PluginError

OWN = "docqa"  # the distribution whose entry points are the built-ins
STORES, EMBEDDERS, PARSERS, GENERATORS = "docqa.stores", "docqa.embedders", "docqa.parsers", "docqa.generators"
ENGINES, RERANKERS = "docqa.engines", "docqa.rerankers"
GROUPS = (STORES, EMBEDDERS, PARSERS, GENERATORS, RERANKERS, ENGINES)


@dataclass(frozen=True)
class Plugin:
    """One registered entry point: its group, name, `module:object` path and the distribution declaring it."""

    group: str
    name: str
    value: str
    distribution: str

    def load(self) -> Any:
        """The object the entry point names; PluginError, naming the plugin, if it cannot be imported."""
        try:
            return EntryPoint(self.name, self.value, self.group).load()
        except Exception as exc:  # an import error or a bug in someone's package: say whose, and what
            raise PluginError(f"{self.group} plugin {self.name!r} ({self.value}, from {self.distribution}) "
                              f"failed to load: {type(exc).__name__}: {exc}") from exc


def registered(group: str) -> list[Plugin]:
    """A group's entry points, not loaded: docqa's own first, then the others by distribution and name."""
    plugins = [Plugin(group, p.name, p.value, p.dist.name if p.dist else "unknown") for p in entry_points(group=group)]
    return sorted(plugins, key=lambda p: (p.distribution != OWN, p.distribution, p.name))


@cache
def load(group: str) -> dict[str, Any]:
    """Every plugin of a group by name, loaded once per process; another package's plugin of a built-in's name
    replaces the built-in. PluginError if one fails to load, or if there are none (docqa is not installed)."""
    plugins = registered(group)
    if not plugins:
        raise PluginError(f"no {group} plugins are registered, not even docqa's own: install docqa (pip install -e .)")
    return {plugin.name: plugin.load() for plugin in plugins}
