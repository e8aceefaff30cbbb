"""Answer feedback: every answer recorded when it is given, under the id its response carries, so people can rate
it (thumbs up or down, with an optional comment) and `docqa eval qa --feedback` can replay what they rated.

What is kept of an answer: the question retrieval searched (and the one typed, when a follow-up was rewritten), the
answer's text, its citations (document id, title, source and place, whether the answer cites it; not the passage
text), the collection, abstained and why, the key that asked and when. Rated answers are kept; unrated ones go
after `keep_days` (DOCQA_FEEDBACK__KEEP_DAYS).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Iterator

from indexes.errors import DocQAError, InvalidInput, NotFound
from indexes.records import Answers
from service.answer import Answer, AnswerEvent
from service.auth import Principal

log = logging.getLogger("docqa.service")

RATINGS = ("up", "down")
MAX_COMMENT_CHARS = 2000
PRUNE_EVERY_S = 3600.0  # unrated answers past their time are deleted at most this often per process


def new_answer_id() -> str:
    """A fresh answer id: `ans_` and 24 hex digits (96 random bits, so ids cannot be guessed)."""
    return f"ans_{uuid.uuid4().hex[:24]}"


def citations_of(answer: Answer) -> list[dict[str, Any]]:
    """The answer's passages as recorded: where each came from and whether the answer cites it, without its text."""
    cited = set(answer.cited)
    return [{"n": p.n, "document_id": p.document_id, "title": p.title, "source": p.source, "page": p.page,
             "locator": p.locator, "locator_label": p.where, "ocr": p.ocr, "cited": p.n in cited} for p in answer.passages]


class AnswerLog:
    """Records answers and their ratings in the store (`indexes/records.py` Answers); permissions by collection."""

    def __init__(self, records: Answers, enabled: bool = True, keep_days: float | None = 90.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.records = records
        self.enabled = enabled
        self.keep_days = keep_days
        self.clock = clock
        self._pruned_at: float | None = None
        self._lock = threading.Lock()

    def record(self, answer: Answer, collection: str, principal: Principal, origin: str, asked: str | None = None,
               answer_id: str | None = None) -> str | None:
        """Keep a finished answer and set its `id`; None (and a warning on the answer) when recording is off or
        the store refused it: the answer itself is never failed for this."""
        if not self.enabled:
            return None
        answer_id = answer_id or new_answer_id()
        now = self.clock()
        try:
            self.records.add({
                "id": answer_id, "collection": collection, "question": answer.question,
                "asked": asked if asked and asked != answer.question else None, "answer": answer.text,
                "citations": citations_of(answer), "abstained": answer.abstained, "reason": answer.reason,
                "origin": origin, "key_id": principal.key_id, "created_at": now,
            })
        except Exception as exc:  # noqa: BLE001 - the answer is given all the same, with a warning
            detail = exc.detail if isinstance(exc, DocQAError) else f"{type(exc).__name__}: {exc}"
            log.warning("answer not recorded", extra={"error": type(exc).__name__, "detail": detail},
                        exc_info=not isinstance(exc, DocQAError))
            answer.warnings.append(f"this answer was not recorded, so it cannot be rated: {detail}")
            return None
        answer.id = answer_id
        try:
            self._prune(now)
        except Exception as exc:  # noqa: BLE001 - recorded all the same; pruning is tried again within the hour
            log.warning("unrated answers not pruned", extra={"error": f"{type(exc).__name__}: {exc}"})
        return answer_id

    def recording(self, events: Iterator[AnswerEvent], collection: str, principal: Principal, origin: str,
                  asked: str | None = None, answer_id: str | None = None) -> Iterator[AnswerEvent]:
        """Pass a stream's events through, recording the answer when it is done (before the event goes on); closing
        this closes the stream (a client that went away stops the generation)."""
        try:
            for event in events:
                if event.kind == "done":
                    self.record(event.data, collection, principal, origin, asked, answer_id)
                yield event
        finally:
            close = getattr(events, "close", None)
            if close:
                close()

    def _prune(self, now: float) -> None:
        if self.keep_days is None:
            return
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
                return
            self._pruned_at = now
        removed = self.records.prune(now - self.keep_days * 86400)
        if removed:
            log.info("unrated answers pruned", extra={"removed": removed, "keep_days": self.keep_days})

    def get(self, answer_id: str, principal: Principal) -> dict[str, Any]:
        """An answer with its ratings, if the caller may read its collection (NotFound otherwise: an answer of a
        collection the caller may not read looks like a missing one)."""
        answer = self.records.get(answer_id)  # NotFound if unknown
        if not principal.can_read(answer["collection"]):
            raise NotFound(f"answer {answer_id!r} not found")
        return answer

    def rate(self, answer_id: str, principal: Principal, rating: str, comment: str | None) -> tuple[dict[str, Any], bool]:
        """Rate an answer as the caller's key (one rating per key: rating again replaces it); the rating as stored,
        and whether it is the key's first for this answer."""
        if rating not in RATINGS:
            raise InvalidInput(f"rating must be one of {list(RATINGS)}, got {rating!r}")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"comment is {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
        if comment is not None and not comment.strip():
            comment = None
        self.get(answer_id, principal)
        rater = principal.key_id or ""
        first = self.records.rate(answer_id, rater, rating, comment, self.clock())
        stored = next(f for f in self.records.get(answer_id)["feedback"] if f["rater"] == rater)
        return {"answer_id": answer_id, **stored}, first
