"""Sections → chunks that fit the embedder's window: headings first, then paragraphs, sentences, words, characters.

Pure functions: the token counter is passed in, so nothing here loads a model or touches a file.
Token counts come in batches (one call per refinement level plus one to verify the final chunks),
because a call per candidate chunk is what makes naive chunkers quadratic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from indexes.locators import make_locator
from indexes.sentences import sentence_spans, strip_span
from indexes.types import ChunkInput
from ingest.parsers.base import ParsedDocument, Section

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Counts the tokens of each text as the embedder will see it (prompt and special tokens included)."""

_MIN_TARGET = 16
_SENTENCE, _WORD, _CHARS = 1, 2, 3  # refinement levels of a span; 0 is a whole section
_MAX_VERIFY_ROUNDS = 64

_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkingOptions:
    """How big chunks may be (in the embedder's tokens), how much they overlap, whether headings go in."""

    max_tokens: int
    target_tokens: int | None = None
    overlap_tokens: int = 0
    heading_context: bool = True

    def __post_init__(self) -> None:
        target = self.max_tokens if self.target_tokens is None else self.target_tokens
        if self.max_tokens < _MIN_TARGET:
            raise ValueError(f"max_tokens must be >= {_MIN_TARGET}, got {self.max_tokens}")
        if not _MIN_TARGET <= target <= self.max_tokens:
            raise ValueError(
                f"target_tokens must be between {_MIN_TARGET} and max_tokens ({self.max_tokens}), got {target}"
            )
        if self.overlap_tokens < 0:
            raise ValueError(f"overlap_tokens must be >= 0, got {self.overlap_tokens}")
        if 2 * self.overlap_tokens >= target:
            raise ValueError(f"overlap_tokens must be < target_tokens/2, got {self.overlap_tokens}")
        object.__setattr__(self, "target_tokens", target)


@dataclass(frozen=True)
class _Span:
    """A piece of document text with its token cost (specials excluded) and the section it belongs to."""

    start: int
    end: int
    cost: int
    section: int
    level: int = 0
    carried: bool = False  # repeated from the previous chunk as overlap


@dataclass
class _Run:
    """Consecutive sections sharing heading path, page (or sheet) and OCR: the unit inside which chunks may merge."""

    heading_path: tuple[str, ...]
    page: int | None
    prefix: str
    target: int  # token budget for the text part of a chunk
    spans: list[_Span]
    sheet: str | None = None
    ocr: bool = False

    @property
    def key(self) -> tuple:
        return (self.heading_path, self.page, self.sheet, self.ocr)


def _key(section: Section) -> tuple:
    return (section.heading_path, section.page, section.sheet, section.ocr)


def embed_sentence_spans(chunk: ChunkInput) -> list[tuple[int, int]]:
    """The sentences of a chunk's text as spans of its embed_text (which is heading context + the text)."""
    offset = len(chunk.embed_text) - len(chunk.text)
    return [(a + offset, b + offset) for a, b in sentence_spans(chunk.text)]


def chunk_document(
    doc: ParsedDocument, count_tokens: TokenCounter, options: ChunkingOptions, title: str | None = None
) -> list[ChunkInput]:
    """Cut a parsed document into chunks whose embed_text never exceeds options.max_tokens."""
    title = doc.title if title is None else title
    overhead = count_tokens([""])[0]
    sections = [s for s in doc.sections if strip_span(doc.text, s.start, s.end)[0] < s.end]
    if not sections:
        return []
    runs = _make_runs(doc.text, sections, title, count_tokens, options, overhead)
    _refine(doc.text, runs, count_tokens, overhead)
    chunks = [(run, group) for run in runs for group in _pack(doc.text, run, options.overlap_tokens)]
    where = _Places(doc.unit, sections)
    return _drop_nested(_verify(doc.text, chunks, count_tokens, options.max_tokens, where))


def _make_runs(
    text: str,
    sections: list[Section],
    title: str | None,
    count_tokens: TokenCounter,
    options: ChunkingOptions,
    overhead: int,
) -> list[_Run]:
    """Group sections into runs and give each run its heading prefix and text budget."""
    bounds = [strip_span(text, s.start, s.end) for s in sections]
    costs = _costs(text, bounds, count_tokens, overhead)
    prefixes = _prefixes(sections, title, count_tokens, options, overhead)
    runs: list[_Run] = []
    for i, (section, (start, end), cost) in enumerate(zip(sections, bounds, costs)):
        span = _Span(start, end, cost, i)
        if runs and runs[-1].key == _key(section):
            runs[-1].spans.append(span)
            continue
        prefix, prefix_cost = prefixes[section.heading_path]
        hard = options.max_tokens - overhead - prefix_cost
        target = min(hard, max(options.target_tokens - overhead - prefix_cost, options.target_tokens // 2))
        runs.append(
            _Run(section.heading_path, section.page, prefix, max(target, 1), [span], section.sheet, section.ocr)
        )
    return runs


def _costs(text: str, bounds: Sequence[tuple[int, int]], count_tokens: TokenCounter, overhead: int) -> list[int]:
    """Token cost of each text[start:end], without the counter's fixed overhead, in one batched call."""
    counts = count_tokens([text[a:b] for a, b in bounds]) if bounds else []
    return [max(c - overhead, 0) for c in counts]


def _prefixes(
    sections: list[Section], title: str | None, count_tokens: TokenCounter, options: ChunkingOptions, overhead: int
) -> dict[tuple[str, ...], tuple[str, int]]:
    """Heading-context line (with its trailing newline) and its cost for each heading path, cut to half the window."""
    paths = list(dict.fromkeys(s.heading_path for s in sections))
    if not options.heading_context:
        return {path: ("", 0) for path in paths}
    parts = {path: [" ".join(p.split()) for p in (title, *path) if p and p.strip()] for path in paths}
    prefixes = {path: " > ".join(ps) + "\n" if ps else "" for path, ps in parts.items()}
    costs = dict(zip(paths, (max(c - overhead, 0) for c in count_tokens([prefixes[p] for p in paths]))))
    limit = options.max_tokens // 2
    for path in paths:
        if costs[path] > limit:
            prefixes[path], costs[path] = _shorten_prefix(parts[path], limit, count_tokens, overhead)
    return {path: (prefixes[path], costs[path]) for path in paths}


def _shorten_prefix(parts: list[str], limit: int, count_tokens: TokenCounter, overhead: int) -> tuple[str, int]:
    """Drop outer headings first, then cut the innermost one, until the prefix costs at most `limit` tokens."""
    candidates = ["… > " + " > ".join(parts[i:]) + "\n" for i in range(1, len(parts))]
    for candidate, count in zip(candidates, count_tokens(candidates) if candidates else []):
        if count - overhead <= limit:
            return candidate, max(count - overhead, 0)
    inner = parts[-1]
    while inner:
        candidate = inner + "…\n"
        cost = max(count_tokens([candidate])[0] - overhead, 0)
        if cost <= limit:
            return candidate, cost
        inner = inner[: min(len(inner) - 1, int(len(inner) * limit / cost * 0.9))]
    return "", 0


def _refine(text: str, runs: list[_Run], count_tokens: TokenCounter, overhead: int) -> None:
    """Split every span over its run's budget (sentences, then words, then characters), one counting call per pass."""
    while True:
        pending = [(run, i) for run in runs for i, s in enumerate(run.spans) if _splittable(s, run.target)]
        if not pending:
            return
        pieces = {(id(run), i): _split(text, run.spans[i], run.target) for run, i in pending}
        flat = [p for ps in pieces.values() for p in ps]
        costs = iter(_costs(text, [(p.start, p.end) for p in flat], count_tokens, overhead))
        for key, ps in pieces.items():
            pieces[key] = [_Span(p.start, p.end, next(costs), p.section, p.level) for p in ps]
        for run in {id(run): run for run, _ in pending}.values():
            run.spans = [q for i, s in enumerate(run.spans) for q in pieces.get((id(run), i), [s])]


def _splittable(span: _Span, budget: int) -> bool:
    return span.cost > budget and span.end - span.start > 1


def _split(text: str, span: _Span, budget: int) -> list[_Span]:
    """Cut one oversized span at the next finer level (costs left at 0 until counted)."""
    level, bounds = span.level, [(span.start, span.end)]
    while len(bounds) == 1 and level < _CHARS:
        level += 1
        if level == _SENTENCE:
            bounds = sentence_spans(text, span.start, span.end)
        elif level == _WORD:
            bounds = [m.span() for m in _WORD_RE.finditer(text, span.start, span.end)]
    if len(bounds) == 1:  # characters: equal slices sized from the measured cost, with slack
        size = span.end - span.start
        n = min(size, max(2, math.ceil(span.cost * 1.25 / budget)))
        cuts = [span.start + size * k // n for k in range(n + 1)]
        bounds = list(zip(cuts, cuts[1:]))
    return [_Span(a, b, 0, span.section, level) for a, b in bounds]


def _pack(text: str, run: _Run, overlap: int) -> list[list[_Span]]:
    """Greedily fill chunks with a run's spans; a chunk continuing the same section starts with an overlap tail."""
    groups: list[list[_Span]] = []
    current: list[_Span] = []
    cost = 0
    for span in run.spans:
        if current and cost + span.cost > run.target:
            groups.append(current)
            current = _overlap_tail(text, current, span, overlap, run.target) if overlap else []
            cost = sum(s.cost for s in current)
        current.append(span)
        cost += span.cost
    groups.append(current)
    return groups


def _overlap_tail(text: str, previous: list[_Span], nxt: _Span, overlap: int, budget: int) -> list[_Span]:
    """Trailing spans of the previous chunk (same section as `nxt`, never its first span) worth <= overlap tokens."""
    room = min(overlap, budget - nxt.cost)
    tail: list[_Span] = []
    for span in reversed(previous[1:]):
        if span.section != nxt.section or span.cost > room:
            break
        tail.insert(0, replace(span, carried=True))
        room -= span.cost
    if tail or room <= 0 or previous[-1].section != nxt.section:
        return tail
    return _word_tail(text, previous[-1], room)


def _word_tail(text: str, span: _Span, room: int) -> list[_Span]:
    """The last words of one span, estimated (by characters) to cost at most `room` tokens."""
    words = [m.start() for m in _WORD_RE.finditer(text, span.start, span.end)]
    if len(words) < 2 or span.cost <= 0:
        return []
    chars = (span.end - span.start) * room // span.cost
    starts = [w for w in words[1:] if span.end - w <= chars]
    if not starts:
        return []
    start = starts[0]
    cost = span.cost * (span.end - start) // (span.end - span.start)
    return [_Span(start, span.end, cost, span.section, _WORD, carried=True)]


@dataclass(frozen=True)
class _Places:
    """What a chunk's locator is made of: the document's unit and each section's rows."""

    unit: str
    sections: list[Section]

    def locator(self, run: _Run, group: list[_Span]) -> dict | None:
        rows = [r for r in (self.sections[s.section].rows for s in group) if r is not None]
        span = (min(r[0] for r in rows), max(r[1] for r in rows)) if rows else None
        return make_locator(self.unit, run.page, run.sheet, span)


def _verify(
    text: str,
    chunks: list[tuple[_Run, list[_Span]]],
    count_tokens: TokenCounter,
    max_tokens: int,
    where: _Places,
) -> list[ChunkInput]:
    """Count every final embed_text in one call; halve those that overflow (sums of parts are estimates), recount."""
    items: list[tuple[_Run, list[_Span], ChunkInput | None]] = [(run, group, None) for run, group in chunks]
    for _ in range(_MAX_VERIFY_ROUNDS):
        todo = [i for i, item in enumerate(items) if item[2] is None]
        if not todo:
            return [item[2] for item in items if item[2] is not None]
        built = {i: _chunk_input(text, *items[i][:2], where) for i in todo}
        counts = dict(zip(todo, count_tokens([built[i].embed_text for i in todo])))
        next_items = []
        for i, (run, group, chunk) in enumerate(items):
            if chunk is not None or counts[i] <= max_tokens:
                next_items.append((run, group, chunk or built[i]))
            else:
                next_items.extend((r, g, None) for r, g in _halve(text, run, group))
        items = next_items
    raise RuntimeError(f"could not fit chunks into {max_tokens} tokens after {_MAX_VERIFY_ROUNDS} rounds")


def _halve(text: str, run: _Run, group: list[_Span]) -> list[tuple[_Run, list[_Span]]]:
    """Split an overflowing chunk in two: by spans if it has several, else by characters; last resort, drop headings."""
    if group[0].carried:  # overlap is best effort: drop it rather than make a chunk inside the previous one
        return [(run, [s for s in group if not s.carried])]
    if len(group) > 1:
        mid = len(group) // 2
        return [(run, group[:mid]), (run, group[mid:])]
    span = group[0]
    start, end = strip_span(text, span.start, span.end)
    if end - start <= 1:
        return [(replace(run, prefix=""), group)]
    mid = (start + end) // 2
    space = text.rfind(" ", start + 1, mid + 1)
    cut = space if space > start else mid
    halves = [strip_span(text, start, cut), strip_span(text, cut, end)]
    return [(run, [_Span(a, b, span.cost // 2, span.section, _CHARS)]) for a, b in halves if a < b]


def _drop_nested(chunks: list[ChunkInput]) -> list[ChunkInput]:
    """Remove chunks wholly inside a neighbour (halving can leave a half inside the next chunk's overlap)."""
    kept: list[ChunkInput] = []
    for chunk in chunks:
        while kept and chunk.start <= kept[-1].start and kept[-1].end <= chunk.end:
            kept.pop()
        if not (kept and kept[-1].start <= chunk.start and chunk.end <= kept[-1].end):
            kept.append(chunk)
    return kept


def _chunk_input(text: str, run: _Run, group: list[_Span], where: _Places) -> ChunkInput:
    start, end = strip_span(text, group[0].start, group[-1].end)
    body = text[start:end]
    page = run.page if where.unit == "page" else None  # pages are a PDF's: slides and chapters have locators
    return ChunkInput(
        body, run.prefix + body, start, end, page, page, run.heading_path, where.locator(run, group), run.ocr
    )
