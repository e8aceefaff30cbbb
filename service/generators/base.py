"""The Generator protocol and the records it works with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence


@dataclass(frozen=True)
class Passage:
    """One numbered piece of evidence given to a generator; `[n]` in an answer cites it."""

    n: int
    text: str
    title: str
    source: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    document_id: int | None = None
    chunk_ids: tuple[int, ...] = ()
    score: float = 0.0
    headings: tuple[str, ...] = ()  # every heading the passage's chunks sit under (heading lines in `text` too)


class Generator(Protocol):
    """Writes an answer from numbered passages, citing them as [n]; yields the text in pieces as it goes.

    Closing the iterator early (a client went away) must stop the work.
    """

    name: str

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...


NOT_IN_DOCUMENTS = "The documents do not contain an answer to this question."
