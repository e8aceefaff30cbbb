"""One contract for every re-ranker backend, plus what only one backend can be asked.

cross-encoder runs a real CrossEncoder (the bundled MiniLM with a fresh head, tests/rerankers.py); http talks to
a scripted `/rerank` server on 127.0.0.1, in Cohere's shape and in TEI's, whose scores come from that same
CrossEncoder, so every backend must give the model's own scores, in the passages' order.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from rerankers import RerankServer, cross_encoder_scores, model, model_dir  # noqa: F401 (fixtures)

from indexes.plugins import RERANKERS, registered
from service.errors import RerankerUnavailable
from service.problems import status_of
from service.rerankers import Reranker, build_reranker
from service.rerankers.cross_encoder import CrossEncoderReranker
from service.rerankers.remote import HttpReranker
from service.settings import RerankerConfig

QUERY = "How many nodes does the staging cluster have?"
TEXTS = [
    "The production cluster has 40 nodes spread over three zones.",
    "The staging cluster has 12 nodes. It runs in the Frankfurt region.",
    "Lunch is served in the canteen from noon until two.",
    "Backups of the staging database are kept for thirty days.",
]
BACKENDS = ["cross-encoder", "http-cohere", "http-tei"]




def _lock_scores(model: Any) -> Any:
    lock = threading.Lock()

    def score(query: str, texts: list[str]) -> list[float]:
        with lock:
            return cross_encoder_scores(model, query, texts)

    return score


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, model_dir: Path, model: Any) -> Iterator[tuple[str, RerankerConfig]]:
    """(backend name, the settings that build it): every backend, built by name as DOCQA_RERANKER__* would."""
    if request.param == "cross-encoder":
        yield "cross-encoder", RerankerConfig(model=str(model_dir))
        return
    shape = request.param.removeprefix("http-")
    with RerankServer(_lock_scores(model), shape=shape) as server:
        yield "http", RerankerConfig(model="scripted", backend="http", base_url=server.url, api=shape, timeout=30)


def test_every_backend_is_registered_by_docqa_and_built_by_name(backend: tuple[str, RerankerConfig]) -> None:
    name, config = backend
    assert name in {p.name for p in registered(RERANKERS) if p.distribution == "docqa"}
    reranker = build_reranker(config)
    assert reranker is not None and reranker.backend == name
    assert isinstance(reranker.name, str) and reranker.name


def test_it_gives_the_models_own_score_for_each_passage_in_their_order(backend, model: Any) -> None:
    reranker: Reranker = build_reranker(backend[1])
    scores = reranker.rerank(QUERY, TEXTS)
    assert scores == pytest.approx(cross_encoder_scores(model, QUERY, TEXTS), abs=1e-5)
    assert len(set(round(s, 4) for s in scores)) == len(TEXTS)  # spread: the order is the model's, not ties


def test_nothing_to_rank_is_no_call_and_no_scores(backend) -> None:
    assert build_reranker(backend[1]).rerank(QUERY, []) == []


def test_concurrent_calls_give_what_serial_calls_give(backend) -> None:
    reranker = build_reranker(backend[1])
    queries = [QUERY, "Where does staging run?", "When is lunch?", "How long are backups kept?"] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda q: reranker.rerank(q, TEXTS), queries))
    alone = {q: reranker.rerank(q, TEXTS) for q in set(queries)}
    for query, scores in zip(queries, together):
        assert scores == pytest.approx(alone[query], abs=1e-5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", BACKENDS)
def test_a_backend_that_cannot_score_raises_reranker_unavailable(name: str, tmp_path: Path) -> None:
    if name == "cross-encoder":
        config = RerankerConfig(model=str(tmp_path / "no-such-model"))
    else:
        config = RerankerConfig(model="m", backend="http", api=name.removeprefix("http-"), retries=0, timeout=2,
                                base_url=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(RerankerUnavailable) as caught:
        build_reranker(config).rerank(QUERY, TEXTS)
    assert status_of(caught.value) == (502, "Re-ranker unavailable")


def test_no_model_is_no_reranker_and_an_unknown_backend_is_named() -> None:
    assert build_reranker(RerankerConfig()) is None
    from indexes.errors import InvalidInput

    with pytest.raises(InvalidInput, match="DOCQA_RERANKER__BACKEND.*'colbert'.*cross-encoder"):
        build_reranker(RerankerConfig(model="m", backend="colbert"))


# cross-encoder only


def test_the_cross_encoder_loads_once_however_many_first_calls_race(model_dir: Path) -> None:
    reranker = CrossEncoderReranker(str(model_dir))
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: reranker.rerank(QUERY, TEXTS), range(6)))
    assert reranker.loads == 1
    assert all(r == results[0] for r in results)


def test_the_cross_encoder_runs_in_bf16_close_to_fp32(model_dir: Path) -> None:
    full = CrossEncoderReranker(str(model_dir)).rerank(QUERY, TEXTS)
    half = CrossEncoderReranker(str(model_dir), precision="bf16").rerank(QUERY, TEXTS)
    assert half != full  # it really ran in another precision
    assert half == pytest.approx(full, abs=0.05)


def test_cross_encoder_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="precision"):
        CrossEncoderReranker("m", precision="int3")
    with pytest.raises(ValueError, match="batch_size"):
        CrossEncoderReranker("m", batch_size=0)


# http only


def _fixed(query: str, texts: list[str]) -> list[float]:
    return [float(len(t)) for t in texts]


@pytest.mark.parametrize("shape, keys", [("cohere", {"model", "query", "documents", "top_n"}),
                                         ("tei", {"query", "texts", "truncate"})])
def test_http_speaks_the_configured_api(shape: str, keys: set[str]) -> None:
    with RerankServer(_fixed, shape=shape) as server:
        reranker = HttpReranker(server.url, "bge-reranker", api=shape)
        assert reranker.rerank(QUERY, TEXTS) == [float(len(t)) for t in TEXTS]
        [body] = server.requests
        assert set(body) == keys
        assert body["query"] == QUERY and (body.get("documents") or body.get("texts")) == TEXTS
        if shape == "cohere":
            assert body["model"] == "bge-reranker" and body["top_n"] == len(TEXTS)


@pytest.mark.parametrize("shape", ["cohere", "tei"])
def test_http_reads_either_reply_shape_whichever_api_it_speaks(shape: str) -> None:
    with RerankServer(_fixed, shape=shape) as server:
        other = "tei" if shape == "cohere" else "cohere"
        assert HttpReranker(server.url, "m", api=other).rerank(QUERY, TEXTS) == [float(len(t)) for t in TEXTS]


def test_http_sends_the_key_as_a_bearer_token_and_no_authorization_without_one() -> None:
    with RerankServer(_fixed) as server:
        HttpReranker(server.url, "m", api_key="sk-test").rerank(QUERY, TEXTS)
        HttpReranker(server.url, "m").rerank(QUERY, TEXTS)
        with_key, without = ({k.lower(): v for k, v in h.items()} for h in server.headers)
        assert with_key["authorization"] == "Bearer sk-test"
        assert "authorization" not in without


def test_http_retries_a_500_and_succeeds_on_the_next_attempt() -> None:
    with RerankServer(_fixed) as server:
        server.script = ["500"]
        assert HttpReranker(server.url, "m", retries=2, backoff=0).rerank(QUERY, TEXTS) == _fixed(QUERY, TEXTS)
        assert len(server.requests) == 2


@pytest.mark.parametrize("fault, attempts, words", [
    ("500", 3, "HTTP 500: model crashed (after 3 attempts)"),
    ("stall", 3, "timed out"),
    ("400", 1, "HTTP 400: bad request"),
    ("garbage", 1, "not a /rerank reply"),
    ("short", 1, "no score for 1 of the 4 passages"),
    ("nan", 1, "is not a number"),
])
def test_http_faults_are_retried_only_when_worth_it_and_named(fault: str, attempts: int, words: str) -> None:
    with RerankServer(_fixed, stall_seconds=1.0) as server:
        server.script = [fault] * 5
        reranker = HttpReranker(server.url, "m", retries=2, timeout=0.3, backoff=0)
        with pytest.raises(RerankerUnavailable, match="re-ranking server at http://127.0.0.1") as caught:
            reranker.rerank(QUERY, TEXTS)
        assert words in caught.value.detail
        assert len(server.requests) == attempts


def test_http_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="base_url"):
        HttpReranker("ftp://x", "m")
    with pytest.raises(ValueError, match="api"):
        HttpReranker("http://x", "m", api="soap")
