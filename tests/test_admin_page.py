"""The documents (admin) page in a real browser: Debian's headless Chromium, driven by Playwright, against a real
`docqa serve` with API keys on (an admin key, and a reader key for what a reader must not see)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from server import wait_for_job
from test_chat_page import DOCQA, SAMPLES, ConsoleErrors, _env, _serving, browser, sync_api  # noqa: F401 (browser: the fixture)

pytestmark = pytest.mark.browser
expect = sync_api.expect

QUESTION = "How many GPUs was the Atlas model trained on?"
BROKEN = b"%PDF-1.7 truncated: no objects, no xref, no trailer"


class Admin:
    """The server, its keys, and an httpx client with the admin key."""

    def __init__(self, base: str, admin_key: str, reader_key: str) -> None:
        self.base, self.admin_key, self.reader_key = base, admin_key, reader_key
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120)

    def documents(self, status: str | None = None) -> list[dict]:
        return self.client.get("/v1/collections/default/documents", params={"status": status} if status else {}).json()

    def document(self, suffix: str) -> dict:
        return next(d for d in self.documents() if d["source"].endswith(suffix))


def _key(data: Path, *options: str) -> str:
    created = subprocess.run([str(DOCQA), "--data-dir", str(data), "keys", "create", *options],
                             env=_env(), check=True, capture_output=True, text=True)
    return re.search(r"dqa_\S+", created.stdout).group(0)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """The samples ingested from a folder, a broken PDF uploaded (it fails, with its reason), keys on."""
    root = tmp_path_factory.mktemp("admin-page")
    docs = root / "docs"
    shutil.copytree(SAMPLES, docs, ignore=shutil.ignore_patterns("*.py"))
    data = root / "data"
    subprocess.run([str(DOCQA), "--data-dir", str(data), "ingest", str(docs)], env=_env(), check=True, capture_output=True)
    admin_key = _key(data, "--role", "admin", "--name", "browser admin")
    reader_key = _key(data, "--role", "reader", "--collections", "default", "--name", "browser reader")
    with _serving(data, DOCQA_AUTH__ENABLED="true") as base:
        server = Admin(base, admin_key, reader_key)
        upload = server.client.post("/v1/collections/default/documents", files={"files": ("broken.pdf", BROKEN)})
        assert wait_for_job(server.client, upload.json()["id"])["files"][0]["status"] == "failed"
        yield server
        server.client.close()



def _open(browser: object, admin: Admin, key: str | None = None, path: str = "/admin") -> tuple[object, ConsoleErrors]:
    """The page, with `key` (default: the admin key) already in the tab's session, once its documents are listed."""
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.add_init_script(f"sessionStorage.setItem('docqa.apiKey', {json.dumps(key or admin.admin_key)})")
    errors = ConsoleErrors(page)
    page.goto(f"{admin.base}{path}")
    if path == "/admin":
        page.locator(".doc-row").first.wait_for()
    return page, errors


def _row(page: object, source_suffix: str) -> object:
    return page.locator(f".doc-row[data-source$='{source_suffix}']")


def test_a_failed_files_reason_is_visible(browser: object, admin: Admin, tmp_path: Path) -> None:
    failed = admin.document("broken.pdf")
    assert failed["status"] == "failed" and failed["error"]
    page, errors = _open(browser, admin)
    row = _row(page, "broken.pdf")
    expect(row.locator(".doc-error")).to_have_text(failed["error"])
    expect(row.locator(".doc-status")).to_have_text("failed")
    expect(page.locator(f".failure[data-id='{failed['id']}'] .failure-reason")).to_have_text(failed["error"])
    expect(page.locator("#failures-heading")).to_have_text("1 file failed")
    counts = page.locator(".collection-button[data-name='default'] .collection-counts")
    expect(counts).to_contain_text("1 failed")

    atlas = admin.document("atlas-report.pdf")
    cells = _row(page, "atlas-report.pdf").locator("td")
    assert cells.nth(2).inner_text() == str(atlas["chunks"]) and cells.nth(3).inner_text() == str(atlas["pages"])
    assert cells.nth(4).inner_text() == str(len(atlas["ocr_pages"])) and "KB" in cells.nth(5).inner_text()

    page.select_option("#status-filter", "failed")
    expect(page.locator(".doc-row")).to_have_count(1)
    expect(page.locator(".doc-row").first).to_have_attribute("data-source", "broken.pdf")
    page.screenshot(path=str(tmp_path / "admin-failures.png"), full_page=True)
    assert errors == []


def _cited(admin: Admin) -> set[int]:
    answer = admin.client.post("/v1/ask", json={"question": QUESTION}).json()
    return {c["document_id"] for c in answer["citations"] if c["cited"]}


def _tab_to(page: object, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{limit} Tabs never reached {selector}")


def test_deleting_a_document_by_keyboard_removes_it_from_answers(browser: object, admin: Admin) -> None:
    atlas = admin.document("atlas-report.pdf")
    assert atlas["id"] in _cited(admin)
    page, errors = _open(browser, admin)
    delete = f".doc-row[data-id='{atlas['id']}'] [data-action='delete']"
    _tab_to(page, delete)
    outline = page.evaluate("s => { const c = getComputedStyle(document.querySelector(s)); return [c.outlineStyle, c.outlineWidth]; }", delete)
    assert outline[0] != "none" and float(outline[1].removesuffix("px")) >= 2, outline  # the focus is visible

    dialog = page.locator("#confirm-dialog")
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-title")).to_have_text(f"Delete {atlas['source']}?")
    assert page.evaluate("document.activeElement.value") == "cancel"  # the safe choice has the focus
    page.keyboard.press("Escape")  # changed its mind: nothing is deleted, the focus returns
    expect(dialog).to_be_hidden()
    assert page.evaluate("s => document.activeElement === document.querySelector(s)", delete)
    assert admin.client.get(f"/v1/collections/default/documents/{atlas['id']}").status_code == 200

    page.keyboard.press("Space")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "confirm-ok"
    page.keyboard.press("Space")
    expect(page.locator(f".doc-row[data-id='{atlas['id']}']")).to_have_count(0)
    assert page.evaluate("document.activeElement.dataset.action") == "delete"  # on the next document's delete button

    assert admin.client.get(f"/v1/collections/default/documents/{atlas['id']}").status_code == 404
    assert atlas["id"] not in _cited(admin)
    answer = admin.client.post("/v1/ask", json={"question": QUESTION}).json()
    assert all(c["document_id"] != atlas["id"] for c in answer["citations"]), answer
    assert errors == []


def test_reingesting_a_document_from_the_page_replaces_it(browser: object, admin: Admin) -> None:
    handbook = admin.document("handbook.md")
    page, errors = _open(browser, admin)
    shown = _row(page, "handbook.md").locator("td").nth(6).inner_text()
    page.wait_for_timeout(1100)  # the page shows seconds: a re-ingest a second later reads differently
    _row(page, "handbook.md").locator("[data-action='reingest']").click()
    job = page.locator(".job").first
    file = job.locator(".job-file", has_text="handbook.md")
    expect(file).to_have_attribute("data-status", "replaced")
    expect(file.locator(".job-file-detail")).to_have_text(f"{handbook['chunks']} chunks")
    expect(job).to_have_attribute("data-state", "succeeded")
    expect(job.locator(".job-progress")).to_have_text("1 of 1 files done — 1 replaced")

    again = admin.document("handbook.md")
    assert again["updated_at"] > handbook["updated_at"] and again["chunks"] == handbook["chunks"]
    listed = admin.client.get("/v1/jobs?limit=1").json()[0]
    assert listed["counts"] == {"replaced": 1} and listed["id"] == job.get_attribute("data-id")
    expect(_row(page, "handbook.md").locator("td").nth(6)).not_to_have_text(shown)  # its ingested-at, refreshed
    assert errors == []


def test_jobs_show_per_file_progress(browser: object, admin: Admin) -> None:
    files = [("files", ("lifts.md", b"# Lifts\n\nThe atrium has three lifts.")), ("files", ("bad.pdf", BROKEN)),
             ("files", ("desks.md", b"# Desks\n\nHot desks are on floor four."))]
    job_id = admin.client.post("/v1/collections/default/documents", files=files).json()["id"]
    final = wait_for_job(admin.client, job_id)
    assert [f["status"] for f in final["files"]] == ["ingested", "failed", "ingested"]

    def running(body: dict, done: int) -> dict:  # the job as it looked while its first `done` files were finished
        for f in body["files"][done:]:
            f.update(status="pending", reason=None, chunks=0, document_id=None)
        return {**body, "state": "running", "finished_at": None}

    served = {"list": 0, "job": 0}

    def list_route(route: object) -> None:  # the first listing: this job mid-way, one file of three done
        response = route.fetch()
        jobs = response.json()
        if served["list"] == 0:
            for j in jobs:
                if j["id"] == job_id:
                    j.update(state="running", finished_at=None, counts={"ingested": 1, "pending": 2})
        served["list"] += 1
        route.fulfill(status=200, json=jobs)

    def job_route(route: object) -> None:  # its files: first as they were, then as they are
        response = route.fetch()
        body = response.json()
        served["job"] += 1
        route.fulfill(status=200, json=running(body, 1) if served["job"] == 1 else body)

    page = browser.new_page()
    page.route(re.compile(r".*/v1/jobs\?.*"), list_route)
    page.route(f"**/v1/jobs/{job_id}", job_route)
    page.add_init_script(f"sessionStorage.setItem('docqa.apiKey', {json.dumps(admin.admin_key)})")
    errors = ConsoleErrors(page)
    page.goto(f"{admin.base}/admin")
    job = page.locator(f".job[data-id='{job_id}']")
    expect(job.locator(".job-progress")).to_have_text("1 of 3 files done — 1 ingested · 2 pending")
    assert job.locator("progress").evaluate("p => [p.value, p.max]") == [1, 3]
    job.locator(".job-toggle").click()
    rows = job.locator(".job-file")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_attribute("data-status", "ingested")
    expect(rows.nth(2)).to_have_attribute("data-status", "pending")

    expect(rows.nth(1)).to_have_attribute("data-status", "failed")  # followed to its end without a reload
    expect(rows.nth(1).locator(".job-file-reason")).to_have_text(final["files"][1]["reason"])
    expect(rows.nth(2)).to_have_attribute("data-status", "ingested")
    expect(job).to_have_attribute("data-state", "succeeded")
    expect(job.locator(".job-progress")).to_have_text("3 of 3 files done — 1 failed · 2 ingested")
    assert served["job"] >= 2 and errors == []


def test_the_keys_section_works_for_an_admin(browser: object, admin: Admin) -> None:
    page, errors = _open(browser, admin)
    section = page.locator("#keys-section")
    expect(section).to_be_visible()
    expect(page.locator(".key-row", has_text="browser reader")).to_contain_text("reader")
    page.select_option("#new-key-role", "reader")
    page.fill("#new-key-collections", "default")
    page.fill("#new-key-name", "support team")
    page.click("#key-create button[type='submit']")
    secret = page.locator("#new-key-secret")
    expect(secret).to_have_text(re.compile(r"^dqa_\S+$"))
    made = secret.inner_text()
    row = page.locator(".key-row", has_text="support team")
    expect(row).to_contain_text("default")
    key_id = row.get_attribute("data-id")
    with httpx.Client(base_url=admin.base, headers={"Authorization": f"Bearer {made}"}) as made_client:
        assert [c["name"] for c in made_client.get("/v1/collections").json()] == ["default"]
        row.locator("[data-action='revoke']").click()
        page.click("#confirm-ok")
        expect(page.locator(f".key-row[data-id='{key_id}']")).to_have_attribute("data-revoked", "true")
        assert made_client.get("/v1/collections").status_code == 401
    page.reload()
    page.locator(f".key-row[data-id='{key_id}']").wait_for()
    assert made not in page.content()  # shown once: the page keeps no copy
    assert errors == []


def test_the_keys_section_is_absent_for_a_reader(browser: object, admin: Admin) -> None:
    page, errors = _open(browser, admin, admin.reader_key)
    expect(page.locator(".collection-button[data-name='default']")).to_be_visible()
    page.wait_for_function("() => window.performance.getEntriesByType('resource').some(e => e.name.endsWith('/v1/keys'))")
    page.wait_for_timeout(300)
    expect(page.locator("#keys-section")).to_be_hidden()
    assert page.locator(".key-row").count() == 0
    assert [e for e in errors if "403" not in e] == []  # the refused request itself is logged by Chromium


def test_the_page_fits_a_phone_and_its_controls_are_reachable(browser: object, admin: Admin, tmp_path: Path) -> None:
    page, errors = _open(browser, admin)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    buttons = page.locator(".doc-row [data-action], .job-toggle, #key-create button, .key-row [data-action]")
    assert buttons.count() >= 9
    for i in range(buttons.count()):
        button = buttons.nth(i)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (button.get_attribute("aria-label"), box)
        button.click(trial=True)  # visible, enabled and not covered by anything
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "admin-phone.png"), full_page=True)
    assert errors == []


def test_the_chat_page_and_the_documents_page_link_to_each_other(browser: object, admin: Admin) -> None:
    page, errors = _open(browser, admin, path="/")
    page.wait_for_selector("#collection option[value='default']", state="attached")
    page.get_by_role("link", name="Documents").click()
    page.wait_for_url(f"{admin.base}/admin")
    page.locator(".doc-row").first.wait_for()
    page.get_by_role("link", name="Chat").click()
    page.wait_for_url(f"{admin.base}/")
    page.wait_for_selector("#collection option[value='default']", state="attached")
    assert errors == []
