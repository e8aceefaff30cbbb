"""Background ingestion jobs: uploads answer 202 at once; a bounded pool runs the same pipeline as the CLI.

Jobs live in the catalog database (table `jobs`), so any worker process can report on them. Each job
names the process running it: a process starting up marks the unfinished jobs of processes that are gone
as failed (instead of leaving them 'running' forever), and leaves those of workers still alive alone.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from indexes.catalog import Catalog
from indexes.errors import NotFound, Overloaded
from ingest.pipeline import FileResult, IngestReport, ProgressSink, SourceFile

log = logging.getLogger("docqa.jobs")

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    files TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    pid INTEGER  -- the process running it
);
"""

INGEST_NICENESS = 10


def _alive(pid: int | None) -> bool:
    """Whether another process of this id runs on this host (None: a job written before owners were kept;
    our own id: a job of an earlier process that had it, since this one has started none yet)."""
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
RunIngest = Callable[[Sequence[SourceFile], ProgressSink], IngestReport]


class _JobProgress(ProgressSink):
    """Writes each file's outcome to the job row as it happens, so polling shows progress."""

    def __init__(self, jobs: "JobRunner", job_id: str, outcomes: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.outcomes = outcomes
        self.on_file: Callable[[FileResult], None] | None = None

    def file_done(self, result: FileResult) -> None:
        for outcome in self.outcomes:
            if outcome["source"] == result.source and outcome["status"] == "pending":
                outcome.update(status=result.status, reason=result.reason, chunks=result.chunks, document_id=result.document_id)
                break
        else:
            self.outcomes.append({"source": result.source, "status": result.status, "reason": result.reason,
                                  "chunks": result.chunks, "document_id": result.document_id})
        self.jobs._update(self.job_id, files=self.outcomes)
        if self.on_file:
            self.on_file(result)


def _lower_priority() -> None:
    """Let questions win the CPU over ingestion: this job thread runs at nice 10 (Linux schedules threads apart)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INGEST_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


class JobRunner:
    """Runs ingestion jobs on a bounded thread pool; refuses new ones (503) when the queue is full."""

    def __init__(self, catalog: Catalog, max_concurrent: int = 1, max_queued: int = 16) -> None:
        self.catalog = catalog
        self.max_queued = max_queued
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="docqa-ingest")
        self._pending = 0
        self._lock = threading.Lock()
        self.on_file: Callable[[FileResult], None] | None = None
        with catalog.transaction() as db:
            db.execute(JOBS_SCHEMA)
            if "pid" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}:
                db.execute("ALTER TABLE jobs ADD COLUMN pid INTEGER")  # older catalogs: their jobs have no owner
            unfinished = db.execute("SELECT id, pid FROM jobs WHERE state IN ('queued', 'running')").fetchall()
            orphans = [job_id for job_id, pid in unfinished if not _alive(pid)]
            db.executemany(
                "UPDATE jobs SET state = 'failed', error = 'interrupted by a restart', finished_at = ? WHERE id = ?",
                [(time.time(), job_id) for job_id in orphans],
            )

    def submit(self, collection: str, files: Sequence[SourceFile], run: RunIngest) -> dict[str, Any]:
        """Queue a job; returns its record at once."""
        with self._lock:
            if self._pending >= self.max_queued:
                raise Overloaded(f"{self._pending} ingestion jobs are queued; retry later")
            self._pending += 1
        job_id = uuid.uuid4().hex[:16]
        outcomes = [{"source": f.source, "status": "pending", "reason": None, "chunks": 0, "document_id": None} for f in files]
        try:
            with self.catalog.transaction() as db:
                db.execute(
                    "INSERT INTO jobs(id, collection, state, files, created_at, pid) VALUES (?, ?, 'queued', ?, ?, ?)",
                    (job_id, collection, json.dumps(outcomes), time.time(), os.getpid()),
                )
            self._pool.submit(self._run, job_id, files, outcomes, run)
        except BaseException:
            with self._lock:  # the job never started: give its place back
                self._pending -= 1
            raise
        return self.get(job_id)

    def _run(self, job_id: str, files: Sequence[SourceFile], outcomes: list[dict[str, Any]], run: RunIngest) -> None:
        _lower_priority()
        try:
            self._update(job_id, state="running", started_at=time.time())
            progress = _JobProgress(self, job_id, outcomes)
            progress.on_file = self.on_file
            report = run(files, progress)
            state = "failed" if report.failures and len(report.failures) == len(report.results) else "succeeded"
            error = None if state == "succeeded" else "every file failed"
            self._update(job_id, state=state, files=[vars(r) for r in report.results], error=error, finished_at=time.time())
        except Exception as exc:  # noqa: BLE001 - the job fails with its reason; the service goes on
            log.exception("ingestion job failed", extra={"job": job_id})
            self._update(job_id, state="failed", error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        finally:
            with self._lock:
                self._pending -= 1

    def _update(self, job_id: str, **fields: Any) -> None:
        if "files" in fields:
            fields["files"] = json.dumps(fields["files"])
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.catalog.transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id])

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's record; NotFound if there is none."""
        self.catalog.db.row_factory = sqlite3.Row
        try:
            row = self.catalog.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            self.catalog.db.row_factory = None
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        job = dict(row)
        job["files"] = json.loads(job["files"])
        counts: dict[str, int] = {}
        for f in job["files"]:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        job["counts"] = counts
        return job

    def shutdown(self) -> None:
        """Stop taking jobs; let running ones finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)
