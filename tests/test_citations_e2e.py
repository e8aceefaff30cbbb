"""Citation checks end to end: a real `docqa serve` with the `openai` generator pointed at a scripted LLM
(tests/scripted_llm.py) whose answers each test chooses, over real ingested documents with distinct facts.
The extractive generator's citations are right by construction; an LLM's may be wrong, dangling or missing,
and what the API reports about them is what is under test here."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import httpx
import pytest
from scripted_llm import Prompt, ScriptedLLM
from server import DocqaServer, ask, read_sse, wait_for_job

from service.citations import SUPPORT_THRESHOLD
from service.generators.base import Passage
from service.generators.openai_compat import OpenAICompatibleGenerator

pytestmark = pytest.mark.slow

DOCUMENTS = {
    "ops.md": "# Staging cluster\n\nThe staging cluster has 12 nodes. It runs in the Frankfurt region.\n",
    "billing.md": "# Billing\n\nInvoices are sent on the third business day of each month. "
                  "Late payments cost a fee of 2 percent.\n",
    "holidays.md": "# Holidays\n\nEvery employee gets 25 days of paid holiday per year.\n",
}
QUESTION = "How many nodes does the staging cluster have?"
FACT = "12 nodes"  # stated by ops.md alone (and "Frankfurt" too)
CLAIM = "The staging cluster has 12 nodes."


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture(scope="module")
def client(llm: ScriptedLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """docqa serve over the three documents, answering through the scripted LLM."""
    with DocqaServer(tmp_path_factory.mktemp("citations"), env=llm.env()) as server:
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            files = [("files", (name, text.encode())) for name, text in DOCUMENTS.items()]
            job = c.post("/v1/collections/default/documents", files=files)
            assert job.status_code == 202, job.text
            assert wait_for_job(c, job.json()["id"])["state"] == "succeeded"
            yield c


def answered(client: httpx.Client, llm: ScriptedLLM, reply: Callable[[Prompt], str]) -> tuple[dict[str, Any], Prompt]:
    """docqa's answer to QUESTION when the LLM replies with `reply(prompt)`, and the prompt it was given."""
    llm.reply = reply
    before = len(llm.prompts)
    answer = ask(client, QUESTION)
    assert len(llm.prompts) == before + 1 and llm.prompts[-1].question == QUESTION
    assert answer["generator"] == "openai" and not answer["abstained"], answer
    return answer, llm.prompts[-1]


def by_n(answer: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["n"]: c for c in answer["citations"]}


def test_a_right_citation_is_supported(client, llm) -> None:
    answer, prompt = answered(client, llm, lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}].")
    fact = prompt.holding(FACT)
    assert [n for n, text in prompt.passages.items() if FACT in text] == [fact]  # one passage states it
    citations = by_n(answer)
    assert answer["answer"] == f"{CLAIM[:-1]} [{fact}]."
    assert citations[fact]["cited"] is True and citations[fact]["supported"] is True
    assert citations[fact]["support"] >= SUPPORT_THRESHOLD
    assert all(not c["cited"] and c["supported"] is None for n, c in citations.items() if n != fact)
    assert answer["unsupported_claims"] == [] and answer["answer_support"] >= SUPPORT_THRESHOLD


def test_a_planted_wrong_citation_is_flagged(client, llm) -> None:
    """The claim cites another passage; the fact is in its own."""
    answer, prompt = answered(client, llm, lambda p: f"{CLAIM[:-1]} [{p.lacking(FACT)}].")
    wrong, fact = prompt.lacking(FACT), prompt.holding(FACT)
    citations = by_n(answer)
    assert citations[wrong]["cited"] is True and citations[wrong]["supported"] is False
    assert citations[fact]["cited"] is False and citations[fact]["supported"] is None
    assert answer["unsupported_claims"] == [CLAIM]


def test_in_one_answer_the_right_citation_holds_and_the_wrong_one_is_flagged(client, llm) -> None:
    def reply(p: Prompt) -> str:
        return f"{CLAIM[:-1]} [{p.holding(FACT)}]. It runs in the Frankfurt region [{p.lacking('Frankfurt')}]."

    answer, prompt = answered(client, llm, reply)
    citations = by_n(answer)
    assert citations[prompt.holding(FACT)]["supported"] is True
    assert citations[prompt.lacking("Frankfurt")]["supported"] is False
    assert answer["unsupported_claims"] == ["It runs in the Frankfurt region."]


def test_a_dangling_marker_is_removed(client, llm) -> None:
    answer, prompt = answered(client, llm, lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}][7].")
    assert 7 not in prompt.passages and "[7]" not in answer["answer"]
    assert answer["answer"] == f"{CLAIM[:-1]} [{prompt.holding(FACT)}]."
    assert 7 not in by_n(answer) and answer["unsupported_claims"] == []


def test_a_claim_citing_only_a_dangling_marker_is_reported_as_uncited(client, llm) -> None:
    answer, _ = answered(client, llm, lambda p: f"{CLAIM[:-1]} [7].")
    assert answer["answer"] == CLAIM
    assert not any(c["cited"] for c in answer["citations"])
    assert answer["unsupported_claims"] == [CLAIM] and answer["answer_support"] == 0.0


def test_an_uncited_claim_is_reported(client, llm) -> None:
    answer, prompt = answered(client, llm, lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}]. Each node has 64 GB of memory.")
    assert by_n(answer)[prompt.holding(FACT)]["supported"] is True
    assert answer["unsupported_claims"] == ["Each node has 64 GB of memory."]


def test_answer_support_falls_as_claims_go_unsupported(client, llm) -> None:
    frankfurt = "It runs in the Frankfurt region"
    replies = [
        lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}]. {frankfurt} [{p.holding('Frankfurt')}].",  # both backed
        lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}]. {frankfurt} [{p.lacking('Frankfurt')}].",  # one wrong
        lambda p: f"{CLAIM[:-1]} [{p.lacking(FACT)}]. {frankfurt} [{p.lacking('Frankfurt')}].",  # both wrong
    ]
    answers = [answered(client, llm, reply)[0] for reply in replies]
    assert [len(a["unsupported_claims"]) for a in answers] == [0, 1, 2]
    support = [a["answer_support"] for a in answers]
    assert support[0] > support[1] > support[2], support
    assert support[0] >= SUPPORT_THRESHOLD > support[2]


@pytest.mark.parametrize("reply", [
    lambda p: f"{CLAIM[:-1]} [{p.holding(FACT)}].",
    lambda p: f"{CLAIM[:-1]} [{p.lacking(FACT)}][7]. Each node has 64 GB of memory.",
], ids=["supported", "wrong-dangling-uncited"])
def test_the_streamed_answer_agrees_with_the_json_one(client, llm, reply) -> None:
    plain, _ = answered(client, llm, reply)
    with client.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        events = read_sse(response)
    raw = reply(llm.prompts[-1])
    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    assert "".join(data["text"] for _, data in events[1:-1]) == raw  # the LLM's own text, markers and all
    done = events[-1][1]
    assert set(done) == set(plain)
    own = ("timings", "answer_id")  # each answer is timed and recorded apart
    assert {k: v for k, v in done.items() if k not in own} == {k: v for k, v in plain.items() if k not in own}
    assert done["answer_id"] != plain["answer_id"] and done["answer_id"].startswith("ans_")


def test_a_question_the_documents_cannot_answer_abstains_before_the_llm_is_asked(client, llm) -> None:
    llm.reply = lambda p: f"The Recife cluster has 12 nodes [{p.holding(FACT)}]."
    before = len(llm.prompts)
    answer = ask(client, "How many nodes does the Recife cluster have?")
    assert answer["abstained"] and answer["reason"] == "no passage mentions 'Recife'" and answer["answer"] == ""
    assert len(llm.prompts) == before and answer["answer_support"] is None


def test_the_scripted_llm_replies_with_the_chosen_text_streamed_or_not(llm) -> None:
    """The fixture itself: docqa's own generator reads its stream, a plain client its JSON completion."""
    llm.reply = lambda p: f"{len(p.passages)} passages for {p.question!r} [1]."
    passages = [Passage(1, "One.", "A", "a.md"), Passage(2, "Two.", "B", "b.md")]
    generator = OpenAICompatibleGenerator(llm.url, "scripted", retries=0)
    assert "".join(generator.generate("Why?", passages)) == "2 passages for 'Why?' [1]."
    assert llm.prompts[-1].passages == {1: "One.", 2: "Two."}
    body = {"model": "scripted", "messages": [{"role": "user", "content": "Hello"}]}
    reply = httpx.post(f"{llm.url}/chat/completions", json=body, timeout=10)
    assert reply.json()["choices"][0]["message"]["content"] == "0 passages for '' [1]."
