"""The generator registry: backends built by name from settings; built-ins register as a plugin would."""

from __future__ import annotations

import threading
from typing import Callable

from indexes.errors import InvalidInput
from service.evidence import EvidenceScorer
from service.generators.base import NOT_IN_DOCUMENTS, Generator, Passage
from service.settings import GeneratorConfig


def _extractive(config: GeneratorConfig, scorer: EvidenceScorer | None) -> Generator:
    from service.generators.extractive import ExtractiveGenerator

    return ExtractiveGenerator(scorer=scorer)


def _openai(config: GeneratorConfig, scorer: EvidenceScorer | None) -> Generator:
    from service.generators.openai_compat import OpenAICompatibleGenerator

    return OpenAICompatibleGenerator.from_config(config.openai)


def _llamacpp(config: GeneratorConfig, scorer: EvidenceScorer | None) -> Generator:
    from service.generators.llamacpp import LlamaCppGenerator

    return LlamaCppGenerator.from_config(config.llamacpp)


def _bedrock(config: GeneratorConfig, scorer: EvidenceScorer | None) -> Generator:
    from service.generators.bedrock import BedrockGenerator

    return BedrockGenerator.from_config(config.bedrock)


GENERATORS: dict[str, Callable[[GeneratorConfig, EvidenceScorer | None], Generator]] = {
    "extractive": _extractive,
    "openai": _openai,
    "llamacpp": _llamacpp,
    "bedrock": _bedrock,
}


class GeneratorRegistry:
    """The generators a deployment enabled; LLM backends are built once and shared, extractive per scorer."""

    def __init__(self, config: GeneratorConfig) -> None:
        unknown = sorted((set(config.enabled) | {config.backend}) - set(GENERATORS))
        if unknown:
            raise ValueError(f"unknown generator(s) {unknown}; choose from {sorted(GENERATORS)}")
        self.config = config
        self.enabled = list(dict.fromkeys([config.backend, *config.enabled]))
        self._built: dict[str, Generator] = {}
        # one lock per backend: two first requests build it once, and a slow build holds up no other backend
        self._building = {name: threading.Lock() for name in self.enabled}

    def get(self, name: str | None, scorer: EvidenceScorer | None = None) -> Generator:
        """The generator called `name` (default: the configured one); InvalidInput if it is not enabled."""
        name = name or self.config.backend
        if name not in self.enabled:
            raise InvalidInput(f"generator {name!r} is not enabled here; enabled: {self.enabled}")
        if name == "extractive":
            if scorer is None:
                raise ValueError("the extractive generator needs the collection's evidence scorer")
            return GENERATORS[name](self.config, scorer)
        with self._building[name]:
            if name not in self._built:
                self._built[name] = GENERATORS[name](self.config, scorer)
            return self._built[name]


