"""Zip-bomb bounds for every zip-based format (DOCX, PPTX, XLSX, EPUB, ODT), checked before a library inflates it;
and reading a package's members (as XML too) for the formats docqa unpacks itself (EPUB, ODT).

The central directory is read first: zipfile never reads past a member's declared size (a lying header ends in
a CRC error), so the declared sizes are safe to trust for the check.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXML

from indexes.errors import LimitExceeded, ParseError

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_RATIO = 200  # real office XML deflates ~10:1; a bomb runs ~1000:1
RATIO_FLOOR = 1024 * 1024  # small members may compress as well as they like


def check_zip_bomb(data: bytes, kind: str) -> zipfile.ZipFile:
    """The opened package, once its sizes pass; LimitExceeded if it would inflate too far, ParseError if no zip.

    `kind` ("DOCX", "EPUB", …) names the format in the reasons people read.
    """
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
        members = package.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError, EOFError) as e:  # NotImplementedError: a
        raise ParseError(f"invalid {kind}: not a zip package ({e})") from e  # zip version zipfile cannot read
    if len(members) > MAX_MEMBERS:
        raise LimitExceeded(f"{kind} package has {len(members)} members (limit {MAX_MEMBERS})")
    total = sum(m.file_size for m in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise LimitExceeded(f"{kind} would inflate to {total} bytes (limit {MAX_UNCOMPRESSED_BYTES})")
    for m in members:
        if m.file_size > RATIO_FLOOR and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            ratio = m.file_size // max(m.compress_size, 1)
            raise LimitExceeded(f"{kind} member {m.filename} inflates {ratio}:1 (limit {MAX_RATIO}:1), a likely zip bomb")
    return package


def read_member(package: zipfile.ZipFile, member: str, kind: str) -> bytes:
    """A member's bytes; ParseError if it is missing or cannot be inflated (a CRC error, an unknown method)."""
    try:
        return package.read(member)
    except KeyError:
        raise ParseError(f"invalid {kind}: no {member} in the package") from None
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise ParseError(f"invalid {kind}: cannot read {member} ({e})") from e


def xml_member(package: zipfile.ZipFile, member: str, kind: str) -> Element:
    """A member parsed as XML through defusedxml: no DTD entities are expanded (no billion laughs) and no external
    entity or DTD is ever fetched; ParseError if it is missing or not well-formed."""
    data = read_member(package, member, kind)
    try:
        return SafeXML.fromstring(data)
    except (SafeXML.ParseError, ValueError) as e:  # defusedxml's refusals are ValueErrors
        raise ParseError(f"invalid {kind}: {member} is not well-formed XML ({e})") from e
