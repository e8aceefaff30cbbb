"""What every worker of benchmarks/peers shares: the job it reads, the timing of its phases, the figures it writes.

Standard library only, so the same file runs in docqa's venv and in each peer's. A worker reads one job (JSON) on
stdin, runs its system through the same phases as the others, and writes one JSON object on stdout's last line:

1. cold: import its framework, load the model, ingest the corpus (the driver times it from the process's spawn);
2. warm: ingest the same corpus again `warm` times into a fresh index with the model already loaded;
3. raw: the model's own `encode` over exactly the texts this system embedded, in one call (sentence-transformers
   sorts a call's texts by length, so its batches waste the least padding), batch size as configured;
4. window: those texts' token counts by the model's tokenizer, truncation off; over `max_seq_length` means the
   model silently cut them;
5. queries: every question, each mode timed on its own, in-process (dense, then every hybrid variant), with the
   system's own torch threads unless the job sets `query_threads`; the ranked paragraph keys give recall@1/@5 of
   the gold paragraph.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any, Callable, Iterable, Sequence

K = 10  # hits asked of every system per question


def read_job() -> dict[str, Any]:
    """The job the driver wrote on stdin."""
    return json.loads(sys.stdin.read())


def write_result(result: dict[str, Any]) -> None:
    """The worker's figures, as the last line of stdout (frameworks may print above it)."""
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """What `call` returns and the seconds it took."""
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def unique_keys(keys: Iterable[str]) -> list[str]:
    """Paragraph keys in rank order, each once (a paragraph ranks where its best chunk does)."""
    return list(dict.fromkeys(keys))


def run_queries(job: dict[str, Any], modes: dict[str, Callable[[str], list[str]]], warm_up: int = 5) -> dict[str, Any]:
    """Per mode: every question asked once, timed alone (wall clock, in-process), recall of its gold paragraph.
    Each mode first answers a few questions untimed (first calls build caches and kernels)."""
    questions = job["questions"]
    out: dict[str, Any] = {}
    for name, search in modes.items():
        for _, text, _ in questions[:warm_up]:
            search(text)
        latencies, hit1, hit5 = [], 0, 0
        for _, text, gold in questions:
            started = time.perf_counter()
            keys = search(text)
            latencies.append((time.perf_counter() - started) * 1000)
            hit1 += gold in keys[:1]
            hit5 += gold in keys[:5]
        n = max(len(questions), 1)
        out[name] = {"latencies_ms": latencies, "recall@1": hit1 / n, "recall@5": hit5 / n}
    return out


def set_query_threads(threads: int | None) -> int:
    """Torch's intra-op threads for the query phase (None: leave the system's own); the count in force."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def over_window(lengths: Sequence[int], window: int) -> int:
    """How many texts the model would silently cut."""
    return sum(1 for n in lengths if n > window)


def token_lengths(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Each text's tokens as the model sees them (special tokens in), truncation off."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def raw_encode_seconds(model: Any, texts: Sequence[str], batch_size: int) -> float:
    """One `encode` call over the texts, normalised as every system asks."""
    return timed(lambda: model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                      show_progress_bar=False))[1]


def window_figures(model: Any, texts: Sequence[str]) -> dict[str, Any]:
    """Token counts of the embedded texts against the model's window."""
    lengths = token_lengths(model.tokenizer, texts)
    return {
        "window": int(model.max_seq_length),
        "over_window": over_window(lengths, model.max_seq_length),
        "max_tokens": max(lengths, default=0),
        "mean_tokens": sum(lengths) / max(len(lengths), 1),
    }


def finish(job: dict[str, Any], result: dict[str, Any], started_at: float) -> None:
    """Stamp the cold phase's end (wall clock, for the driver's spawn-to-ingested figure) and write the result."""
    result.setdefault("system", job["system"])
    result["cold_done_at"] = started_at
    write_result(result)
