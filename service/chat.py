"""Conversations on top of answer.py: persisted turns, and follow-ups rewritten into standalone questions."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import AbstractSet, Any, Sequence

from indexes.errors import NotFound
from indexes.records import Conversations
from indexes.lexical import query_terms

# Openers and pronouns that mark a question as leaning on the one before (English and Portuguese).
_FOLLOW_UP_START = re.compile(
    r"^\s*(and|also|what about|how about|what else|but|so|then|e|mas|também|e quanto|e sobre|e o|e a|e os|e as)\b",
    re.IGNORECASE,
)
_ANAPHORA = frozenset(
    "it its it's they them their this that these those he she his her him there such "
    "ele ela eles elas dele dela deles delas isso isto esse essa este esta nele nela disso desse dessa".split()
)
_MAX_CARRIED = 6


def is_follow_up(question: str) -> bool:
    """Does the question lean on an earlier one (an opener, a pronoun, or hardly any content words)?"""
    words = re.findall(r"[\w']+", question.lower())
    return bool(_FOLLOW_UP_START.match(question)) or any(w in _ANAPHORA for w in words) or len(query_terms(question)) <= 1


def key_terms(question: str) -> list[str]:
    """The previous question's content words, as written (names keep their capitals)."""
    folded = set(query_terms(question))
    seen: dict[str, None] = {}
    for word in re.findall(r"\w+", question):
        if query_terms(word) and query_terms(word)[0] in folded and word.lower() not in {w.lower() for w in seen}:
            seen[word] = None
    return list(seen)


def rewrite_follow_up(question: str, previous: Sequence[str]) -> str:
    """The deterministic rule: carry the last standalone question's key terms into a follow-up."""
    if not previous or not is_follow_up(question):
        return question
    present = set(query_terms(question))
    carried = [t for t in key_terms(previous[-1]) if query_terms(t)[0] not in present][:_MAX_CARRIED]
    if not carried:
        return question
    return f"{question.strip()} ({' '.join(carried)})"


class ConversationStore:
    """Conversations and their messages, kept in the store (`indexes/records.py`)."""

    def __init__(self, records: Conversations) -> None:
        self.records = records

    def create(self, collection: str, title: str = "", owner: str | None = None) -> dict[str, Any]:
        """A new, empty conversation."""
        conversation_id = uuid.uuid4().hex[:16]
        self.records.create(conversation_id, collection, title, owner, time.time())
        return self.get(conversation_id, owner)

    def _row(self, conversation_id: str, owner: str | None) -> tuple[Any, ...]:
        row = self.records.get(conversation_id)
        if owner is not None and row[3] != owner:
            raise NotFound(f"conversation {conversation_id!r} not found")
        return row

    def get(self, conversation_id: str, owner: str | None = None) -> dict[str, Any]:
        """A conversation with its messages, oldest first."""
        row = self._row(conversation_id, owner)
        messages = [
            {"id": m[0], "role": m[1], "content": m[2], **json.loads(m[3]), "created_at": m[4]}
            for m in self.records.messages(conversation_id)
        ]
        return {"id": row[0], "collection": row[1], "title": row[2], "created_at": row[4], "updated_at": row[5],
                "messages": messages}

    def list(self, collection: str | None = None, owner: str | None = None, readable: AbstractSet[str] | None = None,
             limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """One page of conversations, newest first; optionally of one collection / one owner / readable
        collections only (None: all)."""
        return [
            {"id": r[0], "collection": r[1], "title": r[2], "created_at": r[4], "updated_at": r[5]}
            for r in self.records.list(collection, owner, readable, limit, offset)
        ]

    def delete(self, conversation_id: str, owner: str | None = None) -> None:
        """Delete a conversation and its messages."""
        self._row(conversation_id, owner)
        self.records.delete(conversation_id)

    def standalone_questions(self, conversation_id: str) -> list[str]:
        """The standalone form of each earlier user question (rewritten where it was a follow-up)."""
        return [json.loads(m[3]).get("rewritten_question") or m[2]
                for m in self.records.messages(conversation_id, role="user")]

    def add_turn(self, conversation_id: str, question: str, rewritten: str, answer: dict[str, Any]) -> None:
        """Save a question and its answer; the first question becomes the title."""
        data = {k: answer.get(k) for k in ("citations", "abstained", "reason", "answer_support", "rewritten_question", "generator",
                                          "answer_id")}
        self.records.add_messages(
            conversation_id,
            [("user", question, {"rewritten_question": rewritten}), ("assistant", answer.get("answer", ""), data)],
            question[:80], time.time(),
        )
