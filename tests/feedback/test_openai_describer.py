"""Tests for ovip.feedback.openai_describer against a real local chat server."""

from ovip.feedback.openai_describer import OpenAIDescriber
from ovip.feedback.prompts import description_prompt
from ovip.services.chat_server import make_app, serve_in_thread


def test_rejected_goes_in_the_answer_slot_with_paper_settings():
    seen = []

    def reply(messages, params):
        seen.append((messages, params))
        return "**<Output Description>**\nA plate with an egg sandwich.\n\n**Explanation**: egg."

    with serve_in_thread(make_app(reply)) as base_url:
        describer = OpenAIDescriber(base_url, model="qwen", max_retries=0)
        description = describer.describe("What is on the sandwich?", chosen="Lettuce.", rejected="An egg.")
    assert description.ok and description.text == "A plate with an egg sandwich."
    assert description.raw.startswith("**<Output Description>**")
    messages, params = seen[0]
    prompt = messages[0]["content"]
    # the authors' deliberate swap: the image must make the REJECTED answer right
    assert prompt == description_prompt("What is on the sandwich?", answer="An egg.", response="Lettuce.")
    assert prompt.endswith("**<Answer>**\nAn egg.\n**<Response>**\nLettuce.\n")
    assert (params["temperature"], params["top_p"], params["max_tokens"]) == (0.1, 0.9, 128)
    assert (describer.calls, describer.failures) == (1, 0)


def test_failures_are_values():
    def reply(messages, params):
        if "crash" in messages[0]["content"]:
            raise RuntimeError("down")
        return "**<Output Description>**\n**Explanation**: nothing to describe"

    with serve_in_thread(make_app(reply)) as base_url:
        describer = OpenAIDescriber(base_url, model="m", max_retries=0)
        crashed = describer.describe("crash", "a", "b")
        empty = describer.describe("Q", "a", "b")
    assert crashed.text is None and not crashed.ok and "HTTP 500" in crashed.error
    assert empty.text is None and "no description" in empty.error and empty.raw
    assert (describer.calls, describer.failures) == (2, 2)


def test_a_reply_longer_than_asked_or_a_verdict_is_a_failure():
    """The describer asks for 128 tokens; a 50 MB reply is refused by size (the client stops reading at
    max_reply_bytes) and a 200-word one by length; "Score: -1" is not a description."""
    replies = {"huge": "a " * 25_000_000, "long": "a red cube . " * 50, "verdict": "Score: -1"}

    def reply(messages, params):  # the question names the reply
        return replies[messages[0]["content"].rsplit("**<Question>**\n", 1)[1].split("\n")[0]]

    with serve_in_thread(make_app(reply)) as url:
        describer = OpenAIDescriber(url, model="m", max_retries=0)
        got = {name: describer.describe(name, "chosen", "rejected") for name in replies}
    assert "max_reply_bytes" in got["huge"].error
    assert "longer than max_tokens=128" in got["long"].error
    assert "judge verdict" in got["verdict"].error
    assert all(not d.ok for d in got.values()) and (describer.calls, describer.failures) == (3, 3)
