"""merge_hits on hand-made hits (no model): which retrieved chunks become one passage, in what order, within
what budget, and on which page a citation lands. Headings of merged sections: tests/test_verdict.py."""

from __future__ import annotations

from indexes.errors import NotFound
from indexes.types import Hit
from service.retrieval import merge_hits

# One document of five 20-character chunks; chunks 0-2 on page 1, 3-4 on page 2.
CHUNKS = ["Alpha has 3 nodes.  ", "Beta has 5 nodes.   ", "Gamma has 7 nodes.  ", "Delta has 9 nodes.  ",
          "Omega has 11 nodes. "]
DOCUMENT = "".join(CHUNKS)
PAGES = [1, 1, 1, 2, 2]


def hit(ordinal: int, score: float = 1.0, document_id: int = 1) -> Hit:
    start = 20 * ordinal
    return Hit(100 * document_id + ordinal, document_id, "docs", CHUNKS[ordinal], score, f"Doc {document_id}",
               f"doc{document_id}.pdf", ordinal, start, start + 20, PAGES[ordinal], PAGES[ordinal])


def document_text(document_id: int) -> str:
    return DOCUMENT


def test_neighbouring_chunks_of_one_page_become_one_passage_in_reading_order() -> None:
    [passage] = merge_hits([hit(1, 0.9), hit(0, 0.4)], document_text, 6000)
    assert passage.text == DOCUMENT[0:40]
    assert passage.chunk_ids == (100, 101)  # reading order, not rank order
    assert passage.score == 0.9 and passage.page == 1 and passage.n == 1


def test_a_chunk_between_two_ranked_earlier_joins_them_where_the_better_stood() -> None:
    """Ranked 0, (another document), 2, then 1: one passage of 0-2 first, the other document second."""
    passages = merge_hits([hit(0, 0.9), hit(4, 0.8, document_id=2), hit(2, 0.7), hit(1, 0.6)], document_text, 6000)
    assert [(p.n, p.chunk_ids) for p in passages] == [(1, (100, 101, 102)), (2, (204,))]
    assert passages[0].text == DOCUMENT[0:60] and passages[0].score == 0.9


def test_chunks_that_are_not_neighbours_stay_apart_best_first() -> None:
    passages = merge_hits([hit(2, 0.8), hit(0, 0.6)], document_text, 6000)
    assert [(p.n, p.text, p.score) for p in passages] == [(1, CHUNKS[2], 0.8), (2, CHUNKS[0], 0.6)]


def test_neighbours_across_a_page_break_stay_apart_so_each_citation_names_its_page() -> None:
    passages = merge_hits([hit(2), hit(3)], document_text, 6000)
    assert [(p.text, p.page) for p in passages] == [(CHUNKS[2], 1), (CHUNKS[3], 2)]


def test_neighbouring_ordinals_of_different_documents_stay_apart() -> None:
    passages = merge_hits([hit(0, document_id=1), hit(1, document_id=2)], document_text, 6000)
    assert [(p.document_id, p.title, p.source) for p in passages] == [(1, "Doc 1", "doc1.pdf"), (2, "Doc 2", "doc2.pdf")]


def test_overlapping_chunks_merge_even_when_their_ordinals_are_apart() -> None:
    first = hit(0)
    overlapping = Hit(105, 1, "docs", DOCUMENT[10:35], 0.5, "Doc 1", "doc1.pdf", 5, 10, 35, 1, 1)
    [passage] = merge_hits([first, overlapping], document_text, 6000)
    assert passage.text == DOCUMENT[0:35]


def test_the_budget_skips_what_does_not_fit_and_keeps_what_still_does() -> None:
    """The best passage is 40 characters and the next 20: at a budget of 50 the next is left out, at 60 both fit."""
    passages = merge_hits([hit(0), hit(1), hit(3)], document_text, 50)
    assert [p.text for p in passages] == [DOCUMENT[0:40]]
    roomier = merge_hits([hit(0), hit(1), hit(3)], document_text, 60)
    assert [(p.n, p.text) for p in roomier] == [(1, DOCUMENT[0:40]), (2, CHUNKS[3])]
    assert sum(len(p.text) for p in roomier) <= 60


def test_a_smaller_passage_after_a_skipped_one_still_fits_and_is_numbered_on() -> None:
    big = Hit(200, 2, "docs", "x" * 45, 0.7, "Doc 2", "doc2.pdf", 0, 0, 45, 1, 1)
    passages = merge_hits([hit(0, 0.9), big, hit(3, 0.5)], document_text, 50)
    assert [(p.n, p.chunk_ids) for p in passages] == [(1, (100,)), (2, (103,))]


def test_the_best_passage_is_kept_even_over_the_budget() -> None:
    [passage] = merge_hits([hit(0), hit(1), hit(2)], document_text, 10)
    assert passage.text == DOCUMENT[0:60]


def test_a_document_replaced_since_the_search_falls_back_to_its_chunks_own_text() -> None:
    def gone(document_id: int) -> str:
        raise NotFound(f"document {document_id}")

    [passage] = merge_hits([hit(0), hit(1)], gone, 6000)
    assert passage.text == f"{CHUNKS[0]}\n{CHUNKS[1]}"


def test_no_hits_no_passages() -> None:
    assert merge_hits([], document_text, 6000) == []


def placed(ordinal: int, locator: dict, ocr: bool = False) -> Hit:
    """A chunk of the same document with no page but a locator (a slide, a sheet's rows)."""
    start = 20 * ordinal
    return Hit(100 + ordinal, 1, "docs", CHUNKS[ordinal], 1.0, "Deck", "deck.pptx", ordinal, start, start + 20,
               locator=locator, ocr=ocr)


def test_neighbours_on_two_slides_stay_apart_so_each_citation_names_its_slide() -> None:
    passages = merge_hits([placed(0, {"kind": "slide", "slide": 1}), placed(1, {"kind": "slide", "slide": 2})],
                          document_text, 6000)
    assert [(p.text, p.where) for p in passages] == [(CHUNKS[0], "slide 1"), (CHUNKS[1], "slide 2")]


def test_neighbouring_rows_of_one_sheet_join_and_cite_every_row_they_cover() -> None:
    rows = [placed(i, {"kind": "sheet", "sheet": "Q3", "rows": [2 + 5 * i, 6 + 5 * i]}, ocr=i == 1) for i in range(3)]
    other = placed(3, {"kind": "sheet", "sheet": "Q4", "rows": [17, 21]})
    passages = merge_hits([rows[1], rows[0], other, rows[2]], document_text, 6000)
    assert [(p.chunk_ids, p.where, p.ocr) for p in passages] == [
        ((100, 101, 102), "sheet Q3, rows 2–16", True), ((103,), "sheet Q4, rows 17–21", False)]


def test_a_merged_passage_carries_its_chunks_best_rerank_score_and_none_without_one() -> None:
    first, second = hit(0, 0.9), hit(1, 0.4)
    first.scores, second.scores = {"dense": 0.7, "rerank": 0.2}, {"dense": 0.5, "rerank": 0.8}
    [passage] = merge_hits([first, second], document_text, 6000)
    assert passage.rerank == 0.8 and passage.score == 0.9
    [plain] = merge_hits([hit(0), hit(1)], document_text, 6000)
    assert plain.rerank is None
