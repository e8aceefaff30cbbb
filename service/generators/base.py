"""The Generator protocol, the records it works with, and what a generator backend registers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

from pydantic import BaseModel

from indexes import plugins
from indexes.locators import locator_label, locator_of

if TYPE_CHECKING:
    from service.evidence import EvidenceScorer


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
    locator: dict[str, Any] | None = None  # where in the document (indexes/locators.py)
    ocr: bool = False  # some of its text was read from an image
    rerank: float | None = None  # the re-ranker's best score among its chunks (None: no re-ranker scored them)

    @property
    def where(self) -> str | None:
        """The passage's place as people read it: "page 3", "slide 5", "sheet Q3, rows 2–41"."""
        return locator_label(locator_of(self.locator, self.page))


class Generator(Protocol):
    """Writes an answer from numbered passages, citing them as [n]; yields the text in pieces as it goes.

    Closing the iterator early (a client went away) must stop the work.
    """

    name: str

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]: ...


@dataclass(frozen=True)
class GeneratorPlugin:
    """What a generator backend registers under the `docqa.generators` entry-point group (docqa's own too).

    `settings` is the backend's own settings model, filled from `DOCQA_GENERATOR__<NAME>__<FIELD>`; `build`
    makes a generator from it. A backend that `needs_scorer` is built for each question with the collection's
    evidence scorer; any other is built once, given None, and shared.
    """

    settings: type[BaseModel]
    build: Callable[[Any, EvidenceScorer | None], Generator]
    needs_scorer: bool = False


GROUP = plugins.GENERATORS


def generator_plugins() -> dict[str, GeneratorPlugin]:
    """Every registered generator backend by name."""
    return plugins.load(GROUP)


def section_name(generator: str) -> str:
    """The settings section a generator reads, `DOCQA_GENERATOR__<SECTION>__*`: its name as an identifier."""
    return generator.lower().replace("-", "_")


NOT_IN_DOCUMENTS = "The documents do not contain an answer to this question."
