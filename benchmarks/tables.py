"""Table cells: questions about single cells of two real tables, asked the way `/v1/ask` asks them.

budget.pdf (camelot, a borderless table with a two-row header) and the NICS background checks (pdfplumber, a
ruled 25-column table under group headers) from ../shared/pdfs are ingested with the real pipeline and the
default embedder into a temporary store; each question of benchmarks/tables/questions.json (the cells checked
by eye on the rendered pages) goes through service.answer.Answerer with the extractive generator and the
shipped settings. Per question: whether the top passage holds the expected cell, whether the answer does.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/tables.py [--json]

The parser measured is the one on PYTHONPATH (this checkout's when none is set): run it once with the
checkout before a change to get "before".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
# This folder's ingest.py must not shadow the package; the checkout goes after PYTHONPATH, so that another
# checkout's code can be measured with this script.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent] + [str(ROOT)]

from indexes.embedded import EmbeddedStore  # noqa: E402
from indexes.embedders import EmbedderSpec, SentenceTransformerEmbedder  # noqa: E402
from ingest.pipeline import IngestPipeline, SourceFile  # noqa: E402
from service.answer import Answerer, AskRequest  # noqa: E402
from service.generators.registry import GeneratorRegistry  # noqa: E402
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig  # noqa: E402

PDFS = ROOT.parent / "shared" / "pdfs"
QUESTIONS = Path(__file__).with_name("tables") / "questions.json"


def holds(text: str, cell: str) -> bool:
    """`cell` as a whole figure in `text` ("444" not inside "1,444")."""
    return re.search(rf"(?<![\d,.]){re.escape(cell)}(?![\d]|[,.]\d)", text) is not None


def run() -> dict:
    questions = json.loads(QUESTIONS.read_text())
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory(prefix="docqa-tables-") as work:
        store = EmbeddedStore(Path(work) / "data", EmbedderSpec())
        store.embedders.add(EmbedderSpec(), embedder)
        collection = store.ensure_collection("default", embedder)
        files = sorted({q["pdf"] for q in questions})
        started = time.perf_counter()
        IngestPipeline(store, collection, workers=0).ingest([SourceFile(PDFS / f, f) for f in files])
        ingest_s = time.perf_counter() - started
        answerer = Answerer(store, GeneratorRegistry(GeneratorConfig()), RetrievalConfig(), AbstentionConfig())
        results = []
        for q in questions:
            answer = answerer.ask(AskRequest(q["question"], collection))
            top = answer.passages[0].text if answer.passages else ""
            results.append({
                "question": q["question"], "expected": q["answer"], "pdf": q["pdf"],
                "top_passage_holds": holds(top, q["answer"]), "top_passage_chars": len(top),
                "answer_holds": not answer.abstained and holds(answer.text, q["answer"]),
                "answer": answer.reason if answer.abstained else answer.text,
            })
    return {
        "top_passage_holds": sum(r["top_passage_holds"] for r in results),
        "answer_holds": sum(r["answer_holds"] for r in results),
        "questions": len(results), "ingest_s": round(ingest_s, 2), "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    report = run()
    if parser.parse_args().json:
        print(json.dumps(report, indent=2))
        return
    for r in report["results"]:
        marks = ("P" if r["top_passage_holds"] else "-") + ("A" if r["answer_holds"] else "-")
        print(f"{marks}  {r['question']}  [{r['expected']}]  -> {r['answer'][:100]!r}")
    print(f"top passage holds the cell: {report['top_passage_holds']}/{report['questions']}; "
          f"answer holds it: {report['answer_holds']}/{report['questions']}; ingest {report['ingest_s']} s")


if __name__ == "__main__":
    main()
