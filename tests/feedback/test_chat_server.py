"""Tests for ovip.services.chat_server: a real OpenAI-compatible server on a local socket."""

import httpx
import openai
import pytest

from ovip.services.chat_server import ReplyError, make_app, serve_in_thread


def test_replies_to_the_openai_client():
    seen = []

    def reply(messages, params):
        seen.append((messages, params))
        return "hello"

    with serve_in_thread(make_app(reply)) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.1, max_tokens=4
        )
    assert completion.choices[0].message.content == "hello"
    messages, params = seen[0]
    assert messages == [{"role": "user", "content": "hi"}]
    assert params["temperature"] == 0.1 and params["max_tokens"] == 4 and params["model"] == "m"


def test_errors_become_http_statuses():
    def reply(messages, params):
        if messages[0]["content"] == "busy":
            raise ReplyError(429, "slow down")
        raise ValueError("broken")

    with serve_in_thread(make_app(reply)) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "busy"}])
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert httpx.get(base_url + "/models").json()["data"][0]["id"] == "ovip-local"
        assert httpx.post(base_url + "/chat/completions", content=b"not json").status_code == 400


def test_server_stops_on_exit():
    with serve_in_thread(make_app(lambda m, p: "x")) as base_url:
        assert httpx.get(base_url.removesuffix("/v1") + "/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url.removesuffix("/v1") + "/health", timeout=1.0)
