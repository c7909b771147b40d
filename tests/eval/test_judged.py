"""Judge-based benchmarks (MMHal, LLaVA-Bench) on canned replies, and the judge client against a local server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ovip.config import EvalJudgeConfig
from ovip.eval.judge_client import chat
from ovip.eval.llava_bench import parse_review, relative_scores, review_messages
from ovip.eval.mmhal import QUESTION_TYPES, mmhal_messages, mmhal_summary, parse_rating


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("The answer is accurate.\nRating: 5", 5),
        ("**Rating**: 2", 2),
        ("... **Rating: 6**", 6),
        ("rating: 4. Rating: 4", 4),  # the same k twice is still one rating
        ("Rating: 5.", 5),
        ("Rating: 4.5", None),
        ("Rating: 3 or Rating: 4", None),  # two different ratings: ambiguous
        ("I would give it a 5.", None),
        ("Rating: 7", None),
        ("Rating: 10", None),
        ("Rating: [4]", 4),
        ("Rating: 5/6", 5),  # the rubric's own scale
        ("Rating: 4 (0-6)", 4),
        ("Rating: 4/10", None),  # another scale: not a 4 on the rubric's 0-6
        ("Rating: 4 out of 10", None),
        ("Rating: 2 (out of 5)", None),
        ("Rating: 4\u204410", None),  # fraction slash
        ("Rating: 3-4", None),  # a range
        ("Rating: 3 or 4", None),
        ("Rating: -1", None),
        ("Rating: \uff14", None),  # full-width digit
        ("Rating: 5\nRating: [x]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


def test_mmhal_summary_counts_failures_and_never_scores_them():
    """ratings 6, 2, None (judge reply without a rating), 0, 3:
    rated 4 -> score (6 + 2 + 0 + 3) / 4 = 2.75; hallucination rate = #{2, 0} / 4 = 50 %;
    informativeness = #(not 0 or 3) / 4 = #{6, 2} / 4 = 50 %; 1 failed."""
    replies = ["Rating: 6", "Rating: 2", "no verdict here", "Rating: 0", "Rating: 3"]
    s = mmhal_summary([parse_rating(r) for r in replies])
    assert (s["n"], s["n_rated"], s["n_failed"]) == (5, 4, 1)
    assert (s["score"], s["hallucination_rate"], s["informativeness"]) == (2.75, 50.0, 50.0)
    assert s["per_type"] == {
        QUESTION_TYPES[0]: 6.0,
        QUESTION_TYPES[1]: 2.0,
        QUESTION_TYPES[3]: 0.0,
        QUESTION_TYPES[4]: 3.0,
    }


def test_mmhal_messages_text_and_image():
    text = mmhal_messages("How many cats?", "Two.", "Three cats.", ["Cat", "Sofa"])
    assert "### Image Contents\nCat, Sofa" in text[0]["content"]
    mm = mmhal_messages("How many cats?", "Two.", "Three cats.", ["Cat"], image=b"\xff\xd8jpeg")
    head, image, rest = mm[0]["content"]
    assert (
        "### Image Contents" not in head["text"] and "Cat" not in rest["text"]
    )  # labels replaced by the image
    assert image["image_url"]["url"] == "data:image/jpeg;base64,/9hqcGVn"
    assert rest["text"].startswith("### Question\nHow many cats?") and "Three cats." in rest["text"]


def test_llava_bench_parse_and_relative_score():
    """Reviews: conv (8, 6), conv (9, 9), detail (10, 5), detail unparsable.
    conv relative = mean(6, 9) / mean(8, 9) * 100 = 7.5 / 8.5 = 88.2; detail = 5 / 10 = 50.0;
    all = mean(6, 9, 5) / mean(8, 9, 10) = 6.667 / 9 = 74.1 (ratio of means). With the original's
    [-1, -1] for the failure: all = (20 - 1) / 4 / ((27 - 1) / 4) = 19 / 26 = 73.1."""
    reviews = ["8 6\nAssistant 2 misses details.", "9,9\nboth good", "10 5", "Scores: 7 and 4"]
    pairs = [parse_review(r) for r in reviews]
    assert pairs == [(8.0, 6.0), (9.0, 9.0), (10.0, 5.0), None]
    out = relative_scores(pairs, ["conv", "conv", "detail", "detail"])
    assert (out["conv"]["relative"], out["detail"]["relative"], out["all"]["relative"]) == (88.2, 50.0, 74.1)
    assert out["all"]["n_failed"] == 1 and out["detail"]["n_failed"] == 1
    assert (
        relative_scores(pairs, ["conv", "conv", "detail", "detail"], include_failed=True)["all"]["relative"]
        == 73.1
    )
    assert (
        parse_review("8 6.") == (8.0, 6.0) and parse_review("8 6 7") is None and parse_review("8  6") is None
    )


@pytest.mark.parametrize(
    ("review", "pair"),
    [
        ("8 6", (8.0, 6.0)),
        ("8,6\nAssistant 2 is close.", (8.0, 6.0)),
        ("7.5 6.", (7.5, 6.0)),
        ("10 1\nOn a scale of 1 to 10 Assistant 2 is poor.", (10.0, 1.0)),
        ("80 60", None),  # another scale, read as 0-10 it would be 8 times the top
        ("8 11", None),
        ("-1 5", None),
        ("nan nan", None),
        ("inf 5", None),
        ("1e1 5", None),
        ("1_0 5", None),
        ("\uff18 \uff16", None),  # full-width digits
        ("8 6\nBoth are rated on a scale of 100.", None),
        ("8/10 6/10", None),
    ],
)
def test_llava_bench_parse_review_keeps_to_the_scale(review, pair):
    assert parse_review(review) == pair


def test_llava_bench_messages():
    system, user = review_messages(["line one", "line two"], "What is it?", "GPT-4 answer", "model answer")
    assert system["role"] == "system"
    c = user["content"]
    assert (
        c.index("[Context]\nline one\nline two")
        < c.index("[Assistant 1]\nGPT-4 answer")
        < c.index("[Assistant 2]\nmodel answer")
        < c.index("[System]\nWe would like")
    )


class _Server:
    """A local OpenAI-compatible endpoint: answers with `reply`, or HTTP 500 when `reply` is None."""

    def __init__(self):
        self.reply, self.requests = "Rating: 4", []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, self.headers.get("Authorization")))
                if outer.reply is None:
                    self.send_response(500)
                    self.end_headers()
                    return
                payload = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": outer.reply},
                            }
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


def test_judge_client_round_trip(server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    config = EvalJudgeConfig(
        base_url=server.url,
        model="judge-x",
        api_key_env="TEST_JUDGE_KEY",
        timeout=5,
        max_retries=0,
    )
    server.reply = "Great answer.\nRating: 4"
    reply = chat([{"role": "user", "content": "rate this"}], config, temperature=0.2)
    assert parse_rating(reply) == 4
    path, body, auth = server.requests[-1]
    assert path == "/v1/chat/completions" and body["model"] == "judge-x" and body["temperature"] == 0.2
    assert auth == "Bearer sk-test"


def test_judge_client_failure_is_a_value(server):
    config = EvalJudgeConfig(base_url=server.url, timeout=5, max_retries=1, retry_wait=0.01)
    server.reply = None
    before = len(server.requests)
    assert chat([{"role": "user", "content": "x"}], config) is None
    assert len(server.requests) - before == 2  # first attempt + 1 retry
    dead = EvalJudgeConfig(base_url="http://127.0.0.1:9/v1", timeout=1, max_retries=0)
    assert chat([{"role": "user", "content": "x"}], dead) is None
