"""A real CrossEncoder (the bundled MiniLM with a fresh head, saved by the test) turned on with
DOCQA_RERANKER__MODEL: the order users get follows its scores on every route of a real `docqa serve`
(/v1/search, /v1/ask, conversations, the OpenAI-compatible endpoint), in `docqa search` and in `docqa eval`.
The expected order comes from calling the CrossEncoder here, on the candidates' texts; the head is random, so
nothing here says the model is any good."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from rerankers import NOTES, cross_encoder_scores, model, model_dir, order_by  # noqa: F401 (fixtures)
from server import DocqaServer, read_sse, wait_for_job
from typer.testing import CliRunner

from service.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()

QUESTION = "How many nodes does the cluster have?"
CANDIDATES = 6




def env_for(model_dir: Path) -> dict[str, str]:
    return {"DOCQA_RERANKER__MODEL": str(model_dir), "DOCQA_RERANKER__CANDIDATES": str(CANDIDATES)}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[httpx.Client]:
    with DocqaServer(tmp_path_factory.mktemp("rerank-e2e"), env=env_for(model_dir)) as server:
        with httpx.Client(base_url=server.base_url, timeout=120) as c:
            files = [("files", (name, f"# {name[:-3].title()}\n\n{text}\n".encode())) for name, text in NOTES.items()]
            job = c.post("/v1/collections/default/documents", files=files).json()
            assert wait_for_job(c, job["id"])["state"] == "succeeded"
            yield c


@pytest.fixture(scope="module")
def expected(client: httpx.Client, model: Any) -> list[str]:
    """The candidates (the top CANDIDATES fused hits) in the CrossEncoder's order, by the test's own call."""
    hits = client.post("/v1/search", json={"query": QUESTION, "top_k": CANDIDATES}).json()["hits"]
    texts = [h["text"] for h in hits]
    fused = [h["text"] for h in sorted(hits, key=lambda h: -h["score"])]
    ranked = order_by(cross_encoder_scores(model, QUESTION, fused), fused)
    assert ranked != fused, "pick a question whose re-ranked order differs from the fused one"
    assert texts == ranked
    return ranked


def test_search_hits_follow_the_cross_encoders_scores_and_show_them(client: httpx.Client, model: Any, expected) -> None:
    body = client.post("/v1/search", json={"query": QUESTION, "top_k": 3}).json()
    assert [h["text"] for h in body["hits"]] == expected[:3]
    want = cross_encoder_scores(model, QUESTION, expected[:3])
    assert [h["scores"]["rerank"] for h in body["hits"]] == pytest.approx(want, abs=1e-4)
    assert {"dense", "lexical", "rerank"} <= set(body["hits"][0]["scores"])
    assert body["warnings"] == [] and 0 < body["timings"]["rerank_ms"] <= body["timings"]["retrieval_ms"]


def _cited_texts(citations: list[dict]) -> list[str]:
    return [c["text"].split("\n")[-1] for c in citations]


def test_ask_citations_follow_it_with_their_rerank_scores(client: httpx.Client, model: Any, expected) -> None:
    body = client.post("/v1/ask", json={"question": QUESTION, "top_k": 4}).json()
    assert [c["text"] for c in body["citations"]] == expected[:4]
    assert [c["rerank"] for c in body["citations"]] == pytest.approx(cross_encoder_scores(model, QUESTION, expected[:4]), abs=1e-4)
    assert body["warnings"] == [] and "rerank_ms" in body["timings"]
    stream = client.post("/v1/ask", json={"question": QUESTION, "top_k": 4, "stream": True})
    events = dict(read_sse(stream))
    assert [c["text"] for c in events["citations"]["citations"]] == expected[:4]
    assert [c["text"] for c in events["done"]["citations"]] == expected[:4] and events["done"]["warnings"] == []


def test_a_conversation_turn_follows_it(client: httpx.Client, expected) -> None:
    conversation = client.post("/v1/conversations", json={"title": "nodes"}).json()
    reply = client.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": QUESTION, "stream": False})
    assert reply.status_code == 200, reply.text
    assert [c["text"] for c in reply.json()["citations"]] == expected[:5]  # the default top_k
    saved = client.get(f"/v1/conversations/{conversation['id']}").json()["messages"][-1]
    assert [c["rerank"] for c in saved["citations"]] == [c["rerank"] for c in reply.json()["citations"]]


def test_the_openai_endpoint_follows_it(client: httpx.Client, expected) -> None:
    request = {"model": "docqa:default", "messages": [{"role": "user", "content": QUESTION}]}
    body = client.post("/v1/chat/completions", json=request).json()
    assert [s["text"] for s in body["sources"]] == expected[:5] and body["warnings"] == []
    stream = client.post("/v1/chat/completions", json={**request, "stream": True})
    chunks = [json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:") and "[DONE]" not in line]
    assert [s["text"] for s in chunks[-1]["sources"]] == expected[:5] and chunks[-1]["warnings"] == []


def test_concurrent_requests_share_the_model_and_agree(client: httpx.Client, expected) -> None:
    def search(_: int) -> tuple[list[str], list[str]]:
        body = client.post("/v1/search", json={"query": QUESTION, "top_k": CANDIDATES}).json()
        return [h["text"] for h in body["hits"]], body["warnings"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(search, range(16)))
    assert all(r == (expected, []) for r in results)


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notes ingested by `docqa ingest` into a data dir of their own."""
    root = tmp_path_factory.mktemp("rerank-cli")
    for name, text in NOTES.items():
        (root / "notes").mkdir(exist_ok=True)
        (root / "notes" / name).write_text(f"# {name[:-3].title()}\n\n{text}\n")
    result = runner.invoke(app, ["--data-dir", str(root / "data"), "ingest", str(root / "notes")])
    assert result.exit_code == 0, result.output
    return root / "data"


def test_docqa_search_follows_it(cli_data: Path, model_dir: Path, model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = runner.invoke(app, ["--data-dir", str(cli_data), "search", QUESTION, "-k", str(CANDIDATES), "--json"])
    fused = [h["text"] for h in json.loads(plain.stdout)["hits"]]
    assert all("rerank" not in h["scores"] for h in json.loads(plain.stdout)["hits"])
    for key, value in env_for(model_dir).items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["--data-dir", str(cli_data), "search", QUESTION, "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert [h["text"] for h in hits] == order_by(cross_encoder_scores(model, QUESTION, fused), fused)[:3]
    assert [h["scores"]["rerank"] for h in hits] == pytest.approx(cross_encoder_scores(model, QUESTION, [h["text"] for h in hits]), abs=1e-4)


def test_docqa_search_warns_on_stderr_and_keeps_the_fused_order(cli_data: Path, tmp_path: Path, monkeypatch) -> None:
    plain = runner.invoke(app, ["--data-dir", str(cli_data), "search", QUESTION, "-k", "3", "--json"])
    monkeypatch.setenv("DOCQA_RERANKER__MODEL", str(tmp_path / "no-such-model"))
    broken = runner.invoke(app, ["--data-dir", str(cli_data), "search", QUESTION, "-k", "3", "--json"])
    assert broken.exit_code == 0
    assert json.loads(broken.stdout) == json.loads(plain.stdout)
    assert "warning: re-ranking failed, passages are in fused order" in broken.stderr


SQUAD_ARTICLES = [
    ("Clusters", [
        ("The staging cluster has 12 nodes and runs in the Frankfurt region.",
         [("How many nodes does staging have?", "12"), ("In which region do the staging nodes run?", "Frankfurt")]),
        ("The production cluster has 40 nodes spread over three availability zones.",
         [("How many zones hold production?", "three"), ("How many nodes does the lunch cluster have?", None)]),
        ("Backups of the cluster databases are kept for thirty days in cold storage.",
         [("How long are backups kept?", "thirty days"), ("Who deletes the backups of the canteen?", None)]),
    ]),
    ("Office", [
        ("Lunch is served in the canteen from noon until two on weekdays.",
         [("When is lunch served?", "from noon until two"), ("What does the cluster serve at noon?", None)]),
        ("Visitors park in the north garage and sign in at the front desk.",
         [("Where do visitors park?", "the north garage"), ("Which nodes park in the garage?", None)]),
    ]),
]


@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five paragraphs (fewer than the re-ranker's candidates: every one is re-scored for every question) and
    six answerable and four unanswerable questions, as a SQuAD 2.0 file."""
    data = []
    for title, paragraphs in SQUAD_ARTICLES:
        out = []
        for p, (context, questions) in enumerate(paragraphs):
            qas = [{"id": f"{title}-{p}-{i}", "question": q, "is_impossible": a is None,
                    "answers": [] if a is None else [{"text": a, "answer_start": context.index(a)}]}
                   for i, (q, a) in enumerate(questions)]
            out.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": out})
    path = tmp_path_factory.mktemp("tiny-squad") / "tiny.json"
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return path


def _expected_retrieval(model: Any, answerable_only: bool) -> dict[str, float]:
    """recall@1 and MRR@10 when every paragraph is ranked by the CrossEncoder alone."""
    contexts = [c for _, paragraphs in SQUAD_ARTICLES for c, _ in paragraphs]
    ranks = []
    for context, questions in ((c, qs) for _, ps in SQUAD_ARTICLES for c, qs in ps):
        for question, answer in questions:
            if answerable_only and answer is None:
                continue
            ranked = order_by(cross_encoder_scores(model, question, contexts), contexts)
            ranks.append(ranked.index(context) + 1)
    return {"recall@1": sum(r == 1 for r in ranks) / len(ranks), "mrr@10": sum(1 / r for r in ranks) / len(ranks)}


def test_docqa_eval_measures_the_reranked_order(tiny_squad: Path, tmp_path: Path, model_dir: Path, model: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "eval", "qa", "--squad", str(tiny_squad), "--modes", "hybrid",
            "--json", "--work-dir", str(tmp_path / "work")]
    plain = json.loads(runner.invoke(app, args).stdout)
    monkeypatch.setenv("DOCQA_RERANKER__MODEL", str(model_dir))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    hybrid = report["retrieval"]["hybrid"]
    assert report["answerable_questions"] == 6 and report["questions"] == 10
    for metrics, answerable_only in ((hybrid, True), (hybrid["all_questions"], False)):
        want = _expected_retrieval(model, answerable_only)
        assert (metrics["recall@1"], metrics["mrr@10"]) == pytest.approx((want["recall@1"], want["mrr@10"]))
    assert hybrid["rerank_failures"] == 0 and report["config"]["reranker"]["model"] == str(model_dir)
    assert hybrid["mrr@10"] != plain["retrieval"]["hybrid"]["mrr@10"]  # the random head does reorder
    # answers were collected through the same pipeline: the top 5 of 5 paragraphs always hold the gold one
    assert report["answers"]["gold_retrieved"] == 1.0


def test_docqa_eval_calibrate_sweeps_the_rerank_floor(tiny_squad: Path, tmp_path: Path, model_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "eval", "calibrate", "--squad", str(tiny_squad), "--json",
            "--work-dir", str(tmp_path / "work")]
    assert "rerank" not in json.loads(runner.invoke(app, args).stdout)
    monkeypatch.setenv("DOCQA_RERANKER__MODEL", str(model_dir))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rerank = json.loads(result.stdout)["rerank"]
    assert rerank["tuned"]["min_support"] == json.loads(result.stdout)["tuned"]["min_support"]
    assert 0.0 < rerank["tuned"]["min_rerank"] < 1.0 and rerank["checked"]["min_rerank"] == rerank["tuned"]["min_rerank"]
    assert rerank["all"]["f1"] >= json.loads(result.stdout)["all"]["f1"]  # the sweep starts where the floor adds nothing
