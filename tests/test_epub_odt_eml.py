"""EPUB, ODT and EML parsers: chapters, headings, tables as rows, headers as metadata, attachments; hostile bytes
end in a DocQAError, never another exception."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexes.errors import DocQAError, LimitExceeded, ParseError
from indexes.locators import locator_label
from indexes.search import Searcher
from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers import ParsedDocument, parse_bytes, parser_for
from ingest.parsers.eml import EmlParser
from ingest.parsers.epub import EpubParser
from ingest.parsers import odt
from ingest.parsers.odt import OdtParser
from ingest.pipeline import IngestPipeline
from office_files import INVOICE_FACT, NOTES_FACT, PUMP_BOOK, eml_bytes, epub_bytes, odt_bytes
from test_hostile_input import assert_refused_early


def sections(doc: ParsedDocument) -> list[tuple[str, int | None, tuple[str, ...]]]:
    return [(s.text, s.page, s.heading_path) for s in doc.sections]


@pytest.mark.parametrize(
    "name, parser", [("book.epub", EpubParser), ("manual.ODT", OdtParser), ("message.eml", EmlParser)]
)
def test_the_new_formats_are_registered(name: str, parser: type) -> None:
    assert isinstance(parser_for(name), parser)


def test_an_epub_is_read_in_spine_order_one_chapter_each_under_its_toc_title_or_first_heading() -> None:
    doc = parse_bytes(epub_bytes(PUMP_BOOK), "book.epub")
    assert doc.title == "The Pump Book" and doc.unit == "chapter" and doc.pages == 2
    assert sections(doc) == [
        ("Mount the pump on a level base.", 1, ("Chapter One: Installing",)),
        ("The red lead goes to terminal seven.", 1, ("Chapter One: Installing", "Wiring")),
        ("Replace the lip seals every 4,000 hours of running.", 2, ("Servicing the Seals",)),
    ]
    assert all(doc.text[s.start : s.end] == s.text for s in doc.sections)


@pytest.mark.parametrize("ncx", [False, True], ids=["epub3 nav", "epub2 ncx"])
def test_an_epub_chapter_title_comes_from_the_toc_over_its_heading_and_headings_nest_below_it(ncx: bool) -> None:
    body = ("<h1>Getting started</h1><p>Open the valve.</p><h2>Safety</h2><p>Wear gloves.</p>"
            "<table><tr><th>Part</th><th>Torque</th></tr><tr><td>Flange bolt</td><td>40 Nm</td></tr></table>")
    doc = parse_bytes(epub_bytes([("a.xhtml", "Part I", body)], ncx=ncx), "b.epub")
    assert sections(doc) == [
        ("Open the valve.", 1, ("Part I", "Getting started")),
        ("Wear gloves.", 1, ("Part I", "Getting started", "Safety")),
        ("Part: Flange bolt; Torque: 40 Nm", 1, ("Part I", "Getting started", "Safety")),
    ]


def test_epub_chunks_carry_a_chapter_locator() -> None:
    doc = parse_bytes(epub_bytes(PUMP_BOOK), "book.epub")
    chunks = chunk_document(doc, lambda texts: [len(t.split()) for t in texts], ChunkingOptions(max_tokens=64))
    assert {c.locator["chapter"] for c in chunks} == {1, 2}
    assert all(c.locator["kind"] == "chapter" and c.page_start is None for c in chunks)


def test_an_epub_hit_is_cited_by_its_chapter(store, embedder, tmp_path) -> None:
    (tmp_path / "book.epub").write_bytes(epub_bytes(PUMP_BOOK))
    collection = store.ensure_collection("default", embedder)
    assert not IngestPipeline(store, collection, workers=0).ingest_paths([tmp_path]).failures
    hit = Searcher(store).search(collection, "How often are the lip seals replaced?", k=1)[0]
    assert "4,000 hours" in hit.text and hit.heading_path == ("Servicing the Seals",)
    assert hit.locator == {"kind": "chapter", "chapter": 2} and locator_label(hit.locator) == "chapter 2"


def test_an_epub_without_a_container_or_spine_is_a_parse_error() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    with pytest.raises(ParseError, match="no META-INF/container.xml"):
        EpubParser().parse(buffer.getvalue(), "x.epub")


def test_a_zip_of_a_version_zipfile_cannot_read_is_a_parse_error() -> None:
    data = bytearray(epub_bytes(PUMP_BOOK))
    entry = data.index(b"PK\x01\x02")  # the first central directory entry; "version needed" is at +6
    data[entry + 6 : entry + 8] = (64).to_bytes(2, "little")
    with pytest.raises(ParseError, match="not a zip package .zip file version 6.4"):
        EpubParser().parse(bytes(data), "x.epub")


def test_an_epub_entity_bomb_is_refused_not_expanded() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              b"<container><rootfiles><rootfile full-path='&b;'/></rootfiles></container>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("META-INF/container.xml", laughs)
    with pytest.raises(ParseError, match="container.xml is not well-formed XML"):
        EpubParser().parse(buffer.getvalue(), "x.epub")


def test_an_epub_chapter_declaring_entities_in_its_doctype_reads_as_without_them() -> None:
    plain = epub_bytes(PUMP_BOOK)
    subset = b'<!DOCTYPE html [ <!ENTITY pump "pump"> <!ENTITY % x SYSTEM "file:///etc/passwd"> ]>\n<html'
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as source, zipfile.ZipFile(buffer, "w") as z:
        for member in source.infolist():
            data = source.read(member)
            z.writestr(member, data.replace(b"?><html", b"?>" + subset, 1) if member.filename.endswith("ch1.xhtml")
                       else data)
    assert subset in zipfile.ZipFile(buffer).read("OEBPS/text/ch1.xhtml")
    assert sections(parse_bytes(buffer.getvalue(), "book.epub")) == sections(parse_bytes(plain, "book.epub"))


def test_an_odt_gives_headings_paragraphs_list_items_and_table_rows_with_their_header() -> None:
    doc = parse_bytes(odt_bytes(), "manual.odt")
    assert doc.title == "Pump manual"
    assert sections(doc) == [
        ("Mount the pump level.", None, ("Installation",)),
        ("Red lead to terminal seven.", None, ("Installation", "Wiring")),
        ("Black lead to ground.", None, ("Installation", "Wiring")),
        ("Region: North; Q3 revenue / in euros: 4.2M", None, ("Revenue",)),
        ("Region: South; Q3 revenue / in euros: 3.1M", None, ("Revenue",)),
    ]


def test_an_odt_table_without_a_declared_header_takes_its_first_row_and_bounds_repeated_cells() -> None:
    content = b"""<?xml version="1.0"?><office:document-content
      xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
      xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
      xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"><office:body><office:text>
      <table:table><table:table-row><table:table-cell><text:p>Part</text:p></table:table-cell>
      <table:table-cell table:number-columns-repeated="2"><text:p>Stock</text:p></table:table-cell>
      <table:table-cell table:number-columns-repeated="16384"/></table:table-row>
      <table:table-row table:number-rows-repeated="2"><table:table-cell><text:p>Seal</text:p></table:table-cell>
      <table:table-cell><text:p>12</text:p></table:table-cell></table:table-row>
      </table:table></office:text></office:body></office:document-content>"""
    doc = OdtParser().parse(_odt_of(content), "t.odt")
    assert doc.title is None
    assert [s.text for s in doc.sections] == ["Part: Seal; Stock: 12"] * 2
    stock = b"<text:p>12</text:p></table:table-cell>"
    many_x = b'<table:table-cell table:number-columns-repeated="99999"><text:p>x</text:p></table:table-cell>'
    rows = OdtParser().parse(_odt_of(content.replace(stock, stock + many_x)), "t.odt").sections
    assert rows[0].text.startswith("Part: Seal; Stock: 12; Stock: x; x")
    assert len(rows[0].text.split("; ")) == odt.MAX_COLUMNS
    rows = OdtParser().parse(_odt_of(content.replace(b'rows-repeated="2"', b'rows-repeated="99999"')), "t.odt").sections
    assert len(rows) == odt.MAX_EXPANDED_ROWS - 1  # the header row is one of the table's rows


@pytest.mark.parametrize("cell, rows, reason", [
    (100, 10_000, rf"more than {odt.MAX_CELLS} filled cells"),  # ~1 G characters from 1024 x 10,000 cells
    (5000, 10, rf"more than {odt.MAX_CELL_CHARS} characters"),  # ~51 M characters from 10,240 cells
])
def test_an_odt_whose_repeats_spell_out_too_much_is_refused_before_they_are(cell: int, rows: int, reason: str) -> None:
    repeated = f'<table:table-cell table:number-columns-repeated="1024"><text:p>{"w" * cell}</text:p></table:table-cell>'
    content = f"""<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
      xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
      xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"><office:body><office:text><table:table>
      <table:table-row>{repeated}</table:table-row>
      <table:table-row table:number-rows-repeated="{rows}">{repeated}</table:table-row>
      </table:table></office:text></office:body></office:document-content>"""
    bomb = _odt_of(content.encode())
    assert len(bomb) < 2000
    assert_refused_early(bomb, "bomb.odt", LimitExceeded, reason)


def _odt_of(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("content.xml", content)
    return buffer.getvalue()


def test_an_eml_gives_subject_headers_plain_body_and_attachments() -> None:
    doc = parse_bytes(eml_bytes(), "message.eml")
    assert doc.title == "Kestrel overhaul invoice"
    assert doc.metadata == {
        "from": "Ana Souza <ana@example.org>", "to": "ops@example.org, finance@example.org",
        "cc": "Rui <rui@example.org>", "date": "2026-03-03T09:15:00+00:00",
        "message-id": "<kestrel-7731@example.org>", "subject": "Kestrel overhaul invoice",
    }
    texts = [s.text for s in doc.sections]
    assert texts[0].startswith("From: Ana Souza <ana@example.org>\nTo: ops@example.org")
    assert texts[1:] == ["Please find the invoice and the shipping notes attached.", "Best,\nAna"]
    assert "HTML-only" not in doc.text  # the plain part is the body; its HTML alternative is not read twice
    assert [a.name for a in doc.attachments] == ["invoice.pdf", "notes.txt", "firmware.bin"]
    assert doc.attachments[1].data == NOTES_FACT.encode()
    assert INVOICE_FACT.split()[0] in parse_bytes(doc.attachments[0].data, "invoice.pdf").text


def test_an_eml_with_only_html_is_read_through_the_html_walk_and_nameless_parts_get_names() -> None:
    message = EmailMessage()
    message["Subject"] = "Outage report"
    message["Date"] = "not a date"
    message.set_content("<h1>Outage</h1><p>The north feeder tripped at 04:10.</p><script>x()</script>", subtype="html")
    message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", disposition="attachment")
    doc = EmlParser().parse(message.as_bytes(), "o.eml")
    assert [(s.text, s.heading_path) for s in doc.sections][1:] == [("The north feeder tripped at 04:10.", ("Outage",))]
    assert "date" not in doc.metadata and any("Date header" in w for w in doc.warnings)
    assert [a.name for a in doc.attachments] == ["attachment-1.csv"]


def test_a_header_the_stdlib_cannot_parse_is_kept_as_written() -> None:
    """`Rui <rui@[ex(ample.org>` makes the stdlib's address parser raise AttributeError (Python 3.11)."""
    data = eml_bytes().replace(b"Cc: Rui <rui@example.org>", b"Cc: Rui <rui@[ex(ample.org>")
    doc = EmlParser().parse(data, "m.eml")
    assert doc.metadata["cc"] == "Rui <rui@[ex(ample.org>" and "Cc: Rui <rui@[ex(ample.org>" in doc.sections[0].text
    assert [a.name for a in doc.attachments] == ["invoice.pdf", "notes.txt", "firmware.bin"]


def test_control_characters_in_headers_and_attachment_names_are_dropped() -> None:
    data = eml_bytes().replace(b"Subject: Kestrel overhaul", b"Subject: Kestrel\x00 over\x07haul", 1)
    data = data.replace(b'filename="notes.txt"', b'filename="no\x00tes\x1b.txt"', 1)
    assert data.count(b"\x00") == 2  # both edits landed
    doc = EmlParser().parse(data, "m.eml")
    assert doc.title == doc.metadata["subject"] == "Kestrel overhaul invoice"
    assert "Subject: Kestrel overhaul invoice" in doc.sections[0].text
    assert [a.name for a in doc.attachments] == ["invoice.pdf", "notes.txt", "firmware.bin"]


def test_a_body_in_a_charset_python_does_not_know_is_still_read() -> None:
    message = EmailMessage()
    message["Subject"] = "Charset"
    message.set_content("Caf\u00e9 opens at nine.".encode("latin-1"), maintype="text", subtype="plain",
                        params={"charset": "x-unknown-8"}, cte="8bit")
    assert parse_bytes(message.as_bytes(), "c.eml").sections[1].text == "Café opens at nine."


def test_a_forwarded_message_is_one_eml_attachment() -> None:
    inner = EmailMessage()
    inner["Subject"] = "Original"
    inner.set_content("The original text.")
    inner.add_attachment(b"deep", maintype="text", subtype="plain", filename="deep.txt")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: Original"
    outer.set_content("See below.")
    outer.add_attachment(inner)
    doc = EmlParser().parse(outer.as_bytes(), "f.eml")
    assert [a.name for a in doc.attachments] == ["attachment-1.eml"]
    assert EmlParser().parse(doc.attachments[0].data, "a.eml").title == "Original"


# -- hostile bytes: the parser itself (not parse_bytes, which would wrap any exception) raises only DocQAErrors --

VALID = {"epub": epub_bytes(PUMP_BOOK), "odt": odt_bytes(), "eml": eml_bytes()}
PARSERS = {"epub": EpubParser(), "odt": OdtParser(), "eml": EmlParser()}


# (where as a fraction of the file, bytes written over it)
EDITS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)), min_size=1,
                 max_size=6)


def _parses_or_refuses(kind: str, data: bytes) -> None:
    try:
        result = PARSERS[kind].parse(data, f"x.{kind}")
    except DocQAError:
        return
    assert isinstance(result, ParsedDocument)
    assert all(result.text[s.start : s.end] == s.text for s in result.sections)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_fail_with_a_docqa_error(kind: str, data: bytes) -> None:
    _parses_or_refuses(kind, data)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=EDITS)
def test_mutated_files_parse_or_fail_with_a_docqa_error(kind: str, edits: list[tuple[float, bytes]]) -> None:
    data = bytearray(VALID[kind])
    for where, patch in edits:
        at = int(where * len(data))
        data[at : at + len(patch)] = patch
    _parses_or_refuses(kind, bytes(data))


@pytest.mark.parametrize("kind", ["epub", "odt"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=EDITS)
def test_packages_with_mutated_xml_inside_parse_or_fail_with_a_docqa_error(
    kind: str, edits: list[tuple[float, bytes]]
) -> None:
    """A zip of intact compression around broken XML reaches the XML and HTML readers, which mutating the
    deflated bytes rarely does."""
    source = zipfile.ZipFile(io.BytesIO(VALID[kind]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i, member in enumerate(source.namelist()):
            data = bytearray(source.read(member))
            for where, patch in edits[i % len(edits) :: 2]:
                at = int(where * len(data))
                data[at : at + len(patch)] = patch
            z.writestr(member, bytes(data))
    _parses_or_refuses(kind, buffer.getvalue())
