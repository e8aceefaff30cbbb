"""Ingestion jobs in the store: a process starting up fails the unfinished jobs of processes of its host that
are gone, and leaves those of workers still running, and of other hosts, alone (several `docqa serve` workers
share one catalog; replicas on several machines share one database)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import socket

import pytest

from indexes.catalog import Catalog
from indexes.embedded import CATALOG_FILE, EmbeddedStore
from indexes.errors import StorageUnavailable
from indexes.records import Jobs
from ingest.pipeline import IngestReport
from service.jobs import JobRunner


@pytest.fixture
def jobs(tmp_path: Path) -> Jobs:
    return EmbeddedStore(tmp_path / "data").records.jobs


def unfinished(jobs: Jobs, job_id: str, pid: int | None, host: str | None = socket.gethostname()) -> None:
    jobs.update(job_id, state="running", finished_at=None, pid=pid, host=host)


def test_a_starting_process_fails_only_the_jobs_of_processes_that_are_gone(jobs: Jobs) -> None:

    runner = JobRunner(jobs)
    ids = [runner.submit("docs", [], lambda files, progress: IngestReport("docs"))["id"] for _ in range(3)]
    for job_id in ids:
        while runner.get(job_id)["state"] not in ("succeeded", "failed"):
            time.sleep(0.01)
    runner.shutdown()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        unfinished(jobs, ids[0], int(gone.stdout))  # its process has exited
        unfinished(jobs, ids[1], worker.pid)  # another worker, still running it
        unfinished(jobs, ids[2], None, None)  # written before jobs named their process
        JobRunner(jobs).shutdown()
        states = {job_id: runner.get(job_id) for job_id in ids}
        assert states[ids[0]]["state"] == "failed" and states[ids[0]]["error"] == "interrupted by a restart"
        assert states[ids[1]]["state"] == "running" and states[ids[1]]["error"] is None
        assert states[ids[2]]["state"] == "failed"
    finally:
        worker.kill()
        worker.wait()


def test_a_job_of_another_host_is_left_alone_whatever_its_process_id(jobs: Jobs) -> None:
    runner = JobRunner(jobs)
    job_id = runner.submit("docs", [], lambda files, progress: IngestReport("docs"))["id"]
    while runner.get(job_id)["state"] not in ("succeeded", "failed"):
        time.sleep(0.01)
    runner.shutdown()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    unfinished(jobs, job_id, int(gone.stdout), host="another-replica")  # that pid means nothing here
    JobRunner(jobs).shutdown()
    assert jobs.get(job_id)["state"] == "running"
    unfinished(jobs, job_id, int(gone.stdout))  # the same pid on this host: gone
    JobRunner(jobs).shutdown()
    assert jobs.get(job_id)["state"] == "failed"


def test_catalogs_whose_jobs_name_no_process_gain_the_column(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    catalog = Catalog(tmp_path / "data" / CATALOG_FILE)
    with catalog.transaction() as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, collection TEXT NOT NULL, state TEXT NOT NULL,"
                   " files TEXT NOT NULL DEFAULT '[]', error TEXT, created_at REAL NOT NULL, started_at REAL,"
                   " finished_at REAL)")
        db.execute("INSERT INTO jobs(id, collection, state, created_at) VALUES ('old', 'docs', 'running', 0)")
    runner = JobRunner(EmbeddedStore(tmp_path / "data").records.jobs)
    try:
        assert runner.get("old")["state"] == "failed"
        job = runner.submit("docs", [], lambda files, progress: IngestReport("docs"))
        assert catalog.db.execute("SELECT pid, host FROM jobs WHERE id = ?", (job["id"],)).fetchone() == (
            job["pid"], socket.gethostname()) and job["pid"] > 0
    finally:
        runner.shutdown()


class FlakyJobs:
    """The real repository, refusing the first writes of a job's outcome as a database that is down would."""

    def __init__(self, inner: Jobs, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def update(self, job_id: str, **fields) -> None:
        if "finished_at" in fields and self.failures:
            self.failures -= 1
            raise StorageUnavailable("PostgreSQL is down")
        self.inner.update(job_id, **fields)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_a_jobs_outcome_is_written_once_the_store_is_back(jobs: Jobs) -> None:
    flaky = FlakyJobs(jobs, failures=3)
    runner = JobRunner(flaky)
    runner.retry_pause = 0.01
    job_id = runner.submit("docs", [], lambda files, progress: IngestReport("docs"))["id"]
    deadline = time.monotonic() + 10
    while jobs.get(job_id)["state"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.shutdown()
    assert flaky.failures == 0 and jobs.get(job_id)["state"] == "succeeded"
