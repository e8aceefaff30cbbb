// Pure text functions: citation markers in answers, and which part of a passage an answer sentence came from.

const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
const WORD = /[\p{L}\p{N}]+/gu;
const STOPWORDS = new Set(
  "the a an and or of to in on for by with at from is are was were be been it its this that as not no de da do das dos e o os a as em um uma".split(" "),
);

/** Split an answer into pieces: {text} runs and {marker: [n, ...], text: "[1]"} citation markers. */
export function markerPieces(answer) {
  const pieces = [];
  let last = 0;
  for (const m of answer.matchAll(MARKER)) {
    if (m.index > last) pieces.push({ text: answer.slice(last, m.index) });
    pieces.push({ text: m[0], marker: m[1].split(",").map((n) => Number(n.trim())) });
    last = m.index + m[0].length;
  }
  if (last < answer.length) pieces.push({ text: answer.slice(last) });
  return pieces;
}

/** The answer's sentences that cite [n], markers removed. A marker after the full stop belongs to that sentence. */
export function sentencesCiting(answer, n) {
  const sentences = answer.split(/(?<=[.!?])\s+(?!\[\d)/);
  const citing = [];
  for (const sentence of sentences) {
    const numbers = [...sentence.matchAll(MARKER)].flatMap((m) => m[1].split(",").map((x) => Number(x.trim())));
    if (!numbers.includes(n)) continue;
    const claim = sentence.replace(MARKER, "").replace(/\s+/g, " ").trim();
    if (claim) citing.push(claim);
  }
  return citing;
}

/** Lower-cased text with whitespace runs collapsed, and the original index of each kept character. */
function normalise(text) {
  let out = "";
  const index = [];
  let space = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (/\s/.test(ch)) {
      space = out.length > 0;
      continue;
    }
    if (space) {
      out += " ";
      index.push(i - 1);
      space = false;
    }
    out += ch.toLowerCase();
    index.push(i);
  }
  return { out, index };
}

function verbatimRange(passage, norm, claim) {
  const wanted = normalise(claim).out;
  for (const candidate of [wanted, wanted.replace(/[.!?;:,]+$/, "")]) {
    if (candidate.length < 8) continue;
    const at = norm.out.indexOf(candidate);
    if (at >= 0) return [norm.index[at], norm.index[at + candidate.length - 1] + 1];
  }
  return null;
}

function words(text) {
  return new Set((text.toLowerCase().match(WORD) || []).filter((w) => !STOPWORDS.has(w)));
}

/** Sentences of a passage with their offsets; blank lines also end a sentence. */
export function passageSentences(passage) {
  const out = [];
  const boundary = /(?<=[.!?])\s+|\n\s*\n/g;
  let start = 0;
  for (const m of passage.matchAll(boundary)) {
    out.push([start, m.index]);
    start = m.index + m[0].length;
  }
  out.push([start, passage.length]);
  return out.filter(([s, e]) => passage.slice(s, e).trim());
}

function bestOverlap(passage, claims) {
  const wanted = words(claims.join(" "));
  let best = null;
  let bestScore = 0;
  for (const [s, e] of passageSentences(passage)) {
    const have = words(passage.slice(s, e));
    let shared = 0;
    for (const w of have) if (wanted.has(w)) shared++;
    // Prefer more shared words; among equals, the shorter (more specific) sentence.
    const score = shared - have.size / 1000;
    if (shared > 0 && score > bestScore) {
      best = [s, e];
      bestScore = score;
    }
  }
  return best;
}

/** [start, end) ranges of `passage` to highlight for these claims: verbatim matches, else the best overlapping sentence. */
export function highlightRanges(passage, claims) {
  const norm = normalise(passage);
  const ranges = claims.map((c) => verbatimRange(passage, norm, c)).filter(Boolean);
  if (!ranges.length && claims.length) {
    const best = bestOverlap(passage, claims);
    if (best) ranges.push(best);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  return merged;
}

/** The passage cut into {text, marked} pieces along the ranges. */
export function segments(passage, ranges) {
  const out = [];
  let at = 0;
  for (const [s, e] of ranges) {
    if (s > at) out.push({ text: passage.slice(at, s), marked: false });
    out.push({ text: passage.slice(s, e), marked: true });
    at = e;
  }
  if (at < passage.length) out.push({ text: passage.slice(at), marked: false });
  return out;
}
