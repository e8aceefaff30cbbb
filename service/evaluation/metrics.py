"""Pure metric functions: ranking (nDCG, recall, MRR), SQuAD answer F1, abstention precision/recall/F1."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Mapping, Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains as trec_eval (and BEIR) compute it: gain / log2(rank + 1), linear gains."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int] | set[str], k: int) -> float:
    """Share of the relevant items found in the top k."""
    wanted = {d for d in relevant if (relevant[d] > 0 if isinstance(relevant, Mapping) else True)}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int] | set[str], k: int = 10) -> float:
    """1 / rank of the first relevant item within the top k, else 0."""
    for i, doc in enumerate(ranked[:k], start=1):
        if doc in relevant and (relevant[doc] > 0 if isinstance(relevant, Mapping) else True):
            return 1.0 / i
    return 0.0


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, articles and extra white space (the official SQuAD script's rule)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction: str, gold: str) -> float:
    """Token-level F1 between a prediction and one gold answer, after normalisation."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: Sequence[str]) -> float:
    """The best F1 over the gold answers (SQuAD takes the max over annotators)."""
    return max((squad_f1(prediction, g) for g in golds), default=0.0)


def contains_answer(prediction: str, golds: Sequence[str]) -> bool:
    """True when any normalised gold answer occurs inside the normalised prediction."""
    norm = f" {normalize_answer(prediction)} "
    return any(f" {normalize_answer(g)} " in norm for g in golds if normalize_answer(g))


def abstention_scores(abstained: Sequence[bool], unanswerable: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of abstaining as a detector of unanswerable questions, plus the wrong-abstain rate."""
    if len(abstained) != len(unanswerable):
        raise ValueError(f"got {len(abstained)} decisions for {len(unanswerable)} questions")
    true_pos = sum(a and u for a, u in zip(abstained, unanswerable))
    predicted, actual = sum(abstained), sum(unanswerable)
    answerable = len(unanswerable) - actual
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    wrong = sum(a and not u for a, u in zip(abstained, unanswerable))
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "wrongly_abstained": wrong / answerable if answerable else 0.0,
    }


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0 for no values."""
    return sum(values) / len(values) if values else 0.0
