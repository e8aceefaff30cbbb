"""Loading evaluation sets in their published formats: SQuAD 1.1/2.0 JSON and BEIR folders."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Question:
    """One question with the key of the document it was written from and its gold answers."""

    qid: str
    text: str
    doc: str
    answers: tuple[str, ...]
    impossible: bool = False


@dataclass
class EvalSet:
    """Documents (key → (title, text)) and the questions or queries asked over them."""

    name: str
    documents: dict[str, tuple[str, str]]
    questions: list[Question]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    has_impossible: bool = False

    def relevant(self, question: Question) -> dict[str, int]:
        """Graded relevant documents of a question: the qrels, else its own paragraph."""
        return self.qrels.get(question.qid) or {question.doc: 1}


def load_squad(path: Path) -> EvalSet:
    """Each paragraph becomes one document (key `article-index/paragraph-index`); every question is asked."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    documents: dict[str, tuple[str, str]] = {}
    questions: list[Question] = []
    impossible_seen = False
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            key = f"{a:03d}-{p:03d}"
            documents[key] = (article.get("title", "").replace("_", " "), paragraph["context"])
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                impossible_seen |= "is_impossible" in qa
                answers = tuple(dict.fromkeys(x["text"] for x in qa.get("answers", [])))
                questions.append(Question(str(qa["id"]), qa["question"].strip(), key, answers, impossible))
    return EvalSet(Path(path).stem, documents, questions, has_impossible=impossible_seen)


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _beir_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl.gz", f"{stem}.jsonl"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"no {stem}.jsonl(.gz) in {folder}")


def load_beir(folder: Path, split: str = "test") -> EvalSet:
    """A BEIR folder: corpus, queries and qrels/<split>.tsv; only queries with judgements are kept."""
    folder = Path(folder)
    documents = {str(d["_id"]): (d.get("title") or "", d.get("text") or "") for d in _jsonl(_beir_file(folder, "corpus"))}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)  # header
        for qid, doc, score in rows:
            qrels.setdefault(qid, {})[doc] = int(score)
    questions = [
        Question(str(q["_id"]), q["text"], "", ())
        for q in _jsonl(_beir_file(folder, "queries")) if str(q["_id"]) in qrels
    ]
    return EvalSet(folder.name, documents, questions, qrels)
