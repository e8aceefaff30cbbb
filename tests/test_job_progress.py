"""A job's bookkeeping grows linearly with its files: recording the 20,000th file's outcome writes as much as
recording the first (a 50,000-file server-path job used to rewrite its whole list after every file)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from indexes.embedded import EmbeddedStore
from indexes.errors import StorageUnavailable
from indexes.records import Database, Jobs
from ingest.pipeline import FileResult, IngestReport, ProgressSink, SourceFile
from service.jobs import JobRunner

FILES = 20_000
BUDGET_PER_FILE = 200  # bytes of parameters a file's outcome may cost (it takes under 100)


class Measured:
    """A real database whose writes are weighed: the bytes of every statement's parameters."""

    def __init__(self, db: Database) -> None:
        self.db, self.dialect, self.written = db, db.dialect, 0

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self.db.query(sql, args)

    @contextmanager
    def transaction(self) -> Iterator["Measured"]:
        with self.db.transaction() as tx:
            self.tx = tx
            yield self

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        self.written += sum(len(str(a)) for a in args)
        return self.tx.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        self.written += sum(len(str(a)) for row in rows for a in row)
        self.tx.executemany(sql, rows)


def test_a_20000_file_jobs_bookkeeping_costs_the_same_for_every_file(tmp_path: Path) -> None:
    db = Measured(EmbeddedStore(tmp_path / "data").records.db)
    runner = JobRunner(Jobs(db))
    files = [SourceFile(Path(f"/srv/docs/{i:05}.md"), f"/srv/docs/{i:05}.md", {}) for i in range(FILES)]
    written_after: list[int] = []  # bytes written once each file's outcome is recorded

    def run(files: Sequence[SourceFile], progress: ProgressSink) -> IngestReport:
        report = IngestReport("docs")
        for i, f in enumerate(files):
            result = FileResult(f.source, "ingested", chunks=3, document_id=i + 1)
            report.results.append(result)
            progress.file_done(result)
            written_after.append(db.written)
            if db.written > BUDGET_PER_FILE * FILES:  # a quadratic version gets here within a few hundred files
                raise AssertionError(f"{db.written} bytes written after {i + 1} files")
        report.results.append(FileResult("/srv/docs/gone.md", "removed", chunks=2, document_id=0))
        progress.file_done(report.results[-1])
        return report

    job_id = runner.submit("docs", files, run)["id"]
    deadline = time.monotonic() + 300
    while (job := runner.get(job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    runner.shutdown()
    assert job["state"] == "succeeded", job["error"]
    assert job["counts"] == {"ingested": FILES, "removed": 1}
    assert [f["source"] for f in job["files"]] == [f.source for f in files] + ["/srv/docs/gone.md"]
    assert job["files"][FILES - 1] == {"source": files[-1].source, "status": "ingested", "reason": None, "chunks": 3,
                                       "document_id": FILES}
    half = FILES // 2
    first, second = written_after[half - 1] - written_after[0], written_after[-1] - written_after[half - 1]
    assert second <= 1.05 * first, (first, second)  # linear: the second 10,000 cost what the first did


class Blip:
    """The real repository, refusing the first progress writes as a database down for a moment would."""

    def __init__(self, inner: Jobs, refusals: int) -> None:
        self.inner, self.refusals = inner, refusals

    def update(self, job_id: str, files=None, **fields) -> None:
        if files and "finished_at" not in fields and self.refusals:
            self.refusals -= 1
            raise StorageUnavailable("PostgreSQL is down")
        self.inner.update(job_id, files, **fields)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_an_outcome_whose_progress_write_failed_is_written_with_the_jobs_outcome(tmp_path: Path) -> None:
    jobs = EmbeddedStore(tmp_path / "data").records.jobs
    blip = Blip(jobs, refusals=2)
    runner = JobRunner(blip)
    files = [SourceFile(Path(f"/srv/{name}"), f"/srv/{name}", {}) for name in ("a.md", "b.md", "c.md")]
    seen: list[list[str]] = []
    submitted = threading.Event()

    def run(files: Sequence[SourceFile], progress: ProgressSink) -> IngestReport:
        submitted.wait(10)
        report = IngestReport("docs")
        for f in files:
            report.results.append(FileResult(f.source, "ingested", chunks=1, document_id=len(report.results) + 1))
            progress.file_done(report.results[-1])
            seen.append([o["status"] for o in jobs.get(job_id)["files"]])
        return report

    job_id = runner.submit("docs", files, run)["id"]
    submitted.set()
    runner.shutdown()
    assert blip.refusals == 0 and seen[-1] == ["pending", "pending", "ingested"]  # a and b were not recorded
    job = jobs.get(job_id)
    assert job["state"] == "succeeded" and [(f["status"], f["document_id"]) for f in job["files"]] == [
        ("ingested", 1), ("ingested", 2), ("ingested", 3)]
