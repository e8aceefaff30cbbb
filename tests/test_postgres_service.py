"""The product on PostgreSQL: real `docqa serve` replicas (uvicorn) on one real PostgreSQL 16 + pgvector.

Two replicas share nothing but the database URL and the uploads folder (as two containers share a volume):
upload through one and search, poll and delete through the other; English and Portuguese answers with
citations; abstention; `docqa migrate` embedded → PostgreSQL → embedded; and a database that goes away in
the middle of a load: 503 + Retry-After while it is down, 200 again when it is back, nothing committed lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from indexes.backends import StoreOptions, open_store
from indexes.embedded import EmbeddedStore
from indexes.errors import StorageUnavailable
from indexes.postgres import PostgresStore
from indexes.search import Searcher
from indexes.store import Embedders, Store
from service.cli import app as docqa_app
from ingest.pipeline import FileResult, IngestPipeline, ProgressSink, SourceFile
from pg import PostgresCluster, create_database, drop_database
from server import DocqaServer, ask, wait_for_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix != ".py")


@pytest.fixture(scope="module")
def database(postgres_admin_url: str) -> Iterator[str]:
    name = create_database(postgres_admin_url, "svc")
    yield postgres_admin_url.replace("/postgres?", f"/{name}?", 1)
    drop_database(postgres_admin_url, name)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two `docqa serve` processes on one database; uploads in one shared folder."""
    shared = tmp_path_factory.mktemp("shared-data")
    env = {"DOCQA_STORE__URL": database}
    with DocqaServer(tmp_path_factory.mktemp("replica-a"), env=env, data_dir=shared) as a, \
            DocqaServer(tmp_path_factory.mktemp("replica-b"), env=env, data_dir=shared) as b, \
            httpx.Client(base_url=a.base_url, timeout=60) as client_a, httpx.Client(base_url=b.base_url, timeout=60) as client_b:
        yield client_a, client_b


@pytest.fixture(scope="module")
def samples(replicas: tuple[httpx.Client, httpx.Client]) -> dict[str, dict[str, Any]]:
    """The samples uploaded through replica A; the job polled through replica B."""
    a, b = replicas
    response = a.post("/v1/collections/default/documents", files=[("files", (p.name, p.read_bytes())) for p in SAMPLE_FILES])
    assert response.status_code == 202, response.text
    job = wait_for_job(b, response.json()["id"])  # a job accepted by one replica, followed on the other
    assert job["state"] == "succeeded", job
    return {f["source"]: f for f in job["files"]}


def test_every_sample_uploaded_through_one_replica_is_in_the_database(replicas, samples, database):
    assert set(samples) == {p.name for p in SAMPLE_FILES}
    assert all(f["status"] == "ingested" and f["chunks"] > 0 for f in samples.values())
    store = PostgresStore(database)
    try:
        collection = store.get_collection("default")
        assert store.counts(collection)["documents"] == len(SAMPLE_FILES)
        assert store.check(collection).ok
    finally:
        store.close()


QUESTIONS = [
    ("How many nodes does the staging cluster have?", "12 nodes", "handbook.md", None),
    ("How many GPUs was Atlas trained on?", "64 GPUs", "atlas-report.pdf", 2),
    ("Quantos dias de férias por ano tem cada colaborador?", "30 dias", "politica-de-ferias.md", None),
    ("Quantos parâmetros tem o Vega?", "7 bilhões", "laboratorio-ia.html", None),
]


@pytest.mark.parametrize("question, fact, source, page", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_either_replica_answers_with_cited_sources_in_english_and_portuguese(replicas, samples, question, fact, source, page):
    for client in replicas:
        answer = ask(client, question)
        assert not answer["abstained"], answer["reason"]
        assert fact in answer["answer"]
        backing = [c for c in answer["citations"] if c["cited"] and fact in c["text"]]
        assert backing and all((c["source"], c["page"]) == (source, page) for c in backing)
        assert all(c["document_id"] == samples[source]["document_id"] for c in backing)
        assert all(c["supported"] for c in backing)


def test_a_question_the_documents_cannot_answer_abstains_on_postgres(replicas, samples):
    answer = ask(replicas[1], "Quanto custa a assinatura mensal do serviço Sirius?")
    assert answer["abstained"] is True and answer["reason"] and not any(c["cited"] for c in answer["citations"])


def test_filters_reach_postgres_and_every_mode_finds_the_source(replicas, samples):
    for mode in ("dense", "lexical", "hybrid"):
        body = replicas[0].post("/v1/search", json={"query": "staging cluster nodes", "mode": mode, "top_k": 3}).json()
        assert body["hits"][0]["source"] == "handbook.md" and "12 nodes" in body["hits"][0]["text"], mode
    only_pdf = replicas[1].post("/v1/search", json={
        "query": "staging cluster nodes GPUs", "top_k": 10, "filters": {"source_glob": "*.pdf"}}).json()["hits"]
    assert only_pdf and {h["source"] for h in only_pdf} == {"atlas-report.pdf"}
    bad = replicas[1].post("/v1/search", json={"query": "x", "filters": {"where": {"field": "nope", "value": 1}}})
    assert bad.status_code == 422


def test_a_document_deleted_through_one_replica_is_never_cited_by_the_other(replicas, samples):
    a, b = replicas
    assert a.post("/v1/collections", json={"name": "deletions"}).status_code == 201
    response = b.post("/v1/collections/deletions/documents",
                      files=[("files", (p.name, p.read_bytes())) for p in (SAMPLES / "handbook.md", SAMPLES / "faq.html")])
    job = wait_for_job(a, response.json()["id"])
    handbook = next(f["document_id"] for f in job["files"] if f["source"] == "handbook.md")
    question = "How many nodes does the staging cluster have?"
    assert any(c["cited"] and c["document_id"] == handbook for c in ask(a, question, collection="deletions")["citations"])
    assert b.get(f"/v1/collections/deletions/documents/{handbook}/file").status_code == 200  # the shared uploads
    assert b.delete(f"/v1/collections/deletions/documents/{handbook}").status_code == 204
    answer = ask(a, question, collection="deletions")
    assert all(c["document_id"] != handbook for c in answer["citations"]) and "12 nodes" not in answer["answer"]
    for mode in ("dense", "lexical", "hybrid"):
        hits = a.post("/v1/search", json={"query": "staging cluster nodes Shipwright", "collection": "deletions",
                                          "mode": mode, "top_k": 50}).json()["hits"]
        assert all(h["document_id"] != handbook for h in hits), mode
    assert a.get(f"/v1/collections/deletions/documents/{handbook}").status_code == 404


def test_conversations_live_in_the_database_for_every_replica(replicas, samples):
    a, b = replicas
    created = a.post("/v1/conversations", json={"collection": "default"})
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    turn = b.post(f"/v1/conversations/{conversation}/messages", json={"content": "How many GPUs was Atlas trained on?", "stream": False})
    assert turn.status_code == 200, turn.text
    follow = a.post(f"/v1/conversations/{conversation}/messages", json={"content": "And how long did it take?", "stream": False})
    assert follow.status_code == 200 and "Atlas" in follow.json()["rewritten_question"]
    history = b.get(f"/v1/conversations/{conversation}").json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user", "assistant"]


def test_readiness_reports_the_database(replicas):
    for client in replicas:
        assert client.get("/readyz").json()["checks"]["index"] == "ok"


# --- docqa migrate -----------------------------------------------------------------------------------------


QUESTIONS_FOR_MIGRATION = [
    "How many nodes does the staging cluster have?", "Quantos dias de férias por ano?", "Atlas GPUs training",
    "Shipwright deploy tool", "Vega parâmetros", "gym allowance", "holiday notice period",
]


def results(store: Store, collection_name: str) -> list[list[tuple[str, int, float]]]:
    collection = store.get_collection(collection_name)
    searcher = Searcher(store)
    return [[(h.source, h.ordinal, round(h.score, 4)) for h in searcher.search(collection, q, k=5)]
            for q in QUESTIONS_FOR_MIGRATION]


def snapshot(store: Store, collection_name: str) -> dict[str, Any]:
    """Every document's chunks (texts, vectors) by source: what must survive a migration exactly."""
    collection = store.get_collection(collection_name)
    out = {}
    for doc in store.list_documents(collection):
        stored = store.export_document(doc.id)
        out[doc.source] = (doc.status, doc.sha256, doc.metadata, [c.text for c in stored.chunks],
                           stored.embeddings.tobytes(), [None if s is None else s.tobytes() for s in stored.sentence_vectors])
    return out


def test_migrate_round_trips_embedded_to_postgres_to_embedded(tmp_path, store, samples_copy, postgres_url, embedder):
    collection = store.ensure_collection("handbook")
    report = IngestPipeline(store, collection, workers=0).ingest_paths([samples_copy])
    assert not report.failures
    store.records.keys.create("k1", "ci", "reader", '["handbook"]', "digest", 1.0)
    store.records.conversations.create("c1", "handbook", "q", None, 1.0)
    store.records.conversations.add_messages("c1", [("user", "q?", {}), ("assistant", "a", {})], "q", 2.0)
    runner = CliRunner()
    source_dir, back_dir = store.data_dir, tmp_path / "back"
    moved = runner.invoke(docqa_app, ["--data-dir", str(source_dir), "migrate", "--to", postgres_url, "--json"])
    assert moved.exit_code == 0, moved.output
    again = runner.invoke(docqa_app, ["--data-dir", str(source_dir), "migrate", "--to", postgres_url, "--json"])
    assert again.exit_code == 0 and '"copied": 0' in again.output  # resumable: what is there is skipped
    back = runner.invoke(docqa_app, ["--store", postgres_url, "migrate", "--to", f"sqlite:///{back_dir}", "--json"])
    assert back.exit_code == 0, back.output

    embedders = Embedders()
    embedders.add(embedders.default, embedder)
    postgres = open_store(postgres_url, embedders=embedders)
    returned = EmbeddedStore(back_dir, embedders=embedders)
    try:
        original = snapshot(store, "handbook")
        assert snapshot(postgres, "handbook") == original and snapshot(returned, "handbook") == original
        expected = results(store, "handbook")
        assert results(postgres, "handbook") == expected and results(returned, "handbook") == expected
        for target in (postgres, returned):
            assert target.records.keys.get("k1")[:3] == ("k1", "ci", "reader")
            assert [m[2] for m in target.records.conversations.messages("c1")] == ["q?", "a"]
            assert target.check(target.get_collection("handbook")).ok
    finally:
        postgres.close()


# --- the database goes away --------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A PostgreSQL server of this test's own, to be stopped and started."""
    own = PostgresCluster(tmp_path_factory.mktemp("own-pg"))
    yield own
    if own.running():
        own.stop()


def test_an_outage_gives_503s_then_200s_without_a_restart_and_loses_nothing(tmp_path, cluster, samples_copy):
    url = cluster.url()
    env = {"DOCQA_STORE__URL": url, "DOCQA_STORE__CONNECT_TIMEOUT": "1"}
    with DocqaServer(tmp_path / "server", env=env) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.post("/v1/collections/default/documents",
                               files=[("files", (p.name, p.read_bytes())) for p in SAMPLE_FILES[:3]])
        assert wait_for_job(client, response.json()["id"])["state"] == "succeeded"
        statuses: list[tuple[str, int, str | None]] = []
        stop = threading.Event()
        phase = ["before"]

        def load() -> None:
            while not stop.is_set():
                r = client.post("/v1/search", json={"query": "staging cluster nodes", "top_k": 3})
                statuses.append((phase[0], r.status_code, r.headers.get("retry-after")))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(2)
            phase[0] = "down"
            cluster.stop()
            time.sleep(4)
            assert client.get("/healthz").status_code == 200  # the process stays up
            assert client.get("/readyz").status_code == 503
            cluster.start()
            phase[0] = "back"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not [s for p, s, _ in statuses[-3:] if p == "back" and s == 200]:
                time.sleep(0.5)
            time.sleep(1)
        finally:
            stop.set()
            worker.join()
        by_phase = {p: [s for q, s, _ in statuses if q == p] for p in ("before", "down", "back")}
        assert by_phase["before"] and set(by_phase["before"]) == {200}
        assert 503 in by_phase["down"] and set(by_phase["down"]) <= {200, 503}  # a request in flight may finish
        assert all(retry for p, s, retry in statuses if s == 503)  # every 503 says when to retry
        assert by_phase["back"][-1] == 200 and 500 not in by_phase["back"]
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/ask", json={"question": "How many nodes does the staging cluster have?"}).status_code == 200

    store = PostgresStore(url)
    try:
        collection = store.get_collection("default")
        assert store.counts(collection)["documents"] == 3 and store.check(collection).ok
    finally:
        store.close()


class StopAfterFirst(ProgressSink):
    """Takes the database down as soon as the first file is committed."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster
        self.results: list[FileResult] = []

    def file_done(self, result: FileResult) -> None:
        self.results.append(result)
        if len(self.results) == 1:
            self.cluster.stop()


def test_a_batch_cut_off_by_an_outage_names_what_did_not_commit_and_a_rerun_finishes_it(cluster, embedder, tmp_path):
    embedders = Embedders()
    embedders.add(embedders.default, embedder)
    store = PostgresStore(cluster.url(), embedders=embedders, options=StoreOptions(connect_timeout=1))
    collection = store.ensure_collection("docs")
    files = [SourceFile(p, p.name) for p in SAMPLE_FILES]
    pipeline = IngestPipeline(store, collection, workers=0, embed_batch=1)
    cut = pipeline.ingest(files, progress=StopAfterFirst(cluster))
    assert cut.results[0].status == "ingested"
    for failed in cut.results[1:]:  # the batch went on, and names each file that did not commit and why
        assert failed.status == "failed" and failed.reason.startswith("not committed: PostgreSQL"), failed
    with pytest.raises(StorageUnavailable):
        store.counts(collection)
    cluster.start()
    deadline = time.monotonic() + 60
    while True:  # the pool reconnects on its own once the server is back
        try:
            store.ping()
            break
        except StorageUnavailable:
            assert time.monotonic() < deadline, "the store never came back"
            time.sleep(0.5)
    report = pipeline.ingest(files)
    assert not report.failures
    statuses = {r.source: r.status for r in report.results}
    assert list(statuses.values()).count("unchanged") == 1 and list(statuses.values()).count("ingested") == len(files) - 1
    assert store.counts(collection)["documents"] == len(files) and store.check(collection).ok
    store.close()

