"""The Reranker protocol, and building the configured one from its registered backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from indexes import plugins
from indexes.errors import InvalidInput

if TYPE_CHECKING:
    from service.settings import RerankerConfig

GROUP = plugins.RERANKERS


class Reranker(Protocol):
    """Scores passages for a question, higher is better, one score per text in their order; a failure raises
    RerankerUnavailable (the pipeline then keeps the fused order). Shared by every request: it must be safe to
    call from many threads at once. `name` says which model it is, in logs and warnings."""

    name: str

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]: ...


def reranker_plugins() -> dict[str, Callable[[Any], Reranker]]:
    """Every registered re-ranker backend by name: a callable from a RerankerConfig to a Reranker."""
    return plugins.load(GROUP)


def build_reranker(config: RerankerConfig) -> Reranker | None:
    """The configured re-ranker (its model loads on first use), or None while DOCQA_RERANKER__MODEL is unset."""
    if not config.enabled:
        return None
    installed = reranker_plugins()
    if config.backend not in installed:
        raise InvalidInput(f"DOCQA_RERANKER__BACKEND: unknown re-ranker {config.backend!r}; installed: {sorted(installed)}")
    return installed[config.backend](config)
