"""Follow-up questions become standalone: by rule with the extractive generator, by the LLM otherwise."""

from __future__ import annotations

import pytest

from service.chat import is_follow_up, rewrite_follow_up
from service.generators.openai_compat import OpenAICompatibleGenerator
from service.generators.prompt import clean_rewrite


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


@pytest.mark.llm
def test_the_openai_backend_rewrites_follow_ups_with_the_real_model(llama_server):
    generator = OpenAICompatibleGenerator(llama_server, "smollm2", timeout=60)
    rewritten = generator.rewrite_question("and for how many days?", ["How many GPUs was the Atlas model trained on?"])
    assert isinstance(rewritten, str) and rewritten.strip()
    assert "\n" not in rewritten and len(rewritten) <= 500
