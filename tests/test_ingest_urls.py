"""`docqa ingest s3://…`: documents read from a real S3-compatible server (moto's, over HTTP on 127.0.0.1) by
both engines; an unchanged object is skipped without being downloaded, a changed one replaced, a deleted one
removed by --sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ingest.cli as cli
from indexes.embedded import EmbeddedStore
from service.cli import app as docqa_app

pytestmark = pytest.mark.s3

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
NAMES = ("handbook.md", "politica-de-ferias.md", "onboarding.docx", "laboratorio-ia.html")
runner = CliRunner()


@pytest.fixture(autouse=True)
def session_model(monkeypatch, embedder) -> None:
    def store() -> EmbeddedStore:
        s = EmbeddedStore(cli._State.data_dir, cli._State.spec)
        s.embedders.add(cli._State.spec, embedder)
        return s

    monkeypatch.setattr(cli._State, "store", store)


def ingest(data_dir: Path, *args: str) -> dict:
    result = runner.invoke(docqa_app, ["--data-dir", str(data_dir), "ingest", *args, "--json"])
    assert result.exit_code in (0, 1), (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {r["source"]: r["status"] for r in report["results"]}


def object_reads(bucket, since: int) -> list[str]:
    """Requests for objects' bytes (not listings or heads) served after request number `since`."""
    return [r for r in bucket.server.requests()[since:] if r.startswith(f"GET /{bucket.name}/") and "?" not in r.split()[1]]


@pytest.fixture
def filled(bucket):
    for name in NAMES:
        bucket.put(f"docs/{name}", (SAMPLES / name).read_bytes())
    bucket.put("docs/notes.bin", b"\x00 not a supported type")
    bucket.put("other/elsewhere.md", b"# Elsewhere\n\nNot under the prefix.")
    return bucket


def test_a_prefix_is_ingested_then_skipped_replaced_and_synced_like_a_folder(filled, tmp_path: Path) -> None:
    data, prefix = tmp_path / "data", filled.url("docs/")
    first = ingest(data, prefix)
    assert statuses(first) == {filled.url(f"docs/{n}"): "ingested" for n in NAMES}
    assert first["chunks"] > 0

    before = len(filled.server.requests())
    again = ingest(data, prefix)
    assert set(statuses(again).values()) == {"unchanged"}
    assert object_reads(filled, before) == []  # skipped by the listed version: nothing downloaded

    filled.put("docs/handbook.md", (SAMPLES / "handbook.md").read_bytes() + b"\n\n## Parking\n\nBikes go in bay 7.\n")
    changed = statuses(ingest(data, prefix))
    assert changed.pop(filled.url("docs/handbook.md")) == "replaced"
    assert set(changed.values()) == {"unchanged"}
    hits = runner.invoke(docqa_app, ["--data-dir", str(data), "search", "where do bikes go", "--json"])
    assert json.loads(hits.stdout)["hits"][0]["source"] == filled.url("docs/handbook.md")

    filled.delete("docs/onboarding.docx")
    synced = statuses(ingest(data, prefix, "--sync"))
    assert synced[filled.url("docs/onboarding.docx")] == "removed"
    assert sum(s == "unchanged" for s in synced.values()) == len(NAMES) - 1
    check = runner.invoke(docqa_app, ["--data-dir", str(data), "check", "--json"])
    assert check.exit_code == 0, check.stdout


def test_an_object_whose_version_changed_but_not_its_bytes_stays_unchanged(filled, tmp_path: Path) -> None:
    data, url = tmp_path / "data", filled.url("docs/handbook.md")
    assert statuses(ingest(data, url)) == {url: "ingested"}
    store = EmbeddedStore(data)
    version = store.find_document(store.get_collection("default"), url).metadata["object"]["version"]
    store.close()
    # The same bytes uploaded in parts: S3 gives a multipart object another ETag ("<md5 of md5s>-1").
    key, body = "docs/handbook.md", (SAMPLES / "handbook.md").read_bytes()
    upload = filled.client.create_multipart_upload(Bucket=filled.name, Key=key)
    part = filled.client.upload_part(Bucket=filled.name, Key=key, PartNumber=1, UploadId=upload["UploadId"], Body=body)
    filled.client.complete_multipart_upload(Bucket=filled.name, Key=key, UploadId=upload["UploadId"],
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert filled.client.head_object(Bucket=filled.name, Key=key)["ETag"].strip('"') not in version
    before = len(filled.server.requests())
    assert statuses(ingest(data, url)) == {url: "unchanged"}  # read and hashed: the bytes decide
    assert object_reads(filled, before)


def test_a_missing_bucket_is_one_clear_line(bucket, tmp_path: Path) -> None:
    result = runner.invoke(docqa_app, ["--data-dir", str(tmp_path / "data"), "ingest", f"s3://{bucket.name}-gone/docs/"])
    assert result.exit_code == 2
    assert f"s3://{bucket.name}-gone/docs" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_engine_reads_the_objects_on_its_workers_and_matches_the_local_engine(filled, tmp_path: Path) -> None:
    local = ingest(tmp_path / "local", filled.url("docs/"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "service.cli", "--data-dir", str(tmp_path / "ray"), "ingest", filled.url("docs/"),
               "--engine", "ray", "--json"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = json.loads(run.stdout)
    assert statuses(theirs) == statuses(local)
    chunks = {r["source"]: r["chunks"] for r in local["results"]}
    assert {r["source"]: r["chunks"] for r in theirs["results"]} == chunks
