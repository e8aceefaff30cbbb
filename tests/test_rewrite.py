"""Follow-up questions become standalone: by rule with the extractive generator, by the LLM otherwise, and by the
rule again when the LLM cannot be reached (Answerer.rewrite)."""

from __future__ import annotations

import httpx
import pytest
from scripted_llm import FakeOpenAI

from service.answer import Answerer
from service.chat import is_follow_up, rewrite_follow_up
from service.generators.openai_compat import OpenAICompatibleGenerator
from service.generators.prompt import REWRITE_PROMPT, build_rewrite_messages, clean_rewrite
from service.generators.registry import GeneratorRegistry
from service.settings import AbstentionConfig, GeneratorConfig, RetrievalConfig

PREVIOUS = ["How many GPUs was the Atlas model trained on?"]
FOLLOW_UP = "and for how many days?"
LOADED_MACHINE_TIMEOUT = 300.0  # a second or two normally; a CI machine under load can be far slower


def test_a_follow_up_carries_the_previous_questions_key_terms():
    rewritten = rewrite_follow_up("and for how many days?", ["How many GPUs was the Atlas model trained on?"])
    assert rewritten.startswith("and for how many days?")
    assert "Atlas" in rewritten and "GPUs" in rewritten


def test_a_standalone_question_is_left_alone():
    previous = ["How many GPUs was the Atlas model trained on?"]
    assert rewrite_follow_up("How many nodes does the staging cluster have?", previous) == (
        "How many nodes does the staging cluster have?"
    )


def test_portuguese_follow_ups_are_recognised():
    assert is_follow_up("e o aviso prévio?")
    rewritten = rewrite_follow_up("e o aviso prévio?", ["Quantos dias de férias por ano?"])
    assert "férias" in rewritten


def test_pronouns_mark_a_follow_up_but_full_questions_do_not():
    assert is_follow_up("Who led it?")
    assert not is_follow_up("Which deploy tool does the platform team use for releases?")


def test_the_first_question_is_never_rewritten():
    assert rewrite_follow_up("and for how many days?", []) == "and for how many days?"


def test_an_llm_rewrite_is_cleaned_to_one_line_or_falls_back():
    assert clean_rewrite('"How long was Atlas trained?"\nExplanation: ...', "x") == "How long was Atlas trained?"
    assert clean_rewrite("   ", "fallback") == "fallback"


def answerer(store, url: str) -> Answerer:
    """An Answerer whose default generator is the OpenAI-compatible server at `url` (no retries)."""
    openai = {"base_url": url, "model": "fake-model", "timeout": 10.0, "retries": 0}
    generators = GeneratorRegistry(GeneratorConfig(backend="openai", enabled=["extractive", "openai"], openai=openai))
    return Answerer(store, generators, RetrievalConfig(), AbstentionConfig())


def test_an_llm_rewrite_is_the_first_line_of_the_models_reply_unquoted(store) -> None:
    with FakeOpenAI() as fake:
        fake.reply = ('"How many days was the Atlas ', 'model trained?"\nExplanation: "and for" refers to', " Atlas.")
        assert answerer(store, fake.url).rewrite(FOLLOW_UP, PREVIOUS) == "How many days was the Atlas model trained?"
    [request] = fake.requests
    system, user = request["body"]["messages"]
    assert system["content"] == REWRITE_PROMPT and PREVIOUS[0] in user["content"] and FOLLOW_UP in user["content"]


@pytest.mark.parametrize(
    "reply", [(), ("  ", "\n\n"), ('""',), ("How many days " * 40 + "?",)], ids=["empty", "blank", "quotes", "overlong"]
)
def test_an_unusable_llm_rewrite_leaves_the_question_as_asked(store, reply: tuple[str, ...]) -> None:
    with FakeOpenAI() as fake:
        fake.reply = reply
        assert answerer(store, fake.url).rewrite(FOLLOW_UP, PREVIOUS) == FOLLOW_UP
    assert len(fake.requests) == 1


def test_an_unreachable_llm_falls_back_to_the_rule(store) -> None:
    with FakeOpenAI() as fake:
        fake.script = ["error500"]
        rewritten = answerer(store, fake.url).rewrite(FOLLOW_UP, PREVIOUS)
    assert len(fake.requests) == 1
    assert rewritten.startswith(FOLLOW_UP) and "Atlas" in rewritten and "GPUs" in rewritten


def test_the_extractive_generator_and_a_first_question_never_ask_the_llm(store) -> None:
    with FakeOpenAI() as fake:
        asking = answerer(store, fake.url)
        by_rule = asking.rewrite(FOLLOW_UP, PREVIOUS, generator="extractive")
        first = asking.rewrite(FOLLOW_UP, [])
    assert fake.requests == []
    assert by_rule.startswith(FOLLOW_UP) and "Atlas" in by_rule and "GPUs" in by_rule
    assert first == FOLLOW_UP


@pytest.mark.llm
def test_the_openai_backend_rewrites_with_the_first_line_of_the_real_models_reply(llama_server: str) -> None:
    """SmolLM2 (135M) seldom resolves the reference, so what is held is what the code guarantees: the rewrite is
    the first line of the model's reply, here asked again directly, non-streamed, both greedy."""
    generator = OpenAICompatibleGenerator(llama_server, "smollm2", timeout=LOADED_MACHINE_TIMEOUT, temperature=0.0)
    rewritten = generator.rewrite_question(FOLLOW_UP, PREVIOUS)
    body = {"model": "smollm2", "messages": build_rewrite_messages(FOLLOW_UP, PREVIOUS), "temperature": 0.0,
            "max_tokens": 96}
    direct = httpx.post(f"{llama_server}/chat/completions", json=body, timeout=LOADED_MACHINE_TIMEOUT)
    reply = direct.json()["choices"][0]["message"]["content"]
    first_line = reply.strip().splitlines()[0].strip().strip("\"'")
    assert 0 < len(first_line) <= 500, reply  # usable, so the question is not simply handed back
    assert rewritten == first_line, reply
