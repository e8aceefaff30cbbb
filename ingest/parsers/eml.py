"""E-mail parser (.eml, RFC 5322 with MIME, stdlib `email` under `policy.default`): the message's text, its
headers as metadata, and its attachments for the pipeline to ingest as documents of their own."""

from __future__ import annotations

import mimetypes
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import PurePosixPath, PureWindowsPath

from indexes.errors import DocQAError, ParseError

from .base import Attachment, DocumentBuilder, ParsedDocument
from .html import add_content, read_html
from .text import decode_text, split_paragraphs

HEADERS = ("from", "to", "cc", "date", "message-id", "subject")
_SHOWN = ("From", "To", "Cc", "Date", "Subject")  # the lines that start the text, so "who wrote…" can be answered
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # no header or file name keeps these (a store may refuse NUL)


def _clean(text: str) -> str:
    """One line of text without control characters, whitespace runs as one space."""
    return " ".join(_CONTROL.sub("", text).split())


def _header(message: EmailMessage, key: str) -> tuple[str | None, object]:
    """A header's text and its parsed value (for Date, the datetime or None). The stdlib's structured parse of
    addresses, dates and ids fails on some malformed values (IndexError, AttributeError…): then the raw text."""
    try:
        value = message[key]
        return (_clean(str(value)), getattr(value, "datetime", None)) if value is not None else (None, None)
    except Exception:  # noqa: BLE001 - a library surprise in one header must not cost the message
        raw = next((v for k, v in message.raw_items() if k.lower() == key), None)
        return (_clean(str(raw)) if raw is not None else None), None


def _headers(message: EmailMessage, warnings: list[str]) -> dict[str, object]:
    """The HEADERS the message has, as text; the date in ISO 8601 (an unreadable one is left out, with a warning)."""
    found: dict[str, object] = {}
    for key in HEADERS:
        text, parsed = _header(message, key)
        if key == "date" and text is not None:
            if parsed is None:
                warnings.append(f"unreadable Date header {text[:80]!r} left out")
            else:
                found[key] = parsed.isoformat()  # type: ignore[attr-defined]
        elif text:
            found[key] = text
    return found


def _name(part: EmailMessage, number: int) -> str:
    """The part's file name without any directory, or attachment-N with the extension its type implies."""
    raw = part.get_filename() or ""
    name = _clean(PureWindowsPath(PurePosixPath(raw).name).name)
    return name or f"attachment-{number}{mimetypes.guess_extension(part.get_content_type()) or ''}"


def _attachments(message: EmailMessage, body: EmailMessage | None) -> list[Attachment]:
    """Every attached file, in order; a forwarded message (message/rfc822) is one .eml, not walked into."""
    found: list[Attachment] = []
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart":
            stack.extend(reversed(list(part.iter_parts())))
            continue
        if part is body or (part.get_content_disposition() != "attachment" and not part.get_filename()):
            continue  # the text shown, or its HTML alternative
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0) if part.is_multipart() else None
            data = inner.as_bytes() if inner is not None else b""
        else:
            data = part.get_payload(decode=True) or b""
        if data:
            found.append(Attachment(_name(part, len(found) + 1), data))
    return found


class EmlParser:
    """E-mail messages: subject as title, header lines then the plain body (or the HTML one when there is no
    plain part) as text, From/To/Cc/Date/Message-ID/Subject as metadata, attached files as attachments."""

    name = "E-mail (EML)"
    suffixes = (".eml",)
    metadata_keys = HEADERS

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Parse the MIME tree, pick the body, collect headers and attachments."""
        message = BytesParser(policy=policy.default).parsebytes(data)
        if not isinstance(message, EmailMessage) or not message.keys():
            raise ParseError("invalid e-mail: no headers")
        try:
            return self._read(message)
        except DocQAError:
            raise
        except Exception as e:  # the stdlib's MIME header parsers fail on some malformed values (see _header)
            raise ParseError(f"invalid e-mail: {type(e).__name__}: {e}") from e

    @staticmethod
    def _read(message: EmailMessage) -> ParsedDocument:
        builder = DocumentBuilder()
        shown = [(h, _header(message, h.lower())[0]) for h in _SHOWN]
        builder.add("\n".join(f"{h}: {text}" for h, text in shown if text is not None))
        body = message.get_body(preferencelist=("plain",)) or message.get_body(preferencelist=("html",))
        payload = body.get_payload(decode=True) if body is not None else None
        if isinstance(payload, bytes):  # decoded here, not by get_content: a bad charset name must not end the parse
            if body.get_content_subtype() == "html":
                add_content(builder, read_html(payload, body.get_content_charset()))
            else:
                for paragraph in split_paragraphs(decode_text(payload, declared=body.get_content_charset())):
                    builder.add(paragraph)
        document = builder.build(title=_header(message, "subject")[0] or None)
        document.metadata = _headers(message, document.warnings)
        document.attachments = _attachments(message, body)
        return document
