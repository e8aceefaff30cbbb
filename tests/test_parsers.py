"""Parsers: our own samples, real-world PDFs from shared/pdfs, and hostile input."""

from __future__ import annotations

import csv
import io
import random
import sys
import time
from pathlib import Path

import docx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingest.parsers
from indexes.errors import ParseError, UnsupportedMediaType
from ingest.parsers import ParsedDocument, parse_bytes, parser_for, supported_suffixes

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PARSERS_DIR = str(Path(ingest.parsers.__file__).parent)
SAMPLE_NAMES = ["handbook.md", "politica-de-ferias.md", "faq.html", "atlas-report.pdf", "onboarding.docx"]


def parse_sample(name: str) -> ParsedDocument:
    return parse_bytes((SAMPLES / name).read_bytes(), name)


def section_with(doc: ParsedDocument, fact: str):
    matches = [s for s in doc.sections if fact in s.text]
    assert matches, f"{fact!r} not found in any section"
    return matches[0]


def assert_offsets_exact(doc: ParsedDocument) -> None:
    for section in doc.sections:
        assert doc.text[section.start : section.end] == section.text
    starts = [s.start for s in doc.sections]
    assert starts == sorted(starts)


# --- our samples -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_parses_with_exact_offsets(name):
    doc = parse_sample(name)
    assert doc.text.strip() and doc.sections
    assert_offsets_exact(doc)


def test_samples_folder_stays_small():
    assert sum(p.stat().st_size for p in SAMPLES.iterdir() if p.is_file()) < 200_000


def test_pdf_pages_are_numbered_from_one():
    doc = parse_sample("atlas-report.pdf")
    assert doc.pages == 4
    assert [s.page for s in doc.sections][0] == 1
    assert section_with(doc, "64 GPUs for 9 days").page == 2
    assert section_with(doc, "Policy lookup").page == 3
    assert section_with(doc, "Project Meridian").page == 4


def test_pdf_title_comes_from_metadata_and_outline_gives_heading_paths():
    doc = parse_sample("atlas-report.pdf")
    assert doc.title == "Project Atlas: Final Report"
    assert section_with(doc, "Helsinki data centre").heading_path == ("Training", "Infrastructure")
    assert section_with(doc, "64 GPUs").heading_path == ("Training",)


def test_pdf_table_cells_are_extracted():
    text = parse_sample("atlas-report.pdf").text
    assert "Internal QA" in text and "84.2" in text


def test_markdown_heading_paths_follow_levels():
    doc = parse_sample("handbook.md")
    assert section_with(doc, "12 nodes").heading_path == (
        "Northwind Engineering Handbook", "Shipping software", "Environments")
    assert section_with(doc, "one week").heading_path[-1] == "On-call rotation"


def test_markdown_setext_heading_closes_deeper_levels():
    doc = parse_sample("handbook.md")
    assert section_with(doc, "Prometheus").heading_path == ("Northwind Engineering Handbook", "Observability")


def test_markdown_front_matter_is_stripped_and_gives_the_title():
    doc = parse_sample("handbook.md")
    assert doc.title == "Northwind Engineering Handbook"
    assert "owner: platform-team" not in doc.text


def test_markdown_headings_inside_code_fences_are_text():
    doc = parse_sample("handbook.md")
    code = section_with(doc, "shipwright deploy checkout-api")
    assert "# Deploying" in code.text
    assert section_with(doc, "feature flag in Lighthouse").heading_path[-1] == "Feature flags"


def test_markdown_title_falls_back_to_first_heading():
    doc = parse_bytes("Intro text\n\n## Second\n\nBody\n".encode(), "a.md")
    assert doc.title == "Second"
    assert parse_bytes(b"no headings here", "b.md").title is None


def test_markdown_setext_heading_starting_with_emphasis_is_a_heading():
    doc = parse_bytes(b"**Release** checklist\n=====\n\nTag the commit first.\n", "r.md")
    assert doc.title == "**Release** checklist"
    assert [(s.text, s.heading_path) for s in doc.sections] == [("Tag the commit first.", ("**Release** checklist",))]


def test_markdown_heading_inside_an_html_comment_is_not_a_heading():
    data = b"# Guide\n\nCurrent text.\n\n<!--\n## Retired\n\nOld text.\n-->\n\nMore current text.\n"
    doc = parse_bytes(data, "c.md")
    assert {s.heading_path for s in doc.sections} == {("Guide",)}
    assert section_with(doc, "More current text").heading_path == ("Guide",)


def test_markdown_indented_code_with_a_blank_line_is_one_section():
    doc = parse_bytes(b"Run this:\n\n    make install\n\n    make test\n\nThen read the log.\n", "i.md")
    assert [s.text for s in doc.sections] == ["Run this:", "make install\n\nmake test", "Then read the log."]


def test_markdown_lead_in_line_and_its_list_are_one_section():
    doc = parse_bytes(b"# Kit\n\nEach laptop comes with:\n- a charger\n- a sleeve\n", "k.md")
    assert [s.text for s in doc.sections] == ["Each laptop comes with:\n- a charger\n- a sleeve"]


# Random Markdown built from blocks whose sections and heading paths are known by construction.
md_word = st.sampled_from(["pump", "ação", "3.5", "*emph*", "**bold**", "`code`", "+1", "-5", "#tag", "[x](y)", "a_b"])
md_line = st.lists(md_word, min_size=1, max_size=6).map(" ".join)
md_heading = st.tuples(st.integers(1, 6), md_line, st.booleans())  # level, text, setext (levels 1-2 only)
md_prose = st.one_of(
    st.lists(md_line, min_size=1, max_size=3).map("\n".join),  # paragraph
    st.lists(md_line, min_size=1, max_size=3).map(lambda items: "\n".join(f"- {i}" for i in items)),
    st.lists(md_line, min_size=1, max_size=3).map(lambda rows: "| a | b |\n| --- | --- |\n" + "\n".join(
        f"| {r} | x |" for r in rows)),
    st.lists(md_line, min_size=1, max_size=2).map(lambda lines: "\n".join(f"> {line}" for line in lines)),
)
md_code = st.lists(st.sampled_from(["# not a heading", "Title", "====", "x = 1", "- item"]), min_size=1, max_size=4)
md_block = st.one_of(md_heading.map(lambda h: ("heading", h)), md_prose.map(lambda p: ("prose", p)),
                     md_code.map(lambda c: ("code", "\n".join(c))), st.just(("hr", "***")))


def render_markdown(blocks: list[tuple[str, object]]) -> tuple[str, list[tuple[str, tuple[str, ...]]], str | None]:
    """The Markdown source, the (text, heading path) each content block should give, and the first heading."""
    parts, expected, open_headings, first = [], [], [], None
    for kind, value in blocks:
        if kind == "heading":
            level, text, setext = value
            if setext and level <= 2:
                parts.append(f"{text}\n{'=' if level == 1 else '-' * 3}")
            else:
                parts.append(f"{'#' * level} {text}")
            open_headings = [(lv, t) for lv, t in open_headings if lv < level] + [(level, text)]
            first = first or text
        else:
            parts.append(f"```\n{value}\n```" if kind == "code" else value)
            if kind != "hr":
                expected.append((value, tuple(t for _, t in open_headings)))
    return "\n\n".join(parts) + "\n", expected, first


@settings(max_examples=300, deadline=None)
@given(st.lists(md_block, min_size=1, max_size=12))
def test_markdown_blocks_become_sections_under_their_headings(blocks):
    source, expected, first = render_markdown(blocks)
    if not expected:
        with pytest.raises(ParseError, match="no extractable text"):
            parse_bytes(source.encode(), "fuzz.md")
        return
    doc = parse_bytes(source.encode(), "fuzz.md")
    assert_offsets_exact(doc)
    assert [(s.text, s.heading_path) for s in doc.sections] == expected
    assert doc.title == first


def test_portuguese_markdown_keeps_accents():
    doc = parse_sample("politica-de-ferias.md")
    assert doc.title == "Política de Férias da Northwind"
    assert "30 dias de férias" in section_with(doc, "30 dias").text
    assert section_with(doc, "aviso prévio de 15 dias").heading_path[-1] == "Solicitação"
    assert section_with(doc, "5 dias úteis").heading_path[-1] == "Aprovação"


def test_html_drops_page_chrome_scripts_and_styles():
    doc = parse_sample("faq.html")
    for marker in ["analytics-script", "hidden-style-marker", "navigation link", "header banner",
                   "footer-marker", "sidebar marker", "noscript-marker"]:
        assert marker not in doc.text


def test_html_heading_paths_and_title():
    doc = parse_sample("faq.html")
    assert doc.title == "Northwind Cloud Storage — Frequently Asked Questions"
    assert section_with(doc, "45 minutes").heading_path == (
        "Frequently Asked Questions", "Accounts", "How do I reset my password?")
    assert section_with(doc, "never sell").heading_path[-2:] == ("Security", "Where is my data stored?")


def test_html_table_rows_carry_their_header():
    doc = parse_sample("faq.html")
    row = section_with(doc, "200 GB")
    assert row.text == "Plan: Plus; Storage: 200 GB; Price per month: 3 euros"
    assert row.heading_path[-1] == "How much storage do the plans include?"


def test_html_charset_from_meta_tag():
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Pedido de férias</p></body></html>'
    doc = parse_bytes(html.encode("latin-1"), "page.htm")
    assert doc.text == "Pedido de férias"


def test_html_without_main_uses_body_and_first_h1_as_title():
    doc = parse_bytes(b"<body><h1>Guide</h1><div>Loose <b>inline</b> text</div></body>", "g.html")
    assert doc.title == "Guide"
    assert doc.sections[0].text == "Loose inline text"
    assert doc.sections[0].heading_path == ("Guide",)


def test_docx_headings_paragraphs_and_tables_in_body_order():
    doc = parse_sample("onboarding.docx")
    assert doc.title == "Welcome to Northwind"
    assert section_with(doc, "two-factor").heading_path == ("Your first day", "Accounts")
    texts = [s.text for s in doc.sections]
    row = texts.index("Week: 1; Task: Shadow an on-call shift; Owner: Buddy")
    assert texts[row - 1] == "Week: 1; Task: Ship a small fix to production; Owner: You"
    assert "tracker" in texts[row - 2]
    assert "gym allowance" in texts[row + 2]
    assert section_with(doc, "Shadow an on-call").heading_path == ("Your first two weeks",)


def test_docx_without_title_property_uses_first_heading():
    document = docx.Document()
    document.add_heading("Release notes", level=1)
    document.add_paragraph("Version 2 adds exports.")
    buffer = io.BytesIO()
    document.save(buffer)
    doc = parse_bytes(buffer.getvalue(), "notes.DOCX")
    assert doc.title == "Release notes"
    assert doc.sections[0].heading_path == ("Release notes",)


# --- plain text and encodings -------------------------------------------------------------


def test_text_paragraphs_split_on_blank_lines():
    doc = parse_bytes(b"\xef\xbb\xbfFirst line\nstill first\n\n  \n\nSecond", "notes.txt")
    assert [s.text for s in doc.sections] == ["First line\nstill first", "Second"]
    assert doc.sections[0].page is None


def test_latin1_text_decodes_correctly():
    text = ("Política de férias: a solicitação deve ser feita com aviso prévio de 15 dias, "
            "e a aprovação é dada pelo gestor. São 30 dias de férias por ano.\n")
    doc = parse_bytes(text.encode("latin-1"), "ferias.txt")
    assert "férias" in doc.text and "solicitação" in doc.text and "aprovação" in doc.text


def test_utf16_text_with_bom_decodes():
    doc = parse_bytes("Ünïcödé notes\n".encode("utf-16"), "u.txt")
    assert doc.text == "Ünïcödé notes"


# --- registry and hostile input -------------------------------------------------------------


def test_parser_lookup_is_case_insensitive():
    assert parser_for("REPORT.PDF") is parser_for("x.pdf") is not None
    assert {".pdf", ".md", ".html", ".htm", ".docx", ".txt"} <= supported_suffixes()
    assert parser_for("archive.zip") is None


def test_unknown_suffix_is_unsupported_media_type():
    with pytest.raises(UnsupportedMediaType, match="unsupported file type: .exe"):
        parse_bytes(b"MZ", "setup.exe")


@pytest.mark.parametrize("name", ["a.txt", "a.pdf", "a.docx", "a.html", "a.md"])
def test_zero_bytes_is_an_empty_file(name):
    with pytest.raises(ParseError, match="^empty file$"):
        parse_bytes(b"", name)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["junk.txt", "junk.pdf", "junk.docx", "junk.html", "junk.md"])
def test_random_bytes_raise_parse_error_only(name, seed):
    data = random.Random(seed).randbytes(4096)
    with pytest.raises(ParseError):
        parse_bytes(data, name)


@pytest.mark.parametrize("name", ["zip.docx", "zip.pdf"])
def test_truncated_files_raise_parse_error(name):
    source = "onboarding.docx" if name.endswith("docx") else "atlas-report.pdf"
    data = (SAMPLES / source).read_bytes()[:1500]
    with pytest.raises(ParseError):
        parse_bytes(data, name)


def test_invalid_docx_names_the_format():
    with pytest.raises(ParseError, match="^invalid DOCX: "):
        parse_bytes(b"PK\x03\x04 not really a zip", "x.docx")


@pytest.mark.parametrize("data,name", [
    (b"   \n\n  ", "blank.txt"),
    (b"<html><body><script>x()</script></body></html>", "s.html"),
    (b"# Only a heading\n", "h.md"),
])
def test_documents_without_text_are_rejected(data, name):
    with pytest.raises(ParseError, match="no extractable text"):
        parse_bytes(data, name)


def test_deeply_nested_html_does_not_overflow():
    html = b"<div>" * 20000 + b"deep text" + b"</div>" * 20000
    assert "deep text" in parse_bytes(html, "deep.html").text


def parser_lines_run(data: bytes, name: str) -> int:
    """How many lines of ingest/parsers code run while parsing `data`: the parser's work, counted exactly."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if not frame.f_code.co_filename.startswith(PARSERS_DIR):
            return None  # other code (the standard library, charset detection) is not the parser's own loop
        count += event == "line"
        return trace

    sys.settrace(trace)
    try:
        parse_bytes(data, name)
    finally:
        sys.settrace(None)
    return count


MARKDOWN_UNIT = "#######\n- item\ncontinued text\n===\n```\ncode\n```\n* * *\n\n## heading ##\ntext\n  > quote\n-\n\n"
LINE_SCANS = {
    # unclosed front matter, every kind of line, and one block that grows for ever (setext-like lines under list items)
    "big.md": lambda n: "---\ntitle: x\n" + MARKDOWN_UNIT * n + "- item\n===\n" * n,
    "big.txt": lambda n: "a line\n\n  \n\t\nmore text\n" * n,
    "big.html": lambda n: "<body>" + "<h2>Head</h2><p>a <b>b</b></p><ul><li>x</li></ul><div><div>d</div></div>" * n,
}


@pytest.mark.parametrize("name", sorted(LINE_SCANS))
def test_pathological_documents_take_work_linear_in_their_size(name):
    """Work at n, 2n and 4n units: going from 2n to 4n adds twice what going from n to 2n added if the work is
    linear (fixed costs cancel out), four times if it is quadratic; the bound of 2.5 tells them apart."""
    work = [parser_lines_run(LINE_SCANS[name](n).encode(), name) for n in (100, 200, 400)]
    first, second = work[1] - work[0], work[2] - work[1]
    assert first > 0 and second <= 2.5 * first, work


@pytest.mark.timeout(60)  # a catastrophic (exponential) pattern fails here rather than at the suite's limit
def test_pathological_markdown_lines_are_scanned_in_linear_time():
    """Runs of one character with a mismatch at the end, where a backtracking or unanchored pattern goes quadratic:
    that takes a minute for lines this long (an unanchored `_SETEXT`), linear scanning well under 0.1 s."""
    n = 30_000
    lines = [b"#" * n + b" " * n + b"x", b"- " * n, b"=" * n + b"x", b"-" * n + b"x", b"*" * n + b"x", b"_ " * n + b"x",
             b" " * n + b"x", b"- item", b"=" * n + b" " * n + b"x", b"`" * n]  # the fence last: it hides what follows
    started = time.process_time()
    parse_bytes(b"\n".join(lines), "big.md")
    assert time.process_time() - started < 1.5


# --- real-world PDFs (../shared/pdfs) --------------------------------------------------------

# What each file in MANIFEST.tsv yields, checked by hand: text to find ("text" from the text layer, "ocr" from
# a scan read by Tesseract), or the ParseError reason.
EXPECTED_PDFS: dict[str, tuple[str, str]] = {
    "jsvine_pdfplumber/password-example.pdf": ("error", "encrypted: password required"),
    "jsvine_pdfplumber/nics-background-checks-2015-11.pdf": ("text", "Handgun"),
    "jsvine_pdfplumber/scotus-transcript-p1.pdf": ("text", "SUPREME COURT"),
    "jsvine_pdfplumber/empty.pdf": ("error", "empty file"),
    "jsvine_pdfplumber/malformed-from-issue-932.pdf": ("text", "2021"),
    "py-pdf_sample-files/libreoffice-writer-password.pdf": ("error", "encrypted: password required"),
    "py-pdf_sample-files/minimal-document.pdf": ("text", "Lorem ipsum"),
    "py-pdf_sample-files/pdflatex-forms.pdf": ("text", "Name"),
    "py-pdf_sample-files/habibi.pdf": ("text", "habibi"),
    "py-pdf_sample-files/google-doc-document.pdf": ("text", "Example document"),
    "py-pdf_sample-files/GeoTopo-komprimiert.pdf": ("text", "Topologie"),
    "py-pdf_sample-files/pdflatex-outline.pdf": ("text", "Foo"),
    "py-pdf_sample-files/multicolumn.pdf": ("text", "Two-Column Document"),
    "ocrmypdf_OCRmyPDF/skew.pdf": ("ocr", "The LinnSequencer"),
    "ocrmypdf_OCRmyPDF/invalid.pdf": ("error", "invalid PDF: "),
    "mozilla_pdf.js/helloworld-bad.pdf": ("text", "Hello, world!"),
    "mozilla_pdf.js/compressed.tracemonkey-pldi-09.pdf": ("text", "Trace-based Just-in-Time"),
    "mozilla_pdf.js/scan-bad.pdf": ("text", "pdf.js"),
    "camelot-dev_camelot/budget.pdf": ("text", "Budget"),
    "pdfminer_pdfminer.six/zen_of_python_corrupted.pdf": ("text", "Beautiful is better than ugly"),
    "pdfminer_pdfminer.six/rc4-40.pdf": ("error", "encrypted: password required"),
}


@pytest.fixture
def manifest_rows(shared) -> list[dict[str, str]]:
    with open(shared("pdfs", "MANIFEST.tsv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_shared_pdf_expectations_cover_the_manifest(manifest_rows):
    assert {row["local_path"] for row in manifest_rows} == set(EXPECTED_PDFS)


def test_shared_pdf_expectations_agree_with_the_manifest_notes(manifest_rows):
    for row in manifest_rows:
        kind, detail = EXPECTED_PDFS.get(row["local_path"], ("missing", ""))
        special = row["special"].upper()
        if "ENCRYPTED" in special:
            assert detail == "encrypted: password required", row["local_path"]
        elif "ZERO-BYTE" in special:
            assert detail == "empty file"
        elif special.startswith("SCANNED"):
            assert kind == "ocr", row["local_path"]
        elif special.startswith("INVALID"):
            assert kind == "error"


@pytest.mark.parametrize("local_path", sorted(EXPECTED_PDFS))
def test_shared_pdf_parses_or_fails_with_the_expected_reason(shared, local_path):
    path = shared("pdfs", local_path)
    kind, detail = EXPECTED_PDFS[local_path]
    if kind == "error":
        with pytest.raises(ParseError) as raised:
            parse_bytes(path.read_bytes(), path.name)
        assert raised.value.detail.startswith(detail)
        return
    doc = parse_bytes(path.read_bytes(), path.name)
    assert detail in doc.text
    assert all(s.page is not None and 1 <= s.page <= doc.pages for s in doc.sections)
    assert_offsets_exact(doc)
    # A page with a text layer is never OCR'd; a scan is OCR'd page by page.
    assert doc.ocr_pages == (list(range(1, doc.pages + 1)) if kind == "ocr" else [])
    assert all(s.ocr == (kind == "ocr") for s in doc.sections)
