"""Fusing ranked lists from several retrievers into one."""

from __future__ import annotations

from typing import Callable, Mapping

Ranking = list[tuple[int, float]]


def reciprocal_rank_fusion(rankings: Mapping[str, Ranking], k: int = 60, weights: Mapping[str, float] | None = None) -> Ranking:
    """Sum of weight / (k + rank) over the retrievers that found each id (Cormack et al. 2009)."""
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


FUSION_METHODS: dict[str, Callable[..., Ranking]] = {
    "rrf": reciprocal_rank_fusion,
}
