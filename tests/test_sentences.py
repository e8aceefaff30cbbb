"""Sentence spans on the cases where docqa's splitter and the libraries it was measured against disagreed
(benchmarks/sentences.py; the sentences are from SQuAD, FaQuAD and the samples)."""

from __future__ import annotations

import pytest

from indexes.sentences import sentence_spans


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


@pytest.mark.parametrize(("text", "expected"), [
    # Citation marks and page references stay with the sentence before them.
    ("It was followed by the National Energy Act of 1978.[citation needed] On November 28, 1995, Clinton signed it.",
     ["It was followed by the National Energy Act of 1978.[citation needed]", "On November 28, 1995, Clinton signed it."]),
    ("They are strong, weak, and gravitational.:2–10:79 High-energy physics observes them.",
     ["They are strong, weak, and gravitational.:2–10:79", "High-energy physics observes them."]),
    # Dotted acronyms do not end a sentence before a name.
    ("It was funded by the U.S. National Science Foundation. Politics: U.N. Secretary General Ban Ki-moon.",
     ["It was funded by the U.S. National Science Foundation.", "Politics: U.N. Secretary General Ban Ki-moon."]),
    # Initials, also after a lower-case word; a letter of the text ends its sentence.
    ("Scholars such as biologist E. O. Wilson and physicist J. Robert Oppenheimer taught there.",
     ["Scholars such as biologist E. O. Wilson and physicist J. Robert Oppenheimer taught there."]),
    ("This means that X is the hardest problem in C. Thus no problem in C is harder.",
     ["This means that X is the hardest problem in C.", "Thus no problem in C is harder."]),
    ("The theorists were J. A. Hobson and John F. Kennedy.", ["The theorists were J. A. Hobson and John F. Kennedy."]),
    # Abbreviations of figures hold before their figure and end the sentence before a capitalised word.
    ("It consumes approx. 4 kg of steam, since c. 1455 (Keen, 1996, p. XLIX). It ran, etc. As a result it won.",
     ["It consumes approx. 4 kg of steam, since c. 1455 (Keen, 1996, p. XLIX).", "It ran, etc.", "As a result it won."]),
    ("A inspeção segue o art. 3 da lei n. º 1.920. Ela vale para todos.",
     ["A inspeção segue o art. 3 da lei n. º 1.920.", "Ela vale para todos."]),
    ("It is known for Buddhist art. Mongolian translations followed.",
     ["It is known for Buddhist art.", "Mongolian translations followed."]),
    # A second period after an abbreviation ends the sentence.
    ("Foi usado em torno de 2700–2300 a.C.. Seu uso original era desenhar.",
     ["Foi usado em torno de 2700–2300 a.C..", "Seu uso original era desenhar."]),
    # A wrapped line is judged by its whole length, not by what is left of it after the last sentence end.
    ("It came from licensed public text. We used a\nlearning rate of 0.0003 with a cosine schedule.",
     ["It came from licensed public text.", "We used a\nlearning rate of 0.0003 with a cosine schedule."]),
    ("Benchmark\nAtlas-7B\n84.2", ["Benchmark", "Atlas-7B", "84.2"]),
])
def test_sentence_ends(text: str, expected: list[str]):
    assert sentences(text) == expected


def test_spans_of_a_range_stay_inside_it():
    text = "Prefix here. Dr. Smith met U.S. Senator Jones. He left.\nTail"
    start, end = text.index("Dr."), text.index("\nTail")
    assert [text[a:b] for a, b in sentence_spans(text, start, end)] == ["Dr. Smith met U.S. Senator Jones.", "He left."]
