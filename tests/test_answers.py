"""The answer a user reads, with the real model over the real samples: the Portuguese and English question sets
of tests/answer_set.py as a regression gate, the Answers issue's failures one by one, and never a heading for an
answer (over every chunk of the samples and of the shared real-world PDFs)."""

from __future__ import annotations

import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from answer_set import ENGLISH, PORTUGUESE, Expected

from indexes.embedders import EmbedderSpec
from indexes.errors import DocQAError
from indexes.embedded import EmbeddedStore
from indexes.search import Searcher
from indexes.types import Hit
from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers import parse_bytes
from ingest.pipeline import IngestPipeline, SourceFile
from service.answer import Answer, Answerer, AskRequest
from service.retrieval import merge_hits
from service.generators.extractive import ExtractiveGenerator
from service.generators.registry import GeneratorRegistry
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
# How many of each set must be right: (answerable answered with the expected text, unanswerable abstained).
# The floors are what the current answerer measures (tests/answer_set.py lists every question): Portuguese
# misses "quanto tempo de antecedência" (the page says "aviso prévio") and "quem aprova"; English answers
# "Who founded Northwind?" and the Helsinki data centre's GPUs with sentences that do not say.
GATE = {"pt": (19, 6), "en": (17, 3)}
MARKERS = re.compile(r"\s*\[\d+\]\s*")


def _ingest(root: Path, files: list[Path], embedder) -> tuple[EmbeddedStore, object]:
    store = EmbeddedStore(root / "data", EmbedderSpec())
    store.embedders.add(EmbedderSpec(), embedder)
    collection = store.ensure_collection("default", embedder)
    IngestPipeline(store, collection, workers=0).ingest([SourceFile(p, p.name) for p in files])
    return store, collection


@pytest.fixture(scope="module")
def samples(tmp_path_factory, embedder):
    """The bundled samples in one collection, and an Answerer with the shipped settings."""
    root = tmp_path_factory.mktemp("answers")
    docs = root / "docs"
    shutil.copytree(SAMPLES, docs, ignore=shutil.ignore_patterns("*.py"))
    store, collection = _ingest(root, sorted(docs.iterdir()), embedder)
    answerer = Answerer(store, GeneratorRegistry(GeneratorConfig()), RetrievalConfig(), AbstentionConfig())
    return answerer, collection


def ask(samples, question: str) -> Answer:
    answerer, collection = samples
    return answerer.ask(AskRequest(question, collection))


def right(answer: Answer, expected: Expected) -> bool:
    """The answer holds every expected string, or abstains where nothing is expected."""
    if expected is None:
        return answer.abstained
    wanted = (expected,) if isinstance(expected, str) else expected
    return not answer.abstained and all(w in answer.text for w in wanted)


def describe(question: str, answer: Answer) -> str:
    return f"{question!r} -> " + (f"abstained: {answer.reason}" if answer.abstained else repr(answer.text))


@pytest.mark.parametrize(("language", "questions"), [("pt", PORTUGUESE), ("en", ENGLISH)])
def test_the_question_sets_are_answered_right(samples, language: str, questions: list[tuple[str, Expected]]) -> None:
    answers = [(q, expected, ask(samples, q)) for q, expected in questions]
    wrong = "; ".join(describe(q, a) for q, expected, a in answers if not right(a, expected))
    answered = sum(right(a, expected) for _, expected, a in answers if expected is not None)
    abstained = sum(right(a, expected) for _, expected, a in answers if expected is None)
    need_answered, need_abstained = GATE[language]
    assert answered >= need_answered and abstained >= need_abstained, f"wrong: {wrong}"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Quantos parâmetros tem o Orion?", "7 bilhões"),  # was the heading "Orion"
        ("How many parameters does Orion have?", "7 bilhões"),  # the English question over the Portuguese page
        ("Quantos parâmetros tem o Vega?", "1,3 bilhão"),  # was a sentence about Orion that mentions Vega
        ("Quantos parâmetros o Lyra usou no treinamento?", "120 milhões"),  # was vetoed by "usou"
        ("Quantas GPUs foram usadas para treinar o Orion?", "512 GPUs"),  # was an abstention
        ("Quantos documentos o portal disponibiliza?", "2.400"),  # was the paragraph's first sentence
        ("Quais são os dois produtos iniciais da linha Aurora?", ("Aurora Chat", "Aurora Voz")),
        ("Quanto custa a assinatura mensal do serviço Sirius?", None),  # the page has no prices
        ("Quem fundou a Orion?", None),  # was the heading "Orion"
    ],
)
def test_the_answers_issue_examples(samples, question: str, expected: Expected) -> None:
    answer = ask(samples, question)
    assert right(answer, expected), describe(question, answer)


def test_the_sentence_about_the_subject_leads_the_answer(samples) -> None:
    """Orion's section mentions Vega and its parameters; for Vega's count, Vega's own sentence comes first."""
    answer = ask(samples, "Quantos parâmetros tem o Vega?")
    assert answer.text.startswith("O modelo tem 1,3 bilhão de parâmetros"), describe("Vega", answer)


def test_an_unanswerable_price_is_refused_for_the_right_reason(samples) -> None:
    answer = ask(samples, "Quanto custa a assinatura mensal do serviço Sirius?")
    assert answer.abstained and "Sirius" in answer.reason and "amount of money" in answer.reason, answer.reason
    assert "custa" not in answer.reason  # a verb of the question is never what "no passage mentions"


def test_a_verb_form_of_the_question_never_vetoes_an_answer(samples) -> None:
    answer = ask(samples, "Quantos parâmetros o Lyra usou no treinamento?")
    assert not answer.abstained, answer.reason
    assert answer.verdict.missing == () and "usou" not in answer.verdict.unmentioned


def test_an_extractive_answer_agrees_with_its_verdict(samples) -> None:
    """Every claim of an answer the verdict lets through is supported by the citation check."""
    for question, expected in PORTUGUESE + ENGLISH:
        answer = ask(samples, question)
        if answer.abstained:
            continue
        assert answer.verified is not None and answer.verified.claims
        assert not answer.verified.unsupported_claims, describe(question, answer)


def _hits(store: EmbeddedStore, collection) -> list[Hit]:
    """Every chunk of a collection as a Hit, in document order."""
    ids = [int(i) for i in store.catalog.chunk_ids(collection.id)]
    hits = Searcher(store)._hits(collection, [(i, 1.0) for i in ids], {})
    return sorted(hits, key=lambda h: (h.document_id, h.ordinal))


def _no_heading_answers(hits: list[Hit], document_text, embedder) -> int:
    """Ask every chunk, merged with the next one of its document as retrieval merges neighbours, for its own
    heading (or its first line): no sentence of the answer is a heading the parser found (theirs or the title)."""
    generator = ExtractiveGenerator(embedder)
    asked = 0
    for i, hit in enumerate(hits):
        following = hits[i + 1] if i + 1 < len(hits) and hits[i + 1].document_id == hit.document_id else None
        group = [hit] + ([following] if following else [])
        headings = {h for g in group for h in g.heading_path if h} | {hit.title}
        question = hit.heading_path[-1] if hit.heading_path else hit.text.split("\n", 1)[0][:200]
        for sentence in generator.pick(question, merge_hits(group, document_text, 6000)):
            text = " ".join(sentence.text.split())
            assert text not in headings, f"{hit.source} chunk {hit.ordinal}: the answer is the heading {text!r}"
        asked += 1
    return asked


def test_an_answer_is_never_a_heading_over_every_sample_chunk(samples, embedder) -> None:
    answerer, collection = samples
    hits = _hits(answerer.store, collection)
    assert _no_heading_answers(hits, answerer.store.catalog.document_text, embedder) > 20


class WordEmbedder:
    """Hashed bags of words: a text and the same text get cosine 1, so a heading asked for by its own words is
    the top candidate by meaning. The worst case for this rule, and fast over thousands of chunks."""

    DIM = 512

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.DIM, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            v[zlib.crc32(word.encode()) % self.DIM] += 1.0
        return v / (np.linalg.norm(v) or 1.0)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def embed_documents(self, texts) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.DIM), np.float32)


def _pdf_hits(embedder, pdfs: Path) -> tuple[list[Hit], dict[int, str]]:
    """Every chunk of every shared PDF that parses, as Hits (parsed and chunked as ingestion does)."""
    options = ChunkingOptions(max_tokens=embedder.identity.max_tokens)
    hits, texts = [], {}
    for document_id, path in enumerate(sorted(pdfs.rglob("*.pdf"))):
        try:
            document = parse_bytes(path.read_bytes(), path.name)
        except DocQAError:
            continue  # encrypted, empty, malformed: the parser tests cover those
        texts[document_id] = document.text
        title = document.title or path.stem
        for ordinal, c in enumerate(chunk_document(document, embedder.count_tokens, options, title=title)):
            hits.append(Hit(len(hits), document_id, "pdfs", c.text, 1.0, title, path.name, ordinal, c.start, c.end,
                            c.page_start, c.page_end, c.heading_path))
    return hits, texts


def test_an_answer_is_never_a_heading_over_every_chunk_of_the_shared_pdfs(embedder, shared) -> None:
    hits, texts = _pdf_hits(embedder, shared("pdfs"))
    assert _no_heading_answers(hits, texts.__getitem__, WordEmbedder()) > 400  # 501 chunks today
