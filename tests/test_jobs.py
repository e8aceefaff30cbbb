"""Ingestion jobs in the catalog: a process starting up fails the unfinished jobs of processes that are gone,
and leaves those of workers still running alone (several `docqa serve` workers share one catalog)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from indexes.catalog import Catalog
from ingest.pipeline import IngestReport
from service.jobs import JobRunner


def unfinished(catalog: Catalog, job_id: str, pid: int | None) -> None:
    with catalog.transaction() as db:
        db.execute("UPDATE jobs SET state = 'running', finished_at = NULL, pid = ? WHERE id = ?", (pid, job_id))


def test_a_starting_process_fails_only_the_jobs_of_processes_that_are_gone(catalog: Catalog, tmp_path: Path) -> None:
    runner = JobRunner(catalog)
    ids = [runner.submit("docs", [], lambda files, progress: IngestReport("docs"))["id"] for _ in range(3)]
    for job_id in ids:
        while runner.get(job_id)["state"] not in ("succeeded", "failed"):
            time.sleep(0.01)
    runner.shutdown()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        unfinished(catalog, ids[0], int(gone.stdout))  # its process has exited
        unfinished(catalog, ids[1], worker.pid)  # another worker, still running it
        unfinished(catalog, ids[2], None)  # written before jobs named their process
        JobRunner(catalog).shutdown()
        states = {job_id: runner.get(job_id) for job_id in ids}
        assert states[ids[0]]["state"] == "failed" and states[ids[0]]["error"] == "interrupted by a restart"
        assert states[ids[1]]["state"] == "running" and states[ids[1]]["error"] is None
        assert states[ids[2]]["state"] == "failed"
    finally:
        worker.kill()
        worker.wait()


def test_catalogs_whose_jobs_name_no_process_gain_the_column(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    with catalog.transaction() as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, collection TEXT NOT NULL, state TEXT NOT NULL,"
                   " files TEXT NOT NULL DEFAULT '[]', error TEXT, created_at REAL NOT NULL, started_at REAL,"
                   " finished_at REAL)")
        db.execute("INSERT INTO jobs(id, collection, state, created_at) VALUES ('old', 'docs', 'running', 0)")
    runner = JobRunner(catalog)
    try:
        assert runner.get("old")["state"] == "failed"
        job = runner.submit("docs", [], lambda files, progress: IngestReport("docs"))
        assert catalog.db.execute("SELECT pid FROM jobs WHERE id = ?", (job["id"],)).fetchone()[0] > 0
    finally:
        runner.shutdown()
