"""docqa side by side with Haystack 2.x and LlamaIndex: ingestion, query latency and retrieval quality, one run.

Each system runs in its own process and virtual environment (`make bench-peers` creates the peers' under
benchmarks/peers/; the peers are never dependencies of docqa): a worker script per system reads the job as JSON
on stdin and writes its figures as JSON (common.py says what each phase measures). The driver runs from docqa's
venv, loads the sets with docqa's loader, and alternates the systems round by round (the order rotates), so this
shared machine's load falls on all alike. Same corpus (every paragraph of the set, its article title with it),
same bundled all-MiniLM-L6-v2 folder, CPU, batch size 64; chunking as near to docqa's 256-token budget as each
framework allows (the table's notes say where they differ).

    .venv/bin/python benchmarks/peers/bench.py [--sets squad,faquad] [--limit N] [--questions N]
        [--rounds 2] [--warm 1] [--precisions fp32,bf16] [--systems docqa,haystack,llamaindex]
        [--query-threads N] [--save PATH] [--json]

--limit N: the first N paragraphs of each set and their questions (a quick run). --questions N: at most N of the
answerable questions, spread evenly. Queries (recall, latency) run in the first round of each precision; ingestion
is measured in every round (cold: spawn to ingested, in a fresh process; warm: best re-ingest), the best round kept.
Queries run with each system's own torch threads: docqa's those `docqa serve` sets (1), the peers' torch's default
(every core); --query-threads N gives every system N.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from indexes.embedders import bundled_model_path  # noqa: E402
from service.evaluation.datasets import load_squad  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SETS = {
    "squad": (EVAL / "squad-v2.0-dev-half" / "dev-v2.0.json", "en"),
    "faquad": (EVAL / "faquad" / "train.json", "pt"),
}
SYSTEMS = {
    "docqa": (Path(sys.executable), HERE / "docqa_worker.py"),
    "haystack": (HERE / ".venv-haystack" / "bin" / "python", HERE / "haystack_worker.py"),
    "llamaindex": (HERE / ".venv-llamaindex" / "bin" / "python", HERE / "llamaindex_worker.py"),
}
NOTES = {
    "docqa": "chunks by the model's tokenizer to its 256-token window (title and specials included); "
             "hybrid: its default score fusion with sentence scoring",
    "haystack": "DocumentSplitter by word, 200 words (its default; it cannot count model tokens); "
                "hybrid: DocumentJoiner RRF, and distribution-based rank fusion (dbrf)",
    "llamaindex": "SentenceSplitter over the model's word pieces, chunk 254 (+2 specials; title counted); "
                  "hybrid: QueryFusionRetriever reciprocal_rerank, relative_score (relative), dist_based_score (dist)",
}


def load_set(name: str, limit: int | None, questions: int | None) -> dict[str, Any]:
    """Documents (key, title, text) and the answerable questions (qid, text, gold key) of one set."""
    path, language = SETS[name]
    evalset = load_squad(path)
    documents = [(key, title, text) for key, (title, text) in evalset.documents.items()][:limit]
    keys = {key for key, _, _ in documents}
    asked = [(q.qid, q.text, q.doc) for q in evalset.questions if not q.impossible and q.doc in keys]
    if questions and questions < len(asked):
        step = len(asked) / questions
        asked = [asked[int(i * step)] for i in range(questions)]
    return {"dataset": name, "language": language, "documents": documents, "questions": asked}


def run_worker(system: str, job: dict[str, Any], work: Path) -> dict[str, Any]:
    """One fresh process of `system` on the job; its figures, with the cold time from spawn to ingested."""
    python, script = SYSTEMS[system]
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `make bench-peers` first")
    work.mkdir(parents=True)
    payload = json.dumps({**job, "system": system, "work": str(work)})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(HERE)}
    spawned = time.time()
    done = subprocess.run([str(python), str(script)], input=payload, capture_output=True, text=True, env=env,
                          cwd=str(work))
    if done.returncode != 0:
        raise SystemExit(f"{system} worker failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["cold_s"] = result["cold_done_at"] - spawned
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(system: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row: the best round's ingestion, the first round's queries (every question), the highest peak RSS."""
    first = rounds[0]
    chunks = first["chunks"]
    cold = [chunks / r["cold_s"] for r in rounds]
    warm = [chunks / s for r in rounds for s in r["warm_s"]]
    raw = [chunks / r["raw_s"] for r in rounds]
    row: dict[str, Any] = {
        "system": system, "chunks": chunks, "chunking": first["chunking"],
        "over_window": first["over_window"], "window": first["window"], "max_tokens": first["max_tokens"],
        "mean_tokens": round(first["mean_tokens"], 1),
        "cold_chunks_per_s": max(cold), "warm_chunks_per_s": max(warm), "raw_chunks_per_s": max(raw),
        "warm_over_raw": max(warm) / max(raw),
        "warm_chunks_per_s_all": [round(w, 2) for w in warm], "raw_chunks_per_s_all": [round(r, 2) for r in raw],
        "cold_chunks_per_s_all": [round(c, 2) for c in cold],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds), "query_threads": first.get("query_threads"),
        "fusion": first.get("fusion", {}), "modes": {},
    }
    for mode, figures in first.get("queries", {}).items():
        latencies = figures["latencies_ms"]
        row["modes"][mode] = {"recall@1": figures["recall@1"], "recall@5": figures["recall@5"],
                              "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
                              "questions": len(latencies)}
    hybrids = {m: f for m, f in row["modes"].items() if m.startswith("hybrid")}
    if hybrids:
        best = max(hybrids, key=lambda m: hybrids[m]["recall@1"])
        row["best_hybrid"] = best
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    report: dict[str, Any] = {"load_before": os.getloadavg(), "cores": os.cpu_count(), "batch_size": args.batch_size,
                              "model": str(bundled_model_path()), "sets": {}}
    with tempfile.TemporaryDirectory(prefix="docqa-peers-") as tmp:
        for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            data = load_set(set_name, args.limit, args.questions)
            report["sets"][set_name] = entry = {"paragraphs": len(data["documents"]),
                                                "questions": len(data["questions"]), "precisions": {}}
            for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
                per_system: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
                loads = []
                for r in range(args.rounds):
                    order = systems[r % len(systems):] + systems[: r % len(systems)]
                    for system in order:
                        job = {**data, "model": str(bundled_model_path()), "precision": precision,
                               "batch_size": args.batch_size, "warm": args.warm, "queries": r == 0,
                               "query_threads": args.query_threads}
                        if r:
                            job["questions"] = []
                        print(f"[{time.strftime('%H:%M:%S')}] {set_name} {precision} round {r + 1}/{args.rounds}:"
                              f" {system} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
                        per_system[system].append(run_worker(system, job, Path(tmp) / f"{set_name}-{precision}-{r}-{system}"))
                        loads.append(os.getloadavg()[0])
                entry["precisions"][precision] = {
                    "load_1min": {"min": min(loads), "max": max(loads), "mean": statistics.mean(loads)},
                    "rows": [summarise(s, per_system[s]) for s in systems],
                }
                if args.save:  # what is done so far, should a long run be stopped
                    Path(args.save).write_text(json.dumps(report, indent=2))
    report["load_after"] = os.getloadavg()
    return report


def _f(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def table(report: dict[str, Any]) -> str:
    """The printed table: one row per set, precision and system."""
    head = ("| set | precision | system | chunks | over window | cold chunks/s | warm chunks/s | warm/raw encode |"
            " dense p50/p95 ms | hybrid p50/p95 ms | dense R@1/R@5 | hybrid R@1/R@5 | best hybrid R@1/R@5 (p50 ms) |"
            " peak RSS MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for set_name, entry in report["sets"].items():
        for precision, block in entry["precisions"].items():
            for row in block["rows"]:
                modes = row["modes"]
                dense, hybrid = modes.get("dense", {}), modes.get("hybrid", {})
                best_name = row.get("best_hybrid")
                best = modes.get(best_name, {}) if best_name else {}
                fusion = row["fusion"].get(best_name, best_name) if best_name else "-"
                lines.append(
                    f"| {set_name} ({entry['paragraphs']} paragraphs, {entry['questions']} questions) | {precision} |"
                    f" {row['system']} | {row['chunks']} | {row['over_window']} | {_f(row['cold_chunks_per_s'])} |"
                    f" {_f(row['warm_chunks_per_s'])} | {_f(row['warm_over_raw'], 3)} |"
                    f" {_f(dense.get('p50_ms', float('nan')))}/{_f(dense.get('p95_ms', float('nan')))} |"
                    f" {_f(hybrid.get('p50_ms', float('nan')))}/{_f(hybrid.get('p95_ms', float('nan')))} |"
                    f" {_f(dense.get('recall@1', float('nan')), 3)}/{_f(dense.get('recall@5', float('nan')), 3)} |"
                    f" {_f(hybrid.get('recall@1', float('nan')), 3)}/{_f(hybrid.get('recall@5', float('nan')), 3)} |"
                    f" {fusion}: {_f(best.get('recall@1', float('nan')), 3)}/{_f(best.get('recall@5', float('nan')), 3)}"
                    f" ({_f(best.get('p50_ms', float('nan')))}) | {_f(row['peak_rss_mb'], 0)} |")
    lines.append("")
    for set_name, entry in report["sets"].items():
        for precision, block in entry["precisions"].items():
            rows = block["rows"]
            lines.append(f"{set_name} {precision}: load (1 min) {block['load_1min']['min']:.2f}–"
                         f"{block['load_1min']['max']:.2f} on {report['cores']} cores")
            for row in rows:
                others = ", ".join(f"{m} {f['recall@1']:.3f}/{f['recall@5']:.3f} p50 {f['p50_ms']:.1f} ms"
                                   for m, f in row["modes"].items() if m.startswith("hybrid:"))
                lines.append(f"  {row['system']}: warm runs {row['warm_chunks_per_s_all']} chunks/s, raw encode "
                             f"{row['raw_chunks_per_s_all']}, cold {row['cold_chunks_per_s_all']}; query threads "
                             f"{row['query_threads']}; tokens/chunk mean "
                             f"{row['mean_tokens']}, max {row['max_tokens']} (window {row['window']})"
                             + (f"; other hybrids: {others}" if others else ""))
    lines.append("")
    lines += [f"{system}: {note}" for system, note in NOTES.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="squad,faquad")
    parser.add_argument("--limit", type=int, default=None, help="the first N paragraphs of each set")
    parser.add_argument("--questions", type=int, default=None, help="at most N answerable questions per set")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warm", type=int, default=1, help="warm re-ingestions per round")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--query-threads", type=int, default=None,
                        help="torch threads for every system's queries (default: each system's own)")
    parser.add_argument("--save", help="also write the JSON report here, after each set and precision")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args)
    if args.save:
        Path(args.save).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
