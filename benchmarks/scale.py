"""The embedded store at millions of chunks: build, catalog size, index build, serving RSS, /v1/search latency
over HTTP, BM25 latency on short and long queries, and dense recall@10 against exact search.

How the collection is made. A base set of real paragraphs (the contexts of SQuAD 2.0 dev half and FaQuAD, and
the first 3000 documents of the ArguAna corpus, `--arguana`; cut at sentence ends into chunks of at most 120
words: 7035 chunks) is embedded once with the bundled MiniLM (`sentence-transformers/all-MiniLM-L6-v2`), chunk vectors and sentence vectors from the same forward
pass as ingestion makes them, and cached (`--cache`, an .npz). The collection holds the base chunks as they are
and then perturbed copies of them up to the size asked:

- vector: the base chunk's vector plus gaussian noise, renormalised. The noise is scaled so a copy's cosine to
  its base equals the median cosine of a base chunk to its nearest real neighbour (measured on the base set),
  so copies sit among real neighbours as far as real neighbours sit from each other, not on top of them;
- text: the base chunk's words with 10% dropped at random and the words of one of its sentences shuffled, so
  the FTS5 postings have real term frequencies and document frequencies (and a copy is not its base's twin);
- sentence vectors: only the base chunks keep theirs (at 10M chunks they would take ~38 GB as float16); a copy
  is scored by its chunk vector alone, as the Searcher scores any chunk stored without sentence vectors.
  Questions' gold paragraphs are base chunks, so the short-question scoring they get is the real one.

The chunks go in through the catalog's own `put_document` (`--chunks-per-document` per document, one
transaction each, FTS5 rows and change log included); the store's in-memory index is not caught up on each
document (at 10M a flat one would be 15 GB): the vector index is built once at the end, timed, with `--index`:
`auto`, `flat` or `ivf` build it through the store's own save path (`EmbeddedStore.flush` with no vector file
yet: every stored embedding, in batches, into the kind its policy picks for the size; `flat` and `ivf` move the
policy's threshold out of the way, and a `flat` run tells its server the same, or it would rebuild the index
as IVF when it saves it at shutdown); `reindex:KIND` runs `docqa reindex --index KIND` in a subprocess
(`--reindex-args` adds options), which rebuilds the FTS rows too; `ivf:NLIST[:NPROBE]` pins an IVF index of NLIST lists (and NPROBE probes)
through the store's own rebuild (`docqa reindex --index ivf --nlist N` without the FTS rebuild): the default
4·sqrt(n) lists train on 64 vectors each, which at 1M chunks (4000 lists, 256k training vectors) is more
k-means than this shared 2-core machine does in the time. A data dir that already holds the size asked
is reused (`--rebuild` starts afresh; `--reindex` rebuilds only the vector index).

Then a real `docqa serve` runs on 127.0.0.1 over the data dir; its RSS (psutil, with any child processes) is
read after start-up (vectors loaded) and again after the load; /v1/search is measured at concurrency 1 and 8
in hybrid mode as served by default, and dense and lexical apart, with real SQuAD questions (the base
paragraphs' own) and, for the lexical and hybrid sides, long queries (ArguAna's: a whole argument each; those
over the service's DOCQA_LIMITS__MAX_QUESTION_CHARS, 2000, left out, as the server refuses them with 422).
BM25 is also timed in-process (the catalog's `lexical_search`, depth 50 as the Searcher asks) per query class,
whole and within each row budget of `--budgets` (indexes/lexical.py `bounded_stems`), with the slowest
queries named and gold hit@1/@5/@50: the share of queries whose gold chunk or a copy of it is ranked that high
(each copy's base is regenerated from the build's seeds); the gold chunks are the pieces of an answerable SQuAD
question's paragraph that hold its answer, and an ArguAna query's counter-argument (the query's own document
and its copies are left out of its ranking, as BEIR leaves it out). With `--lexical fts5,tantivy` (the default) BM25 is measured
by both engines side by side: the collection's tantivy index is built first (timed, its size on disk reported;
indexes/lexical_index.py), each server is started with DOCQA_STORE__LEXICAL set to the engine, and the
in-process timing adds `tantivy` (the store's tantivy search, every stem asked) beside FTS5's whole and bounded
queries. Dense recall@10 compares the store's vector search (as the server runs it,
no sentence re-scoring) with exact inner product over every stored embedding (numpy, streamed from the
catalog) for `--recall-queries` SQuAD questions.

The machine is shared: the figures are measured side by side in one run, never asserted.

    .venv/bin/python benchmarks/scale.py [--sizes 1000000,10000000] [--work /tmp/scale-data] [--index auto|flat|ivf]
        [--reindex] [--requests 200] [--concurrency 1,8] [--budgets 25000,100000] [--recall-queries 200]
        [--lexical fts5,tantivy] [--skip bm25,serve,recall] [--env DOCQA_X=Y] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import psutil  # noqa: E402

from indexes.backends import StoreOptions  # noqa: E402
from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.embedders import SentenceTransformerEmbedder  # noqa: E402
from indexes.lexical import ROW_BUDGET, query_stems  # noqa: E402
from indexes.schema import fts_table  # noqa: E402
from indexes.sentences import sentence_spans  # noqa: E402
from indexes.store import SearchQuery  # noqa: E402
from indexes.types import ChunkInput, DocumentFields  # noqa: E402
from indexes.vectors import IndexParams, VectorIndex  # noqa: E402
from service.settings import Settings  # noqa: E402
from server import ENTRY, DocqaServer, docqa_environment  # noqa: E402  (tests/server.py: a real `docqa serve`)

EVAL = ROOT.parent / "shared" / "eval"
SQUAD = EVAL / "squad-v2.0-dev-half" / "dev-v2.0.json"
FAQUAD = EVAL / "faquad" / "train.json"
ARGUANA = EVAL / "beir-arguana"
CHUNK_WORDS = 120
DROPOUT = 0.1
FLAT_ALWAYS = 2**62  # an `auto` threshold no collection reaches


# -- the base set -----------------------------------------------------------------------------------------


def _cut(text: str) -> list[str]:
    """A paragraph cut at sentence ends into pieces of at most CHUNK_WORDS words (a longer sentence alone)."""
    pieces, current, words = [], [], 0
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        n = len(sentence.split())
        if current and words + n > CHUNK_WORDS:
            pieces.append(" ".join(current))
            current, words = [], 0
        current.append(sentence)
        words += n
    if current:
        pieces.append(" ".join(current))
    return pieces


def base_texts(arguana: int) -> tuple[list[str], dict[str, list[int]], dict[str, set[int]]]:
    """Real paragraphs cut into chunks, in a fixed order: SQuAD dev half and FaQuAD contexts, then the first
    `arguana` documents of the ArguAna corpus; with each query's gold chunks: for an answerable SQuAD question the
    pieces of its paragraph that hold an answer, for an ArguAna query the pieces of its counter-argument (when
    that document is in the base set); and each ArguAna query's own chunks (the query is a corpus document too:
    it and its copies are left out of its ranking, as BEIR leaves a query's own document out)."""
    paragraphs, corpus_ids = [], {}
    for path in (SQUAD, FAQUAD):
        for article in json.loads(path.read_text())["data"]:
            paragraphs += [p["context"] for p in article["paragraphs"]]
    with gzip.open(ARGUANA / "corpus.jsonl.gz", "rt") as fh:
        for _, line in zip(range(arguana), fh):
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc['text']}".strip(". ")
            paragraphs.append(text)
            corpus_ids.setdefault(text, doc["_id"])
    texts, pieces = [], {}
    for p in dict.fromkeys(paragraphs):
        cut = _cut(p)
        pieces[p] = range(len(texts), len(texts) + len(cut))
        texts += cut
    gold: dict[str, list[int]] = {}
    for article in json.loads(SQUAD.read_text())["data"]:
        for p in article["paragraphs"]:
            for q in p["qas"]:
                answers = [a["text"] for a in q["answers"]]
                held = [i for i in pieces[p["context"]] if any(a in texts[i] for a in answers)]
                if held:
                    gold[q["question"]] = held
    by_id = {doc_id: list(pieces[text]) for text, doc_id in corpus_ids.items()}
    queries = {}
    with gzip.open(ARGUANA / "queries.jsonl.gz", "rt") as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    for line in (ARGUANA / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0 and doc_id in by_id and query_id in queries:
            gold.setdefault(queries[query_id], []).extend(by_id[doc_id])
    own = {text: set(by_id[query_id]) for query_id, text in queries.items() if query_id in by_id}
    return texts, gold, own


def base_of_chunks(data_dir: Path, size: int, n_base: int, per_document: int) -> np.ndarray | None:
    """For each chunk id (index), the base chunk it is or copies, regenerated from the build's seeds; None if the
    data dir was not built in one go by `build` (ids not 1..size in load order)."""
    store = EmbeddedStore(data_dir)
    first, last, count = store.catalog.db.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM chunks").fetchone()
    store.close()
    if (first, last, count) != (1, size, size):
        return None
    base = np.zeros(size + 1, dtype=np.int32)
    base[1 : n_base + 1] = np.arange(n_base)
    done, number = n_base, -(-n_base // per_document)
    while done < size:
        n = min(per_document, size - done)
        base[done + 1 : done + n + 1] = np.random.default_rng(number).integers(0, n_base, n)
        done += n
        number += 1
    return base


def squad_questions() -> list[str]:
    """SQuAD 2.0 dev-half questions (their paragraphs are base chunks), answerable or not."""
    data = json.loads(SQUAD.read_text())
    return [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]


def long_queries() -> list[str]:
    """ArguAna's queries: each a whole argument (about 200 words)."""
    with gzip.open(ARGUANA / "queries.jsonl.gz", "rt") as fh:
        return [json.loads(line)["text"] for line in fh]


def base_embeddings(texts: list[str], cache: Path, embedder: SentenceTransformerEmbedder) -> tuple[np.ndarray, list]:
    """Chunk vectors and sentence vectors (float16) of the base texts, from the cache when it matches them."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    if cache.exists():
        saved = np.load(cache)
        if str(saved["key"]) == key:
            offsets = saved["offsets"]
            flat = saved["sentences"]
            sentences = [None if offsets[i] == offsets[i + 1] else flat[offsets[i]:offsets[i + 1]]
                         for i in range(len(texts))]
            return saved["vectors"], sentences
    started = time.perf_counter()
    vectors, sentences = [], []
    for i in range(0, len(texts), 256):
        part = texts[i : i + 256]
        matrix, per_text = embedder.embed_documents_with_spans(part, [sentence_spans(t) for t in part])
        vectors.append(matrix)
        sentences += [None if s is None else np.asarray(s, dtype=np.float16) for s in per_text]
        print(f"  embedded {i + len(part)}/{len(texts)} base chunks ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    offsets = np.cumsum([0] + [0 if s is None else len(s) for s in sentences])
    dim = vectors[0].shape[1]
    flat = np.concatenate([s for s in sentences if s is not None] or [np.zeros((0, dim), np.float16)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=key, vectors=np.vstack(vectors), sentences=flat, offsets=offsets)
    return np.vstack(vectors), sentences


def neighbour_cosine(vectors: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """The median cosine of a base chunk to its nearest other base chunk (a sample of them)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    scores = vectors[rows] @ vectors.T
    scores[np.arange(len(rows)), rows] = -1.0  # not itself
    return float(np.median(scores.max(axis=1)))


def noise_sigma(cosine: float, dim: int) -> float:
    """Per-coordinate gaussian noise that puts a unit vector's renormalised copy at `cosine` from it:
    cos = 1 / sqrt(1 + dim * sigma^2) for noise orthogonal in expectation."""
    return float(np.sqrt((1.0 / cosine**2 - 1.0) / dim))


# -- copies -----------------------------------------------------------------------------------------------


class Copier:
    """Perturbed copies of base chunks: text (word dropout, one sentence shuffled) and vector (noise)."""

    def __init__(self, texts: list[str], vectors: np.ndarray, sigma: float) -> None:
        self.vectors, self.sigma = vectors, sigma
        self.sentences = [[text[a:b].split() for a, b in sentence_spans(text)] for text in texts]

    def text(self, base: int, rnd: random.Random) -> str:
        sentences = [list(s) for s in self.sentences[base]]
        if sentences:
            rnd.shuffle(sentences[rnd.randrange(len(sentences))])
        words = [w for s in sentences for w in s if rnd.random() >= DROPOUT]
        return " ".join(words) or " ".join(w for s in sentences for w in s)

    def vectors_for(self, bases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = self.vectors[bases] + self.sigma * rng.standard_normal((len(bases), self.vectors.shape[1]),
                                                                       dtype=np.float32)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def _document(number: int, texts: list[str]) -> tuple[DocumentFields, list[ChunkInput]]:
    """A document of chunks laid end to end (its full text is not stored: it would only add to the catalog)."""
    chunks, offset = [], 0
    for t in texts:
        chunks.append(ChunkInput(t, t, offset, offset + len(t)))
        offset += len(t) + 2
    return DocumentFields(f"scale/{number:08d}.txt", f"{number:064x}", offset, title=f"scale {number}"), chunks


def build(data_dir: Path, size: int, texts: list[str], vectors: np.ndarray, sentences: list, sigma: float,
          identity: dict, per_document: int) -> dict[str, float]:
    """Fill the collection `default` up to `size` chunks (resuming one left part-built); seconds and rates."""
    store = EmbeddedStore(data_dir)
    collection = store.find_collection("default") or store.create_collection("default", identity)
    catalog = store.catalog
    have = catalog.counts(collection.id)["chunks"]
    number = catalog.db.execute("SELECT COUNT(*) FROM documents WHERE collection_id = ?", (collection.id,)).fetchone()[0]
    copier = Copier(texts, vectors, sigma)
    started = time.perf_counter()
    done = have
    while done < size:
        n = min(per_document, size - done)
        if done < len(texts):  # the base chunks first, as they are, with their sentence vectors
            n = min(n, len(texts) - done)
            chunk_texts = texts[done : done + n]
            matrix, sentence_vectors = vectors[done : done + n], sentences[done : done + n]
        else:
            rnd, rng = random.Random(number), np.random.default_rng(number)
            bases = rng.integers(0, len(texts), n)
            chunk_texts = [copier.text(int(b), rnd) for b in bases]
            matrix, sentence_vectors = copier.vectors_for(bases, rng), None
        fields, chunks = _document(number, chunk_texts)
        catalog.put_document(collection.id, fields, chunks, matrix, sentence_vectors)
        done += n
        number += 1
        if number % 200 == 0:
            rate = (done - have) / (time.perf_counter() - started)
            print(f"  {done:>10,} chunks  {rate:7.0f} chunks/s  {du(data_dir) / 2**30:6.2f} GiB",
                  file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    store.close()
    return {"load_s": seconds, "loaded_chunks": done - have, "chunks_per_s": (done - have) / seconds if seconds else 0}


def store_options(index: str) -> StoreOptions:
    """The store's options for an index kind built through its own save path: `flat` and `ivf` by moving the
    size threshold of its `auto` policy out of the way, `auto` as configured by default."""
    threshold = {"flat": FLAT_ALWAYS, "ivf": 1}.get(index.split(":")[0], StoreOptions().ivf_threshold)
    return StoreOptions(ivf_threshold=threshold)


def build_index(data_dir: Path, index: str, extra: list[str]) -> float:
    """Build the collection's vector index once, as `--index` says; seconds. `auto`, `flat`, `ivf`: the store's
    own save path (`EmbeddedStore.flush`: no vector file yet, so it is built from every stored embedding, by the
    policy's kind for the size); `reindex:KIND`: `docqa reindex --index KIND` (which rebuilds the FTS rows too)."""
    started = time.perf_counter()
    if index.startswith("reindex:"):
        command = [sys.executable, "-c", ENTRY, "--data-dir", str(data_dir), "reindex", "-c", "default",
                   "--index", index.split(":", 1)[1], *extra]
        subprocess.run(command, check=True, env=docqa_environment({"DOCQA_LOG_LEVEL": "warning"}))
    elif index.startswith("ivf:"):  # IVF with this many lists, pinned as `docqa reindex --index ivf --nlist N` pins it
        store = EmbeddedStore(data_dir, options=store_options("ivf"))
        collection = store.find_collection("default")
        store.forget_vectors(collection)
        nlist, _, nprobe = index[4:].partition(":")
        store._rebuild_vectors(collection, IndexParams("ivf", nlist=int(nlist), nprobe=int(nprobe or 0),
                                                       quantiser=store.policy.quantiser, chosen="ivf"))
        store.save_vectors(collection)
        store.close()
    else:
        store = EmbeddedStore(data_dir, options=store_options(index))
        collection = store.find_collection("default")
        store.forget_vectors(collection)
        store.flush(collection)
        store.close()
    return time.perf_counter() - started


def build_lexical(data_dir: Path) -> dict:
    """Build (or catch up) the collection's tantivy index as a serving store's warm-up does; seconds and bytes."""
    started = time.perf_counter()
    store = EmbeddedStore(data_dir, options=StoreOptions(lexical="tantivy"))
    collection = store.find_collection("default")
    store.lexical.sync(collection.id, store.counts(collection)["chunks"])
    engine = store.lexical_engine(collection)
    store.close()
    return {"lexical_build_s": time.perf_counter() - started, "lexical_bytes": du(data_dir / "lexical"),
            "lexical_engine_built": engine}


def index_header(data_dir: Path) -> dict:
    """What the saved vector file says it is (kind, lists, probes, quantiser, measured recall)."""
    store = EmbeddedStore(data_dir)
    header = VectorIndex.read_header(store.vector_path(store.find_collection("default")))
    store.close()
    return header.get("index", {})


def du(path: Path) -> int:
    """Bytes on disk under `path`."""
    return sum(f.stat().st_blocks * 512 for f in Path(path).rglob("*") if f.is_file())


# -- serving ----------------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def measure(url: str, queries: list[str], requests: int, concurrency: int, mode: str | None) -> dict:
    """/v1/search latency percentiles (ms) and throughput; `mode` None is the served default."""
    client = httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency))

    def one(i: int) -> tuple[float, int]:
        body = {"query": queries[i % len(queries)], **({"mode": mode} if mode else {})}
        started = time.perf_counter()
        r = client.post("/v1/search", json=body)
        return (time.perf_counter() - started) * 1000, r.status_code

    for i in range(10):
        one(requests + i)  # warm-up on other queries
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    client.close()
    latencies = sorted(r[0] for r in results)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": latencies[-1], "rps": requests / elapsed,
            "errors": sum(1 for r in results if r[1] != 200),
            "error_codes": sorted({r[1] for r in results if r[1] != 200})}


def serve(work: Path, data_dir: Path, sets: dict[str, list[str]], requests: int, concurrencies: list[int],
          env: dict[str, str]) -> dict:
    """A real `docqa serve`: RSS after start-up and after the load, and /v1/search latency per mode and query set."""
    out: dict = {"search": []}
    started = time.perf_counter()
    with DocqaServer(work, data_dir=data_dir, env={"DOCQA_LOG_LEVEL": "warning", **env}, startup_timeout=3600) as server:
        assert server.process is not None
        out["ready_s"] = time.perf_counter() - started
        out["rss_ready"] = rss(server.process.pid)
        peak = [out["rss_ready"]]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                peak[0] = max(peak[0], rss(server.process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        plan = [("hybrid", None, "questions"), ("dense", "dense", "questions"), ("lexical", "lexical", "questions"),
                ("hybrid", None, "long"), ("lexical", "lexical", "long")]
        for label, mode, kind in plan:
            for concurrency in concurrencies:
                n = requests if kind == "questions" else max(requests // 4, 20)
                r = measure(server.base_url, sets[kind], n, concurrency, mode)
                out["search"].append({"mode": label, "queries": kind, "concurrency": concurrency, **r})
                print(f"    /v1/search {label:<7} {kind:<9} c={concurrency}: p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f}"
                      f"  p99 {r['p99']:7.1f}  max {r['max']:7.1f}  {r['rps']:6.1f} req/s  errors {r['errors']} {r['error_codes'] or ''}",
                      flush=True)
        stop.set()
        sampler.join()
        out["rss_after"] = rss(server.process.pid)
        out["rss_peak"] = peak[0]
    return out


# -- BM25 and recall in-process ---------------------------------------------------------------------------


def bm25_latency(data_dir: Path, sets: dict[str, list[str]], per_set: int, gold: dict[str, list[int]],
                 own: dict[str, set[int]], base: np.ndarray | None, budgets: list[int], per_long: int,
                 tantivy: bool = False, whole: bool = True, depth: int = 50) -> dict:
    """The catalog's lexical_search timed per query class (one thread), whole and within each row budget (and
    the store's tantivy search, with `tantivy`), with the slowest queries; and gold hit@1/@5/@50: the share of queries whose gold chunk, or a copy of it, is ranked
    that high (the queries asked are those with gold chunks: answerable SQuAD questions, ArguAna queries whose
    counter-argument is in the base set)."""
    out: dict = {}
    runs = [("whole", None)] * whole + [(f"{b // 1000}k", b) for b in budgets] + [("tantivy", "tantivy")] * tantivy
    for label, budget in runs:
        # a fresh catalog: no term counts kept from the other run
        store = EmbeddedStore(data_dir, options=StoreOptions(lexical="tantivy" if budget == "tantivy" else "fts5"))
        collection = store.find_collection("default")
        if budget == "tantivy" and store.lexical_engine(collection) != "tantivy":
            raise RuntimeError("the tantivy index is not caught up: build it first (`--lexical` with tantivy)")
        for kind, queries in sets.items():
            timed, hits = [], {1: 0, 5: 0, 50: 0}
            asked = [q for q in queries if q in gold][: per_set if kind == "questions" else per_long]
            for q in asked:
                started = time.perf_counter()
                if budget == "tantivy":
                    ranked = store.lexical.search(collection.id, q, depth)
                else:
                    ranked = store.catalog.lexical_search(collection.id, q, depth, budget=budget)
                timed.append(((time.perf_counter() - started) * 1000, q))
                if base is not None:
                    wanted, mine = set(gold[q]), own.get(q, set())
                    kept = [int(base[i]) for i, _ in ranked if int(base[i]) not in mine]
                    ranks = [r for r, b in enumerate(kept) if b in wanted]
                    for at in hits:
                        hits[at] += bool(ranks) and ranks[0] < at
            ms = sorted(t for t, _ in timed)
            quantiles = statistics.quantiles(ms, n=100, method="inclusive")
            slowest = sorted(timed, reverse=True)[:3]
            entry = {"n": len(ms), "p50": quantiles[49], "p99": quantiles[98], "max": ms[-1],
                     "mean": statistics.mean(ms),
                     "slowest": [{"ms": t, "query": q[:120], "stems": query_stems(q)[:12]} for t, q in slowest]}
            if base is not None:
                entry.update({f"hit@{at}": n / len(ms) for at, n in hits.items()})
            out[f"{kind}/{label}"] = entry
            quality = "  ".join(f"{k} {v:.3f}" for k, v in entry.items() if k.startswith("hit@"))
            print(f"    BM25 in-process {kind:<9} {label:<7}: p50 {quantiles[49]:7.1f} ms  p99 {quantiles[98]:7.1f}"
                  f"  max {ms[-1]:7.1f}  mean {statistics.mean(ms):7.1f}  (n={len(ms)})  {quality}", flush=True)
            for s in entry["slowest"]:
                print(f"      {s['ms']:8.1f} ms  {s['query'][:90]!r}", flush=True)
        store.close()
    return out


def exact_top(data_dir: Path, queries: np.ndarray, k: int, batch: int = 200_000) -> np.ndarray:
    """Chunk ids of the exact top k by inner product over every stored embedding, streamed from the catalog."""
    store = EmbeddedStore(data_dir)
    collection = store.find_collection("default")
    dim = queries.shape[1]
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    last = 0
    db = store.catalog.db
    while True:
        rows = db.execute("SELECT id, embedding FROM chunks WHERE collection_id = ? AND id > ? ORDER BY id LIMIT ?",
                          (collection.id, last, batch)).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        blob = b"".join(r[1] for r in rows)
        dtype = np.float32 if len(rows[0][1]) == 4 * dim else np.float16  # float16 where the catalog keeps it so
        matrix = np.frombuffer(blob, dtype=dtype).reshape(len(rows), dim).astype(np.float32)
        scores = np.concatenate([best, queries @ matrix.T], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, (len(queries), len(ids)))], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    store.close()
    return best_ids


def recall(data_dir: Path, questions: list[str], embedder: SentenceTransformerEmbedder, n: int, options: StoreOptions,
           nprobes: list[int], k: int = 10) -> dict:
    """Dense recall@k of the store's dense search as the server runs it (50 candidates, an IVF index's re-scored
    exactly; the top k of them) against exact search; for an IVF index also at each of `nprobes`."""
    vectors = np.stack([embedder.embed_query(q) for q in questions[:n]])
    started = time.perf_counter()
    exact = exact_top(data_dir, vectors, k)
    exact_s = time.perf_counter() - started
    store = EmbeddedStore(data_dir, options=options)
    collection = store.find_collection("default")
    started = time.perf_counter()
    store.warm_up(collection)
    load_s = time.perf_counter() - started
    index = store.vectors(collection)
    built = index.params
    result: dict = {"queries": len(vectors), "exact_s": exact_s, "index_load_s": load_s, "by_nprobe": {}}
    for nprobe in [built.nprobe] + [p for p in nprobes if p != built.nprobe and index.ivf]:
        index.params = replace(built, nprobe=nprobe)
        found, timings = [], []
        for v in vectors:
            started = time.perf_counter()
            hits = store.dense_search(SearchQuery(collection, "", v, k, 50, "dense"))
            timings.append((time.perf_counter() - started) * 1000)
            found.append([i for i, _ in hits[:k]])
        share = float(np.mean([len(set(f) & set(e)) / k for f, e in zip(found, exact.tolist())]))
        result["by_nprobe"][nprobe] = {"recall_at_10": share, "search_p50_ms": statistics.median(timings)}
        print(f"    dense recall@{k} vs exact: {share:.4f} over {len(vectors)} questions ({built.kind}, nprobe {nprobe};"
              f" store dense search p50 {statistics.median(timings):.1f} ms; exact scan {exact_s:.0f} s)", flush=True)
    index.params = built
    result.update(result["by_nprobe"][built.nprobe])
    store.close()
    return result


def lexical_rows(data_dir: Path) -> int:
    store = EmbeddedStore(data_dir)
    collection = store.find_collection("default")
    (n,) = store.catalog.db.execute(f"SELECT COUNT(*) FROM {fts_table(collection.id)}").fetchone()
    store.close()
    return int(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale-data"))
    parser.add_argument("--cache", type=Path, default=None, help="base embeddings (default: WORK/base.npz)")
    parser.add_argument("--index", default="auto",
                        help="auto, flat or ivf (built by the store's save path) or reindex:KIND (`docqa reindex`)")
    parser.add_argument("--reindex-args", default="", help="more options for `docqa reindex`, space-separated")
    parser.add_argument("--rebuild", action="store_true", help="start the data dir afresh")
    parser.add_argument("--reindex", action="store_true", help="rebuild the vector index of a reused data dir")
    parser.add_argument("--arguana", type=int, default=3000, help="ArguAna documents in the base set")
    parser.add_argument("--chunks-per-document", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--bm25-queries", type=int, default=300)
    parser.add_argument("--bm25-long", type=int, default=40, help="long queries timed in-process (whole ones are slow)")
    parser.add_argument("--budgets", default=str(ROW_BUDGET), help="BM25 row budgets timed beside the whole query")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--nprobes", default="", help="IVF probes whose recall is measured beside the index's own")
    parser.add_argument("--skip", default="", help="comma-separated: serve, bm25, bm25-whole (FTS5's unbounded queries), recall")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (a DOCQA_ setting)")
    parser.add_argument("--lexical", default="fts5,tantivy",
                        help="BM25 engines served and timed side by side (DOCQA_STORE__LEXICAL each)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a stopped run stops its server too
    skip = set(filter(None, args.skip.split(",")))
    embedder = SentenceTransformerEmbedder()
    identity = embedder.identity.as_dict()
    texts, gold, own = base_texts(args.arguana)
    vectors, sentences = base_embeddings(texts, args.cache or args.work / "base.npz", embedder)
    cosine = neighbour_cosine(vectors)
    sigma = noise_sigma(cosine, vectors.shape[1])
    print(f"base: {len(texts)} real chunks; nearest-neighbour cosine median {cosine:.3f} -> noise sigma {sigma:.4f}",
          flush=True)
    questions = squad_questions()
    random.Random(0).shuffle(questions)
    long = [q for q in long_queries() if len(q) <= Settings().limits.max_question_chars]  # longer ones get 422
    random.Random(1).shuffle(long)
    sets = {"questions": questions, "long": long}
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        work = args.work / str(size)
        data_dir = work / "data"
        if args.rebuild and work.exists():
            shutil.rmtree(work)
        row: dict = {"size": size, "base_chunks": len(texts), "neighbour_cosine": cosine, "sigma": sigma}
        print(f"{size:,} chunks:", flush=True)
        row.update(build(data_dir, size, texts, vectors, sentences, sigma, identity, args.chunks_per_document))
        fresh = not any((data_dir / "vectors").glob("*.faiss"))
        if fresh or args.reindex or row["loaded_chunks"]:
            row["index_build_s"] = build_index(data_dir, args.index, args.reindex_args.split())
            row["index"] = args.index
        row["catalog_bytes"] = sum(f.stat().st_blocks * 512 for f in data_dir.glob("catalog.sqlite3*"))
        row["vector_bytes"] = du(data_dir / "vectors")
        row["lexical_rows"] = lexical_rows(data_dir)
        row["index_params"] = index_header(data_dir)
        print(f"  load {row['load_s']:.0f} s ({row['chunks_per_s']:.0f} chunks/s); vector index "
              f"{row.get('index_build_s', float('nan')):.0f} s ({row.get('index', 'reused')}); catalog"
              f" {row['catalog_bytes'] / 2**30:.2f} GiB, vectors {row['vector_bytes'] / 2**30:.2f} GiB,"
              f" {row['lexical_rows']:,} FTS rows; index {row['index_params']}", flush=True)
        engines = [e for e in args.lexical.split(",") if e]
        if "tantivy" in engines:
            row.update(build_lexical(data_dir))
            print(f"  tantivy index: {row['lexical_build_s']:.0f} s, {row['lexical_bytes'] / 2**20:.0f} MiB"
                  f" ({row['lexical_engine_built']})", flush=True)
        if "bm25" not in skip:
            base = base_of_chunks(data_dir, size, len(texts), args.chunks_per_document)
            row["bm25"] = bm25_latency(data_dir, sets, args.bm25_queries, gold, own, base,
                                       [int(b) for b in args.budgets.split(",")], args.bm25_long, "tantivy" in engines,
                                       "bm25-whole" not in skip)
        if "serve" not in skip:
            row["serve_by_engine"] = {}
            for engine in engines or [""]:  # "": as the settings say
                env = {**dict(kv.split("=", 1) for kv in args.env), **({"DOCQA_STORE__LEXICAL": engine} if engine else {})}
                if args.index == "flat":  # keep it flat: at shutdown an `auto` store would rebuild it as IVF
                    env.setdefault("DOCQA_STORE__IVF_THRESHOLD", str(FLAT_ALWAYS))
                print(f"  serving with BM25 by {engine or 'the settings'} (load average {os.getloadavg()}):", flush=True)
                s = row["serve_by_engine"][engine] = serve(work, data_dir, sets, args.requests,
                                                           [int(c) for c in args.concurrency.split(",")], env)
                print(f"  serve ({engine}): ready in {s['ready_s']:.0f} s; RSS {s['rss_ready'] / 2**30:.2f} GiB ready,"
                      f" {s['rss_after'] / 2**30:.2f} GiB after the load (peak {s['rss_peak'] / 2**30:.2f})", flush=True)
            row["serve"] = row["serve_by_engine"][(engines or [""])[-1]]
            row["loadavg_after"] = os.getloadavg()
        if "recall" not in skip:
            row["recall"] = recall(data_dir, questions, embedder, args.recall_queries, store_options(args.index),
                                   [int(p) for p in args.nprobes.split(",") if p])
        results.append(row)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
