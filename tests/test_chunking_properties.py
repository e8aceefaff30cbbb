"""Property tests for chunking: budget, offsets, heading/page purity, coverage and overlap, on random documents."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.chunking import ChunkingOptions, chunk_document
from ingest.parsers.base import DocumentBuilder, ParsedDocument


def count_words(texts):
    return [len(t.split()) + 2 for t in texts]


def count_chars(texts):
    """Not additive over concatenation (separators cost too), so the verify-and-resplit path gets exercised."""
    return [math.ceil(len(t) / 4) + 2 for t in texts]


VOCABULARY = ["the", "pump", "e.g.", "Dr.", "3.5", "ação", "coração", "Órgão", "x" * 40, "end.", "why?"]
word = st.one_of(
    st.sampled_from(VOCABULARY),
    st.text(alphabet="abcdefghçãéíõúABC0123456789+/=.,-", min_size=1, max_size=300),
)
separator = st.sampled_from([" ", " ", " ", ". ", "\n", "\n\n", "  "])
paragraph = st.lists(st.tuples(word, separator), min_size=1, max_size=60).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)
heading = st.sampled_from(["Intro", "Métodos", "A very long heading " * 12, "", "Results"])
section = st.tuples(
    paragraph,
    st.one_of(st.none(), st.integers(1, 4)),
    st.lists(heading, max_size=3).map(tuple),
)


@st.composite
def documents(draw) -> ParsedDocument:
    builder = DocumentBuilder()
    for text, page, path in draw(st.lists(section, min_size=1, max_size=12)):
        builder.add(text, page=page, heading_path=path)
    return builder.build(title=draw(st.sampled_from([None, "Manual", "Título longo " * 10])))


@st.composite
def options(draw, max_tokens=st.integers(16, 300)) -> ChunkingOptions:
    window = draw(max_tokens)
    target = draw(st.integers(16, window))
    overlap = draw(st.one_of(st.just(0), st.integers(0, (target - 1) // 2)))
    return ChunkingOptions(window, target, overlap, heading_context=draw(st.booleans()))


def check_invariants(doc: ParsedDocument, chunks, count, opts: ChunkingOptions) -> None:
    counts = count([c.embed_text for c in chunks])
    assert all(n <= opts.max_tokens for n in counts)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text and chunk.text == chunk.text.strip() != ""
        owners = {(s.heading_path, s.page) for s in doc.sections if s.start < chunk.end and chunk.start < s.end}
        assert owners == {(chunk.heading_path, chunk.page_start)} and chunk.page_start == chunk.page_end
        assert chunk.embed_text.endswith(chunk.text)
        if not opts.heading_context:
            assert chunk.embed_text == chunk.text
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start and a.end < b.end
        if opts.overlap_tokens == 0:
            assert a.end <= b.start
        elif b.start < a.end:
            assert (a.heading_path, a.page_start) == (b.heading_path, b.page_start)
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    for s in doc.sections:
        assert all(covered[i] or doc.text[i].isspace() for i in range(s.start, s.end))


def one_section(text: str, path=(), title=None) -> ParsedDocument:
    builder = DocumentBuilder()
    builder.add(text, heading_path=path)
    return builder.build(title=title)


# Regressions hypothesis found: a lone long "sentence" must split at words; halving a chunk must not leave a half
# nested inside the next chunk's overlap.
NESTED = one_section("the the the the the the. pump pump the", ("Intro", "Intro"), "Manual")
WORDY = one_section("x" * 40 + " the" * 15)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(doc=documents(), opts=options())
@example(doc=WORDY, opts=ChunkingOptions(16, 16, 1, heading_context=False))
def test_word_counter_invariants(doc, opts):
    check_invariants(doc, chunk_document(doc, count_words, opts), count_words, opts)


@FAST
@given(doc=documents(), opts=options())
@example(doc=NESTED, opts=ChunkingOptions(16, 16, 4))
def test_char_counter_invariants(doc, opts):
    check_invariants(doc, chunk_document(doc, count_chars, opts), count_chars, opts)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(), opts=options(max_tokens=st.integers(16, 256)))
def test_real_tokenizer_invariants(embedder, reference_token_count, doc, opts):
    """Chunked with what ingestion counts with (the embedder's count_tokens), checked with the tokenizer itself."""
    check_invariants(doc, chunk_document(doc, embedder.count_tokens, opts), reference_token_count, opts)
