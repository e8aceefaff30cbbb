"""The generator registry: the backends registered under `docqa.generators` (docqa's own as a plugin's are),
built by name from their settings sections."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from indexes.errors import InvalidInput
from service.evidence import EvidenceScorer
from service.generators.base import Generator, generator_plugins

if TYPE_CHECKING:
    from service.settings import GeneratorConfig


class GeneratorRegistry:
    """The generators a deployment enabled; most are built once and shared, those that need the collection's
    evidence scorer (extractive) per question."""

    def __init__(self, config: GeneratorConfig) -> None:
        installed = generator_plugins()
        unknown = sorted((set(config.enabled) | {config.backend}) - set(installed))
        if unknown:
            raise ValueError(f"unknown generator(s) {unknown}; choose from {sorted(installed)}")
        self.config = config
        self.enabled = list(dict.fromkeys([config.backend, *config.enabled]))
        self._plugins = {name: installed[name] for name in self.enabled}
        self._built: dict[str, Generator] = {}
        # one lock per backend: two first requests build it once, and a slow build holds up no other backend
        self._building = {name: threading.Lock() for name in self.enabled}

    def needs_scorer(self, name: str | None) -> bool:
        """Whether the enabled generator called `name` (default: the configured one) is built with a scorer."""
        plugin = self._plugins.get(name or self.config.backend)
        return plugin is not None and plugin.needs_scorer

    def get(self, name: str | None, scorer: EvidenceScorer | None = None) -> Generator:
        """The generator called `name` (default: the configured one); InvalidInput if it is not enabled."""
        name = name or self.config.backend
        if name not in self._plugins:
            raise InvalidInput(f"generator {name!r} is not enabled here; enabled: {self.enabled}")
        plugin = self._plugins[name]
        if plugin.needs_scorer:
            if scorer is None:
                raise ValueError(f"the {name} generator needs the collection's evidence scorer")
            return plugin.build(self.config.section(name), scorer)
        with self._building[name]:
            if name not in self._built:
                self._built[name] = plugin.build(self.config.section(name), None)
            return self._built[name]
