"""Copying collections from one store to another (`docqa migrate --to URL`), in either direction.

Documents go across as they are stored (text, chunks, embeddings, sentence vectors), one document per
transaction on the target, so nothing is parsed or embedded again. A document the target already holds
with the same content is skipped, so an interrupted migration is finished by running it again. At the end
every copied collection is verified: `check()` clean on the target and the same counts on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from indexes.errors import EmbedderMismatch
from indexes.store import Store


@dataclass
class MigrationReport:
    """Per collection: copied, skipped, the target's counts, and whether it verified."""

    collections: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every collection verified."""
        return all(c["verified"] for c in self.collections)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "collections": self.collections, "records": self.records}


def migrate(
    source: Store, target: Store, collection: str | None = None, *,
    on_document: Callable[[], None] | None = None, on_total: Callable[[int], None] | None = None,
) -> MigrationReport:
    """Copy one collection (or all) with the service's records from `source` to `target`."""
    report = MigrationReport()
    collections = [source.get_collection(collection)] if collection else source.list_collections()
    plans = [(c, source.list_documents(c)) for c in collections]
    if on_total:
        on_total(sum(len(docs) for _, docs in plans))
    for src, documents in plans:
        dst = target.find_collection(src.name) or target.create_collection(src.name, src.embedder, src.description)
        if dst.embedder != src.embedder:
            raise EmbedderMismatch(f"collection {src.name!r} exists in the target with another embedder"
                                   f" ({dst.embedder.get('model')!r} vs {src.embedder.get('model')!r})")
        there = {d.source: d for d in target.list_documents(dst)}
        copied = skipped = 0
        for doc in documents:
            have = there.get(doc.source)
            if have is not None and (have.sha256, have.status, have.chunk_count) == (doc.sha256, doc.status, doc.chunk_count):
                skipped += 1
            else:
                stored = source.export_document(doc.id)
                if stored.status == "ok":
                    target.put_document(dst, stored.fields, stored.chunks, stored.embeddings, stored.sentence_vectors)
                else:
                    target.record_failure(dst, stored.fields, stored.error or "failed")
                copied += 1
            if on_document:
                on_document()
        target.flush(dst)
        check = target.check(dst)
        counts, expected = target.counts(dst), source.counts(src)
        problems = list(check.problems)
        if not check.ok and not problems:
            problems.append("check() found rows, lexical index and vectors disagreeing; run `docqa check`")
        if counts != expected:
            problems.append(f"counts differ: source {expected}, target {counts}")
        report.collections.append({"collection": src.name, "copied": copied, "skipped": skipped, **counts,
                                   "verified": not problems, "problems": problems})
    report.records = target.records.copy_from(source.records)
    return report
