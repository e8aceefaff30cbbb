"""The chat page in a real browser: Debian's headless Chromium, driven by Playwright, against `docqa serve`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from scripted_llm import ScriptedLLM
from server import DocqaServer

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]
DOCQA = Path(sys.executable).with_name("docqa")
if not DOCQA.exists():
    DOCQA = Path(shutil.which("docqa") or "docqa")
TIMEOUT_MS = 60_000

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
sync_api.expect.set_options(timeout=TIMEOUT_MS)
if not CHROMIUM.exists():
    if os.environ.get("CI"):  # `make test` installs it: on CI a missing browser is a failure, not a skip
        pytest.fail("Debian's Chromium is missing: apt-get install chromium", pytrace=False)
    pytest.skip("needs Debian's Chromium: apt-get install chromium", allow_module_level=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    return {**env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the ingested samples (servers get copies)."""
    root = tmp_path_factory.mktemp("chat-page")
    docs = root / "docs"
    shutil.copytree(SAMPLES, docs, ignore=shutil.ignore_patterns("*.py"))
    data = root / "data"
    subprocess.run([str(DOCQA), "--data-dir", str(data), "ingest", str(docs)], env=_env(), check=True, capture_output=True)
    return data


@contextmanager
def _serving(data: Path, **env: str) -> Iterator[str]:
    """`docqa serve` over `data` on a free port until the block ends; its base URL."""
    server = DocqaServer(data.parent, env=env)
    assert server.data_dir == data, "DocqaServer serves <workdir>/data"
    with server:
        yield server.base_url


@pytest.fixture(scope="module")
def server(ingested: Path) -> Iterator[str]:
    """The chat page over the samples, auth off (the local demo)."""
    data = ingested.parent / "open" / "data"
    shutil.copytree(ingested, data)
    with _serving(data) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_server(ingested: Path) -> Iterator[tuple[str, str]]:
    """The same, with API keys on; (base URL, an admin key)."""
    data = ingested.parent / "keyed" / "data"
    shutil.copytree(ingested, data)
    created = subprocess.run([str(DOCQA), "--data-dir", str(data), "keys", "create", "--role", "admin", "--name", "browser"],
                             env=_env(), check=True, capture_output=True, text=True)
    key = re.search(r"dqa_\S+", created.stdout).group(0)
    with _serving(data, DOCQA_AUTH__ENABLED="true") as base:
        yield base, key


@pytest.fixture(scope="module")
def scripted_server(ingested: Path) -> Iterator[tuple[str, ScriptedLLM]]:
    """The chat page over the samples, answering through a scripted LLM (tests/scripted_llm.py); (base URL, LLM)."""
    data = ingested.parent / "scripted" / "data"
    shutil.copytree(ingested, data)
    with ScriptedLLM() as llm, _serving(data, **llm.env()) as base:
        yield base, llm


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """A fresh headless Chromium profile."""
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


class ConsoleErrors(list):
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: object) -> None:
        super().__init__()
        page.on("console", lambda m: m.type == "error" and self.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.append(f"pageerror: {e}"))


def _open_chat(browser: object, server: str) -> tuple[object, ConsoleErrors]:
    page = browser.pages[0] if browser.pages else browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(f"{server}/")
    try:
        page.wait_for_selector("#collection option[value='default']", state="attached", timeout=20_000)
    except sync_api.TimeoutError:
        raise AssertionError(f"the page did not list the collections; errors: {errors}") from None
    return page, errors


def _ask(page: object, question: str) -> object:
    """Type a question, press Enter, wait for its answer to finish; the answer element."""
    before = page.locator(".message.assistant").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".message.assistant").nth(before)
    answer.wait_for()
    page.wait_for_function(
        "n => document.querySelectorAll('.message.assistant')[n]?.getAttribute('aria-busy') === 'false'", arg=before,
    )
    return answer


def test_asking_streams_a_cited_answer_and_opens_its_passage(browser: object, server: str, tmp_path: Path) -> None:
    page, errors = _open_chat(browser, server)
    streamed: list[str] = []
    page.on("response", lambda r: "text/event-stream" in (r.headers.get("content-type") or "") and streamed.append(r.url))

    answer = _ask(page, "How many GPUs was the Atlas model trained on?")
    assert "64" in answer.locator(".answer-text").inner_text()
    assert streamed, "the answer did not come as Server-Sent Events"
    chip = answer.locator(".chip").first
    assert chip.is_visible()
    assert answer.locator(".cite-marker").count() >= 1

    chip.click()
    panel = page.locator("#passage-panel")
    panel.wait_for(state="visible")
    assert "Project Atlas: Final Report" in page.locator("#passage-title").inner_text()
    meta = page.locator("#passage-meta").inner_text()
    assert "page 2" in meta or "p. 2" in meta
    assert "64 GPUs" in page.locator("#passage-text mark").first.inner_text()
    assert page.locator("#passage-link").get_attribute("href").endswith("/file#page=2")
    page.screenshot(path=str(tmp_path / "passage.png"))
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")

    follow_up = _ask(page, "and for how many days?")
    assert follow_up.locator(".answer-text").inner_text().strip()
    if _has_conversations(server):
        searched = follow_up.locator(".searched-for")
        assert searched.is_visible()
        assert any(term in searched.inner_text() for term in ("Atlas", "GPUs"))
        assert page.locator(".conversation-open[aria-current='true']").count() == 1
    page.screenshot(path=str(tmp_path / "desktop.png"))
    assert errors == []


def test_an_unanswerable_question_abstains_with_closest_passages(browser: object, server: str) -> None:
    page, errors = _open_chat(browser, server)
    answer = _ask(page, "What is the capital of France?")
    assert "Not found in the documents" in answer.inner_text()
    assert answer.locator(".chip").count() >= 1
    assert errors == []


def test_a_reopened_conversation_shows_its_turns(browser: object, server: str) -> None:
    if not _has_conversations(server):
        pytest.skip("this server doesn't keep conversations")
    page, errors = _open_chat(browser, server)
    _ask(page, "How much did the Atlas project cost?")
    page.click("#new-conversation")
    assert page.locator(".message").count() == 0
    page.locator(".conversation-open", has_text="How much did the Atlas project cost?").first.click()
    page.locator(".message.user", has_text="How much did the Atlas project cost?").wait_for()
    assert page.locator(".message.assistant .chip").count() >= 1
    assert errors == []


def test_the_page_fits_a_phone_and_hides_the_sidebar_behind_a_toggle(browser: object, server: str, tmp_path: Path) -> None:
    page, errors = _open_chat(browser, server)
    page.set_viewport_size({"width": 375, "height": 740})
    _ask(page, "How many GPUs was the Atlas model trained on?")
    page.wait_for_timeout(300)  # let the sidebar's slide-out transition end
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 376
    assert not page.locator("#sidebar").is_visible()
    page.screenshot(path=str(tmp_path / "phone.png"))

    page.click("#sidebar-toggle")
    page.locator("#new-conversation").wait_for(state="visible")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "true"
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")

    page.locator(".message.assistant .chip").first.click()
    page.locator("#passage-panel").wait_for(state="visible")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 376
    page.screenshot(path=str(tmp_path / "phone-passage.png"))
    assert errors == []


def test_keyboard_alone_can_ask_and_open_a_citation(browser: object, server: str) -> None:
    page, errors = _open_chat(browser, server)
    page.wait_for_function("document.activeElement.id === 'question'")
    _ask(page, "How many GPUs was the Atlas model trained on?")
    page.locator(".message.assistant .cite-marker").first.focus()
    page.keyboard.press("Enter")
    page.locator("#passage-panel").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "passage-title"
    page.keyboard.press("Escape")
    page.locator("#passage-panel").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('cite-marker')")
    assert errors == []


def test_an_answer_is_rated_down_with_a_comment_by_keyboard_and_the_rating_is_stored(browser: object, server: str,
                                                                                     tmp_path: Path) -> None:
    page, errors = _open_chat(browser, server)
    answer = _ask(page, "How many GPUs was the Atlas model trained on?")
    group = answer.locator(".feedback[role='group']")
    answer_id = group.get_attribute("data-answer-id")
    up, down = group.locator("button[data-rating='up']"), group.locator("button[data-rating='down']")
    assert (up.get_attribute("aria-label"), down.get_attribute("aria-label")) == ("Good answer", "Bad answer")
    assert up.get_attribute("aria-pressed") == down.get_attribute("aria-pressed") == "false"
    assert not group.locator("textarea").is_visible()  # the comment box comes with a rating

    down.focus()
    page.keyboard.press("Enter")
    sync_api.expect(down).to_have_attribute("aria-pressed", "true")
    sync_api.expect(up).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    page.keyboard.type("It says 64 GPUs but not for how long.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Send comment"
    sync_api.expect(group.locator(".feedback-status")).to_have_text("Thanks: rating and comment saved.")
    page.screenshot(path=str(tmp_path / "feedback.png"))
    stored = httpx.get(f"{server}/v1/answers/{answer_id}", timeout=10).json()
    assert [(f["rating"], f["comment"]) for f in stored["feedback"]] == [("down", "It says 64 GPUs but not for how long.")]
    assert stored["question"] == "How many GPUs was the Atlas model trained on?" and "64" in stored["answer"]

    up.click()  # changing one's mind replaces the rating
    sync_api.expect(up).to_have_attribute("aria-pressed", "true")
    sync_api.expect(down).to_have_attribute("aria-pressed", "false")
    stored = httpx.get(f"{server}/v1/answers/{answer_id}", timeout=10).json()
    assert [f["rating"] for f in stored["feedback"]] == ["up"]
    if _has_conversations(server):  # a reopened conversation's answers can be rated too
        page.click("#new-conversation")
        page.locator(".conversation-open").first.click()
        reopened = page.locator(f".feedback[data-answer-id='{answer_id}']")
        sync_api.expect(reopened).to_have_count(1)
    assert errors == []

def test_dropped_files_are_uploaded_and_their_ingestion_followed(browser: object, server: str, tmp_path: Path) -> None:
    page, errors = _open_chat(browser, server)
    note = tmp_path / "greenhouse.md"
    note.write_text("# Greenhouse\n\nThe greenhouse sensors report humidity every 90 seconds.\n", encoding="utf-8")
    bad = tmp_path / "notes.xyz"
    bad.write_text("not a document", encoding="utf-8")

    page.set_input_files("#file-input", [str(note), str(bad)])  # what a drop hands to the same upload code
    row = page.locator(".upload-row", has_text="greenhouse.md")
    sync_api.expect(row).to_have_attribute("data-status", "ingested")
    sync_api.expect(row.locator(".upload-status")).to_contain_text("ingested")
    failed = page.locator(".upload-row", has_text="notes.xyz")
    sync_api.expect(failed).to_have_attribute("data-status", "failed")
    sync_api.expect(failed.locator(".upload-status")).to_contain_text("unsupported file type")
    page.locator("#collection option[value='default']", has_text=re.compile(r"\b([6-9]|\d\d) docs")).wait_for(state="attached")

    answer = _ask(page, "How often do the greenhouse sensors report humidity?")
    assert "90 seconds" in answer.locator(".answer-text").inner_text()
    assert [e for e in errors if "415" not in e and "422" not in e] == []


def test_passages_are_shown_as_text_never_as_html(browser: object, server: str, tmp_path: Path) -> None:
    page, errors = _open_chat(browser, server)
    hostile = tmp_path / "hostile.md"
    hostile.write_text(
        "# Hostile\n\nThe vault code is <img src=x onerror=\"window.__pwned=1\"> 4471 and <b>bold</b>.\n", encoding="utf-8",
    )
    page.set_input_files("#file-input", str(hostile))
    sync_api.expect(page.locator(".upload-row", has_text="hostile.md")).to_have_attribute("data-status", "ingested")
    answer = _ask(page, "What is the vault code?")
    answer.locator(".chip").first.click()
    page.locator("#passage-panel").wait_for(state="visible")
    assert "<b>bold</b>" in page.locator("#passage-text").inner_text()
    assert page.locator("#passage-text img, #passage-text b, .message img, .message b").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    assert errors == []


def _has_conversations(server: str) -> bool:
    return "/v1/conversations" in httpx.get(f"{server}/openapi.json", timeout=10).json()["paths"]


def test_with_api_keys_on_the_page_asks_for_a_key_and_sends_it_everywhere(browser: object, keyed_server: tuple[str, str]) -> None:
    base, key = keyed_server
    page = browser.pages[0] if browser.pages else browser.new_page()
    errors = ConsoleErrors(page)
    page.goto(f"{base}/")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.fill("#key-input", "dqa_wrong_key")
    page.click("#key-dialog button[value='ok']")
    dialog.wait_for(state="visible")  # refused again: asked again
    page.fill("#key-input", key)
    page.click("#key-dialog button[value='ok']")
    page.wait_for_selector("#collection option[value='default']", state="attached")
    assert page.evaluate("sessionStorage.getItem('docqa.apiKey')") == key

    answer = _ask(page, "How many GPUs was the Atlas model trained on?")
    assert "64" in answer.locator(".answer-text").inner_text()
    answer.locator(".chip").first.click()
    with page.expect_response(lambda r: r.url.endswith("/file")) as download, browser.expect_page() as popup:
        page.click("#passage-link")
    assert download.value.status == 200
    popup.value.wait_for_url(re.compile(r"^blob:"))  # fetched with the key, shown from a blob URL

    page.reload()
    page.wait_for_selector("#collection option[value='default']", state="attached")
    assert not dialog.is_visible()
    assert [e for e in errors if "401" not in e] == []  # the refused requests themselves are logged by Chromium


def test_highlighting_finds_the_cited_sentence_verbatim_else_the_closest_one(browser: object, server: str) -> None:
    page, errors = _open_chat(browser, server)
    marked = page.evaluate("""async () => {
        const h = await import("/static/highlight.js");
        const passage = "Training\\nThe model was trained on 64 GPUs\\nfor 9 days. The corpus held 410 billion tokens.";
        const pick = (claims) => h.segments(passage, h.highlightRanges(passage, claims)).filter(s => s.marked).map(s => s.text);
        return {
            citing: h.sentencesCiting("It used 64 GPUs [2]. The model was trained on 64 GPUs for 9 days. [1]", 1),
            verbatim: pick(["The model was trained on 64 GPUs for 9 days."]),
            overlap: pick(["Atlas saw 410 billion tokens in its corpus"]),
            nothing: pick(["completely unrelated words"]),
            markers: h.markerPieces("Yes [1, 3].").filter(p => p.marker).map(p => p.marker),
        };
    }""")
    assert marked["citing"] == ["The model was trained on 64 GPUs for 9 days."]
    assert marked["verbatim"] == ["The model was trained on 64 GPUs\nfor 9 days."]
    assert marked["overlap"] == ["The corpus held 410 billion tokens."]
    assert marked["nothing"] == []
    assert marked["markers"] == [[1, 3]]
    assert errors == []


def test_without_saved_conversations_the_page_asks_through_v1_ask(browser: object, server: str) -> None:
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.route("**/openapi.json", lambda route: route.fulfill(json={"paths": {"/v1/ask": {}}}))  # an older server
    asked: list[str] = []
    page.on("request", lambda r: r.method == "POST" and asked.append(r.url.removeprefix(server)))
    errors = ConsoleErrors(page)
    page.goto(f"{server}/")
    page.wait_for_selector("#collection option[value='default']", state="attached")
    answer = _ask(page, "How many GPUs was the Atlas model trained on?")
    assert "64" in answer.locator(".answer-text").inner_text()
    assert asked == ["/v1/ask"]
    assert "doesn't keep conversations" in page.locator("#history-note").inner_text()
    assert errors == []


def test_an_unsupported_citation_is_shown_apart_from_a_supported_one(browser: object, scripted_server, tmp_path: Path) -> None:
    """The LLM backs its first claim with the passage that states it and cites a passage lacking it for the second:
    that citation's marker and chip are marked, named and titled as not supported, and its passage says so."""
    base, llm = scripted_server
    fact = "64 GPUs"
    llm.reply = lambda p: f"The Atlas model was trained on {fact} [{p.holding(fact)}]. Its training used {fact} [{p.lacking(fact)}]."
    page, errors = _open_chat(browser, base)
    answer = _ask(page, "How many GPUs was the Atlas model trained on?")
    right, wrong = llm.prompts[-1].holding(fact), llm.prompts[-1].lacking(fact)
    unsupported = page.evaluate("import('/static/messages.js').then(m => m.UNSUPPORTED)")

    for kind in (".cite-marker", ".chip"):
        good, bad = answer.locator(f"{kind}[data-n='{right}']"), answer.locator(f"{kind}[data-n='{wrong}']")
        sync_api.expect(bad).to_have_class(re.compile(r"\bunsupported\b"))
        sync_api.expect(good).not_to_have_class(re.compile(r"\bunsupported\b"))
        assert bad.get_attribute("aria-label").endswith("(not supported by this passage)")
        assert "not supported" not in good.get_attribute("aria-label")
        assert bad.get_attribute("title") == unsupported and good.get_attribute("title") is None
        looks = "e => { const s = getComputedStyle(e); return [s.borderStyle, s.textDecorationLine, s.color]; }"
        assert bad.evaluate(looks) != good.evaluate(looks), kind  # seen apart, not only named apart
    assert answer.locator(f".chip[data-n='{wrong}'] .chip-flag").inner_text() == "not supported"
    assert answer.locator(f".chip[data-n='{right}'] .chip-flag").count() == 0
    assert "Its training used 64 GPUs." in answer.locator(".note.warn").inner_text()
    page.screenshot(path=str(tmp_path / "unsupported.png"))

    answer.locator(f".chip[data-n='{wrong}']").click()
    support = page.locator("#passage-support")
    sync_api.expect(support).to_be_visible()
    sync_api.expect(support).to_have_text(unsupported)
    page.keyboard.press("Escape")
    answer.locator(f".chip[data-n='{right}']").click()
    sync_api.expect(support).to_be_hidden()
    assert errors == []


def _deck(path: Path) -> None:
    """A two-slide deck whose second slide holds the fact the test asks about."""
    from pptx import Presentation

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Orion review"
    first.placeholders[1].text = "The Orion programme started in spring."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Training"
    second.placeholders[1].text = "The Orion model was trained on 384 GPUs for nine days."
    deck.save(str(path))


def _scan(path: Path) -> None:
    """A picture of a typed sentence: text only OCR can read."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1400, 200), 255)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    ImageDraw.Draw(image).text((40, 70), "The Lyra archive holds 73 boxes of letters.", font=font, fill=0)
    image.save(path)


@pytest.fixture(scope="module")
def formats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The chat page over a slide deck, a sheet and a scanned image (no samples)."""
    root = tmp_path_factory.mktemp("formats-page")
    docs = root / "docs"
    docs.mkdir()
    _deck(docs / "orion.pptx")
    (docs / "revenue.csv").write_text("Region,Q3 revenue\nNorth,4.2M\nSouth,3.1M\n", encoding="utf-8")
    _scan(docs / "lyra-memo.png")
    data = root / "data"
    subprocess.run([str(DOCQA), "--data-dir", str(data), "ingest", str(docs)], env=_env(), check=True, capture_output=True)
    with _serving(data) as base:
        yield base


def _open_first_chip(page: object, answer: object) -> str:
    """Open the answer's first citation; the passage panel's meta line."""
    answer.locator(".chip").first.click()
    page.locator("#passage-panel").wait_for(state="visible")
    return page.locator("#passage-meta").inner_text()


def test_citations_name_their_slide_and_mark_text_read_by_ocr(browser: object, formats_server: str) -> None:
    page, errors = _open_chat(browser, formats_server)
    answer = _ask(page, "How many GPUs was the Orion model trained on?")
    assert "384" in answer.locator(".answer-text").inner_text()
    assert "slide 2" in answer.locator(".chip").first.inner_text()
    meta = _open_first_chip(page, answer)
    assert "slide 2" in meta and "OCR" not in meta
    link = page.locator("#passage-link")
    assert link.inner_text() == "Open the source (slide 2)" and not link.get_attribute("href").endswith("#page=2")
    page.keyboard.press("Escape")

    scanned = _ask(page, "How many boxes does the Lyra archive hold?")
    assert "73" in scanned.locator(".answer-text").inner_text()
    assert "read by OCR" in _open_first_chip(page, scanned)
    page.keyboard.press("Escape")

    rows = _ask(page, "What was the Q3 revenue of the North region?")
    assert "rows" in rows.locator(".chip").first.inner_text() or "row 2" in rows.locator(".chip").first.inner_text()
    assert errors == []


def test_the_upload_form_accepts_what_the_registry_reads(browser: object, formats_server: str) -> None:
    page, errors = _open_chat(browser, formats_server)
    listed = httpx.get(f"{formats_server}/v1/formats").json()
    suffixes = [s for f in listed for s in f["suffixes"]]
    page.wait_for_function("n => document.getElementById('file-input').accept.split(',').length === n", arg=len(suffixes))
    assert page.locator("#file-input").get_attribute("accept").split(",") == suffixes
    hint = page.locator("#upload-hint").text_content()
    assert all(f["name"] in hint for f in listed) and ".pptx" in suffixes and errors == []


def test_a_reranker_that_fails_shows_as_a_warning_beside_the_answer(browser: object, ingested: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the re-ranking server is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = ingested.parent / "reranker-down" / "data"
    shutil.copytree(ingested, data)
    down = {"DOCQA_RERANKER__BACKEND": "http", "DOCQA_RERANKER__MODEL": "bge-reranker",
            "DOCQA_RERANKER__BASE_URL": f"http://127.0.0.1:{port}", "DOCQA_RERANKER__RETRIES": "0"}
    with _serving(data, **down) as base:
        page, errors = _open_chat(browser, base)
        answer = _ask(page, "How many GPUs was the Atlas model trained on?")
        assert "64" in answer.locator(".answer-text").inner_text()  # answered all the same, in fused order
        warning = answer.locator(".answer-warning")
        assert warning.count() == 1 and "re-ranking failed" in warning.inner_text()
        assert errors == []
