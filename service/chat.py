"""Conversations on top of answer.py: persisted turns, and follow-ups rewritten into standalone questions."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from typing import Any, Sequence

from indexes.catalog import Catalog
from indexes.errors import NotFound
from indexes.lexical import query_terms

CHAT_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    owner TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""

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
    """Conversations and their messages, in the catalog database."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        with catalog._write_lock:
            catalog.db.executescript(f"BEGIN IMMEDIATE; {CHAT_SCHEMA} COMMIT;")

    def create(self, collection: str, title: str = "", owner: str | None = None) -> dict[str, Any]:
        """A new, empty conversation."""
        conversation_id = uuid.uuid4().hex[:16]
        now = time.time()
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO conversations(id, collection, title, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, collection, title, owner, now, now),
            )
        return self.get(conversation_id, owner)

    def _row(self, conversation_id: str, owner: str | None) -> sqlite3.Row | tuple[Any, ...]:
        row = self.catalog.db.execute(
            "SELECT id, collection, title, owner, created_at, updated_at FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None or (owner is not None and row[3] != owner):
            raise NotFound(f"conversation {conversation_id!r} not found")
        return row

    def get(self, conversation_id: str, owner: str | None = None) -> dict[str, Any]:
        """A conversation with its messages, oldest first."""
        row = self._row(conversation_id, owner)
        messages = [
            {"id": m[0], "role": m[1], "content": m[2], **json.loads(m[3]), "created_at": m[4]}
            for m in self.catalog.db.execute(
                "SELECT id, role, content, data, created_at FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            )
        ]
        return {"id": row[0], "collection": row[1], "title": row[2], "created_at": row[4], "updated_at": row[5],
                "messages": messages}

    def list(self, collection: str | None = None, owner: str | None = None, readable: Any = None) -> list[dict[str, Any]]:
        """Conversations, newest first; optionally of one collection / one owner / readable collections only."""
        rows = self.catalog.db.execute(
            "SELECT id, collection, title, owner, created_at, updated_at FROM conversations ORDER BY updated_at DESC"
        ).fetchall()
        return [
            {"id": r[0], "collection": r[1], "title": r[2], "created_at": r[4], "updated_at": r[5]}
            for r in rows
            if (collection is None or r[1] == collection) and (owner is None or r[3] == owner)
            and (readable is None or readable(r[1]))
        ]

    def delete(self, conversation_id: str, owner: str | None = None) -> None:
        """Delete a conversation and its messages."""
        self._row(conversation_id, owner)
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def standalone_questions(self, conversation_id: str) -> list[str]:
        """The standalone form of each earlier user question (rewritten where it was a follow-up)."""
        rows = self.catalog.db.execute(
            "SELECT content, data FROM messages WHERE conversation_id = ? AND role = 'user' ORDER BY id", (conversation_id,)
        ).fetchall()
        return [json.loads(data).get("rewritten_question") or content for content, data in rows]

    def add_turn(self, conversation_id: str, question: str, rewritten: str, answer: dict[str, Any]) -> None:
        """Save a question and its answer; the first question becomes the title."""
        now = time.time()
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO messages(conversation_id, role, content, data, created_at) VALUES (?, 'user', ?, ?, ?)",
                (conversation_id, question, json.dumps({"rewritten_question": rewritten}), now),
            )
            data = {k: answer.get(k) for k in ("citations", "abstained", "reason", "answer_support", "rewritten_question", "generator")}
            db.execute(
                "INSERT INTO messages(conversation_id, role, content, data, created_at) VALUES (?, 'assistant', ?, ?, ?)",
                (conversation_id, answer.get("answer", ""), json.dumps(data), now),
            )
            db.execute(
                "UPDATE conversations SET updated_at = ?, title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (now, question[:80], conversation_id),
            )
