"""Background ingestion jobs: uploads answer 202 at once; a bounded pool runs the same pipeline as the CLI.

Jobs live in the store (`indexes/records.py`), so any worker process, or any replica on the same database,
can report on them. Each job names the host and process running it: a process starting up marks the
unfinished jobs of processes on its host that are gone as failed (instead of leaving them 'running'
forever), and leaves those of workers still alive, and those of other hosts, alone.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import AbstractSet, Any, Callable, Sequence

from indexes.errors import DocQAError, NotFound
from indexes.records import Jobs
from ingest.pipeline import FileResult, IngestReport, ProgressSink, SourceFile
from service.errors import Overloaded
from service.metrics import Metrics

log = logging.getLogger("docqa.jobs")

INGEST_NICENESS = 10
FINAL_ATTEMPTS = 60  # a job's outcome is written for up to a minute while the store is down


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
    """Records each file's outcome as it happens (one row: the same cost for the first file and the
    50,000th), so polling shows progress. An outcome whose write failed is kept for the job's final write."""

    def __init__(self, jobs: "JobRunner", job_id: str, sources: Sequence[str]) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.pending: dict[str, deque[int]] = {}  # positions of the files not done yet, by source
        for position, source in enumerate(sources):
            self.pending.setdefault(source, deque()).append(position)
        self.next_position = len(sources)  # where a file the job did not list (one pruned) goes
        self.unrecorded: dict[int, dict[str, Any]] = {}
        self.on_file: Callable[[FileResult], None] | None = None

    def file_done(self, result: FileResult) -> None:
        positions = self.pending.get(result.source)
        if positions:
            position = positions.popleft()
        else:
            position, self.next_position = self.next_position, self.next_position + 1
        outcome = vars(result).copy()
        if not self.jobs._update(self.job_id, files={position: outcome}):
            self.unrecorded[position] = outcome
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

    retry_pause = 1.0  # seconds between attempts to record a job's outcome

    def __init__(self, records: Jobs, max_concurrent: int = 1, max_queued: int = 16,
                 metrics: Metrics | None = None) -> None:
        self.records = records
        self.host = socket.gethostname()
        self.max_queued = max_queued
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="docqa-ingest")
        self._pending = 0
        self.running = 0
        self._lock = threading.Lock()
        self.metrics = metrics
        if metrics is not None:
            metrics.jobs = self
        self.on_file: Callable[[FileResult], None] | None = None
        # a job without a host was written before hosts were kept: by a process of this host
        orphans = [job_id for job_id, pid, host in records.unfinished() if host in (None, self.host) and not _alive(pid)]
        records.fail(orphans, "interrupted by a restart", time.time())

    def submit(self, collection: str, files: Sequence[SourceFile], run: RunIngest) -> dict[str, Any]:
        """Queue a job; returns its record at once."""
        with self._lock:
            if self._pending >= self.max_queued:
                if self.metrics is not None:
                    self.metrics.rejected.labels("jobs").inc()
                raise Overloaded(f"{self._pending} ingestion jobs are queued; retry later")
            self._pending += 1
        job_id = uuid.uuid4().hex[:16]
        try:
            self.records.create(job_id, collection, [f.source for f in files], time.time(), os.getpid(), self.host)
            # the job runs in the request's context: its log lines and spans carry the request id that started it
            self._pool.submit(contextvars.copy_context().run, self._run, job_id, files, run)
        except BaseException:
            with self._lock:  # the job never started: give its place back
                self._pending -= 1
            raise
        return self.get(job_id)

    @property
    def queued(self) -> int:
        """Jobs of this process waiting for a worker thread."""
        return self._pending - self.running

    def _run(self, job_id: str, files: Sequence[SourceFile], run: RunIngest) -> None:
        _lower_priority()
        progress = _JobProgress(self, job_id, [f.source for f in files])
        progress.on_file = self.on_file
        with self._lock:
            self.running += 1
        try:
            self._update(job_id, state="running", started_at=time.time())
            report = run(files, progress)
            state = "failed" if report.failures and len(report.failures) == len(report.results) else "succeeded"
            error = None if state == "succeeded" else "every file failed"
            self._update(job_id, state=state, files=progress.unrecorded, error=error, finished_at=time.time(),
                         attempts=FINAL_ATTEMPTS)
        except Exception as exc:  # noqa: BLE001 - the job fails with its reason; the service goes on
            log.exception("ingestion job failed", extra={"job": job_id})
            self._update(job_id, state="failed", files=progress.unrecorded, error=f"{type(exc).__name__}: {exc}",
                         finished_at=time.time(), attempts=FINAL_ATTEMPTS)
        finally:
            with self._lock:
                self._pending -= 1
                self.running -= 1

    def _update(self, job_id: str, attempts: int = 1, **fields: Any) -> bool:
        """Record progress; whether it was written. A store that is down for a moment delays a progress write
        to the job's outcome, which is retried for a while (`attempts`, a second apart), so it is not left
        'running' by a blip."""
        for attempt in range(attempts):
            try:
                self.records.update(job_id, **fields)
                return True
            except DocQAError as exc:
                log.warning("cannot record job progress", extra={"job": job_id, "detail": exc.detail,
                                                                 "attempt": attempt + 1})
                if attempt + 1 < attempts:
                    time.sleep(self.retry_pause)
        return False

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's record; NotFound if there is none."""
        job = self.records.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        counts: dict[str, int] = {}
        for f in job["files"]:
            counts[f["status"]] = counts.get(f["status"], 0) + 1
        job["counts"] = counts
        return job

    def list(self, readable: AbstractSet[str] | None = None, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        """One page of jobs, newest first, of the readable collections (None: any), with their files counted by
        status and in all (`file_count`) rather than listed."""
        jobs = self.records.list(readable, limit, offset)
        for job in jobs:
            job["file_count"] = sum(job["counts"].values())
        return jobs

    def shutdown(self) -> None:
        """Stop taking jobs; let running ones finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)
