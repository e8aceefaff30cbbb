"""Encrypted PDFs through the real ingest: a password, a cipher pypdf cannot run and a corrupt file each fail with
a reason of their own; one that opens with the empty password is indexed."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen.canvas import Canvas

from test_cli import docqa_json, use_session_model

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The quarry ledger lists forty barrels of lamp oil for the winter of 1887."


@pytest.fixture(autouse=True)
def session_model(monkeypatch, embedder) -> None:
    use_session_model(monkeypatch, embedder)


def text_pdf() -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    for page in range(2):
        canvas.drawString(72, 700, f"Page {page + 1}. {TEXT}")
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def encrypted(user_password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf())))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def edited(data: bytes, old: bytes, new: bytes) -> bytes:
    """`data` with its one `old` (in the plain-text encryption dictionary) replaced."""
    assert data.count(old) == 1, old
    return data.replace(old, new)


def short_user_key(data: bytes) -> bytes:
    key = re.search(rb"/U <([0-9a-f]+)>", data)
    return edited(data, key.group(0), b"/U <" + key.group(1)[:20] + b">")


# name: (bytes, the reason the ingest must give)
CASES = {
    "rc4-secret.pdf": (lambda: encrypted("secret", "RC4-128"), "encrypted: password required"),
    "aes256-secret.pdf": (lambda: encrypted("secret", "AES-256"), "encrypted: password required"),
    "v6.pdf": (lambda: edited(encrypted("", "AES-128"), b"/V 4", b"/V 6"),
               "encrypted: unsupported cipher: Encryption V=6 NOT supported"),
    "foreign-handler.pdf": (lambda: edited(encrypted("", "AES-128"), b"/Filter /Standard", b"/Filter /FooSecurity"),
                            "encrypted: unsupported cipher: only Standard PDF encryption handler is available"),
    "truncated.pdf": (lambda: (lambda d: d[: d.rindex(b"trailer")])(encrypted("", "AES-128")),
                      "encrypted: corrupt file: Stream has ended unexpectedly"),
    "no-revision.pdf": (lambda: edited(encrypted("", "AES-128"), b"/R 4", b"/Q 4"),
                        "encrypted: corrupt file: /R entry of the encryption dictionary is missing"),
    "short-key.pdf": (lambda: short_user_key(encrypted("", "RC4-128")),
                      "encrypted: corrupt file: /U shorter than 32 bytes"),
}


def test_each_kind_of_encryption_failure_has_its_own_reason_and_an_open_file_is_indexed(tmp_path: Path) -> None:
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    (docs / "open-aes128.pdf").write_bytes(encrypted("", "AES-128"))
    for name, (build, _) in CASES.items():
        (docs / name).write_bytes(build())

    report = docqa_json(data, "ingest", docs, "--workers", "0", code=1)

    outcome = {Path(r["source"]).name: r for r in report["results"]}
    assert outcome["open-aes128.pdf"]["status"] == "ingested", outcome["open-aes128.pdf"]
    failures = {name: r["reason"] for name, r in outcome.items() if r["status"] == "failed"}
    assert failures == {name: reason for name, (_, reason) in CASES.items()}
    status = docqa_json(data, "status")["collections"][0]
    assert {Path(f["source"]).name: f["error"] for f in status["failures"]} == failures
    hits = docqa_json(data, "search", "barrels of lamp oil in the quarry ledger")["hits"]
    assert Path(hits[0]["source"]).name == "open-aes128.pdf" and "lamp oil" in hits[0]["text"]


def test_aes_without_the_cryptography_package_is_an_unsupported_cipher_not_a_scan(tmp_path: Path) -> None:
    # AES-128 passes the empty-password check without AES; only the pages then fail, each the same way.
    path = tmp_path / "open-aes128.pdf"
    path.write_bytes(encrypted("", "AES-128"))
    script = ("import sys, json; sys.modules['cryptography'] = None\n"
              "from indexes.errors import ParseError\nfrom ingest.parsers import parse_bytes\n"
              f"try:\n    parse_bytes(open({str(path)!r}, 'rb').read(), 'open-aes128.pdf')\n"
              "except ParseError as e:\n    print(json.dumps(e.detail))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "encrypted: unsupported cipher: cryptography>=3.1 is required for AES algorithm"
