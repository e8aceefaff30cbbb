"""The batch CLI: ingest, status, remove, reindex, check, migrate (typer + rich); `search` is the service's
(service/cli.py), since it goes through the service's retrieval pipeline.

Its global options and settings are read by the `docqa` entry point (service/cli.py), which hands the commands
plain values through `_State`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from indexes.backends import StoreOptions, open_store, redacted
from indexes.embedders import EmbedderSpec
from indexes.errors import DocQAError, NotFound
from indexes.migrate import migrate as migrate_store
from indexes.store import Embedders, IndexChoice, Store
from ingest.pipeline import (
    EngineOptions, FileResult, IngestLimits, IngestPipeline, OcrOptions, ProgressSink, build_engine, list_files,
    remove_document,
)
from ingest.sample import sample_texts
from ingest.sources import is_url, local_path

app = typer.Typer(help="docqa: retrieval-augmented question answering over your documents.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

CollectionOpt = typer.Option(
    None, "--collection", "-c", help="Collection name (default: DOCQA_DEFAULT_COLLECTION, `default`).",
    callback=lambda name: name or _State.collection)
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")


class _State:
    """What the commands take from the settings, as plain values; set once per run by the entry point."""

    data_dir: Path
    collection: str
    store_url: str | None
    store_options: StoreOptions
    spec: EmbedderSpec
    limits: IngestLimits
    ocr: OcrOptions
    storage_options: dict[str, Any] = {}

    @classmethod
    def store(cls, url: str | None = None) -> Store:
        """The store of `--store` (or `url`); the embedded one under `--data-dir` without a URL."""
        try:
            return open_store(url or cls.store_url, cls.data_dir, embedders=Embedders(cls.spec), options=cls.store_options)
        except DocQAError as exc:  # an unusable data dir or database is the user's to fix: one line, no traceback
            fail(exc.detail)
            raise  # unreachable: fail() exits


def fail(message: str, code: int = 2) -> None:
    """Print an error and exit non-zero."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _metadata(pairs: list[str]) -> dict[str, Any]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--metadata takes key=value, got {pair!r}")
        metadata[key] = value
    return metadata


class RichProgress(ProgressSink):
    """Files and chunks bars, with the pages OCR'd, an engine's per-stage counts and chunks/s, drawn on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.files = progress.add_task("files", total=None, rate="")
        self.chunks = progress.add_task("chunks", total=None, rate="")
        self.ocr_pages = 0
        self.stages: dict[str, int] = {}

    def start(self, files: int) -> None:
        self.progress.update(self.files, total=files)

    def file_done(self, result: FileResult) -> None:
        if result.status != "removed":
            self.progress.advance(self.files)
        if result.status == "failed":
            self.progress.console.print(f"[red]failed[/red] {result.source}: {result.reason}")

    def pages_ocred(self, count: int) -> None:
        self.ocr_pages += count
        self._note()

    def stage(self, name: str, count: int) -> None:
        self.stages[name] = self.stages.get(name, 0) + count
        self._note()

    def _note(self) -> None:
        """The files bar's note: an engine's per-stage counts (the bar itself counts the committed), pages OCR'd."""
        notes = [f"{name} {n}" for name, n in self.stages.items()]
        if self.ocr_pages:
            notes.append(f"OCR'd pages: {self.ocr_pages}")
        self.progress.update(self.files, rate=" · ".join(notes))

    def chunks_embedded(self, count: int) -> None:
        self.progress.advance(self.chunks, count)
        task = self.progress.tasks[self.chunks]
        if task.elapsed:
            self.progress.update(self.chunks, rate=f"{task.completed / task.elapsed:.1f} chunks/s")


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>6}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[rate]}"), TimeElapsedColumn(),
        console=err, transient=False,
    )


@app.command()
def ingest(
    paths: list[str] = typer.Argument(
        ..., metavar="PATH_OR_URL...",
        help="Files or folders, or URLs (s3://bucket/prefix, gs://, az://, http(s)://; fsspec, with the s3/gcs/azure/http extras)."),
    collection: str = CollectionOpt,
    sync: bool = typer.Option(False, "--sync", help="Remove documents whose files are gone."),
    glob: list[str] = typer.Option([], "--glob", help="Only files matching this pattern (repeatable)."),
    metadata: list[str] = typer.Option([], "--metadata", help="key=value stored with each document (repeatable)."),
    workers: Optional[int] = typer.Option(
        None, "--workers",
        help="local: parser processes (default: up to 4 for big batches; 0 or 1 = one). ray: embedding actors"
             " (default: one per GPU, else half the CPUs)."),
    engine: str = typer.Option("local", "--engine", help="Where documents are prepared: local (this process) or ray."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="The Ray cluster for --engine ray: auto, host:6379 or ray://host:10001"
                                    " (default: a local Ray started for the run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest files: unchanged ones are skipped, changed ones replaced; exits 1 if any file failed."""
    try:
        missing = [p for p in paths if not is_url(p) and not Path(local_path(p)).exists()]
    except DocQAError as exc:
        fail(exc.detail)
    if missing:
        fail(f"no such file or folder: {missing[0]}")
    if ray_address is not None and engine != "ray":
        fail("--ray-address is for --engine ray")
    try:
        store = _State.store()
        target = store.ensure_collection(collection, sample=lambda: _sample(paths, glob))
        chosen = build_engine(engine, EngineOptions(workers=workers, address=ray_address))
        pipeline = IngestPipeline(store, target, limits=_State.limits, ocr=_State.ocr, workers=workers, engine=chosen,
                                  storage_options=_State.storage_options)
        with _progress_bar() as bar:
            sink = RichProgress(bar)
            report = pipeline.ingest_paths(paths, globs=glob, metadata=_metadata(metadata), sync=sync, progress=sink)
    except DocQAError as exc:
        fail(exc.detail)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        _print_report(report.as_dict())
    raise typer.Exit(1 if report.failures else 0)


def _sample(paths: list[str], globs: list[str]) -> list[str]:
    """The first files' texts, for `auto` to choose a new collection's embedder by (ingest/sample.py)."""
    files = list_files(paths, globs, {}, _State.storage_options)
    return sample_texts(files, _State.limits, _State.ocr, _State.storage_options)


def _print_report(report: dict[str, Any]) -> None:
    counts = report["counts"]
    out.print(
        f"[bold]{report['collection']}[/bold]: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f" — {report['chunks']} chunks in {report['seconds']:.1f} s"
    )
    failures = [r for r in report["results"] if r["status"] == "failed"]
    if failures:
        table = Table("failed file", "reason", title="Failures")
        for r in failures:
            table.add_row(r["source"], r["reason"])
        out.print(table)


def _selected(store: Store, name: str | None) -> list[Any]:
    """The named collection, or every collection; a missing name is a CLI error."""
    try:
        return [store.get_collection(name)] if name else store.list_collections()
    except NotFound as exc:
        fail(exc.detail)
        raise  # unreachable: fail() exits


@app.command()
def status(collection: Optional[str] = typer.Option(None, "--collection", "-c"), as_json: bool = JsonOpt) -> None:
    """Collections with their document, chunk and failure counts, and the failures' reasons."""
    store = _State.store()
    collections = _selected(store, collection)
    rows = []
    for c in collections:
        failures = store.list_documents(c, status="failed")
        rows.append({
            "collection": c.name, **store.counts(c), "embedder": c.embedder,
            "failures": [{"source": d.source, "error": d.error} for d in failures],
        })
    if as_json:
        out.print_json(json.dumps({"collections": rows}))
        return
    table = Table("collection", "documents", "chunks", "failed", "model")
    for r in rows:
        table.add_row(r["collection"], str(r["documents"]), str(r["chunks"]), str(r["failed"]), r["embedder"]["model"])
    out.print(table)
    for r in rows:
        for f in r["failures"]:
            out.print(f"[red]failed[/red] {r['collection']}: {f['source']}: {f['error']}")


@app.command()
def remove(
    documents: list[str] = typer.Argument(None, help="Document ids or sources to remove."),
    collection: str = CollectionOpt,
    all_: bool = typer.Option(False, "--all", help="Delete the whole collection."),
) -> None:
    """Remove documents (by id or source), each with its attachments, or, with --all, a whole collection."""
    store = _State.store()
    try:
        target = store.get_collection(collection)
        if all_:
            store.delete_collection(collection)
            out.print(f"deleted collection {collection}")
            return
        if not documents:
            fail("name documents to remove, or pass --all")
        for ref in documents:
            doc = store.find_document(target, ref) or store.find_document(target, str(Path(ref).resolve()))
            if doc is None and ref.isdigit():
                doc = store.get_document(int(ref), target)
            if doc is None:
                raise NotFound(f"document {ref!r} not found in {collection!r}")
            for removed in remove_document(store, target, doc):
                out.print(f"removed {removed.source} ({removed.chunk_count} chunks)", soft_wrap=True)  # paths whole
    except DocQAError as exc:
        fail(exc.detail)


@app.command()
def reindex(
    collection: str = CollectionOpt,
    index: Optional[str] = typer.Option(
        None, "--index", help="Vector index: auto (flat, IVF from DOCQA_STORE__IVF_THRESHOLD chunks), flat or ivf;"
        " default: as recorded. Embedded store only."),
    nlist: Optional[int] = typer.Option(None, "--nlist", min=1, help="IVF lists (default 4·sqrt(chunks))."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", min=1,
                                         help="IVF lists searched (default: the fewest reaching DOCQA_STORE__IVF_RECALL)."),
    quantiser: Optional[str] = typer.Option(None, "--quantiser", help="IVF codes: sq8, fp16 or pq [DOCQA_STORE__IVF_QUANTISER]."),
) -> None:
    """Rebuild the lexical index and vectors of a collection from its chunks, without re-parsing or re-embedding."""
    choice = None
    if index is not None or nlist or nprobe or quantiser:
        choice = IndexChoice(index or "ivf", nlist, nprobe, quantiser)
    store = _State.store()
    try:
        target = store.get_collection(collection)
        store.repair(target, choice)
        report = store.check(target)
    except DocQAError as exc:
        fail(exc.detail)
    params = ", ".join(f"{k} {v}" for k, v in report.index.items() if k != "kind")
    out.print(f"reindexed {collection}: {report.vectors} vectors ({report.index.get('kind', '?')}: {params}),"
              f" {report.lexical_rows} lexical rows", highlight=False, soft_wrap=True)


@app.command()
def check(
    collection: Optional[str] = typer.Option(None, "--collection", "-c"),
    repair: bool = typer.Option(False, "--repair", help="Rebuild what is derived (lexical index, vectors)."),
    as_json: bool = JsonOpt,
) -> None:
    """Verify that chunks, the lexical index and vectors agree exactly; exit 1 on any mismatch (like git fsck)."""
    store = _State.store()
    targets = _selected(store, collection)
    reports = []
    try:
        for target in targets:
            report = store.check(target)
            if not report.ok and repair:
                store.repair(target)
                report = store.check(target)
            reports.append(report)
    except DocQAError as exc:
        fail(exc.detail)
    ok = all(r.ok for r in reports)
    if as_json:
        out.print_json(json.dumps({"ok": ok, "collections": [{**vars(r), "ok": r.ok} for r in reports]}))
    else:
        for r in reports:
            state = "[green]ok[/green]" if r.ok else "[red]MISMATCH[/red]"
            out.print(f"{r.collection}: {state} — {r.chunks} chunks, {r.lexical_rows} lexical rows, {r.vectors} vectors")
            for name in ("missing_vectors", "orphan_vectors", "missing_lexical", "orphan_lexical", "bad_dimensions",
                         "wrong_vectors", "missing_lexical_index", "orphan_lexical_index"):
                if getattr(r, name):
                    out.print(f"  {name}: {getattr(r, name)[:20]}")
            for problem in r.problems:
                out.print(f"  {problem}")
    raise typer.Exit(0 if ok else 1)


@app.command()
def migrate(
    to: str = typer.Option(..., "--to", help="The target store's URL (postgresql://…, or sqlite:///path/to/data-dir)."),
    collection: Optional[str] = typer.Option(None, "--collection", "-c", help="Only this collection (default: all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Copy collections (documents, chunks, stored vectors), conversations and keys to another store, without
    re-parsing or re-embedding; resumable (what is already there is skipped), verified by check() at the end."""
    source = _State.store()
    target = _State.store(to)
    try:
        with _progress_bar() as bar:
            task = bar.add_task("documents", total=None, rate="")
            report = migrate_store(source, target, collection, on_document=lambda: bar.advance(task),
                                   on_total=lambda n: bar.update(task, total=n))
    except DocQAError as exc:
        fail(exc.detail)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        for c in report.collections:
            state = "[green]verified[/green]" if c["verified"] else "[red]MISMATCH[/red]"
            out.print(f"{c['collection']}: {state} — {c['copied']} copied, {c['skipped']} already there,"
                      f" {c['documents']} documents / {c['chunks']} chunks in {redacted(target.url)}")
            for problem in c["problems"]:
                out.print(f"  {problem}")
        out.print(f"records: {report.records}")
    raise typer.Exit(0 if report.ok else 1)


