"""OCR with the real Tesseract: scans and images become text, text layers are left alone, and time limits hold
per OCR'd page (ingest/parsers/ocr.py, image.py, the hook in pdf.py, ingest/isolation.py)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from cer import character_error_rate, edit_distance
from indexes.errors import LimitExceeded, ParseError
from indexes.locators import locator_label
from indexes.search import Searcher
from ingest.isolation import IngestLimits, ParseInterrupted, ParserProcess
from ingest.parsers import parse_bytes
from ingest.parsers.image import ImageParser
from ingest.parsers.ocr import OcrOptions, configured, skew_angle, tesseract_installed
from ingest.pipeline import IngestPipeline, SourceFile

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not tesseract_installed(), reason="needs Tesseract: make ocr"),
]

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SENTENCE = "The quarry ledger lists forty two granite blocks shipped in March."
PORTUGUESE = ("A reunião de planejamento orçamentário acontecerá na sexta-feira, às catorze horas, no auditório "
              "da administração. Não esqueça o relatório de produção do terceiro trimestre.")
NO_TEXT = "no extractable text on any page; scanned?"


def text_image(text: str, width: int = 2000, size: int = 40, turn: float = 0.0) -> Image.Image:
    """`text` in DejaVu Sans, wrapped to `width` pixels, black on white at 300 dpi (a 10-point scan), turned by
    `turn` degrees counter-clockwise."""
    font = ImageFont.truetype(FONT, size)
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width - 2 * size:
            lines.append(line)
            candidate = word
        line = candidate
    lines.append(line)
    image = Image.new("L", (width, (len(lines) + 2) * size * 3 // 2), 255)
    draw = ImageDraw.Draw(image)
    for i, row in enumerate(lines):
        draw.text((size, size + i * size * 3 // 2), row, font=font, fill=0)
    if turn:
        image = image.rotate(turn, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(300, 300))
    return buffer.getvalue()


def pdf(pages: list[str | Image.Image]) -> bytes:
    """A PDF (reportlab): a string is a letter page of real text, an image a page that holds nothing but it."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    for page in pages:
        if isinstance(page, str):
            canvas.setPageSize((612, 792))
            canvas.setFont("Helvetica", 12)
            canvas.drawString(72, 700, page)
        else:  # a page the size of the image scanned at 300 dpi
            size = (page.width * 72 / 300, page.height * 72 / 300)
            canvas.setPageSize(size)
            canvas.drawImage(ImageReader(page), 0, 0, *size)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# -- the CER helper the quality figures rest on --------------------------------------------------


def plain_edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


@settings(max_examples=300, deadline=None)
@given(st.text("abc d", max_size=40), st.text("abc d", max_size=40))
def test_the_bit_parallel_edit_distance_agrees_with_the_textbook_one(a: str, b: str) -> None:
    assert edit_distance(a, b) == plain_edit_distance(a, b)


# -- scanned PDFs ------------------------------------------------------------------------------


def test_the_skewed_scan_reads_within_3_percent_of_its_ground_truth(shared) -> None:
    path = shared("pdfs", "ocrmypdf_OCRmyPDF", "skew.pdf")
    document = parse_bytes(path.read_bytes(), path.name)
    truth = shared("pdfs", "ocrmypdf_OCRmyPDF", "linn.txt").read_text(encoding="utf-8")
    assert document.ocr_pages == [1] and all(s.ocr and s.page == 1 for s in document.sections)
    assert character_error_rate(document.text, truth) <= 0.03
    assert "32 Track MIDI Sequence Recorder" in document.text


def test_a_mixed_pdf_ocrs_only_its_scanned_page() -> None:
    data = pdf(["The typed page says the vault opens at nine.", text_image(SENTENCE)])
    document = parse_bytes(data, "mixed.pdf")
    assert document.ocr_pages == [2]
    by_page = {page: [s for s in document.sections if s.page == page] for page in (1, 2)}
    assert [s.text for s in by_page[1]] == ["The typed page says the vault opens at nine."]
    assert not any(s.ocr for s in by_page[1]) and by_page[2] and all(s.ocr for s in by_page[2])
    assert " ".join(s.text for s in by_page[2]).split() == SENTENCE.split()
    assert not document.warnings


def test_with_ocr_off_a_scan_fails_as_before(shared) -> None:
    path = shared("pdfs", "ocrmypdf_OCRmyPDF", "skew.pdf")
    with configured(OcrOptions(enabled=False)), pytest.raises(ParseError) as raised:
        parse_bytes(path.read_bytes(), path.name)
    assert raised.value.detail == NO_TEXT


# -- images ------------------------------------------------------------------------------------


def test_a_png_of_a_sentence_reads_as_that_sentence() -> None:
    document = ImageParser().parse(png(text_image(SENTENCE)), "note.png")
    assert document.text == SENTENCE
    assert document.pages == 1 and document.ocr_pages == [1] and document.sections[0].ocr


def test_a_photo_on_its_side_and_a_little_skewed_is_turned_and_straightened() -> None:
    sideways = text_image(SENTENCE + " " + SENTENCE, turn=90 + 4)
    document = ImageParser().parse(png(sideways.convert("RGB")), "photo.jpg")
    assert character_error_rate(document.text, SENTENCE + " " + SENTENCE) <= 0.03


@pytest.mark.parametrize("turn", [-4.0, 2.5, 90 + 3.0, 180 - 1.5])
def test_the_skew_is_measured_on_upright_and_turned_pages(turn: float) -> None:
    page = text_image(" ".join([PORTUGUESE] * 2), turn=turn)
    assert abs(skew_angle(page) + (turn + 45) % 90 - 45) <= 0.2  # the small turn to undo; Tesseract does quarters


def test_a_real_scan_measures_the_same_skew_whichever_way_it_lies(shared) -> None:
    import pypdfium2

    from ingest.parsers.ocr import render

    scan = render(pypdfium2.PdfDocument(shared("pdfs", "ocrmypdf_OCRmyPDF", "skew.pdf").read_bytes()), 0, 150)
    angles = [skew_angle(scan.rotate(quarter, expand=True)) for quarter in (0, 90, 180, 270)]
    assert 1.0 < angles[0] < 3.0 and max(angles) - min(angles) < 0.05, angles  # rows, or columns on its side


def test_each_page_of_a_multipage_tiff_is_a_page() -> None:
    frames = [text_image("First page: the north gate."), text_image("Second page: the south gate.")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:], dpi=(300, 300))
    document = ImageParser().parse(buffer.getvalue(), "gates.tiff")
    assert document.pages == 2 and document.ocr_pages == [1, 2]
    assert [(s.page, s.text) for s in document.sections] == [(1, "First page: the north gate."),
                                                             (2, "Second page: the south gate.")]


def test_an_image_with_ocr_off_says_why_it_has_no_text() -> None:
    with configured(OcrOptions(enabled=False)), pytest.raises(ParseError) as raised:
        ImageParser().parse(png(text_image(SENTENCE)), "note.png")
    assert raised.value.detail == "no extractable text: OCR is turned off (DOCQA_OCR__ENABLED)"


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width`×`height` one-bit pixels and holds none: all a bomb needs to be refused."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height", "reason"), [
    (9000, 9000, "image too large to OCR: page 1 is 9000×9000 pixels (limit 60,000,000)"),
    (30000, 30000, "image too large to OCR: Image size (900000000 pixels) exceeds limit"),
])
def test_an_image_too_big_to_ocr_is_refused_from_its_header(width: int, height: int, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as raised:
        ImageParser().parse(png_header(width, height), "bomb.png")
    assert raised.value.detail.startswith(reason) and time.perf_counter() - started < 1


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2048), cut=st.integers(0, 4000), flips=st.lists(st.integers(0, 4000), max_size=8))
def test_images_random_or_mutated_parse_to_text_or_fail_with_a_reason(data: bytes, cut: int, flips: list[int]) -> None:
    valid = bytearray(png(text_image("Gate", width=300)))
    for at in flips:
        valid[at % len(valid)] ^= 0xFF
    for blob, name in ((data, "random.png"), (bytes(valid[: cut or None]), "mutated.png"), (b"II*\x00" + data, "x.tif")):
        try:
            document = parse_bytes(blob, name)
        except (ParseError, LimitExceeded) as exc:
            assert exc.detail.strip()
        else:
            assert document.sections and all(s.ocr for s in document.sections)


# -- in the pipeline, the parser process and the CLI -------------------------------------------


def test_a_portuguese_scan_is_found_by_an_accent_free_query(store, embedder, tmp_path: Path) -> None:
    path = tmp_path / "reuniao.png"
    path.write_bytes(png(text_image(PORTUGUESE)))
    collection = store.ensure_collection("default", embedder)
    report = IngestPipeline(store, collection, workers=0).ingest([SourceFile(path, str(path))])
    assert [(r.status, r.reason) for r in report.results] == [("ingested", None)]
    hits = Searcher(store).search(collection, "reuniao de planejamento orcamentario na sexta-feira", mode="lexical", k=3)
    assert hits and "planejamento orçamentário" in hits[0].text
    assert character_error_rate(hits[0].text, PORTUGUESE) <= 0.02
    assert hits[0].ocr and locator_label(hits[0].locator) == "page 1"


def test_a_mixed_pdf_in_the_store_cites_its_scanned_page_as_ocr_and_its_typed_page_as_not(
    store, embedder, tmp_path: Path
) -> None:
    path = tmp_path / "vault.pdf"
    path.write_bytes(pdf(["The typed page says the vault opens at nine.", text_image(SENTENCE)]))
    collection = store.ensure_collection("default", embedder)
    report = IngestPipeline(store, collection, workers=0).ingest([SourceFile(path, str(path))])
    assert [(r.status, r.reason) for r in report.results] == [("ingested", None)]
    searcher = Searcher(store)
    scanned = searcher.search(collection, "how many granite blocks were shipped in March", k=1)[0]
    typed = searcher.search(collection, "when does the vault open", k=1)[0]
    assert "forty two granite blocks" in scanned.text and scanned.ocr and locator_label(scanned.locator) == "page 2"
    assert "vault opens at nine" in typed.text and not typed.ocr and locator_label(typed.locator) == "page 1"


def test_ocr_options_reach_the_parser_process(store, embedder, shared) -> None:
    skew = shared("pdfs", "ocrmypdf_OCRmyPDF", "skew.pdf")
    collection = store.ensure_collection("default", embedder)
    report = IngestPipeline(store, collection, ocr=OcrOptions(enabled=False), workers=0).ingest([SourceFile(skew, str(skew))])
    assert [(r.status, r.reason) for r in report.results] == [("failed", NO_TEXT)]


def test_without_tesseract_on_path_scans_fail_as_before_and_images_say_how_to_install_it(
    shared, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the parser process is a fresh interpreter: no tesseract for it
    image = tmp_path / "note.png"
    image.write_bytes(png(text_image(SENTENCE)))
    parser = ParserProcess()
    try:
        scan = parser.parse(str(shared("pdfs", "ocrmypdf_OCRmyPDF", "skew.pdf")), "skew.pdf", IngestLimits())
        picture = parser.parse(str(image), image.name, IngestLimits())
    finally:
        parser.stop()
    assert isinstance(scan, ParseError) and scan.detail == NO_TEXT
    assert isinstance(picture, ParseError) and picture.detail == (
        "no extractable text: OCR needs Tesseract, which is not installed "
        "(apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-por)")


def test_each_ocr_page_gets_the_time_limit_anew(tmp_path: Path) -> None:
    pages = [text_image(f"Page {n} of the scanned ledger.", width=1200) for n in range(1, 13)]
    path = tmp_path / "ledger.pdf"
    path.write_bytes(pdf(pages))
    parser = ParserProcess()
    try:
        started = time.perf_counter()
        parser.parse(str(path), "warm-up.pdf", IngestLimits(max_parse_seconds=120), OcrOptions(languages="eng"))
        # A limit a third of the whole scan on this machine: four times what one page takes, far less than all 12.
        limit = (time.perf_counter() - started) / 3
        started = time.perf_counter()
        document = parser.parse(str(path), path.name, IngestLimits(max_parse_seconds=limit), OcrOptions(languages="eng"))
        took = time.perf_counter() - started
    finally:
        parser.stop()
    assert not isinstance(document, Exception), document
    assert document.ocr_pages == list(range(1, 13))
    assert took > limit, f"the scan took {took:.1f} s: too fast to show the per-page limit"


def group_members(group: int) -> dict[int, str]:
    """The live (not zombie) processes of a process group: pid -> command name, from /proc."""
    members = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members[int(entry.name)] = name
    return members


def test_a_page_that_overruns_the_limit_is_stopped_with_the_tesseract_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "dense.pdf"
    path.write_bytes(pdf([text_image(" ".join([PORTUGUESE] * 12), width=2400, size=36)]))
    parser = ParserProcess()
    seen: set[str] = set()
    try:
        started = time.perf_counter()
        parser.parse(str(path), "warm-up.pdf", IngestLimits(max_parse_seconds=120))
        limit = round((time.perf_counter() - started) / 3, 2)  # a third of what reading the page takes here
        group = parser.pid
        watching = threading.Event()
        watcher = threading.Thread(target=lambda: [seen.update(group_members(group).values()) or time.sleep(0.05)
                                                   for _ in iter(watching.is_set, True)])
        watcher.start()
        stopped = parser.parse(str(path), path.name, IngestLimits(max_parse_seconds=limit))
        watching.set()
        watcher.join()
    finally:
        parser.stop()
    assert isinstance(stopped, ParseInterrupted)
    assert stopped.detail == f"parsing took longer than {limit:g} s after OCR of page 1 began"
    assert "tesseract" in seen  # it was reading the page when the limit struck
    deadline = time.monotonic() + 1.0  # a SIGKILLed process may take a moment to go (reading a file, say)
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(group) == {}  # nothing of that parse runs on: not the process, not its Tesseract


def test_a_scan_over_the_page_limit_is_refused_before_any_page_is_read(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf([text_image(PORTUGUESE)] * 3))
    parser = ParserProcess()
    try:
        refused = parser.parse(str(path), path.name, IngestLimits(max_pages=2, max_parse_seconds=0.5))
    finally:
        parser.stop()
    assert isinstance(refused, LimitExceeded) and refused.detail == "too many pages: 3 (limit 2)"


def test_the_cli_reads_the_ocr_settings_and_counts_the_pages_it_ocrs(tmp_path: Path, monkeypatch, embedder) -> None:
    from test_cli import use_session_model

    import service.cli  # noqa: F401  (the docqa app, with its settings callback)

    use_session_model(monkeypatch, embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ledger.pdf").write_bytes(pdf(["A typed cover page.", text_image(SENTENCE)]))
    runner = CliRunner()
    data_dir = str(tmp_path / "data")
    run = runner.invoke(service.cli.app, ["--data-dir", data_dir, "ingest", str(docs), "--workers", "0", "--json"])
    assert run.exit_code == 0, (run.stdout, run.stderr)
    assert "OCR'd pages: 1" in run.stderr
    (docs / "ledger.pdf").write_bytes(pdf([text_image(SENTENCE)]))
    monkeypatch.setenv("DOCQA_OCR__ENABLED", "false")
    run = runner.invoke(service.cli.app, ["--data-dir", data_dir, "ingest", str(docs), "--workers", "0", "--json"])
    assert run.exit_code == 1
    assert [(r["status"], r["reason"]) for r in json.loads(run.stdout)["results"]] == [("failed", NO_TEXT)]


def test_the_ocr_settings_fill_the_options_the_pipeline_takes(monkeypatch) -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    assert Settings().ocr.options() == OcrOptions()
    monkeypatch.setenv("DOCQA_OCR__LANGUAGES", "por")
    monkeypatch.setenv("DOCQA_OCR__DPI", "200")
    assert Settings().ocr.options() == OcrOptions(languages="por", dpi=200)
    monkeypatch.setenv("DOCQA_OCR__LANGUAGES", "por --psm 0")  # one word per language, joined by +
    with pytest.raises(ValidationError, match="languages"):
        Settings()
