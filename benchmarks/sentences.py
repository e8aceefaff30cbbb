"""Sentence splitters side by side: docqa's rules (`indexes/sentences.py`) against pysbd and blingfire.

On the paragraphs of SQuAD 2.0 (dev half, English) and FaQuAD (Portuguese) and on the text of the bundled
samples, each splitter's sentences are taken as character spans of the text (stripped), and measured by:

- spans: texts whose spans do not tile the text exactly (out of order, overlapping, or a non-space
  character left out; for a library, also a sentence it returned that differs from its span's text);
- answers cut: the share of gold answer spans (SQuAD, FaQuAD) that no single sentence holds: an answer
  cut across a boundary can never be quoted whole by the extractive answer;
- obvious ends found: the share of "obvious" sentence ends found (a word of four or more lower-case
  letters, then . ! or ?, white space and a capital letter);
- sentences/s on one core, the best of three passes (the splitter runs on every section of every ingested
  document).

pysbd has no Portuguese: it runs as Spanish on FaQuAD (`--pysbd-pt` picks another of its languages).
`--show N` prints N boundaries that only one side has, against docqa's, drawn at random, for judging by
hand. Needs `pip install pysbd blingfire` (neither is a dependency of docqa).

    .venv/bin/python benchmarks/sentences.py [--squad PATH] [--faquad PATH] [--show N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import blingfire  # noqa: E402
import pysbd  # noqa: E402

from indexes.sentences import sentence_spans, strip_span  # noqa: E402
from ingest.parsers import parse_bytes  # noqa: E402

SHARED = ROOT.parent / "shared" / "eval"
Spans = list[tuple[int, int]]
_OBVIOUS_END = re.compile(r"(?<![^\s(])[a-zà-ÿ]{4,}[.!?][\"'”’»)\]]*\s+(?=[A-ZÀ-Ý])")


def _pysbd(language: str) -> Callable[[str], Spans]:
    segmenter = pysbd.Segmenter(language=language, clean=False, char_span=True)

    def split(text: str) -> Spans:
        return [strip_span(text, s.start, s.end) for s in segmenter.segment(text) if s.sent.strip()]
    split.sentences = lambda text: [s.sent for s in segmenter.segment(text)]  # type: ignore[attr-defined]
    return split


def _blingfire(text: str) -> Spans:
    return [strip_span(text, a, b) for a, b in blingfire.text_to_sentences_and_offsets(text)[1] if b > a]


def _blingfire_sentences(text: str) -> list[str]:
    joined, offsets = blingfire.text_to_sentences_and_offsets(text)
    # The sentences come back joined by new lines; a sentence may hold one of the text's own, so cut by offsets
    # of the joined string instead: each sentence is as long as its span.
    out, at = [], 0
    for a, b in offsets:
        out.append(joined[at : at + b - a])
        at += b - a + 1
    return out


_blingfire.sentences = _blingfire_sentences  # type: ignore[attr-defined]


def _regex(text: str) -> Spans:
    return sentence_spans(text)


def splitters(portuguese: bool, pysbd_pt: str) -> dict[str, Callable[[str], Spans]]:
    return {"regex": _regex, "pysbd": _pysbd(pysbd_pt if portuguese else "en"), "blingfire": _blingfire}


def tiles(text: str, spans: Spans, split: Callable[[str], Spans]) -> bool:
    """Spans in order, disjoint, stripped, covering every non-space character; a library's strings equal them."""
    at = 0
    for a, b in spans:
        if not (at <= a < b <= len(text)) or text[a:b] != text[a:b].strip() or text[at:a].strip():
            return False
        at = b
    if text[at:].strip():
        return False
    strings = getattr(split, "sentences", None)
    return strings is None or [s.split() for s in strings(text) if s.strip()] == [text[a:b].split() for a, b in spans]


def load_paragraphs(path: Path) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each paragraph with its distinct gold answer spans."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            answers = {(a["answer_start"], a["answer_start"] + len(a["text"]))
                       for qa in paragraph["qas"] for a in qa.get("answers", []) if a["text"].strip()}
            out.append((paragraph["context"], sorted(strip_span(paragraph["context"], a, b) for a, b in answers)))
    return out


def load_samples() -> list[tuple[str, list[tuple[int, int]]]]:
    """The text of every section of the bundled samples (no gold answers)."""
    texts = []
    for path in sorted((ROOT / "samples").iterdir()):
        if path.suffix != ".py":
            document = parse_bytes(path.read_bytes(), path.name)
            texts += [(s.text, []) for s in document.sections]
    return texts


def measure(texts: list[tuple[str, list[tuple[int, int]]]], split: Callable[[str], Spans]) -> dict:
    seconds = float("inf")
    for _ in range(3):  # the best of three: the machine is shared
        started = time.perf_counter()
        spans = [split(text) for text, _ in texts]
        seconds = min(seconds, time.perf_counter() - started)
    sentences = sum(len(s) for s in spans)
    answers = cut = ends = found = broken = 0
    for (text, gold), these in zip(texts, spans):
        broken += not tiles(text, these, split)
        for a, b in gold:
            answers += 1
            cut += not any(s <= a and b <= e for s, e in these)
        starts = {s for s, _ in these}
        for m in _OBVIOUS_END.finditer(text):
            ends += 1
            found += m.end() in starts
    return {
        "texts": len(texts), "sentences": sentences, "not_tiled": broken,
        "answers": answers, "answers_cut": cut / answers if answers else None,
        "obvious_ends": ends, "obvious_found": found / ends if ends else None,
        "sentences_per_s": sentences / seconds if seconds else None, "spans": spans,
    }


def show_differences(name: str, texts: list, results: dict, n: int, rng: random.Random) -> None:
    """Print n boundaries that only `name` has and n that only the regex has."""
    only: dict[str, list[tuple[str, int]]] = {name: [], "regex": []}
    for (text, _), ours, theirs in zip(texts, results["regex"]["spans"], results[name]["spans"]):
        a, b = {s for s, _ in ours[1:]}, {s for s, _ in theirs[1:]}
        only[name] += [(text, i) for i in sorted(b - a)]
        only["regex"] += [(text, i) for i in sorted(a - b)]
    for side, cases in only.items():
        print(f"  boundaries only {side} has ({len(cases)}), {min(n, len(cases))} at random:")
        for text, i in rng.sample(cases, min(n, len(cases))):
            print("    …" + text[max(0, i - 60) : i].replace("\n", "⏎") + " ‖ " + text[i : i + 40].replace("\n", "⏎") + "…")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=SHARED / "squad-v2.0-dev-half" / "dev-v2.0.json")
    parser.add_argument("--faquad", type=Path, default=SHARED / "faquad" / "train.json")
    parser.add_argument("--pysbd-pt", default="es", help="pysbd language for Portuguese text (it has no 'pt')")
    parser.add_argument("--show", type=int, default=0, help="print N differing boundaries per side")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sets = {"SQuAD": (load_paragraphs(args.squad), False), "FaQuAD": (load_paragraphs(args.faquad), True),
            "samples": (load_samples(), False)}
    report: dict[str, dict] = {}
    rng = random.Random(13)
    for set_name, (texts, portuguese) in sets.items():
        results = {name: measure(texts, split) for name, split in splitters(portuguese, args.pysbd_pt).items()}
        if args.show:
            print(f"{set_name}:")
            for name in results:
                if name != "regex":
                    show_differences(name, texts, results, args.show, rng)
        report[set_name] = {name: {k: v for k, v in r.items() if k != "spans"} for name, r in results.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'set':8} {'splitter':10} {'texts':>6} {'sentences':>9} {'not tiled':>9} {'answers cut':>11} "
          f"{'obvious ends found':>18} {'sentences/s':>11}")
    for set_name, results in report.items():
        for name, r in results.items():
            cut = f"{r['answers_cut']:.4f}" if r["answers_cut"] is not None else "–"
            print(f"{set_name:8} {name:10} {r['texts']:>6} {r['sentences']:>9} {r['not_tiled']:>9} {cut:>11} "
                  f"{r['obvious_found']:>11.4f} of {r['obvious_ends']:<4} {r['sentences_per_s']:>11,.0f}")


if __name__ == "__main__":
    main()
