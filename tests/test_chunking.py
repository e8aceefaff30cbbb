"""Chunking with the real all-MiniLM-L6-v2 embedder's own count_tokens: window, offsets, pages, headings, overlap."""

from __future__ import annotations

import base64
import random
import time

import pytest

from indexes.embedders import SentenceTransformerEmbedder
from ingest.chunking import ChunkingOptions, chunk_document, sentence_spans
from ingest.parsers.base import DocumentBuilder, ParsedDocument

WINDOW = 256
WORDS = (
    "the retrieval index stores every chunk with its page and heading so answers can cite "
    "exactly where a fact came from while the embedder sees at most one window of word pieces"
).split()


@pytest.fixture(scope="module")
def count(embedder):
    """What ingestion counts with: the embedder's count_tokens (document prompt and special tokens included)."""
    return embedder.count_tokens


def sentences(n: int, seed: int = 0, length: tuple[int, int] = (6, 20)) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(*length))).capitalize() + "." for _ in range(n)
    )


def long_document() -> ParsedDocument:
    builder = DocumentBuilder()
    builder.add(sentences(3), page=1, heading_path=("Intro",))
    builder.add(sentences(120, seed=1, length=(10, 40)), page=1, heading_path=("Intro", "Long paragraph"))
    builder.add(" ".join(WORDS * 60), page=2, heading_path=("One giant sentence",))
    builder.add("Key: " + base64.b64encode(random.Random(2).randbytes(3750)).decode(), page=3, heading_path=("Blob",))
    builder.add(sentences(5, seed=3), page=4, heading_path=("Outro",))
    return builder.build(title="Synthetic manual")


def assert_within_window(chunks, count, window=WINDOW):
    counts = count([c.embed_text for c in chunks])
    assert max(counts) <= window, [(n, c.heading_path) for n, c in zip(counts, chunks) if n > window]


def test_the_embedders_token_count_matches_the_tokenizer_without_truncation(count, reference_token_count):
    texts = ["", "Olá, coração!", sentences(100), base64.b64encode(random.Random(1).randbytes(900)).decode()]
    assert count(texts) == reference_token_count(texts)
    assert max(count(texts)) > 512  # tokenizer.json truncates at 128 unless the counter turns that off


def test_no_chunk_exceeds_the_window_even_for_giant_sentences_and_words(count, reference_token_count):
    doc = long_document()
    chunks = chunk_document(doc, count, ChunkingOptions(max_tokens=WINDOW))
    assert_within_window(chunks, reference_token_count)
    giant = [c for c in chunks if c.heading_path == ("One giant sentence",)]
    assert len(giant) > 1 and all(set(c.text.split()) <= set(WORDS) for c in giant)  # cut between words
    blob = [c for c in chunks if c.heading_path == ("Blob",)]
    assert len(blob) > 1
    assert "".join(c.text for c in blob).replace(" ", "") == doc.sections[3].text.replace(" ", "")


def test_no_chunk_exceeds_the_window_with_a_prompt_and_overlap(reference_token_count):
    prompted = SentenceTransformerEmbedder(document_prompt="passage: ")
    assert prompted.count_tokens(["x"]) == reference_token_count(["passage: x"])
    options = ChunkingOptions(WINDOW, target_tokens=128, overlap_tokens=32)
    chunks = chunk_document(long_document(), prompted.count_tokens, options)
    counts = reference_token_count(["passage: " + c.embed_text for c in chunks])
    assert max(counts) <= WINDOW


def test_chunk_text_is_the_exact_stripped_slice_of_the_document(count):
    doc = long_document()
    for chunk in chunk_document(doc, count, ChunkingOptions(WINDOW, overlap_tokens=16)):
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text


def test_a_fact_on_page_3_lands_in_a_chunk_on_page_3(count):
    builder = DocumentBuilder()
    for page in range(1, 6):
        builder.add(sentences(4, seed=page), page=page, heading_path=("Report",))
        if page == 3:
            builder.add("The boiler pressure limit is 4.5 bar.", page=page, heading_path=("Report",))
    doc = builder.build()
    chunks = chunk_document(doc, count, ChunkingOptions(WINDOW))
    [fact] = [c for c in chunks if "4.5 bar" in c.text]
    assert (fact.page_start, fact.page_end) == (3, 3)
    assert all(c.page_start == c.page_end for c in chunks)
    assert {c.page_start for c in chunks} == {1, 2, 3, 4, 5}


def test_chunks_never_mix_heading_paths_and_carry_them_in_embed_text(count):
    doc = long_document()
    chunks = chunk_document(doc, count, ChunkingOptions(WINDOW))
    for chunk in chunks:
        owners = {s.heading_path for s in doc.sections if s.start < chunk.end and chunk.start < s.end}
        assert owners == {chunk.heading_path}
        expected = " > ".join(("Synthetic manual", *chunk.heading_path))
        assert chunk.embed_text == f"{expected}\n{chunk.text}"


def test_without_heading_context_embed_text_is_the_text(count):
    chunks = chunk_document(long_document(), count, ChunkingOptions(WINDOW, heading_context=False))
    assert all(c.embed_text == c.text for c in chunks)


def test_no_title_and_no_headings_means_no_prefix_line(count):
    builder = DocumentBuilder()
    builder.add("Just a plain paragraph.")
    [chunk] = chunk_document(builder.build(), count, ChunkingOptions(WINDOW))
    assert chunk.embed_text == "Just a plain paragraph."


def test_the_title_argument_overrides_the_documents_title(count):
    builder = DocumentBuilder()
    builder.add("Body text.", heading_path=("H",))
    [chunk] = chunk_document(builder.build(title="Parsed"), count, ChunkingOptions(WINDOW), title="Given")
    assert chunk.embed_text == "Given > H\nBody text."


def test_an_overlong_heading_is_cut_to_half_the_window_but_the_text_is_kept(count):
    builder = DocumentBuilder()
    heading = " ".join(WORDS * 20)
    builder.add(sentences(30), heading_path=("Top", heading))
    doc = builder.build(title="T")
    chunks = chunk_document(doc, count, ChunkingOptions(WINDOW))
    assert_within_window(chunks, count)
    prefix_counts = count([c.embed_text[: len(c.embed_text) - len(c.text)] for c in chunks])
    assert max(prefix_counts) <= WINDOW // 2 + 2  # + [CLS] [SEP]
    assert doc.sections[0].start == chunks[0].start and chunks[-1].end == doc.sections[0].end


def test_long_sections_overlap_only_when_asked(count):
    builder = DocumentBuilder()
    builder.add(sentences(80, seed=5), heading_path=("Long",))
    doc = builder.build()
    with_overlap = chunk_document(doc, count, ChunkingOptions(WINDOW, overlap_tokens=32))
    without = chunk_document(doc, count, ChunkingOptions(WINDOW))
    assert len(with_overlap) > 2 and len(without) > 2
    assert all(b.start < a.end for a, b in zip(with_overlap, with_overlap[1:]))
    assert all(a.start < b.start for a, b in zip(with_overlap, with_overlap[1:]))
    assert all(a.end <= b.start for a, b in zip(without, without[1:]))
    overlaps = count([doc.text[b.start : a.end] for a, b in zip(with_overlap, with_overlap[1:])])
    assert all(n - 2 <= 36 for n in overlaps)  # whole sentences, or a word tail estimated by length
    assert_within_window(with_overlap, count)


def test_no_overlap_across_different_heading_paths(count):
    builder = DocumentBuilder()
    builder.add(sentences(40, seed=6), heading_path=("A",))
    builder.add(sentences(40, seed=7), heading_path=("B",))
    chunks = chunk_document(builder.build(), count, ChunkingOptions(WINDOW, overlap_tokens=32))
    first_b = next(i for i, c in enumerate(chunks) if c.heading_path == ("B",))
    assert chunks[first_b - 1].end < chunks[first_b].start


def test_small_sections_with_the_same_heading_are_merged(count):
    builder = DocumentBuilder()
    for i in range(5):
        builder.add(f"Step {i} of the procedure is short.", page=1, heading_path=("Procedure",))
    builder.add("Another heading starts here.", page=1, heading_path=("Other",))
    doc = builder.build()
    chunks = chunk_document(doc, count, ChunkingOptions(WINDOW))
    assert [c.heading_path for c in chunks] == [("Procedure",), ("Other",)]
    assert chunks[0].text.startswith("Step 0") and chunks[0].text.endswith("Step 4 of the procedure is short.")


def test_a_smaller_target_gives_smaller_chunks(count):
    doc = long_document()
    big = chunk_document(doc, count, ChunkingOptions(WINDOW))
    small = chunk_document(doc, count, ChunkingOptions(WINDOW, target_tokens=64))
    assert len(small) > len(big)
    assert max(count([c.embed_text for c in small])) <= WINDOW


def test_portuguese_text_with_accents_is_chunked_at_sentence_boundaries(count):
    frase = "A inspeção da caldeira é obrigatória, conforme o art. 3 e a orientação do Dr. Araújo. "
    builder = DocumentBuilder()
    builder.add(frase * 60, page=2, heading_path=("Manutenção", "Caldeiras"))
    doc = builder.build(title="Manual de operação")
    chunks = chunk_document(doc, count, ChunkingOptions(WINDOW))
    assert len(chunks) > 1
    assert_within_window(chunks, count)
    assert all(c.text.startswith("A inspeção") and c.text.endswith("Araújo.") for c in chunks)
    assert chunks[0].embed_text.startswith("Manual de operação > Manutenção > Caldeiras\nA inspeção")


def test_sentence_splitter_keeps_abbreviations_and_decimals():
    text = "Dr. Smith measured 3.5 kg, e.g. on Monday. Was it right? Yes!\nNew line here. ok then. Sr. Álvaro saiu."
    parts = [text[a:b] for a, b in sentence_spans(text)]
    assert parts == [
        "Dr. Smith measured 3.5 kg, e.g. on Monday.",
        "Was it right?",
        "Yes!",
        "New line here. ok then.",
        "Sr. Álvaro saiu.",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 8}, "max_tokens must be >= 16, got 8"),
        ({"max_tokens": 256, "target_tokens": 8}, "got 8"),
        ({"max_tokens": 256, "target_tokens": 300}, "got 300"),
        ({"max_tokens": 256, "target_tokens": 64, "overlap_tokens": 32}, "must be < target_tokens/2, got 32"),
        ({"max_tokens": 256, "overlap_tokens": -1}, "got -1"),
    ],
)
def test_bad_options_raise_value_error_quoting_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("/", ".")):
        ChunkingOptions(**kwargs)


def test_target_defaults_to_the_window():
    assert ChunkingOptions(max_tokens=256).target_tokens == 256


def test_empty_document_gives_no_chunks(count):
    assert chunk_document(DocumentBuilder().build(), count, ChunkingOptions(WINDOW)) == []


def test_a_hundred_page_document_chunks_fast_with_few_counting_calls(count):
    builder = DocumentBuilder()
    for page in range(1, 101):
        for part in range(6):
            builder.add(sentences(6, seed=page * 10 + part), page=page, heading_path=(f"Chapter {page // 10}",))
    builder.add(sentences(400, seed=9), page=100, heading_path=("Appendix",))
    doc = builder.build()
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return count(texts)

    started = time.perf_counter()
    chunks = chunk_document(doc, counting, ChunkingOptions(WINDOW, overlap_tokens=32))
    elapsed = time.perf_counter() - started
    assert len(calls) <= 10, calls
    assert elapsed < 3.0  # typically ~0.1 s; generous for loaded CI machines
    assert_within_window(chunks, count)
