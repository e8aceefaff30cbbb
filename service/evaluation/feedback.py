"""`docqa eval qa --feedback COLLECTION`: the questions people rated, replayed through the retrieval pipeline.

An answer rated up (more thumbs up than down) must keep every document it cited among the top 5 passages the
pipeline finds for its question now; an answer rated down (as many downs as ups, or more) is listed for review
with its comments. A document is known by its source, so a re-ingested or updated file still counts as itself;
one deleted, renamed, or that no longer ranks for the question fails. Recorded answers without a cited document
(abstentions) are counted, not replayed. The replay searches the collection without the filters the question may
have been asked with.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from indexes.store import Store
from indexes.types import Collection
from service.retrieval import RetrievalPipeline

TOP = 5


def rated_up(answer: dict[str, Any]) -> bool:
    """More thumbs up than down: a good answer. A tie is disputed and goes to review with the bad ones."""
    ups = sum(f["rating"] == "up" for f in answer["feedback"])
    return ups > len(answer["feedback"]) - ups


def cited_documents(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents an answer cites (one entry per source, in order of citation)."""
    seen: dict[str, dict[str, Any]] = {}
    for c in answer["citations"]:
        if c.get("cited") and c["source"] not in seen:
            seen[c["source"]] = {"document_id": c.get("document_id"), "title": c.get("title"), "source": c["source"]}
    return list(seen.values())


def _comments(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"rating": f["rating"], "comment": f["comment"], "key_id": f["rater"] or None}
            for f in answer["feedback"]]


def replay_feedback(store: Store, collection: Collection, pipeline: RetrievalPipeline, top: int = TOP,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The report: counts and the pass rate of the good answers, each failure with what ranks now, the bad ones."""
    started = time.perf_counter()
    rated = store.records.answers.rated(collection.name)
    good = [a for a in rated if rated_up(a)]
    bad = [a for a in rated if not rated_up(a)]
    gated = [(a, cited_documents(a)) for a in good]
    gated = [(a, cited) for a, cited in gated if cited]
    failures, warnings = [], []
    for answer, cited in gated:
        retrieved = pipeline.search(collection, answer["question"], k=top)
        warnings.extend(retrieved.warnings)
        found = list(dict.fromkeys(h.source for h in retrieved.hits))
        missing = [d for d in cited if d["source"] not in found]
        if missing:
            failures.append({
                "answer_id": answer["id"], "question": answer["question"], "answer": answer["answer"],
                "missing": missing, "cited": cited, "found": [
                    {"source": h.source, "title": h.title, "document_id": h.document_id} for h in retrieved.hits],
            })
        if progress:
            progress(1)
    passed = len(gated) - len(failures)
    review = [{"answer_id": a["id"], "question": a["question"], "asked": a["asked"], "answer": a["answer"],
               "abstained": a["abstained"], "reason": a["reason"], "cited": cited_documents(a),
               "feedback": _comments(a), "created_at": a["created_at"]} for a in bad]
    return {
        "dataset": f"feedback:{collection.name}", "collection": collection.name, "questions": len(rated),
        "feedback": {"rated": len(rated), "up": len(good), "down": len(bad), "replayed": len(gated),
                     "not_replayed": len(good) - len(gated), "passed": passed,
                     "pass_rate": passed / len(gated) if gated else None, "top": top},
        "failures": failures, "review": review, "rerank_failures": len(warnings),
        "timings_s": {"total": round(time.perf_counter() - started, 2)},
    }
