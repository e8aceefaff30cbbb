"""Locators: a chunk's place in its document (page, slide, sheet and rows, chapter) from the parser's sections
through the chunker and the store to every answer surface — /v1/search, /v1/ask, the document view and the
OpenAI-compatible "Sources:" block. The store round trip is in test_store_contract.py, on both backends.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexes.locators import locator_label, locator_of, make_locator, merged, same_place
from indexes.types import ChunkInput, DocumentFields
from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers.base import DocumentBuilder
from service_app import context, make_app


@pytest.mark.parametrize("locator, label", [
    ({"kind": "page", "page": 3}, "page 3"),
    ({"kind": "slide", "slide": 5}, "slide 5"),
    ({"kind": "chapter", "chapter": 2}, "chapter 2"),
    ({"kind": "sheet", "sheet": "Q3", "rows": [2, 41]}, "sheet Q3, rows 2–41"),
    ({"kind": "sheet", "sheet": "Q3", "rows": [7, 7]}, "sheet Q3, row 7"),
    ({"kind": "sheet", "sheet": None, "rows": [2, 9]}, "rows 2–9"),
    (None, None),
])
def test_a_locator_reads_as_people_name_places(locator, label) -> None:
    assert locator_label(locator) == label


def test_chunks_stored_before_locators_cite_their_page() -> None:
    assert locator_of(None, 4) == {"kind": "page", "page": 4}
    assert locator_of(None, None) is None
    assert locator_of({"kind": "slide", "slide": 2}, None) == {"kind": "slide", "slide": 2}


def test_neighbouring_rows_of_one_sheet_merge_and_other_places_do_not() -> None:
    a, b = {"kind": "sheet", "sheet": "Q3", "rows": [2, 5]}, {"kind": "sheet", "sheet": "Q3", "rows": [6, 9]}
    assert same_place(a, b) and merged([a, b]) == {"kind": "sheet", "sheet": "Q3", "rows": [2, 9]}
    assert not same_place(a, {"kind": "sheet", "sheet": "Q4", "rows": [2, 5]})
    assert not same_place({"kind": "slide", "slide": 1}, {"kind": "slide", "slide": 2})
    assert same_place(None, None) and not same_place(None, {"kind": "page", "page": 1})


def test_a_sheets_chunks_carry_its_name_and_the_rows_they_hold(embedder) -> None:
    builder = DocumentBuilder()
    rows = [["Region", "Q3 revenue"]] + [[f"Region {i}", f"{i}.5M"] for i in range(1, 41)]
    builder.add_table(rows, heading_path=("Q3",), sheet="Q3", first_row=1)
    doc = builder.build(title="Revenue", unit="sheet")
    chunks = chunk_document(doc, embedder.count_tokens, ChunkingOptions(max_tokens=64))
    assert len(chunks) > 2  # forty rows cannot fit one small chunk
    covered = []
    for chunk in chunks:
        first, last = chunk.locator["rows"]
        assert chunk.locator["sheet"] == "Q3" and chunk.page_start is None
        # every row the chunk's text holds is inside its range, and the range holds nothing else
        numbers = [int(n) + 1 for n in re.findall(r"Region: Region (\d+);", chunk.text)]
        assert (numbers[0], numbers[-1]) == (first, last)
        covered.extend(numbers)
    assert covered == list(range(2, 42))  # the header is row 1; the rows keep the sheet's numbers
    assert sum("Region: Region 7; Q3 revenue: 7.5M" in c.text for c in chunks) == 1  # the row, whole, in one chunk


def test_a_decks_chunks_cite_slides_and_ocr_text_is_marked(embedder) -> None:
    builder = DocumentBuilder()
    builder.add("Welcome to the quarterly review.", 1, ("Intro",))
    builder.add("The Atlas model has 7 billion parameters.", 2, ("Atlas",))
    builder.add("Scanned: the Vega model has 3 billion parameters.", 3, ("Vega",), ocr=True)
    doc = builder.build(title="Review", unit="slide")
    assert doc.ocr_pages == [3]
    chunks = chunk_document(doc, embedder.count_tokens, ChunkingOptions(max_tokens=128))
    assert [(c.locator, c.ocr, c.page_start) for c in chunks] == [
        ({"kind": "slide", "slide": 1}, False, None), ({"kind": "slide", "slide": 2}, False, None),
        ({"kind": "slide", "slide": 3}, True, None)]
    assert make_locator("page", 4) == {"kind": "page", "page": 4}


# --- every answer surface ------------------------------------------------------------------------------------

PLACED = [  # text, locator, ocr
    ("Welcome to the Northwind quarterly review.", {"kind": "slide", "slide": 1}, False),
    ("The Atlas model was trained on 512 GPUs.", {"kind": "slide", "slide": 4}, False),
    ("Region: North; Q3 revenue: 4.2M", {"kind": "sheet", "sheet": "Q3", "rows": [7, 7]}, False),
    ("The Vega archive was scanned in 1998 and holds 40 boxes.", {"kind": "page", "page": 2}, True),
]


@pytest.fixture
def api(tmp_path: Path, embedder) -> TestClient:
    """The service over one document whose chunks sit on slides, a sheet's row and an OCR'd page."""
    app = make_app(tmp_path / "data", embedder)
    with TestClient(app) as client:
        store = context(app).store
        collection = store.ensure_collection("default", embedder)
        texts = [t for t, _, _ in PLACED]
        chunks, start = [], 0
        for text, locator, ocr in PLACED:
            page = locator.get("page")
            chunks.append(ChunkInput(text, text, start, start + len(text), page, page, (), locator, ocr))
            start += len(text) + 2
        fields = DocumentFields("review.bin", "sha", 1, 1.0, title="Review", text="\n\n".join(texts), ocr_pages=(2,))
        vectors = np.asarray(embedder.embed_documents([c.embed_text for c in chunks]), dtype=np.float32)
        store.put_document(collection, fields, chunks, vectors)
        store.flush(collection)
        yield client


def test_search_hits_carry_locator_label_and_ocr(api: TestClient) -> None:
    hits = api.post("/v1/search", json={"query": "How much Q3 revenue did the North region make?"}).json()["hits"]
    top = hits[0]
    assert (top["locator"], top["locator_label"], top["ocr"]) == (
        {"kind": "sheet", "page": None, "slide": None, "chapter": None, "sheet": "Q3", "rows": [7, 7]},
        "sheet Q3, row 7", False)
    scanned = api.post("/v1/search", json={"query": "When was the Vega archive scanned?"}).json()["hits"][0]
    assert (scanned["locator_label"], scanned["ocr"], scanned["page"]) == ("page 2", True, 2)


def test_ask_citations_and_the_openai_sources_block_name_the_slide(api: TestClient) -> None:
    body = api.post("/v1/ask", json={"question": "How many GPUs was the Atlas model trained on?"}).json()
    assert not body["abstained"], body
    cited = [c for c in body["citations"] if c["cited"]]
    assert cited and cited[0]["locator_label"] == "slide 4" and cited[0]["locator"]["slide"] == 4
    reply = api.post("/v1/chat/completions", json={
        "model": "docqa:default", "messages": [{"role": "user", "content": "How many GPUs was the Atlas model trained on?"}]})
    content = reply.json()["choices"][0]["message"]["content"]
    assert "Sources:" in content and "Review, slide 4 — review.bin" in content


def test_the_document_view_lists_each_chunks_place_and_the_ocr_pages(api: TestClient) -> None:
    listed = api.get("/v1/collections/default/documents").json()
    assert listed[0]["ocr_pages"] == [2]
    detail = api.get(f"/v1/collections/default/documents/{listed[0]['id']}").json()
    assert [(c["locator_label"], c["ocr"]) for c in detail["chunk_list"]] == [
        ("slide 1", False), ("slide 4", False), ("sheet Q3, row 7", False), ("page 2", True)]
