"""Office formats: PPTX decks, XLSX workbooks and CSV/TSV files, generated here, parsed, chunked and fuzzed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
import tracemalloc
import zipfile

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pptx import Presentation
from pptx.util import Inches

import ingest.parsers.sheets
from indexes.embedded import EmbeddedStore
from indexes.embedders import EmbedderSpec
from indexes.errors import LimitExceeded, ParseError
from indexes.filters import Filters
from indexes.locators import locator_label
from indexes.search import Searcher
from indexes.types import Hit
from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers import ParsedDocument, parse_bytes, parser_for
from ingest.parsers.tables import cell_text
from ingest.pipeline import IngestPipeline, SourceFile
from test_hostile_input import MB, assert_refused_early, zip_bytes


def slide_sections(doc: ParsedDocument, slide: int) -> list[tuple[tuple[str, ...], str]]:
    return [(s.heading_path, s.text) for s in doc.sections if s.page == slide]


def sheet_rows(doc: ParsedDocument, sheet: str | None) -> list[tuple[tuple[int, int] | None, str]]:
    return [(s.rows, s.text) for s in doc.sections if s.sheet == sheet]


def rezip(data: bytes, change: dict[str, bytes]) -> bytes:
    """The package with some members' bytes replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, change.get(member.filename, source.read(member)))
    return out.getvalue()


# -- PPTX ------------------------------------------------------------------------------------------


def deck(core_title: str = "") -> bytes:
    """A title slide, a bullet slide (a box above the bullets, a group of two boxes below), a table slide with
    notes, and a title-only divider."""
    prs = Presentation()
    prs.core_properties.title = core_title
    title = prs.slides.add_slide(prs.slide_layouts[0])
    title.shapes.title.text = "Atlas Quarterly"
    title.placeholders[1].text = "Board review, March 2024"

    bullets = prs.slides.add_slide(prs.slide_layouts[1])
    bullets.shapes.title.text = "Highlights"
    body = bullets.placeholders[1].text_frame
    body.text = "Revenue grew 12% in Lisbon"
    body.add_paragraph().text = "Churn fell to 3%"
    group = bullets.shapes.add_group_shape()  # drawn first, read last: it sits lowest on the slide
    group.shapes.add_textbox(Inches(5), Inches(6.5), Inches(2), Inches(0.5)).text_frame.text = "Group right"
    group.shapes.add_textbox(Inches(1), Inches(6.5), Inches(2), Inches(0.5)).text_frame.text = "Group left"
    bullets.shapes.add_textbox(Inches(5), Inches(0.1), Inches(3), Inches(0.5)).text_frame.text = "Draft, not final"
    bullets.notes_slide.notes_text_frame.text = "Mention the new Porto office."

    table_slide = prs.slides.add_slide(prs.slide_layouts[5])
    table_slide.shapes.title.text = "Revenue by region"
    table = table_slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Region", "Q3 revenue"], ["North", "4.2M"], ["South", "3.1M"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table_slide.notes_slide.notes_text_frame.text = "North beat its target by a wide margin."

    divider = prs.slides.add_slide(prs.slide_layouts[5])
    divider.shapes.title.text = "Questions"
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def test_a_deck_is_a_unit_per_slide_with_its_title_as_the_heading() -> None:
    doc = parse_bytes(deck(), "atlas.pptx")
    assert (doc.unit, doc.pages, doc.title) == ("slide", 4, "Atlas Quarterly")
    assert slide_sections(doc, 1) == [(("Atlas Quarterly",), "Board review, March 2024")]
    assert slide_sections(doc, 4) == [(("Questions",), "Questions")]  # a divider says what it divides


def test_slide_text_is_read_top_to_bottom_then_left_to_right_with_groups_recursed() -> None:
    doc = parse_bytes(deck(), "atlas.pptx")
    assert [text for path, text in slide_sections(doc, 2) if path == ("Highlights",)] == [
        "Draft, not final", "Revenue grew 12% in Lisbon", "Churn fell to 3%", "Group left", "Group right",
    ]


def test_slide_tables_are_rows_with_their_header_and_notes_sit_under_notes() -> None:
    doc = parse_bytes(deck(), "atlas.pptx")
    assert slide_sections(doc, 3) == [
        (("Revenue by region",), "Region: North; Q3 revenue: 4.2M"),
        (("Revenue by region",), "Region: South; Q3 revenue: 3.1M"),
        (("Revenue by region", "Notes"), "North beat its target by a wide margin."),
    ]
    assert (("Highlights", "Notes"), "Mention the new Porto office.") in slide_sections(doc, 2)
    assert all(s.sheet is None and s.rows is None for s in doc.sections)


def test_the_deck_title_comes_from_its_properties_before_its_first_slide() -> None:
    assert parse_bytes(deck(core_title="  Atlas  board pack "), "atlas.pptx").title == "Atlas board pack"


# -- XLSX ------------------------------------------------------------------------------------------


def workbook() -> bytes:
    """Q3: a caption, a blank row, the header on row 3, figures (a float with binary noise, a date, a date and
    time, percentages), an empty row; Staff: a plain table; Lookup: hidden; Numbers: no header at all."""
    book = openpyxl.Workbook()
    q3 = book.active
    q3.title = "Q3"
    q3.append(["Quarterly figures, unaudited"])
    q3.append([])
    q3.append(["Region", "Revenue (M)", "Closed on", "Share"])
    q3.append(["North", 4.2000000000000002, dt.date(2024, 9, 30), 0.25])
    q3.append([])
    q3.append(["South", 0.1 + 0.2, dt.datetime(2024, 10, 1, 14, 5), 0.125])
    q3.append(["East", 7.0, None, None])
    q3["D4"].number_format = "0%"
    q3["D6"].number_format = "0.0%"
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Office"])
    staff.append(["Ana Lima", "Porto"])
    lookup = book.create_sheet("Lookup")
    lookup.append(["code", "meaning"])
    lookup.append(["X9", "scratch value"])
    lookup.sheet_state = "hidden"
    numbers = book.create_sheet("Numbers")
    numbers.append([1, 2.5, 3])
    numbers.append([4, 5, 6])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_sheet_is_a_heading_and_each_row_carries_its_header_and_its_own_number() -> None:
    doc = parse_bytes(workbook(), "figures.xlsx")
    assert (doc.unit, doc.pages) == ("sheet", 3)
    assert sheet_rows(doc, "Q3") == [
        ((1, 1), "Quarterly figures, unaudited"),
        ((4, 4), "Region: North; Revenue (M): 4.2; Closed on: 2024-09-30; Share: 25%"),
        ((6, 6), "Region: South; Revenue (M): 0.3; Closed on: 2024-10-01 14:05:00; Share: 12.5%"),
        ((7, 7), "Region: East; Revenue (M): 7"),
    ]
    assert sheet_rows(doc, "Staff") == [((2, 2), "Name: Ana Lima; Office: Porto")]
    assert {s.heading_path for s in doc.sections if s.sheet == "Staff"} == {("Staff",)}


def test_hidden_sheets_are_skipped_with_a_warning_and_a_headerless_sheet_has_bare_cells() -> None:
    doc = parse_bytes(workbook(), "figures.xlsx")
    assert "scratch value" not in doc.text and doc.warnings == ["hidden sheet 'Lookup' skipped"]
    assert sheet_rows(doc, "Numbers") == [((1, 1), "1; 2.5; 3"), ((2, 2), "4; 5; 6")]


def test_a_macro_enabled_workbook_reads_as_a_workbook() -> None:
    data = workbook()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        types = z.read("[Content_Types].xml").replace(
            b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
        )
    assert b"macroEnabled" in types
    doc = parse_bytes(rezip(data, {"[Content_Types].xml": types}), "figures.xlsm")
    assert ((2, 2), "Name: Ana Lima; Office: Porto") in sheet_rows(doc, "Staff")


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.2000000000000002, "4.2"), (0.1 + 0.2, "0.3"), (3.0, "3"), (1234567.0, "1234567"), (1.5e-7, "1.5e-07"),
     (dt.datetime(2024, 3, 1), "2024-03-01"), (dt.datetime(2024, 3, 1, 9, 30), "2024-03-01 09:30:00"),
     (dt.date(2024, 3, 1), "2024-03-01"), (dt.time(9, 5), "09:05:00"), (True, "TRUE"), (7, "7"), (None, "")],
)
def test_cell_values_read_as_people_read_them(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_a_far_row_keeps_its_number_and_the_empty_rows_before_it_are_streamed() -> None:
    book = openpyxl.Workbook()
    book.active.title = "Log"
    book.active.append(["Event", "Count"])
    book.active["A100000"], book.active["B100000"] = "late entry", 9
    out = io.BytesIO()
    book.save(out)
    parser_for("x.xlsx")  # import the parsers first: that is not the file's cost
    tracemalloc.start()
    try:
        doc = parse_bytes(out.getvalue(), "log.xlsx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sheet_rows(doc, "Log") == [((100000, 100000), "Event: late entry; Count: 9")]
    assert peak < 20 * MB, f"allocated {peak / MB:.0f} MB"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stated", ["A1:A1", "A1:XFD1048576"])
def test_a_sheet_whose_stated_size_is_wrong_is_read_as_stored(stated: str) -> None:
    """A sheet's <dimension> is only a claim. Trusted, a stale A1:A1 reads one cell of 4000; a hostile
    A1:XFD1048576 pads each of 2000 rows to 16384 cells (tens of seconds). Ignored, the rows read as stored."""
    table = [["Name", "Office"]] + [[f"person {n}", "Faro"] for n in range(2, 2001)]
    data = as_xlsx(table, "Staff")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml")
    wrong = re.sub(rb'<dimension ref="[^"]+"', b'<dimension ref="%s"' % stated.encode(), sheet)
    assert wrong != sheet
    started = time.perf_counter()
    doc = parse_bytes(rezip(data, {"xl/worksheets/sheet1.xml": wrong}), "wrong.xlsx")
    assert time.perf_counter() - started < 5
    rows = sheet_rows(doc, "Staff")
    assert len(rows) == 1999 and rows[-1] == ((2000, 2000), "Name: person 2000; Office: Faro")


def test_a_file_over_the_cell_bound_is_refused_across_its_sheets(monkeypatch) -> None:
    monkeypatch.setattr(ingest.parsers.sheets, "MAX_CELLS", 50)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name in ("A", "B"):
        sheet = book.create_sheet(name)
        for i in range(15):
            sheet.append([f"row {i}", i])  # 30 cells a sheet: each fits, the two together do not
        out = io.BytesIO()
        book.save(out)
        if name == "A":
            assert len(parse_bytes(out.getvalue(), "one.xlsx").sections) == 14
    with pytest.raises(LimitExceeded, match="^XLSX has more than 50 filled cells"):
        parse_bytes(out.getvalue(), "two.xlsx")


# -- CSV / TSV -------------------------------------------------------------------------------------


def test_a_semicolon_latin1_csv_is_one_unnamed_sheet_numbered_as_in_the_file() -> None:
    """Rows are records, as a spreadsheet shows them: a quoted line break stays inside its row."""
    data = "Região;Receita (€ M);Observação\nNorte;4,2;Ótimo\n\nSul;3,1;\"Bom\nano\"\nCentro;2,0;\n"
    doc = parse_bytes(data.encode("cp1252"), "regioes.csv")
    assert doc.unit == "sheet"
    assert sheet_rows(doc, None) == [
        ((2, 2), "Região: Norte; Receita (€ M): 4,2; Observação: Ótimo"),
        ((4, 4), "Região: Sul; Receita (€ M): 3,1; Observação: Bom ano"),
        ((5, 5), "Região: Centro; Receita (€ M): 2,0"),
    ]


def test_a_tsv_is_tab_separated_even_where_commas_are_as_regular() -> None:
    data = b"name\tcity, country\nAna\tFaro, PT\nRui\tBraga, PT\n"  # csv.Sniffer picks the comma here
    assert sheet_rows(parse_bytes(data, "people.tsv"), None) == [
        ((2, 2), "name: Ana; city, country: Faro, PT"), ((3, 3), "name: Rui; city, country: Braga, PT"),
    ]


def test_a_csv_of_numbers_has_no_header_and_one_column_keeps_its_header_and_row_numbers() -> None:
    assert sheet_rows(parse_bytes(b"1,2\n3,4\n", "n.csv"), None) == [((1, 1), "1; 2"), ((2, 2), "3; 4")]
    one_column = parse_bytes(b"City\nFaro\n\nBraga\n", "c.csv")
    assert sheet_rows(one_column, None) == [((2, 2), "City: Faro"), ((4, 4), "City: Braga")]


def test_a_csv_whose_dialect_cannot_be_sniffed_is_read_as_commas() -> None:
    ragged = parse_bytes(b"a;b,c\n1;2,3,4\nx\n", "ragged.csv")  # csv.Sniffer: "Could not determine delimiter"
    assert sheet_rows(ragged, None) == [((2, 2), "a;b: 1;2; c: 3; 4"), ((3, 3), "a;b: x")]


def test_a_csv_with_an_oversized_field_is_a_parse_error_naming_the_line() -> None:
    with pytest.raises(ParseError, match=r"^invalid CSV: field larger than field limit .* \(line 2\)"):
        parse_bytes(b"a,b\n1," + b"x" * 200_000 + b"\n", "big.csv")


# -- chunks and their locators ---------------------------------------------------------------------


@pytest.fixture
def count_tokens(embedder):
    return embedder.count_tokens


def test_slide_chunks_are_located_by_slide(count_tokens) -> None:
    doc = parse_bytes(deck(), "atlas.pptx")
    chunks = chunk_document(doc, count_tokens, ChunkingOptions(max_tokens=256))
    north = [c for c in chunks if "Region: North" in c.text]
    assert len(north) == 1 and north[0].locator == {"kind": "slide", "slide": 3}
    assert locator_label(north[0].locator) == "slide 3"
    assert north[0].page_start is None and north[0].embed_text.startswith("Atlas Quarterly > Revenue by region\n")
    notes = [c for c in chunks if "Porto office" in c.text]
    assert notes[0].locator == {"kind": "slide", "slide": 2} and notes[0].heading_path == ("Highlights", "Notes")


def q3_table(rows: int) -> list[list[object]]:
    """A header, then row n (from 2) holding the id "r<n>", with an empty row every tenth row."""
    return [["Id", "Region", "Q3 revenue"]] + [
        [] if n % 10 == 0 else [f"r{n}", f"Region number {n}", n * 1.5] for n in range(2, rows + 1)
    ]


def as_xlsx(table: list[list[object]], title: str) -> bytes:
    book = openpyxl.Workbook()
    book.active.title = title
    for row in table:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_csv(table: list[list[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    return out.getvalue().encode()


@pytest.mark.parametrize(("name", "sheet"), [("q3.xlsx", "Q3"), ("q3.csv", None)])
def test_sheet_chunks_name_exactly_the_rows_they_hold(count_tokens, name: str, sheet: str | None) -> None:
    table = q3_table(120)
    data = as_xlsx(table, "Q3") if name.endswith(".xlsx") else as_csv(table)
    chunks = chunk_document(parse_bytes(data, name), count_tokens, ChunkingOptions(max_tokens=64))
    assert len(chunks) > 10
    for chunk in chunks:
        ids = [int(n) for n in re.findall(r"Id: r(\d+)", chunk.text)]
        assert ids and chunk.locator == {"kind": "sheet", "sheet": sheet, "rows": [min(ids), max(ids)]}, chunk
        assert "Region: Region number" in chunk.text and chunk.page_start is None
    first = chunks[0].locator["rows"]
    assert first[0] == 2 and first[1] > 2
    span = f"rows {first[0]}–{first[1]}"
    assert locator_label(chunks[0].locator) == (f"sheet Q3, {span}" if sheet else span)


# -- hostile input ---------------------------------------------------------------------------------

# Every failure reads as a reason: the format named, or the shared refusals (no text, binary, a bound).
REASON = re.compile(r"^(invalid (PPTX|XLSX|CSV): .|binary content|no extractable text|empty file)")


def assert_document_or_reason(data: bytes, name: str) -> None:
    try:
        doc = parse_bytes(data, name)
    except LimitExceeded:
        return
    except ParseError as e:
        assert REASON.search(str(e)), str(e)
        return
    assert isinstance(doc, ParsedDocument) and doc.text.strip()
    assert all(doc.text[s.start : s.end] == s.text for s in doc.sections)


VALID = {"f.pptx": deck(), "f.xlsx": workbook(), "f.csv": as_csv(q3_table(30))}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(name=st.sampled_from(["f.pptx", "f.xlsx", "f.xlsm", "f.csv", "f.tsv"]), data=st.binary(min_size=1, max_size=4096))
def test_arbitrary_bytes_parse_or_fail_with_a_reason(name: str, data: bytes) -> None:
    assert_document_or_reason(data, name)


@FUZZ
@given(name=st.sampled_from(sorted(VALID)), at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_valid_files_with_bytes_overwritten_parse_or_fail_with_a_reason(name: str, at: float, junk: bytes) -> None:
    data = VALID[name]
    i = int(at * (len(data) - 1))
    assert_document_or_reason(data[:i] + junk + data[i + len(junk) :], name)


@st.composite
def mutated_package(draw) -> tuple[str, bytes]:
    """A valid deck or workbook with one XML member's bytes changed and the package re-zipped (so its CRCs hold
    and the XML parsers, not zipfile, meet the damage)."""
    name = draw(st.sampled_from(["f.pptx", "f.xlsx"]))
    with zipfile.ZipFile(io.BytesIO(VALID[name])) as z:
        members = sorted(n for n in z.namelist() if n.endswith((".xml", ".rels")))
        member = draw(st.sampled_from(members))
        body = z.read(member)
    at = draw(st.integers(0, len(body)))
    cut = draw(st.integers(0, 32))
    junk = draw(st.sampled_from([b"", b"<", b">", b"\"", b"&", b"</x>", b"<a:t>", b"\x00", b"\xff\xfe", b"9" * 12]))
    return name, rezip(VALID[name], {member: body[:at] + junk + body[at + cut :]})


@FUZZ
@given(package=mutated_package())
def test_damaged_package_members_parse_or_fail_with_a_reason(package: tuple[str, bytes]) -> None:
    assert_document_or_reason(package[1], package[0])


@pytest.mark.parametrize(
    ("name", "member", "kind"),
    [("bomb.pptx", "ppt/slides/slide1.xml", "PPTX"), ("bomb.xlsx", "xl/worksheets/sheet1.xml", "XLSX"),
     ("bomb.xlsm", "xl/worksheets/sheet1.xml", "XLSX")],
)
def test_office_zip_bombs_are_refused_before_anything_is_inflated(name: str, member: str, kind: str) -> None:
    bomb = zip_bytes({"[Content_Types].xml": b"<Types/>", member: 250 * MB})
    assert_refused_early(bomb, name, LimitExceeded, rf"^{kind} would inflate to 262144\d+ bytes")
    ratio = zip_bytes({"[Content_Types].xml": b"<Types/>", member: 20 * MB})
    assert_refused_early(ratio, name, LimitExceeded, rf"^{kind} member {member} inflates \d+:1 .*zip bomb")


@pytest.mark.parametrize(("name", "kind"), [("x.pptx", "PPTX"), ("x.xlsx", "XLSX")])
def test_an_office_file_that_is_no_zip_names_its_format(name: str, kind: str) -> None:
    with pytest.raises(ParseError, match=rf"^invalid {kind}: not a zip package"):
        parse_bytes(b"PK\x03\x04 not really", name)


# -- end to end: ingested through the pipeline into a real store, found by search --------------------


def with_fact(table: list[list[object]], row: int) -> list[list[object]]:
    """The table with sheet row `row` (1-based) holding a fact found nowhere else."""
    table = [list(r) for r in table]
    table[row - 1] = [f"r{row}", "Lisbon harbour kiosk", 912.5]
    return table


@pytest.fixture(scope="module")
def office_indexed(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("office")
    files = {
        "atlas.pptx": deck(),
        "figures.xlsx": as_xlsx(with_fact(q3_table(120), 57), "Q3"),
        "figures.csv": as_csv(with_fact(q3_table(120), 83)),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    store = EmbeddedStore(root / "data", EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    collection = store.ensure_collection("office", embedder)
    report = IngestPipeline(store, collection, workers=0).ingest([SourceFile(root / n, n) for n in files])
    assert report.counts()["ingested"] == 3, report.as_dict()
    return store, collection


def top_hit(indexed, query: str, source: str) -> Hit:
    store, collection = indexed
    hits = Searcher(store).search(collection, query, mode="hybrid", k=1, filters=Filters(source_glob=source))
    assert hits, query
    return hits[0]


def test_a_slide_fact_is_found_and_cited_by_its_slide(office_indexed) -> None:
    hit = top_hit(office_indexed, "What was the Q3 revenue of the North region?", "atlas.pptx")
    assert "Region: North; Q3 revenue: 4.2M" in hit.text
    assert hit.locator == {"kind": "slide", "slide": 3} and locator_label(hit.locator) == "slide 3"
    notes = top_hit(office_indexed, "Which new office should be mentioned?", "atlas.pptx")
    assert "Porto office" in notes.text and notes.locator == {"kind": "slide", "slide": 2}


@pytest.mark.parametrize(("source", "sheet", "row"), [("figures.xlsx", "Q3", 57), ("figures.csv", None, 83)])
def test_a_cell_is_found_and_cited_by_its_sheet_and_rows(office_indexed, source: str, sheet, row: int) -> None:
    hit = top_hit(office_indexed, "What was the Q3 revenue of the Lisbon harbour kiosk?", source)
    assert f"Id: r{row}; Region: Lisbon harbour kiosk; Q3 revenue: 912.5" in hit.text
    assert hit.locator["kind"] == "sheet" and hit.locator["sheet"] == sheet
    first, last = hit.locator["rows"]
    assert first <= row <= last and last - first < 20, hit.locator
    assert locator_label(hit.locator).endswith(f"rows {first}–{last}")
