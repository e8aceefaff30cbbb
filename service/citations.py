"""Citations that are verified: dangling [n] markers are removed, each cited claim is checked against its passage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from indexes.sentences import split_sentences
from service.evidence import EvidenceScorer, unmatched
from service.generators.base import Passage
from service.questions import analyse_question
from service.verdict import passage_context

MARKER = re.compile(r"\s?\[(\d{1,3})\]")
LEADING_MARKERS = re.compile(r"^\s*(?:\[\d{1,3}\]\s*)+")
# The one support threshold: a claim is backed by a passage it cites only if its best sentence of that passage
# scores at least this in meaning and wording (`EvidenceWeights.mix`). The API reports `verify`'s verdict as is.
SUPPORT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer, the passages it cites, and how well they support it."""

    text: str
    cited: tuple[int, ...]
    support: float
    supported: bool


@dataclass
class VerifiedAnswer:
    """The answer with dangling markers removed, per-citation support, and an overall score."""

    text: str
    claims: list[Claim] = field(default_factory=list)
    citation_support: dict[int, float] = field(default_factory=dict)
    citation_supported: dict[int, bool] = field(default_factory=dict)  # every claim citing n is backed by n
    removed_markers: list[int] = field(default_factory=list)

    @property
    def answer_support(self) -> float:
        """Mean support of the answer's claims (uncited claims count as 0); 1.0 for an empty answer."""
        if not self.claims:
            return 1.0
        return sum(c.support for c in self.claims) / len(self.claims)

    @property
    def unsupported_claims(self) -> list[str]:
        """Claims whose cited passages do not back them (or that cite nothing)."""
        return [c.text for c in self.claims if not c.supported]


def strip_dangling(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """Remove [n] markers that point at no passage given to the generator."""
    removed: list[int] = []

    def keep(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n in valid:
            return match.group(0)
        removed.append(n)
        return ""

    return MARKER.sub(keep, text), removed


def verify(text: str, passages: Sequence[Passage], scorer: EvidenceScorer) -> VerifiedAnswer:
    """Check each cited claim against the passages it cites."""
    by_n = {p.n: p for p in passages}
    cleaned, removed = strip_dangling(text, set(by_n))
    result = VerifiedAnswer(cleaned, removed_markers=removed)
    for claim, cited in _claims(cleaned):
        supports = {n: scorer.support(claim, [by_n[n].text]) for n in cited}
        entities = analyse_question(claim).entities
        # backed by n: close enough in meaning and wording, and no name or number of the claim missing from n
        # (the abstention's own test, `evidence.unmatched`)
        backed = {
            n: s >= SUPPORT_THRESHOLD and not unmatched(entities, [passage_context(by_n[n])]) for n, s in supports.items()
        }
        best = max(supports.values(), default=0.0)
        result.claims.append(Claim(claim, cited, best, any(backed.values())))
        for n, s in supports.items():
            result.citation_support[n] = min(s, result.citation_support.get(n, 1.0))
            result.citation_supported[n] = backed[n] and result.citation_supported.get(n, True)
    return result


def _claims(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """(claim, cited numbers) per sentence; a sentence of markers alone ("... nodes. [1]") cites for the one before."""
    claims: list[tuple[str, list[int]]] = []
    for sentence in split_sentences(text):
        leading = LEADING_MARKERS.match(sentence)
        if leading and claims:  # "... nodes. [1] Next claim": the marker belongs to the sentence before
            claims[-1][1].extend(int(m) for m in MARKER.findall(leading.group(0)))
            sentence = sentence[leading.end() :]
        cited = [int(m) for m in MARKER.findall(sentence)]
        claim = MARKER.sub("", sentence).strip()
        if re.search(r"\w", claim):
            claims.append((claim, cited))
        elif claims:
            claims[-1][1].extend(cited)
    return [(claim, tuple(dict.fromkeys(cited))) for claim, cited in claims]
