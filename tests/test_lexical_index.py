"""BM25 by tantivy (indexes/lexical_index.py): derived from the FTS5 rows, caught up from the change log, used
only when it holds exactly the catalog's last change, rebuilt when missing, damaged or stranded, checked exactly.

Real SQLite, real tantivy, real processes killed mid-write; vectors are random (no model), text is SQuAD's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tantivy

from fake_catalog import IDENTITY, unit_vectors
from indexes.backends import StoreOptions
from indexes.embedded import EmbeddedStore
from indexes.filters import Filters
from indexes.lexical_index import SCHEMA, SEQ_FILE, LexicalPolicy, TantivyIndex
from indexes.schema import fts_table
from indexes.store import SearchQuery
from indexes.types import Collection, ChunkInput, DocumentFields

ROOT = Path(__file__).resolve().parents[1]


def tantivy_store(path: Path, engine: str = "tantivy", threshold: int = 0) -> EmbeddedStore:
    return EmbeddedStore(path, options=StoreOptions(lexical=engine, lexical_threshold=threshold))


def put(store: EmbeddedStore, collection: Collection, source: str, texts: list[str], seed: int = 0,
        metadata: dict | None = None) -> list[int]:
    fields = DocumentFields(source, f"sha-{source}-{seed}", 10, 1.0, title=source, metadata=metadata, pages=1,
                            text=" ".join(texts))
    chunks = [ChunkInput(t, t, 0, len(t), 1, 1, ()) for t in texts]
    return store.put_document(collection, fields, chunks, unit_vectors(len(texts), seed))[1]


def lexical(store: EmbeddedStore, collection: Collection, text: str, filters: Filters | None = None,
            k: int = 10) -> list[int]:
    query = SearchQuery(collection, text, k=k, candidates=k, filters=filters or Filters())
    return [i for i, _ in store.lexical_search(query)]


def fts5(store: EmbeddedStore, collection: Collection, text: str, k: int = 10, allowed=None) -> list[int]:
    """FTS5's own ranking, whole (no row budget: tantivy asks every stem)."""
    return [i for i, _ in store.catalog.lexical_search(collection.id, text, k, allowed, budget=None)]


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    s = tantivy_store(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def docs(store: EmbeddedStore) -> Collection:
    return store.create_collection("docs", IDENTITY)


@pytest.fixture(scope="module")
def squad_sample(shared) -> tuple[list[str], list[tuple[str, int]]]:
    """400 SQuAD paragraphs and their answerable questions (question, index of its paragraph)."""
    data = json.loads(shared("eval", "squad-v2.0-dev-half", "dev-v2.0.json").read_text(encoding="utf-8"))
    paragraphs, questions = [], []
    for article in data["data"]:
        for p in article["paragraphs"]:
            if len(paragraphs) == 400:
                return paragraphs, questions
            questions += [(q["question"], len(paragraphs)) for q in p["qas"] if not q.get("is_impossible")]
            paragraphs.append(p["context"])
    return paragraphs, questions


def test_on_real_text_tantivy_ranks_as_fts5_does_within_reason(store: EmbeddedStore, docs: Collection,
                                                               squad_sample) -> None:
    paragraphs, questions = squad_sample
    ids = []
    for i in range(0, len(paragraphs), 50):
        ids += put(store, docs, f"part-{i}.txt", paragraphs[i : i + 50], seed=i)
    store.flush(docs)
    assert store.lexical_engine(docs) == "tantivy"
    same_top, overlap, gold = 0, 0.0, {"tantivy": 0, "fts5": 0}
    for question, paragraph in questions:
        ours, theirs = lexical(store, docs, question), fts5(store, docs, question)
        same_top += ours[:1] == theirs[:1]
        overlap += len(set(ours[:5]) & set(theirs[:5])) / max(1, min(5, len(theirs)))
        gold["tantivy"] += ours[:1] == [ids[paragraph]]
        gold["fts5"] += theirs[:1] == [ids[paragraph]]
    n = len(questions)
    assert n > 1000
    # two BM25s: the same terms and k1, b; idf ln(1 + ...) against ln(...), lengths in one byte against exact
    assert same_top / n > 0.85 and overlap / n > 0.85, (same_top / n, overlap / n)
    assert gold["tantivy"] >= gold["fts5"] - 0.01 * n, gold  # and no worse at finding the paragraph


def test_repeated_words_weigh_more_and_function_words_none_as_in_fts5(store: EmbeddedStore, docs: Collection) -> None:
    a = put(store, docs, "a.md", ["staging cluster nodes", "production cluster"])
    b = put(store, docs, "b.md", ["cluster staging staging staging"], seed=1)
    store.flush(docs)
    assert lexical(store, docs, "staging staging nodes") == fts5(store, docs, "staging staging nodes")
    assert lexical(store, docs, "nodes staging staging")[0] == a[0]
    assert set(lexical(store, docs, "cluster")) == {a[0], a[1], b[0]}
    assert lexical(store, docs, "the of and") == [] and lexical(store, docs, "") == []
    assert store.lexical_engine(docs) == "tantivy"


def test_deletes_and_replacements_are_reflected_after_catching_up(store: EmbeddedStore, docs: Collection) -> None:
    old = put(store, docs, "a.md", ["obsolete wording here", "kept wording"])
    gone = put(store, docs, "b.md", ["vanishing paragraph"], seed=1)
    store.flush(docs)
    assert set(lexical(store, docs, "wording")) == set(old)
    new = put(store, docs, "a.md", ["fresh wording here"], seed=2)  # a replacement: old chunks deleted
    store.delete_document(docs, store.find_document(docs, "b.md").id)  # saves: catches the index up
    assert store.lexical_engine(docs) == "tantivy"
    assert lexical(store, docs, "obsolete") == [] and lexical(store, docs, "vanishing") == []
    assert lexical(store, docs, "wording") == new and gone[0] not in lexical(store, docs, "paragraph")
    assert store.check(docs).ok


def test_a_search_while_the_index_is_behind_is_fts5s_exact_answer(store: EmbeddedStore, docs: Collection) -> None:
    first = put(store, docs, "a.md", ["quarterly payroll report"])
    store.flush(docs)
    assert store.lexical_engine(docs) == "tantivy"
    second = put(store, docs, "b.md", ["another payroll report"], seed=1)  # committed, not caught up
    assert store.lexical_engine(docs) == "fts5"
    assert lexical(store, docs, "payroll") == fts5(store, docs, "payroll")
    assert sorted(lexical(store, docs, "payroll")) == sorted(first + second)
    store.delete_document(docs, store.find_document(docs, "a.md").id)
    assert lexical(store, docs, "payroll") == second and store.lexical_engine(docs) == "tantivy"


def test_filtered_searches_agree_with_fts5(store: EmbeddedStore, docs: Collection, squad_sample) -> None:
    paragraphs, questions = squad_sample
    for i in range(0, 200, 20):
        put(store, docs, f"part-{i}.txt", paragraphs[i : i + 20], seed=i, metadata={"part": i // 20 % 3})
    store.flush(docs)
    kept = Filters(metadata={"part": 1})
    allowed = store.allowed_ids(docs, kept)
    assert 0 < len(allowed) < 200 and store.lexical_engine(docs) == "tantivy"
    agree = 0
    for question, _ in questions[:200]:
        ours = lexical(store, docs, question, kept)
        assert set(ours) <= set(allowed)
        theirs = fts5(store, docs, question, allowed=allowed)
        assert len(ours) == len(theirs)  # the same allowed chunks match a term: never one scoring nothing
        agree += ours[:1] == theirs[:1]
    assert agree / 200 > 0.85
    assert lexical(store, docs, "zzzzqx qqxyz") == [] and lexical(store, docs, questions[0][0], Filters(document_ids=[])) == []


def test_another_process_catching_up_is_seen_without_rebuilding(tmp_path: Path) -> None:
    serving, ingesting = tantivy_store(tmp_path / "data"), tantivy_store(tmp_path / "data")
    docs = serving.create_collection("docs", IDENTITY)
    put(serving, docs, "a.md", ["first words"])
    serving.flush(docs)
    assert serving.lexical_engine(docs) == "tantivy"
    new = put(ingesting, docs, "b.md", ["second words"], seed=1)
    assert serving.lexical_engine(docs) == "fts5"  # behind: FTS5 answers
    ingesting.flush(docs)
    assert serving.lexical_engine(docs) == "tantivy" and lexical(serving, docs, "second") == new


def test_a_missing_or_damaged_index_falls_back_to_fts5_and_is_rebuilt(store: EmbeddedStore, docs: Collection,
                                                                      tmp_path: Path) -> None:
    ids = put(store, docs, "a.md", ["alpha beta", "beta gamma"])
    store.flush(docs)
    path = store.lexical.path(docs.id)
    shutil.rmtree(path)
    fresh = tantivy_store(tmp_path / "data")  # a process starting on it
    assert fresh.lexical_engine(docs) == "fts5" and sorted(lexical(fresh, docs, "beta")) == sorted(ids)
    fresh.warm_up(docs)
    assert fresh.lexical_engine(docs) == "tantivy" and sorted(lexical(fresh, docs, "beta")) == sorted(ids)
    fresh.close()
    for damage in (lambda: (path / "meta.json").write_text("garbage"), lambda: (path / SEQ_FILE).unlink()):
        damage()
        again = tantivy_store(tmp_path / "data")
        assert again.lexical_engine(docs) == "fts5" and sorted(lexical(again, docs, "beta")) == sorted(ids)
        assert not again.check(docs).ok
        again.flush(docs)
        assert again.lexical_engine(docs) == "tantivy" and again.check(docs).ok
        assert sorted(lexical(again, docs, "beta")) == sorted(ids)
        again.close()


def _planted(path: Path, delete: list[int] = (), add: list[tuple[int, str]] = ()) -> None:
    """Change the index behind the store's back, keeping its recorded seq."""
    index = tantivy.Index(SCHEMA, path=str(path))
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    for i in delete:
        writer.delete_documents_by_term("id", i)
    for i, body in add:
        writer.add_document(tantivy.Document(id=i, body=body))
    writer.commit()
    writer.wait_merging_threads()


def test_check_finds_a_planted_inconsistency_and_repair_fixes_it(store: EmbeddedStore, docs: Collection) -> None:
    ids = put(store, docs, "a.md", ["first passage", "second passage", "third passage"])
    store.flush(docs)
    assert store.check(docs).ok
    path = store.lexical.path(docs.id)
    _planted(path, delete=[ids[1]], add=[(ids[2], "third passage"), (10_000, "stray passage")])
    report = store.check(docs)
    assert not report.ok and report.missing_lexical_index == [ids[1]] and report.orphan_lexical_index == [10_000]
    assert any("more than once" in p and str(ids[2]) in p for p in report.problems)
    store.repair(docs)
    assert store.check(docs).ok and sorted(lexical(store, docs, "passage")) == sorted(ids)


def test_docqa_check_repair_rebuilds_the_index(tmp_path: Path) -> None:
    store = tantivy_store(tmp_path / "data")
    docs = store.create_collection("default", IDENTITY)
    ids = put(store, docs, "a.md", ["first passage", "second passage"])
    store.flush(docs)
    _planted(store.lexical.path(docs.id), delete=[ids[0]])
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCQA_STORE__LEXICAL": "tantivy", "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-c", "from service.cli import main; main()", "--data-dir", str(tmp_path / "data"), "check"]
    found = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1 and f"missing_lexical_index: [{ids[0]}]" in found.stdout, found.stdout + found.stderr
    fixed = subprocess.run(cli + ["--repair"], env=env, capture_output=True, text=True, timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    reopened = tantivy_store(tmp_path / "data")
    assert reopened.check(docs).ok and sorted(lexical(reopened, docs, "passage")) == sorted(ids)


# A process that commits to the catalog and dies before tantivy commits (or while, or after, or once it has
# recorded the seq too), on the store's own catch-up path.
_KILLED = """
import os, sys
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
import indexes.lexical_index as lexical_index
from test_lexical_index import put, tantivy_store
store = tantivy_store(Path({data!r}))
docs = store.get_collection("docs")
put(store, docs, "b.md", ["late arrival words"], seed=5)  # committed to the catalog
when = {when!r}
if when == "before":
    os._exit(9)
record = lexical_index._write_seq
if when == "during":  # the changes added to the writer, never committed
    lexical_index.TantivyIndex._commit = lambda self, writer, seq: os._exit(9)
elif when == "after":  # committed, its seq not recorded
    lexical_index._write_seq = lambda path, seq: os._exit(9)
else:  # committed and recorded
    lexical_index._write_seq = lambda path, seq: (record(path, seq), os._exit(9))
store.flush(docs)
"""


@pytest.mark.parametrize("when", ["before", "during", "after", "recorded"])
def test_a_process_killed_between_the_catalog_commit_and_tantivys_loses_nothing(tmp_path: Path, when: str) -> None:
    store = tantivy_store(tmp_path / "data")
    docs = store.create_collection("docs", IDENTITY)
    first = put(store, docs, "a.md", ["early words"])
    store.flush(docs)
    seq = store.lexical.current(docs.id).seq
    store.close()
    script = _KILLED.format(root=str(ROOT), tests=str(ROOT / "tests"), data=str(tmp_path / "data"), when=when)
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 9
    restarted = tantivy_store(tmp_path / "data")
    if when != "recorded":  # the index's seq is the one before: FTS5 answers
        assert restarted.lexical.current(docs.id) is None
        assert json.loads((restarted.lexical.path(docs.id) / SEQ_FILE).read_text())["seq"] == seq
    late = restarted.find_document(docs, "b.md")
    words = sorted(lexical(restarted, docs, "words"))
    assert late is not None and len(words) == 2 and first[0] in words
    restarted.warm_up(docs)  # catches up (applying a change twice is harmless), the writer's lock free again
    assert restarted.lexical_engine(docs) == "tantivy" and sorted(lexical(restarted, docs, "words")) == words
    assert restarted.check(docs).ok


def test_compaction_never_drops_changes_the_index_has_not_applied(store: EmbeddedStore, docs: Collection,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    put(store, docs, "a.md", ["first words"])
    store.flush(docs)
    held = store.lexical.current(docs.id).seq
    other = tantivy.Index(SCHEMA, path=str(store.lexical.path(docs.id)))
    busy = other.writer(heap_size=15_000_000, num_threads=1)  # another process is writing it
    new = put(store, docs, "b.md", ["second words"], seed=1)
    store.flush(docs)  # the vectors are saved; the index could not catch up
    assert store.lexical_engine(docs) == "fts5" and store.lexical.current(docs.id) is None
    assert store.catalog.changes_since(docs.id, held), "the changes the index lacks are kept"
    busy.wait_merging_threads()  # that process is done
    with caplog.at_level(logging.INFO, logger="docqa.indexes"):
        store.flush(docs)
    assert not [r for r in caplog.records if "rebuilding" in r.getMessage() or "built" in r.getMessage()]
    assert store.lexical_engine(docs) == "tantivy" and lexical(store, docs, "second") == new
    assert store.catalog.changes_since(docs.id, 0) is None  # and now they are compacted


def test_an_index_behind_the_compacted_log_is_rebuilt(store: EmbeddedStore, docs: Collection, tmp_path: Path) -> None:
    put(store, docs, "a.md", ["first words"])
    store.flush(docs)
    path = store.lexical.path(docs.id)
    shutil.copytree(path, tmp_path / "old")  # an older copy, written back after the log moved on
    new = put(store, docs, "b.md", ["second words"], seed=1)
    store.flush(docs)
    store.close()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "old", path)
    reopened = tantivy_store(tmp_path / "data")
    assert reopened.lexical_engine(docs) == "fts5" and not reopened.check(docs).ok
    reopened.warm_up(docs)
    assert reopened.lexical_engine(docs) == "tantivy" and lexical(reopened, docs, "second") == new
    assert reopened.check(docs).ok


def test_auto_keeps_an_index_from_the_threshold_and_drops_it_below_half(tmp_path: Path) -> None:
    store = tantivy_store(tmp_path / "data", engine="auto", threshold=4)
    docs = store.create_collection("docs", IDENTITY)
    put(store, docs, "a.md", ["one word", "two words", "three words"])
    store.flush(docs)
    assert not store.lexical.path(docs.id).exists() and store.lexical_engine(docs) == "fts5"
    put(store, docs, "b.md", ["four words"], seed=1)
    store.flush(docs)
    assert store.lexical_engine(docs) == "tantivy" and store.check(docs).ok
    store.delete_document(docs, store.find_document(docs, "b.md").id)  # 3 chunks: still at least half
    assert store.lexical_engine(docs) == "tantivy"
    put(store, docs, "a.md", ["only one"], seed=2)
    store.flush(docs)  # 1 chunk, below half the threshold
    assert not store.lexical.path(docs.id).exists() and store.lexical_engine(docs) == "fts5"
    assert store.check(docs).ok and lexical(store, docs, "one") == store.catalog.chunk_ids(docs.id).tolist()


def test_fts5_never_builds_nor_waits_for_an_index(tmp_path: Path) -> None:
    store = tantivy_store(tmp_path / "data", engine="fts5")
    docs = store.create_collection("docs", IDENTITY)
    put(store, docs, "a.md", ["some words"])
    store.flush(docs)
    assert not (tmp_path / "data" / "lexical").exists() and store.catalog.changes_since(docs.id, 0) is None
    with pytest.raises(Exception, match="lexical engine"):
        LexicalPolicy("lucene")


def test_deleting_a_collection_removes_its_index(store: EmbeddedStore, docs: Collection) -> None:
    put(store, docs, "a.md", ["some words"])
    store.flush(docs)
    assert store.lexical.path(docs.id).exists()
    store.delete_collection("docs")
    assert not store.lexical.path(docs.id).exists()


def test_the_engine_is_a_setting_read_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    monkeypatch.setenv("DOCQA_STORE__LEXICAL", "tantivy")
    monkeypatch.setenv("DOCQA_STORE__LEXICAL_THRESHOLD", "5")
    options = Settings().store.options()
    assert (options.lexical, options.lexical_threshold) == ("tantivy", 5)
    monkeypatch.setenv("DOCQA_STORE__LEXICAL", "lucene")
    with pytest.raises(ValidationError, match="lexical"):
        Settings()


def test_an_index_that_cannot_be_written_leaves_fts5_ranking_and_warm_up_and_saves_go_on(
        store: EmbeddedStore, docs: Collection, monkeypatch, caplog) -> None:
    """A derived index failing (disk full, a tantivy error) is never the user's error: start-up and the save after
    an ingest go on, FTS5 ranks, and the next sync that can write catches it up."""
    put(store, docs, "a.md", ["the staging cluster has twelve nodes", "production has forty"])
    store.flush(docs)  # built and current

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TantivyIndex, "catch_up", broken)
    monkeypatch.setattr(TantivyIndex, "rebuild", broken)
    [later] = put(store, docs, "b.md", ["the greenhouse keeps orchids"], seed=1)  # the index is behind now
    with caplog.at_level(logging.WARNING, logger="docqa.indexes"):
        store.warm_up(docs)
        store.flush(docs)
    assert "No space left on device" in caplog.text
    assert store.lexical.search(docs.id, "greenhouse orchids", 10) is None  # behind: it may not answer
    assert lexical(store, docs, "greenhouse orchids")[:1] == [later]  # FTS5 does
    monkeypatch.undo()
    store.flush(docs)
    assert [i for i, _ in store.lexical.search(docs.id, "greenhouse orchids", 10)][:1] == [later]
    assert store.check(docs).ok

