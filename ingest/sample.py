"""A sample of the documents about to be ingested, read before their collection exists: the texts by which
`DOCQA_EMBEDDER__MODEL=auto` chooses the new collection's embedder (`indexes.language`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from indexes.errors import DocQAError
from ingest.isolation import IngestLimits, parser_process
from ingest.parsers.ocr import OcrOptions
from ingest.prepare import SourceFile

SAMPLE_FILES = 8  # the first ones, in the order they will be ingested
SAMPLE_CHARS = 20_000  # of each


def sample_texts(
    files: Sequence[SourceFile], limits: IngestLimits | None = None, ocr: OcrOptions | None = None,
    storage_options: dict[str, Any] | None = None, count: int = SAMPLE_FILES,
) -> list[str]:
    """The parsed text (its start) of the first `count` files that parse, each parsed as ingestion will parse it,
    in a borrowed parser process under the same limits, without OCR (a scan's language can wait for its pages
    to be read; it is the text layer that decides here). A file that fails to parse is left out: ingestion
    reports it."""
    limits = limits or IngestLimits()
    ocr = replace(ocr or OcrOptions(), enabled=False)
    texts: list[str] = []
    with parser_process() as parser:
        for file in files:
            if len(texts) >= count:
                break
            try:
                target: str | bytes = str(file.path) if file.path is not None else _read(file, limits, storage_options)
            except DocQAError:
                continue
            parsed = parser.parse(target, file.name, limits, ocr)
            if not isinstance(parsed, DocQAError) and parsed.text.strip():
                texts.append(parsed.text[:SAMPLE_CHARS])
    return texts


def _read(file: SourceFile, limits: IngestLimits, storage_options: dict[str, Any] | None) -> bytes:
    from ingest.sources import read_bytes

    return read_bytes(file.source, limits.max_file_bytes, storage_options or {})
