"""Fusing ranked lists from several retrievers into one.

Every method takes `{retriever name: [(id, score), ...] best first}` and returns one such list. Rank-only
fusion (RRF) ignores how far apart the scores are; score-aware fusion (convex combination of normalised
scores) keeps that, which measured better on every evaluation set (docs/quality.md).
"""

from __future__ import annotations

from typing import Callable, Mapping

Ranking = list[tuple[int, float]]

# Weight of the dense retriever in the convex combination, tuned on SQuAD 2.0 dev (half) and checked on
# FaQuAD and ArguAna; see docs/quality.md.
DENSE_WEIGHT = 0.4
# An English-only embedder on a question in another language (FaQuAD with MiniLM: dense R@1 .39 vs BM25 .83)
# mostly adds noise, so the lexical side carries the question; see docs/quality.md.
CROSS_LANGUAGE_DENSE_WEIGHT = 0.1


def reciprocal_rank_fusion(
    rankings: Mapping[str, Ranking], k: int = 60, weights: Mapping[str, float] | None = None, **_: object
) -> Ranking:
    """Sum of weight / (k + rank) over the retrievers that found each id (Cormack et al. 2009)."""
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return _sorted(scores)


def min_max(ranking: Ranking) -> dict[int, float]:
    """Scores rescaled to [0, 1] within one list (all 1.0 when they are equal)."""
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    low, high = min(values), max(values)
    span = high - low
    return {item: (s - low) / span if span > 0 else 1.0 for item, s in ranking}


def z_scores(ranking: Ranking) -> dict[int, float]:
    """Scores as standard deviations from their list's mean (0 when they are equal)."""
    if not ranking:
        return {}
    values = [s for _, s in ranking]
    mu = sum(values) / len(values)
    sd = (sum((v - mu) ** 2 for v in values) / len(values)) ** 0.5
    return {item: (s - mu) / sd if sd > 0 else 0.0 for item, s in ranking}


def convex_combination(
    rankings: Mapping[str, Ranking], weights: Mapping[str, float] | None = None,
    normalise: Callable[[Ranking], dict[int, float]] = min_max, **_: object,
) -> Ranking:
    """Σ weight · normalised score; an id missing from a list gets that list's floor (see _floor)."""
    weights = weights or {"dense": DENSE_WEIGHT, "lexical": 1.0 - DENSE_WEIGHT}
    scores: dict[int, float] = {}
    normalised = {name: normalise(r) for name, r in rankings.items()}
    ids = {item for r in rankings.values() for item, _ in r}
    for name, values in normalised.items():
        floor = _floor(list(values.values()))
        weight = weights.get(name, 1.0)
        for item in ids:
            scores[item] = scores.get(item, 0.0) + weight * values.get(item, floor)
    return _sorted(scores)


def _floor(values: list[float]) -> float:
    """The normalised score an id missing from a list gets: the list's lowest, or below it when all are equal
    (a list of one hit must still rank that hit above the ids it did not find)."""
    if not values:
        return 0.0
    low = min(values)
    return low - 1.0 if max(values) == low else low


def min_max_fusion(rankings: Mapping[str, Ranking], **kwargs: object) -> Ranking:
    """Convex combination of min-max normalised scores, DENSE_WEIGHT on the dense side."""
    return convex_combination(rankings, normalise=min_max, **kwargs)  # type: ignore[arg-type]


def z_score_fusion(rankings: Mapping[str, Ranking], **kwargs: object) -> Ranking:
    """Convex combination of z-scored scores, DENSE_WEIGHT on the dense side."""
    return convex_combination(rankings, normalise=z_scores, **kwargs)  # type: ignore[arg-type]


def _sorted(scores: dict[int, float]) -> Ranking:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


FUSION_METHODS: dict[str, Callable[..., Ranking]] = {
    "rrf": reciprocal_rank_fusion,
    "minmax": min_max_fusion,
    "zscore": z_score_fusion,
}
