"""Character error rate: edit distance over the reference's length, whitespace runs counted as one space."""

from __future__ import annotations


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), bit-parallel (Myers 1999, Hyyrö 2001):
    one pass over `a` with `len(b)`-bit integers, so two pages of text compare in milliseconds."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    positions: dict[str, int] = {}
    for i, char in enumerate(b):
        positions[char] = positions.get(char, 0) | (1 << i)
    mask, top = (1 << len(b)) - 1, 1 << (len(b) - 1)
    plus, minus, distance = mask, 0, len(b)
    for char in a:
        equal = positions.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        up = minus | (~(horizontal | plus) & mask)
        down = plus & horizontal
        distance += bool(up & top) - bool(down & top)
        up = ((up << 1) | 1) & mask
        down = (down << 1) & mask
        plus = down | (~(vertical | up) & mask)
        minus = up & vertical
    return distance


def character_error_rate(text: str, reference: str) -> float:
    """Edits that turn `text` into `reference`, per character of the reference (both with whitespace collapsed)."""
    text, reference = " ".join(text.split()), " ".join(reference.split())
    return edit_distance(text, reference) / max(len(reference), 1)
