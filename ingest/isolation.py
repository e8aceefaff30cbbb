"""Parsing in child processes, so a runaway parse (a hostile PDF, a parser bug) can be stopped.

A thread cannot be stopped and SIGALRM only reaches the main thread, so every file is parsed in a
spawned process that is kept for the next file and killed (then replaced) when a parse runs past its
time limit. Start-up is paid once per process (up to MAX_IDLE are kept warm) and not counted against
the limit; after that a file costs one round trip: its path (or an attachment's bytes) out, the parsed document
pickled back. A page read by OCR takes seconds, so the child says when it starts OCR on a page, and each such
page gets the time limit anew: a 200-page scan is bound per page, not by a limit meant for a whole text PDF. The
child leads a process group of its own, so a kill takes the Tesseract it runs along; a child whose parent is gone
stops at its next page, when telling the parent fails.
A pool library (pebble 5.2) was tried and not taken: its pool breaks for good when an idle worker dies (every
later file fails), and its spawn and forkserver workers re-import the caller's main script (fork, the other way,
is unsafe in a threaded server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator

from indexes.errors import DocQAError, LimitExceeded, ParseError
from ingest.parsers import ParsedDocument, parse_bytes, supported_suffixes
from ingest.parsers.ocr import OcrOptions, configured

class ParseInterrupted(ParseError):
    """The parse was stopped (time limit, process killed) rather than refused by the parser: maybe transient."""


START_TIMEOUT = 120.0  # a cold start on a loaded machine imports pypdf, python-docx, selectolax
MAX_IDLE = 4


@dataclass(frozen=True)
class IngestLimits:
    """Per-file limits: bad input gets a clear error instead of eating the machine. The defaults are those of
    `DOCQA_LIMITS__*` (service/settings.py takes them from here)."""

    max_file_bytes: int = 100 * 1024 * 1024
    max_text_chars: int = 20_000_000
    max_chunks: int = 50_000
    max_pages: int = 5_000
    max_parse_seconds: float = 120.0


@dataclass(frozen=True)
class OcrStarted:
    """The child's word that OCR of `page` begins: the parent gives the parse the time limit anew."""

    page: int


def parse_file(
    path: str | bytes, name: str, limits: IngestLimits, ocr: OcrOptions = OcrOptions(), conn: Connection | None = None
) -> ParsedDocument:
    """Read and parse one file within the limits (runs in a parser process, telling `conn` of each OCR'd page);
    `path` may be the bytes themselves (a file that came out of another, as an e-mail's attachment does)."""
    size = len(path) if isinstance(path, bytes) else os.path.getsize(path)
    if size > limits.max_file_bytes:
        raise LimitExceeded(f"file too large: {size} bytes (limit {limits.max_file_bytes})")
    if isinstance(path, str):
        with open(path, "rb") as fh:
            path = fh.read()

    def before_ocr(page: int, pages: int) -> None:
        if pages > limits.max_pages:  # before hours of OCR, not after
            raise LimitExceeded(f"too many pages: {pages} (limit {limits.max_pages})")
        if conn is not None:
            conn.send(OcrStarted(page))

    with configured(ocr, before_ocr):
        document = parse_bytes(path, name)
    if document.pages and document.pages > limits.max_pages:
        raise LimitExceeded(f"too many pages: {document.pages} (limit {limits.max_pages})")
    if len(document.text) > limits.max_text_chars:
        raise LimitExceeded(f"too much text: {len(document.text)} characters (limit {limits.max_text_chars})")
    return document


def serve_fd(fd: int) -> None:
    """The child's loop: parse each request, send back the document or the error; exit when the parent goes."""
    conn = Connection(fd)
    supported_suffixes()  # imports every registered parser now, so a file's time limit never pays for it
    conn.send("ready")
    while True:
        try:
            path, name, limits, ocr = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result: Any = parse_file(path, name, limits, ocr, conn)
        except DocQAError as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - a parser bug is that file's failure
            result = ParseError(f"{type(exc).__name__}: {exc}")
        conn.send(result)


class ParserProcess:
    """One spawned parser process, started on first use and killed when a parse overruns."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> Connection:
        # A fresh interpreter (not multiprocessing's spawn, which re-runs the caller's unguarded main script);
        # it talks over a socketpair, so stray prints of a parser library can't corrupt the protocol.
        ours, theirs = socket.socketpair()
        with theirs:
            command = [sys.executable, "-c", f"from ingest.isolation import serve_fd; serve_fd({theirs.fileno()})"]
            self._process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        self._conn = Connection(ours.detach())
        if not self._conn.poll(START_TIMEOUT) or self._conn.recv() != "ready":
            self.stop()
            raise ParseError(f"the parser process did not start within {START_TIMEOUT:.0f} s")
        return self._conn

    def parse(
        self, path: str | bytes, name: str, limits: IngestLimits, ocr: OcrOptions = OcrOptions()
    ) -> ParsedDocument | DocQAError:
        """The parsed document of the file at `path` (or of these bytes), or the error that stopped it: a ParseError
        when `limits.max_parse_seconds` pass before the parse ends, or before the next OCR'd page begins."""
        alive = self._alive()
        try:
            conn = self._conn if alive and self._conn is not None else self._start()
        except ParseError as exc:  # the file fails with the reason; the batch goes on
            return exc
        except OSError as exc:
            return ParseError(f"could not start a parser process: {exc}")
        try:
            conn.send((path, name, limits, ocr))
            since = ""
            while conn.poll(limits.max_parse_seconds):
                message = conn.recv()
                if not isinstance(message, OcrStarted):
                    return message
                since = f" after OCR of page {message.page} began"
            self.stop()
            return ParseInterrupted(f"parsing took longer than {limits.max_parse_seconds:g} s{since}")
        except (EOFError, OSError):  # killed from outside (OOM killer) mid-parse
            self.stop()
            return ParseInterrupted("the parser process died while parsing this file")
        except BaseException:  # interrupted mid-request: its answer must never reach the next caller
            self.stop()
            raise

    def _alive(self) -> bool:
        """Whether the child runs. A killed child's main thread is a zombie a moment before the process can be
        reaped (its other threads still exiting), so /proc is asked too where there is one."""
        if self._process is None or self._process.poll() is not None:
            return False
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")

    def stop(self) -> None:
        """Kill the child now (a stuck parse gets no chance to clean up) and reap it."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the child and any Tesseract it started
            except ProcessLookupError:
                pass
            self._process.wait()
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_idle: list[ParserProcess] = []
_idle_lock = threading.Lock()


@contextmanager
def parser_process() -> Iterator[ParserProcess]:
    """Borrow a warm parser process for one thread's parses; up to MAX_IDLE are kept for later ones."""
    with _idle_lock:
        process = _idle.pop() if _idle else ParserProcess()
    try:
        yield process
    finally:
        with _idle_lock:
            keep = len(_idle) < MAX_IDLE
            if keep:
                _idle.append(process)
        if not keep:
            process.stop()
