"""Tables stay tables: in DOCX, HTML and PDF every row is one section that names its columns, so a question about
one cell finds the row that holds it (parser level, chunk level, and one search over a real store)."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

from indexes.embedded import EmbeddedStore
from indexes.locators import locator_label
from indexes.search import Searcher
from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers import html, parse_bytes
from ingest.parsers.base import ParsedDocument
from ingest.parsers.pdf_tables import looks_tabular
from ingest.pipeline import IngestPipeline, SourceFile

REGIONS = [["Region", "Q3 revenue", "Head office"], ["North", "4.2M", "Oslo"], ["South", "3.9M", "Seville"],
           ["East", "5.1M", "Riga"]]


def sections_with(doc: ParsedDocument, fragment: str) -> list[str]:
    return [s.text for s in doc.sections if fragment in s.text]


# --- DOCX --------------------------------------------------------------------------------------------


def docx_bytes(rows: list[list[str]], merge_last_row: bool = False) -> bytes:
    document = docx.Document()
    document.add_heading("Sales", level=1)
    document.add_paragraph("Revenue by region for the third quarter.")
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    if merge_last_row:
        table.cell(len(rows) - 1, 1).merge(table.cell(len(rows) - 1, 2))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_rows_carry_the_first_rows_header_and_their_heading():
    doc = parse_bytes(docx_bytes(REGIONS), "sales.docx")
    texts = [s.text for s in doc.sections]
    assert texts[-3:] == ["Region: North; Q3 revenue: 4.2M; Head office: Oslo",
                          "Region: South; Q3 revenue: 3.9M; Head office: Seville",
                          "Region: East; Q3 revenue: 5.1M; Head office: Riga"]
    assert "Region" not in texts[0]  # the header is no row of its own
    assert {s.heading_path for s in doc.sections[-3:]} == {("Sales",)}


def test_a_docx_cell_merged_across_columns_is_read_once_under_its_first_column():
    rows = REGIONS + [["West", "not reported", ""]]
    doc = parse_bytes(docx_bytes(rows, merge_last_row=True), "sales.docx")
    assert doc.sections[-1].text == "Region: West; Q3 revenue: not reported"


# --- HTML --------------------------------------------------------------------------------------------


def html_table(rows: list[list[str]], head: str = "thead") -> str:
    def tr(cells: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"

    header = tr(rows[0], "th")
    header = f"<thead>{header}</thead>" if head == "thead" else header if head == "th" else tr(rows[0], "td")
    return f"<table>{header}<tbody>{''.join(tr(r, 'td') for r in rows[1:])}</tbody></table>"


@pytest.mark.parametrize("head", ["thead", "th", "first row"])
def test_html_rows_carry_their_header_from_thead_th_or_the_first_row(head: str):
    page = f"<main><h2>Sales</h2><p>Third quarter.</p>{html_table(REGIONS, head)}<p>Figures unaudited.</p></main>"
    doc = parse_bytes(page.encode(), "sales.html")
    assert [s.text for s in doc.sections] == [
        "Third quarter.",
        "Region: North; Q3 revenue: 4.2M; Head office: Oslo",
        "Region: South; Q3 revenue: 3.9M; Head office: Seville",
        "Region: East; Q3 revenue: 5.1M; Head office: Riga",
        "Figures unaudited.",
    ]
    assert {s.heading_path for s in doc.sections} == {("Sales",)}


def test_html_stacked_header_rows_name_each_column_and_a_nested_table_stands_on_its_own():
    nested = html_table([["Site", "Staff"], ["Oslo", "40"], ["Bergen", "12"]])
    page = (
        "<table><thead><tr><th>Region</th><th>Revenue</th></tr><tr><th></th><th>Q3</th></tr></thead>"
        f"<tbody><tr><td>North</td><td>4.2M {nested}</td></tr><tr><td>South</td><td>3.9M</td></tr></tbody></table>"
    )
    texts = [s.text for s in parse_bytes(page.encode(), "sales.html").sections]
    assert texts == ["Region: North; Revenue / Q3: 4.2M", "Region: South; Revenue / Q3: 3.9M",
                     "Site: Oslo; Staff: 40", "Site: Bergen; Staff: 12"]


def test_html_spans_put_each_cell_under_its_columns_and_carry_it_down_the_rows_it_spans():
    page = b"""<table>
      <tr><th rowspan=2>Region</th><th colspan=2>Revenue</th><th rowspan="2">Staff</th></tr>
      <tr><th>Q3</th><th>Q4</th></tr>
      <tr><td rowspan=2>North</td><td>4.2</td><td>5.1</td><td>12</td></tr>
      <tr><td colspan=2>n/a</td><td>14</td></tr>
      <tr><td>South</td><td>3.9</td><td>4.0</td><td>9</td></tr></table>"""
    assert [s.text for s in parse_bytes(page, "t.html").sections] == [
        "Region: North; Revenue / Q3: 4.2; Revenue / Q4: 5.1; Staff: 12",
        "Region: North; Revenue / Q3: n/a; Staff: 14",  # a data cell spanning columns is read once
        "Region: South; Revenue / Q3: 3.9; Revenue / Q4: 4.0; Staff: 9",
    ]


def test_html_spans_are_bounded_and_past_the_budget_a_span_only_loses_its_repeats(monkeypatch):
    huge = b"<table><tr><th>A</th><th>B</th></tr><tr><td rowspan=100000000>x</td><td colspan=100000000>y</td>"
    rows = [s.text for s in parse_bytes(huge + b"<td>w</td></tr><tr><td>z</td></tr></table>", "t.html").sections]
    assert rows == ["A: x; B: y; w", "A: x; B: z"]  # w sits at column 1 + MAX_SPAN, past the header
    monkeypatch.setattr(html, "MAX_SPANNED", 20)  # the header's spread fits, carrying North down does not
    page = b"<table><tr><th colspan=3>Revenue</th></tr><tr><td rowspan=9>North</td><td>4.2</td><td>5.1</td></tr>"
    rows = [s.text for s in parse_bytes(page + b"<tr><td>4.4</td></tr></table>", "t.html").sections]
    assert rows == ["Revenue: North; Revenue: 4.2; Revenue: 5.1", "Revenue: 4.4"]


def test_an_html_cell_question_finds_its_row_in_a_real_store(tmp_path: Path, store: EmbeddedStore, embedder):
    filler = "".join(f"<p>Paragraph {i} about the company's offices, staff and plans for next year.</p>"
                     for i in range(6))
    page = f"<main><h1>Quarterly report</h1>{filler}<h2>Sales</h2>{html_table(REGIONS)}{filler}</main>"
    (tmp_path / "report.html").write_text(page)
    doc = parse_bytes(page.encode(), "report.html")
    chunks = chunk_document(doc, embedder.count_tokens, ChunkingOptions(max_tokens=embedder.identity.max_tokens))
    assert any("Region: South; Q3 revenue: 3.9M" in c.text for c in chunks)

    collection = store.ensure_collection("default", embedder)
    IngestPipeline(store, collection, workers=0).ingest([SourceFile(tmp_path / "report.html", "report.html")])
    hits = Searcher(store).search(collection, "What was the Q3 revenue of the South region?", k=3)
    assert "Region: South; Q3 revenue: 3.9M" in hits[0].text


# --- PDF ---------------------------------------------------------------------------------------------

PRICES = [["Product", "Units sold", "Unit price", "Revenue"], ["Lantern", "1,204", "12.50", "15,050.00"],
          ["Compass", "388", "31.00", "12,028.00"], ["Kettle", "2,911", "8.75", "25,471.25"],
          ["Blanket", "640", "19.90", "12,736.00"]]


def pdf_with_table(rows: list[list[str]], first_page: str | None = None) -> bytes:
    """A PDF of a sentence, the table (ruled), another sentence; with `first_page`, that page comes first."""
    out = io.BytesIO()
    style = getSampleStyleSheet()["BodyText"]
    table = Table(rows)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey)]))
    story = [Paragraph(first_page, style), PageBreak()] if first_page else []
    story += [Paragraph("The shop's sales for the spring season are listed below.", style), table,
              Paragraph("Kettles sold best because the cold lasted into April.", style)]
    SimpleDocTemplate(out, pagesize=A4).build(story)
    return out.getvalue()


def test_a_pdf_table_gives_rows_with_their_header_once_and_the_text_around_it_stays():
    doc = parse_bytes(pdf_with_table(PRICES), "sales.pdf")
    assert sections_with(doc, "Compass") == ["Product: Compass; Units sold: 388; Unit price: 31.00; Revenue: 12,028.00"]
    assert len([s for s in doc.sections if s.text.startswith("Product: ")]) == 4
    assert doc.text.count("25,471.25") == 1  # the cell is not also in the page's text
    assert "Units sold" not in doc.text.replace("Units sold:", "")  # nor is the header
    assert sections_with(doc, "spring season") and sections_with(doc, "cold lasted into April")
    assert {s.page for s in doc.sections} == {1}


def test_a_pdf_cell_question_finds_its_row_and_page_in_a_real_store(tmp_path: Path, store: EmbeddedStore, embedder):
    intro = " ".join(f"The shop on Harbour Street opened in spring and sells goods for walkers, number {i}."
                     for i in range(12))
    (tmp_path / "sales.pdf").write_bytes(pdf_with_table(PRICES, first_page=intro))
    collection = store.ensure_collection("default", embedder)
    IngestPipeline(store, collection, workers=0).ingest([SourceFile(tmp_path / "sales.pdf", "sales.pdf")])
    hits = Searcher(store).search(collection, "How many compasses were sold?", k=3)
    assert "Product: Compass; Units sold: 388;" in hits[0].text
    assert locator_label(hits[0].locator) == "page 2"


def test_the_cheap_signal_wants_runs_of_figures_not_a_figure_in_prose():
    assert looks_tabular("Intro\nNorth 4.2 3.1\nSouth 3.9 2.8\nEast 5.1 4.0\n")  # a row a line
    assert looks_tabular("Benchmark\nScore\nQA\n84.2\n71.5\nCode\n66.0\n58.3\nPolicy\n91.7\n88.9\n")  # a cell a line
    proof = "".join(f"Step {i} of the proof holds, by the map f 1 2.\n({i}.1)\n" for i in range(1, 9))
    assert not looks_tabular(proof)  # equation numbers, each alone between lines of prose
    assert not looks_tabular("Indices\n1 2 3 4\n5 6 7 8\n9 1 2 3\n4 5 6 7\n")  # a formula's lone digits


# --- the shared real-world tables -------------------------------------------------------------------


def test_nics_rows_are_one_section_each_under_the_group_headers(shared):
    doc = parse_bytes(shared("pdfs", "jsvine_pdfplumber", "nics-background-checks-2015-11.pdf").read_bytes(),
                      "nics.pdf")
    (texas,) = sections_with(doc, "Texas")
    assert texas.startswith("State / Territory: Texas; Permit: 21,550; Handgun: 56,941; Long Gun: 51,670;")
    assert "Pre-Pawn / Handgun: 29;" in texas and "Redemption / Handgun: 5,748;" in texas
    assert "Private Sale / Handgun: 42;" in texas and texas.endswith("Totals: 146,982")
    assert sections_with(doc, "Some states may reflect lower")  # the notes under the table are kept


def test_budget_rows_name_plan_and_non_plan_columns(shared):
    doc = parse_bytes(shared("pdfs", "camelot-dev_camelot", "budget.pdf").read_bytes(), "budget.pdf")
    (posts,) = sections_with(doc, "Department of Posts")
    assert posts == ("Ministry/Demand: 13. Department of Posts; Plan / Revenue: 286.70; Plan / Capital: 513.30; "
                     "Plan / Total: 800.00; Non-Plan / Revenue: 6907.76; Non-Plan / Capital: 5.00; "
                     "Non-Plan / Total: 6912.76; Total Plan & / Non-Plan: 7712.76; Page No.: 53-54")
    assert doc.text.count("6907.76") == 1
    assert sections_with(doc, "SBE Summary of Contents")


def test_a_table_of_a_header_row_only_keeps_its_text():
    doc = parse_bytes(b"<table><thead><tr><th>Region</th><th>Q3 revenue</th></tr></thead></table>", "t.html")
    assert [s.text for s in doc.sections] == ["Region; Q3 revenue"]


def test_the_sample_reports_table_header_is_its_ruled_row_not_the_sentence_above():
    doc = parse_bytes((Path(__file__).resolve().parents[1] / "samples" / "atlas-report.pdf").read_bytes(), "a.pdf")
    assert sections_with(doc, "Internal QA") == ["Benchmark: Internal QA; Atlas-7B: 84.2; Baseline: 71.5"]
    assert sections_with(doc, "before the project started")[0].startswith("Evaluation\nWe evaluated Atlas-7B")
