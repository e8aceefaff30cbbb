"""Sources by URL (ingest/sources.py) against real servers: moto's S3 server on 127.0.0.1, a web server started by
the test, and local files; listings, reads within the size limit, existence for --sync, and the errors people see."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from indexes.errors import InvalidInput, LimitExceeded, NotFound, SourceUnavailable
from ingest.parsers import supported_suffixes
from ingest.sources import ObjectInfo, exists, is_url, list_objects, local_path, read_bytes, stat_object, under
from s3 import Bucket, S3Server, free_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix != ".py")
SUFFIXES = supported_suffixes()
MB = 1 << 20

s3 = pytest.mark.s3


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put_tree(bucket: Bucket) -> dict[str, bytes]:
    """Nested keys under docs/: supported, unsupported, hidden, and neighbours that are not under it."""
    tree = {
        "docs/a.md": b"# A\n\nalpha\n",
        "docs/sub/b.txt": b"bravo " * 50,
        "docs/sub/deeper/C.HTML": b"<p>charlie</p>",
        "docs/notes.xyz": b"not a document type",
        "docs/.hidden.md": b"hidden file",
        "docs/.git/d.md": b"in a hidden folder",
        "docs/sub/.cache/e.txt": b"in a hidden folder, deeper",
        "docs2/f.md": b"a neighbour prefix, not under docs/",
        "other/g.md": b"elsewhere",
    }
    for key, data in tree.items():
        bucket.put(key, data)
    return tree


# -- S3: listing ---------------------------------------------------------------------------------------------------


@s3
def test_listing_a_prefix_gives_supported_objects_under_it_sorted_with_sizes_etags_and_times(bucket: Bucket) -> None:
    before = time.time()
    tree = put_tree(bucket)
    listed = list_objects(bucket.url("docs"), SUFFIXES)
    keys = ["docs/a.md", "docs/sub/b.txt", "docs/sub/deeper/C.HTML"]
    assert [o.url for o in listed] == [bucket.url(k) for k in sorted(keys)]
    for item, key in zip(listed, sorted(keys)):
        assert item.size == len(tree[key])
        assert item.etag == md5(tree[key])  # a simple put's ETag is the MD5 of its bytes, given without quotes
        assert item.mtime is not None and before - 5 <= item.mtime <= time.time() + 5
    assert list_objects(bucket.url("docs/"), SUFFIXES) == listed  # a trailing slash names the same prefix
    whole = [o.url for o in list_objects(bucket.url(), SUFFIXES)]  # the bucket itself
    assert whole == sorted(bucket.url(k) for k in [*keys, "docs2/f.md", "other/g.md"])


@s3
def test_a_url_naming_one_object_gives_that_object_whatever_its_suffix(bucket: Bucket) -> None:
    data = b"not a document type"
    url = bucket.put("docs/notes.xyz", data)
    assert list_objects(url, SUFFIXES) == [ObjectInfo(url, len(data), md5(data), stat_object(url).mtime)]
    assert stat_object(url).mtime is not None


@s3
def test_globs_match_an_objects_name_or_its_whole_url(bucket: Bucket) -> None:
    put_tree(bucket)
    assert [o.url for o in list_objects(bucket.url("docs"), SUFFIXES, ["*.md"])] == [bucket.url("docs/a.md")]
    by_url = list_objects(bucket.url("docs"), SUFFIXES, [bucket.url("docs/sub/*")])
    assert [o.url for o in by_url] == [bucket.url("docs/sub/b.txt"), bucket.url("docs/sub/deeper/C.HTML")]
    assert list_objects(bucket.url("docs"), SUFFIXES, ["*.pdf"]) == []


@s3
def test_a_missing_bucket_key_or_prefix_is_not_found_naming_the_url(bucket: Bucket) -> None:
    bucket.put("docs/a.md", b"alpha")
    for url in ["s3://no-such-bucket-docqa/docs", bucket.url("nothing/here"), bucket.url("docs/a.m")]:
        with pytest.raises(NotFound) as caught:
            list_objects(url, SUFFIXES)
        assert url in caught.value.detail and "\n" not in caught.value.detail
    with pytest.raises(NotFound, match="no-such-bucket-docqa.*bucket does not exist"):
        read_bytes("s3://no-such-bucket-docqa/a.md", MB)


def served_since(bucket: Bucket, seen: int) -> list[str]:
    """The requests the server logged after the first `seen`, once a marker request sent now is logged too (the
    server writes its log line after the answer, so a line may trail the reply it is about)."""
    marker = f"marker-{time.monotonic_ns()}"
    bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=marker)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = bucket.server.requests()[seen:]
        if any(marker in line for line in lines):
            time.sleep(0.2)  # a line about an earlier request, written by another of the server's threads
            return bucket.server.requests()[seen:]
        time.sleep(0.05)
    raise AssertionError(f"the server did not log the marker request {marker}")


# -- S3: reading ---------------------------------------------------------------------------------------------------


@s3
def test_the_samples_read_back_byte_for_byte(bucket: Bucket) -> None:
    for sample in SAMPLES:
        bucket.put(f"samples/{sample.name}", sample.read_bytes())
    listed = list_objects(bucket.url("samples"), SUFFIXES)
    assert [o.url.rsplit("/", 1)[1] for o in listed] == [s.name for s in SAMPLES]
    for item, sample in zip(listed, SAMPLES):
        data = read_bytes(item.url, 100 * MB)
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(sample.read_bytes()).hexdigest()
        assert item.size == sample.stat().st_size


@s3
def test_an_object_over_the_limit_is_refused_before_any_byte_is_downloaded(bucket: Bucket, s3_server: S3Server) -> None:
    big = os.urandom(3 * MB)
    url = bucket.put("big/blob.pdf", big)
    seen = len(s3_server.requests())
    with pytest.raises(LimitExceeded) as caught:
        read_bytes(url, MB)
    assert caught.value.detail == f"file too large: {len(big)} bytes (limit {MB})"  # isolation.py's wording
    asked = served_since(bucket, seen)
    assert any(line.startswith(f"HEAD /{bucket.name}/big/blob.pdf ") for line in asked)
    assert not any(line.startswith(f"GET /{bucket.name}/big/blob.pdf") for line in asked)
    assert read_bytes(url, len(big)) == big  # exactly at the limit is allowed, and read by a GET the log shows
    assert any(line.startswith(f"GET /{bucket.name}/big/blob.pdf") for line in served_since(bucket, seen))


@s3
def test_exists_follows_deletes_in_the_same_process(bucket: Bucket) -> None:
    url = bucket.put("docs/a.md", b"alpha")
    bucket.put("docs/b.md", b"bravo")
    assert [o.url for o in list_objects(bucket.url("docs"), SUFFIXES)] == [url, bucket.url("docs/b.md")]
    assert exists(url)
    bucket.delete("docs/a.md")
    assert not exists(url)  # no listings cache: the earlier listing does not answer for the store
    assert [o.url for o in list_objects(bucket.url("docs"), SUFFIXES)] == [bucket.url("docs/b.md")]
    with pytest.raises(NotFound):
        read_bytes(url, MB)


@s3
def test_a_changed_object_gets_a_new_etag_and_an_identical_rewrite_keeps_it(bucket: Bucket) -> None:
    url = bucket.put("docs/a.md", b"first version")
    first = stat_object(url)
    bucket.put("docs/a.md", b"first version")
    assert stat_object(url).etag == first.etag and stat_object(url).version == first.version
    bucket.put("docs/a.md", b"second version")
    second = list_objects(url, SUFFIXES)[0]
    assert second.etag == md5(b"second version") != first.etag and second.version != first.version


@s3
def test_a_multipart_objects_etag_is_not_its_md5_but_still_tells_a_change(bucket: Bucket) -> None:
    part = 5 * MB  # S3's smallest part but the last
    data = os.urandom(part) + b"tail"
    upload = bucket.client.create_multipart_upload(Bucket=bucket.name, Key="big.pdf")
    parts = []
    for number, chunk in enumerate([data[:part], data[part:]], start=1):
        reply = bucket.client.upload_part(Bucket=bucket.name, Key="big.pdf", PartNumber=number,
                                          UploadId=upload["UploadId"], Body=chunk)
        parts.append({"ETag": reply["ETag"], "PartNumber": number})
    bucket.client.complete_multipart_upload(Bucket=bucket.name, Key="big.pdf", UploadId=upload["UploadId"],
                                            MultipartUpload={"Parts": parts})
    item = stat_object(bucket.url("big.pdf"))
    assert item.etag and item.etag.endswith("-2") and item.etag != md5(data)
    assert read_bytes(item.url, 10 * MB) == data
    bucket.put("big.pdf", data)
    assert stat_object(item.url).etag == md5(data) != item.etag  # the same bytes put whole: another ETag


# -- S3: settings and failures -------------------------------------------------------------------------------------


@s3
def test_explicit_storage_options_win_over_the_environment(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    url = bucket.put("docs/a.md", b"alpha")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    endpoint = bucket.server.endpoint
    assert read_bytes(url, MB, {"endpoint_url": endpoint}) == b"alpha"
    keyed = {"s3": {"endpoint_url": endpoint}, "https": {"headers": {"X-Unused": "1"}}}  # options per protocol
    assert [o.url for o in list_objects(bucket.url("docs"), SUFFIXES, storage_options=keyed)] == [url]
    assert exists(url, keyed)


@s3
def test_an_unreachable_endpoint_is_unavailable_not_missing(bucket: Bucket) -> None:
    url = bucket.put("docs/a.md", b"alpha")
    dead = {"endpoint_url": f"http://127.0.0.1:{free_port()}",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    for call in (lambda: list_objects(url, SUFFIXES, storage_options=dead), lambda: read_bytes(url, MB, dead),
                 lambda: exists(url, dead)):  # exists must not answer False: --sync would remove the documents
        with pytest.raises(SourceUnavailable) as caught:
            call()
        assert caught.value.detail.startswith(f"cannot read {url}: ") and "connect" in caught.value.detail.lower()
        assert "\n" not in caught.value.detail


@s3
def test_missing_credentials_are_a_clear_error(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    url = bucket.put("docs/a.md", b"alpha")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    fresh = {"endpoint_url": bucket.server.endpoint, "skip_instance_cache": True}  # a client that reads the env now
    with pytest.raises(SourceUnavailable, match=r"cannot read s3://.*/docs/a\.md: NoCredentialsError: Unable to locate"):
        read_bytes(url, MB, fresh)


@s3
def test_a_fresh_interpreter_reads_through_the_environment(bucket: Bucket) -> None:
    data = SAMPLES[0].read_bytes()
    url = bucket.put("docs/" + SAMPLES[0].name, data)
    script = ("import hashlib, json, sys; from ingest.sources import list_objects, read_bytes; "
              "from ingest.parsers import supported_suffixes; "
              f"objs = list_objects({bucket.url('docs')!r}, supported_suffixes()); "
              "print(json.dumps([[o.url, o.etag, hashlib.sha256(read_bytes(o.url, 1 << 24)).hexdigest()] for o in objs]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[url, md5(data), hashlib.sha256(data).hexdigest()]]


def _read_in_child(url: str, queue: multiprocessing.Queue) -> None:
    try:
        queue.put(hashlib.sha256(read_bytes(url, 1 << 24)).hexdigest())
    except BaseException as exc:  # the parent sees what went wrong
        queue.put(f"{type(exc).__name__}: {exc}")


@s3
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_process_reads_after_the_parent_did(bucket: Bucket, method: str) -> None:
    url = bucket.put("docs/a.md", b"alpha " * 100)
    assert read_bytes(url, MB)  # the parent's filesystem, client and event-loop thread exist before the child
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(url, queue))
    child.start()
    try:
        assert queue.get(timeout=120) == hashlib.sha256(b"alpha " * 100).hexdigest()
    finally:
        child.join(30)
    assert read_bytes(url, MB) == b"alpha " * 100  # and the parent still can


# -- local paths and file:// ---------------------------------------------------------------------------------------


def make_local_tree(root: Path) -> None:
    for name, data in {"a.md": b"alpha", "sub/b.txt": b"bravo", "sub/C.HTML": b"<p>c</p>", "notes.xyz": b"x",
                       ".hidden.md": b"h", ".git/d.md": b"d"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_local_paths_and_file_urls_go_through_the_same_functions(tmp_path: Path) -> None:
    root = tmp_path / "my docs"
    make_local_tree(root)
    expected = [str((root / n).resolve()) for n in ["a.md", "sub/C.HTML", "sub/b.txt"]]
    for target in [str(root), root.as_uri(), f"file://{root}"]:
        listed = list_objects(target, SUFFIXES)
        assert [o.url for o in listed] == sorted(expected), target
        assert [o.size for o in listed] == [5, 8, 5]
        assert all(o.etag is None and o.mtime == pytest.approx(Path(o.url).stat().st_mtime) for o in listed)
    assert root.as_uri().count("%20") == 1 and local_path(root.as_uri()) == str(root)
    assert [o.url for o in list_objects(str(root), SUFFIXES, ["*.md"])] == [str(root / "a.md")]
    one = (root / "notes.xyz").as_uri()
    assert [o.url for o in list_objects(one, SUFFIXES)] == [str(root / "notes.xyz")]
    assert read_bytes(one, 10) == b"x" and exists(one) and exists(str(root / "a.md"))
    with pytest.raises(LimitExceeded, match=r"^file too large: 5 bytes \(limit 4\)$"):
        read_bytes(str(root / "a.md"), 4)
    (root / "a.md").unlink()
    assert not exists(str(root / "a.md")) and not exists((root / "a.md").as_uri())
    with pytest.raises(NotFound, match="does not exist"):
        list_objects(str(root / "missing"), SUFFIXES)


def test_a_local_files_version_changes_with_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"alpha")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    first = stat_object(str(path))
    assert first.mtime == 1_700_000_000 and first.version is not None
    os.utime(path, (1_700_000_100, 1_700_000_100))
    assert stat_object(str(path)).version != first.version


# -- http(s):// ----------------------------------------------------------------------------------------------------


class Handler(SimpleHTTPRequestHandler):
    """Files of the served folder, plus /stream (a long body sent without a length) and /forbidden (403)."""

    streamed: list[int] = []
    streamed_done = threading.Event()

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/forbidden":
            self.send_error(403, "Forbidden")
        elif self.path == "/stream.txt":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            sent = 0
            try:
                for _ in range(256):  # 256 MiB, far more than any limit
                    self.wfile.write(b"s" * MB)
                    sent += MB
            except OSError:
                pass
            finally:
                Handler.streamed.append(sent)
                Handler.streamed_done.set()
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.path == "/stream.txt":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
        elif self.path == "/forbidden":
            self.send_error(403, "Forbidden")
        else:
            super().do_HEAD()


@contextmanager
def web_server(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `folder`; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_page_is_one_object_read_whole(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if s.suffix == ".html")
    (tmp_path / sample.name).write_bytes(sample.read_bytes())
    with web_server(tmp_path) as base:
        url = f"{base}/{sample.name}"
        assert is_url(url)
        [item] = list_objects(url, SUFFIXES)
        assert item.url == url and item.size == sample.stat().st_size
        assert item.mtime == int(sample.stat().st_mtime) or item.mtime == pytest.approx(
            int((tmp_path / sample.name).stat().st_mtime))
        assert read_bytes(url, MB) == sample.read_bytes() and exists(url)
        with pytest.raises(LimitExceeded, match=f"file too large: {item.size} bytes"):
            read_bytes(url, 100)
        assert not exists(f"{base}/gone.html")
        with pytest.raises(NotFound, match=f"{base}/gone.html does not exist"):
            read_bytes(f"{base}/gone.html", MB)
        with pytest.raises(SourceUnavailable, match=f"cannot read {base}/forbidden: HTTP 403"):
            exists(f"{base}/forbidden")
    with pytest.raises(SourceUnavailable, match=f"cannot read {url}: ClientConnectorError"):
        exists(url)  # the server is gone: unreachable, not missing


def test_a_body_without_a_length_is_cut_at_the_limit(tmp_path: Path) -> None:
    Handler.streamed.clear()
    Handler.streamed_done.clear()
    with web_server(tmp_path) as base:
        assert stat_object(f"{base}/stream.txt").size is None
        Handler.streamed.clear()
        Handler.streamed_done.clear()
        with pytest.raises(LimitExceeded, match=rf"^file too large: more than {MB} bytes \(limit {MB}\)$"):
            read_bytes(f"{base}/stream.txt", MB)
        assert Handler.streamed_done.wait(60), "the connection was left open"
    assert max(Handler.streamed) < 64 * MB  # read stopped after the limit: the rest (256 MiB) was never sent


# -- URLs, without a server ----------------------------------------------------------------------------------------


def test_which_targets_are_urls() -> None:
    for url in ["s3://b/k", "S3://b/k", "gs://b/k", "az://c/k", "abfs://c/k", "https://example.org/a.html",
                "http://127.0.0.1:8000/"]:
        assert is_url(url), url
    for path in ["docs", "/srv/docs", "./a.md", "C:\\docs\\a.md", "file:///srv/docs", "no-such-scheme://x/y"]:
        assert not is_url(path), path
    assert local_path("file:///srv/my%20docs/a.md") == "/srv/my docs/a.md" and local_path("/srv/a") == "/srv/a"
    with pytest.raises(InvalidInput, match="another host"):
        local_path("file://elsewhere/srv/a.md")


def test_under_matches_on_path_boundaries(tmp_path: Path) -> None:
    assert under("s3://b/docs", "s3://b/docs/a.md") and under("s3://b/docs/", "s3://b/docs/sub/a.md")
    assert under("s3://b", "s3://b/docs/a.md") and under("s3://b/docs/a.md", "s3://b/docs/a.md")
    assert under("s3a://b/docs", "s3://b/docs/a.md")  # the same store by another of its schemes
    assert not under("s3://b/docs", "s3://b/docs2/a.md") and not under("s3://b/docs", "s3://c/docs/a.md")
    assert not under("s3://b/docs", "gs://b/docs/a.md") and not under(str(tmp_path), "s3://b/docs/a.md")
    docs = tmp_path / "docs"
    assert under(str(docs), str(docs / "a.md")) and under(docs.as_uri(), str(docs / "sub" / "a.md"))
    assert not under(str(docs), str(tmp_path / "docs2" / "a.md"))
    assert under("https://example.org/a.html", "https://example.org/a.html")


def test_a_store_without_its_package_names_the_extra_to_install() -> None:
    missing = [(scheme, module, extra) for scheme, module, extra in
               [("gs", "gcsfs", "gcs"), ("az", "adlfs", "azure")] if importlib.util.find_spec(module) is None]
    if not missing:
        pytest.skip("gcsfs and adlfs are both installed")
    for scheme, module, extra in missing:
        url = f"{scheme}://bucket/docs"
        with pytest.raises(InvalidInput) as caught:
            list_objects(url, SUFFIXES)
        assert caught.value.detail.startswith(f"{url}: reading {scheme}:// needs a package that is not installed")
        assert f"pip install 'docqa[{extra}]'" in caught.value.detail and module in caught.value.detail
