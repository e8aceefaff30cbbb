"""Documents by URL: listing and reading `s3://`, `gs://`, `az://`, `http(s)://` and local paths through fsspec.

Workers of the Ray engine run on other nodes, so a source they are handed must be readable from anywhere: an
object's URL is its document's `source`. A listing gives each object's size, ETag and modification time without
downloading it (`ObjectInfo.version` is what re-ingest compares before it downloads); `read_bytes` refuses an
object over the size limit before reading it, and never reads more than the limit and one byte.

Credentials and endpoints come from each store's standard settings: s3fs (through botocore) reads
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`, `AWS_DEFAULT_REGION` and, since
botocore 1.31, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` (an S3-compatible server: MinIO, Ceph, moto) by itself;
gcsfs reads `GOOGLE_APPLICATION_CREDENTIALS`, adlfs `AZURE_STORAGE_CONNECTION_STRING` / `AZURE_STORAGE_ACCOUNT_NAME`.
Explicit `storage_options` are one protocol's keyword arguments for its fsspec filesystem (`{"endpoint_url": ...,
"anon": true}`), or a mapping of protocol to those (`{"s3": {...}, "https": {"headers": {...}}}`).

Filesystems are cached per protocol and options (fsspec's instance cache, which starts afresh in a forked child, and
its event-loop thread too; an instance reads the environment once, when first used), and keep no listings cache: a second listing in a long-lived process sees objects
changed or deleted since the first. An `http(s)://` URL is always one object (a page is a document); a web server's
folder pages are not walked. A URL whose store needs a package that is not installed says which extra to install.
"""

from __future__ import annotations

import asyncio
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any, Collection, Iterator, Sequence
from urllib.parse import urlsplit
from urllib.request import url2pathname

from indexes.errors import DocQAError, InvalidInput, LimitExceeded, NotFound, SourceUnavailable

# The extra (pyproject.toml) that brings each store's fsspec implementation.
EXTRAS = {
    "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure",
    "adl": "azure", "http": "http", "https": "http",
}
HTTP = ("http", "https")
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a listing gives it, before any download: its URL (a local file's absolute path), size in bytes
    (None for a web page sent without a length), ETag without quotes and modification time (POSIX seconds), each where
    the store gives one."""

    url: str
    size: int | None
    etag: str | None = None
    mtime: float | None = None

    @property
    def version(self) -> str | None:
        """A string that changes when the object does (its ETag, else size and mtime), or None where the store gives
        neither; equal versions mean an unchanged object, so re-ingest can skip it without downloading."""
        if self.etag:
            return f"etag:{self.etag}"
        if self.mtime is not None:
            return f"mtime:{self.size}:{self.mtime!r}"
        return None


def is_url(target: str) -> bool:
    """Whether `target` is a URL of a store fsspec knows (`s3://`, `gs://`, `https://`, ...) rather than a local path;
    a `file://` URL is a local path (`local_path` gives it)."""
    protocol = _protocol(target)
    return protocol is not None and protocol not in ("file", "local") and _known(protocol)


def local_path(target: str) -> str:
    """The local path `target` names: itself, or a `file://` URL's path (percent-decoded)."""
    if _protocol(target) not in ("file", "local"):
        return target
    parts = urlsplit(target)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(f"{target}: a file:// URL of another host ({parts.netloc}) cannot be read here")
    return url2pathname(parts.path)


def list_objects(
    target: str, suffixes: Collection[str], globs: Sequence[str] = (), storage_options: dict | None = None
) -> list[ObjectInfo]:
    """The objects `target` names, sorted by URL: the one object a URL names (taken as given, like a file named on
    the command line), or every object under a prefix whose suffix (lower-cased) is in `suffixes`, skipping names
    that start with "." anywhere below the prefix and, with `globs`, objects whose name and URL match none.
    Raises NotFound for a target that does not exist, SourceUnavailable when the store cannot be read."""
    fs, path = _filesystem(target, storage_options)
    wanted = {s.lower() for s in suffixes}
    with _errors(target):
        info = fs.info(path)
        if info.get("type") != "directory":  # fsspec's http filesystem: always a file
            return [_object(fs, path, info)]
        found = fs.find(path, detail=True)
    root = _strip(fs, path).rstrip("/")
    objects: dict[str, ObjectInfo] = {}
    for name, detail in found.items():
        if detail.get("type", "file") != "file":
            continue
        relative = _strip(fs, name)[len(root):].lstrip("/")
        parts = PurePosixPath(relative).parts
        if not parts or any(part.startswith(".") for part in parts):
            continue
        base = parts[-1]
        if PurePosixPath(base).suffix.lower() not in wanted:
            continue
        item = _object(fs, name, detail)
        if globs and not any(fnmatch(base, g) or fnmatch(item.url, g) for g in globs):
            continue
        objects[item.url] = item
    return [objects[url] for url in sorted(objects)]


def stat_object(url: str, storage_options: dict | None = None) -> ObjectInfo:
    """One object's size, ETag and mtime, without downloading it; NotFound where it does not exist."""
    fs, path = _filesystem(url, storage_options)
    with _errors(url):
        info = fs.info(path)
    if info.get("type") == "directory":
        raise InvalidInput(f"{url} is a folder (a prefix), not an object")
    return _object(fs, path, info)


def read_bytes(url: str, max_bytes: int, storage_options: dict | None = None) -> bytes:
    """The object's bytes. One over `max_bytes` raises LimitExceeded: where the store gives its size, before any is
    read; where it does not (a streamed web page), after `max_bytes` and one byte, the most ever read."""
    fs, path = _filesystem(url, storage_options)
    info = stat_object(url, storage_options)
    if info.size is not None and info.size > max_bytes:
        raise LimitExceeded(f"file too large: {info.size} bytes (limit {max_bytes})")
    with _errors(url):
        if _protocol_of(fs) in HTTP:  # a ranged read may be ignored by the server: stream, and stop at the limit
            data = bytearray()
            with fs.open(path, "rb", block_size=0, size=info.size) as fh:
                while len(data) <= max_bytes:
                    block = fh.read(min(READ_BLOCK, max_bytes + 1 - len(data)))
                    if not block:
                        break
                    data += block
            data = bytes(data)
        else:
            data = fs.cat_file(path, start=0, end=max_bytes + 1)
    if len(data) > max_bytes:  # it grew since it was listed, or its size was not told
        raise LimitExceeded(f"file too large: more than {max_bytes} bytes (limit {max_bytes})")
    return data


def exists(url: str, storage_options: dict | None = None) -> bool:
    """Whether the object is still there (for --sync). A store that cannot be read raises SourceUnavailable rather
    than answering False: documents are never removed because their store was down."""
    fs, path = _filesystem(url, storage_options)
    try:
        with _errors(url):
            fs.info(path)
    except NotFound:
        return False
    return True


def under(root: str, url: str) -> bool:
    """Whether the document source `url` lies under the listed `root` (the same object, or below it on a path
    boundary): `s3://b/docs` holds `s3://b/docs/a.md`, not `s3://b/docs2/a.md`. Local roots and sources compare as
    absolute paths, as the pipeline's --sync does."""
    if is_url(root) != is_url(url):
        return False
    if not is_url(root):
        root, url = str(Path(local_path(root)).resolve()), str(Path(local_path(url)))
        return url == root or url.startswith(root.rstrip(os.sep) + os.sep)
    root, url = _canonical(root), _canonical(url)
    return url == root or url.startswith(root.rstrip("/") + "/")


# -- filesystems -----------------------------------------------------------------------------------


def _protocol(target: str) -> str | None:
    import fsspec.core

    protocol, _ = fsspec.core.split_protocol(str(target))
    return protocol.lower() if protocol else None


def _known(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry  # `fsspec.registry` itself is the mapping

    return protocol in known_implementations or protocol in registry


def _filesystem(target: str, storage_options: dict | None) -> tuple[Any, str]:
    """The (cached) filesystem for `target` and the path within it; local paths and file:// URLs included."""
    import fsspec

    protocol = _protocol(target)
    if protocol is None or protocol in ("file", "local"):
        return fsspec.filesystem("file"), str(Path(local_path(target)).resolve())
    if not _known(protocol):
        raise InvalidInput(f"{target}: no filesystem for {protocol}:// (fsspec knows no such scheme)")
    options = dict(_options_for(protocol, storage_options))
    if protocol not in HTTP:
        options.setdefault("use_listings_cache", False)
    try:
        fs = fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        hint = f"pip install 'docqa[{extra}]'" if extra else f"install the fsspec implementation of {protocol}://"
        raise InvalidInput(f"{target}: reading {protocol}:// needs a package that is not installed ({hint}): "
                           f"{_one_line(exc)}") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{target}: bad storage options for {protocol}://: {_one_line(exc)}") from exc
    return fs, target if protocol in HTTP else fs._strip_protocol(target)


def _options_for(protocol: str, storage_options: dict | None) -> dict:
    """One protocol's options from `storage_options`: the entry for it where the options are keyed by protocol."""
    if not storage_options:
        return {}
    keyed = all(isinstance(v, dict) and _known(str(k).lower()) for k, v in storage_options.items())
    if not keyed:
        return storage_options
    for key, value in storage_options.items():
        if str(key).lower() == protocol:
            return value
    return {}


def _protocol_of(fs: Any) -> str:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return protocols[0]


def _strip(fs: Any, name: str) -> str:
    return name if _protocol_of(fs) in HTTP else fs._strip_protocol(name)


def _canonical(url: str) -> str:
    """A URL in the form listings give (`s3a://b/k/` and `s3://b/k` alike become `s3://b/k`), without connecting."""
    from fsspec.registry import get_filesystem_class

    protocol = _protocol(url)
    if protocol in HTTP or protocol is None:
        return url
    try:
        cls = get_filesystem_class(protocol)
    except (ImportError, ValueError):
        return url.rstrip("/")
    protocols = cls.protocol if isinstance(cls.protocol, (tuple, list)) else (cls.protocol,)
    return f"{protocols[0]}://{cls._strip_protocol(url).rstrip('/')}"


def _object(fs: Any, name: str, info: dict) -> ObjectInfo:
    """An ObjectInfo from what fsspec's info/find gave (s3fs: ETag, LastModified; local: mtime; http: headers)."""
    if _protocol_of(fs) in HTTP:
        url = name
    elif _protocol_of(fs) in ("file", "local"):
        url = str(Path(name).resolve())  # as the pipeline's discover names a local file
    else:
        url = fs.unstrip_protocol(_strip(fs, name))
    etag = next((info[k] for k in ("ETag", "etag", "Etag") if info.get(k)), None)
    if isinstance(etag, str):
        etag = etag.removeprefix("W/").strip('"') or None
    mtime = None
    for key in ("LastModified", "last_modified", "Last-Modified", "mtime", "updated"):
        if info.get(key) is not None:
            mtime = _timestamp(info[key])
            if mtime is not None:
                break
    if _protocol_of(fs) in ("file", "local") and info.get("mode") is not None and stat.S_ISREG(info["mode"]):
        etag = None  # a local file has none; its mtime and the content hash tell a change
    size = info.get("size")
    return ObjectInfo(url=url, size=int(size) if size is not None else None, etag=etag, mtime=mtime)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    return None


# -- errors ----------------------------------------------------------------------------------------


@contextmanager
def _errors(url: str) -> Iterator[None]:
    """Turn a store's exceptions into docqa's: NotFound for a missing object, bucket or page; SourceUnavailable (one
    line, naming the URL and the reason) for refused credentials, an unreachable endpoint, a server error."""
    try:
        yield
    except DocQAError:
        raise
    except FileNotFoundError as exc:
        if _missing(exc):
            reason = _one_line(exc)
            detail = f" ({reason})" if reason and reason not in url and url not in reason else ""
            raise NotFound(f"{url} does not exist{detail}") from exc
        raise SourceUnavailable(f"cannot read {url}: {_reason(exc.__cause__ or exc)}") from exc
    except PermissionError as exc:
        raise SourceUnavailable(f"cannot read {url}: access denied: {_reason(exc)}") from exc
    except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
        raise SourceUnavailable(f"cannot read {url}: {_reason(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - botocore's, aiohttp's, google's and azure's own error classes
        raise SourceUnavailable(f"cannot read {url}: {_reason(exc)}") from exc


def _missing(exc: FileNotFoundError) -> bool:
    """Whether a FileNotFoundError means the object is gone: fsspec's http filesystem raises it for any failure
    (connection refused, HTTP 403, 500), with the real error as its cause."""
    cause = exc.__cause__
    if cause is None:
        return True
    status = getattr(cause, "status", None)  # aiohttp's ClientResponseError
    if isinstance(status, int):
        return status in (404, 410)
    if isinstance(cause, (OSError, asyncio.TimeoutError)) or type(cause).__module__.startswith("aiohttp"):
        return False
    return True


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and type(exc).__module__.startswith("aiohttp"):
        return f"HTTP {status} {getattr(exc, 'message', '')}".strip()
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
