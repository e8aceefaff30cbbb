"""Where uploaded files go: names from clients never become paths; files are stored by content hash."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Sequence

from fastapi import UploadFile

from indexes.errors import InvalidInput, UnsupportedMediaType
from ingest.pipeline import supported_suffixes
from service.errors import Forbidden, PayloadTooLarge

_UNSAFE = re.compile(r"[^\w.\- ()]+", re.UNICODE)


def safe_filename(name: str | None) -> str:
    """The last component of a client-supplied name, stripped of anything path-like or odd."""
    raw = unicodedata.normalize("NFC", name or "")
    base = PureWindowsPath(PurePosixPath(raw).name).name  # drop both / and \\ directories
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    if not cleaned:
        raise InvalidInput(f"unusable file name {name!r}")
    return cleaned[:200]


def check_supported(name: str) -> None:
    """415 for a file type no parser reads."""
    suffix, supported = Path(name).suffix.lower(), supported_suffixes()
    if suffix not in supported:
        raise UnsupportedMediaType(
            f"{name}: unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(supported))}"
        )


async def store_uploads(uploads: Sequence[UploadFile], root: Path, limit: int) -> list[tuple[str, Path]]:
    """Store every upload or none: if one is refused, the files this request added are removed again.
    Names must differ: a document is known by its name, so a second file of the same name would replace
    the first within the same job."""
    names = [safe_filename(upload.filename) for upload in uploads]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{name}: appears twice in this upload; each file needs its own name")
        seen.add(name)
    stored: list[tuple[str, Path]] = []
    added: list[Path] = []
    try:
        for upload, name in zip(uploads, names):
            path, is_new = await store_upload(upload, name, root, limit)
            stored.append((name, path))
            if is_new:
                added.append(path)
    except BaseException:
        for path in added:  # files already there belong to earlier uploads, so they stay
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        raise
    return stored


async def store_upload(upload: UploadFile, name: str, root: Path, limit: int) -> tuple[Path, bool]:
    """Stream one upload to root/<sha256>/<name> (`name` from `safe_filename`), refusing it past `limit`
    bytes. Returns (path, is_new)."""
    check_supported(name)
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while block := await upload.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise PayloadTooLarge(f"{name}: larger than the upload limit of {limit} bytes")
                digest.update(block)
                out.write(block)
        target = root / digest.hexdigest() / name
        target.parent.mkdir(exist_ok=True)
        is_new = not target.exists()
        os.replace(tmp, target)
        return target, is_new
    finally:
        Path(tmp).unlink(missing_ok=True)


def resolve_server_path(raw: str, roots: list[Path]) -> Path:
    """A server-side path, allowed only inside a configured root (after resolving links and '..')."""
    if not roots:
        raise Forbidden("server-side path ingestion is disabled (set DOCQA_SERVER_PATHS)")
    path = Path(raw).expanduser().resolve()
    for root in roots:
        root = root.expanduser().resolve()
        if path == root or root in path.parents:
            if not path.exists():
                raise InvalidInput(f"{raw}: no such file or directory")
            return path
    raise Forbidden(f"{raw}: outside the allowed server paths")
