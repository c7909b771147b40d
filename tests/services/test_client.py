"""The service transport: requests spread over replicas, a bound on requests in flight per replica, and
failover when a replica dies, all against real local servers."""

import signal
import socket
import threading
import time

from processes import ovip_serve

from ovip.config.world import WorldConfig
from ovip.negatives.http import HttpImageSynthesizer
from ovip.negatives.serve import WorldBackend, make_images_app
from ovip.services.chat import ChatClient
from ovip.services.chat_server import make_app, serve_in_thread
from ovip.services.client import CallLimits, ServiceClient, split_urls

HI = [{"role": "user", "content": "hi"}]


class Counting:
    """reply_fn that sleeps `seconds` and records how many requests it holds at once."""

    def __init__(self, seconds=0.1, text="ok"):
        self.seconds, self.text = seconds, text
        self.lock, self.now, self.peak, self.requests = threading.Lock(), 0, 0, 0

    def __call__(self, messages, params):
        with self.lock:
            self.now, self.requests = self.now + 1, self.requests + 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1
        return self.text


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_split_urls():
    assert split_urls("http://a/v1/, http://b/v1") == ["http://a/v1", "http://b/v1"]
    assert split_urls(["http://a/v1"]) == ["http://a/v1"]


def test_requests_spread_over_replicas_within_the_bound_per_replica():
    a, b = Counting(), Counting()
    with serve_in_thread(make_app(a)) as url_a, serve_in_thread(make_app(b)) as url_b:
        client = ChatClient(
            f"{url_a},{url_b}", "m", limits=CallLimits(timeout=5, max_retries=0), max_concurrency=3
        )
        start = time.monotonic()
        replies = client.complete_many([HI] * 12, concurrency=100)
        elapsed = time.monotonic() - start
    assert all(r.ok for r in replies)
    assert a.requests == b.requests == 6 and a.peak <= 3 and b.peak <= 3
    assert 2 * 0.1 <= elapsed < 12 * 0.1  # 6 in flight at once: two waves, not twelve


def test_two_threads_share_the_bound():
    server = Counting()
    with serve_in_thread(make_app(server)) as url:
        client = ChatClient(url, "m", limits=CallLimits(timeout=5, max_retries=0), max_concurrency=2)
        threads = [threading.Thread(target=client.complete_many, args=([HI] * 4,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert server.requests == 8 and server.peak == 2


def test_failover_when_a_replica_is_dead_or_dies():
    live = Counting(seconds=0.0)
    with serve_in_thread(make_app(live)) as url:
        # max_retries 0: a refused connection still moves to the other replica at once (one failover each)
        client = ServiceClient(f"{dead_url()},{url}", limits=CallLimits(timeout=5, max_retries=0))
        outcomes = client.call_many(
            "/chat/completions", [{"model": "m", "messages": HI}] * 6, lambda raw: raw
        )
        assert all(o.ok and o.url.startswith(url) for o in outcomes)
        assert client.worst_case == 2 * 5  # (replicas + max_retries) * timeout + max_retries * max_wait
        before = live.requests
        outcomes = client.call_many(
            "/chat/completions", [{"model": "m", "messages": HI}] * 4, lambda raw: raw
        )
        assert all(o.ok and o.attempts == 1 for o in outcomes)  # the dead replica is skipped while it is down
        assert live.requests == before + 4
    # now the live one is gone too: every call fails, as a value, after one attempt per replica
    outcomes = client.call_many("/chat/completions", [{"model": "m", "messages": HI}] * 2, lambda raw: raw)
    assert all(not o.ok and o.attempts == 2 and "connection error" in o.error for o in outcomes)


def test_a_hung_replica_is_skipped_and_its_requests_move_to_a_live_one(tmp_path):
    """Two image replicas, one of them a real `ovip serve images` process stopped with SIGSTOP: its kernel
    still accepts connections, nothing ever answers. The first call that meets it times out once and moves
    to the live replica; the calls after it skip the hung one (one timeout in all, not one per call)."""
    timeout = 1.0
    live = serve_in_thread(make_images_app(WorldBackend(WorldConfig()), "world"))
    with ovip_serve("images", stderr=tmp_path / "stderr.txt") as (hung, proc), live as live_url:
        proc.send_signal(signal.SIGSTOP)
        images = HttpImageSynthesizer(
            f"{hung},{live_url}",
            "world",
            height=64,
            width=64,
            timeout=timeout,
            max_retries=2,
            max_concurrency=2,
        )
        start = time.monotonic()
        drawn = [images.synthesize("a red ball .", None, seed) for seed in range(10)]  # as the stage calls it
        elapsed = time.monotonic() - start
        after = images.client.call("/images/generations", images.request("a red ball .", 0), images.decode)
        images.close()
    assert all(d.ok for d in drawn) and images.failures == 0, [d.error for d in drawn]
    assert elapsed < timeout + 1.5, (
        f"10 images took {elapsed:.1f}s: the hung replica was tried more than once"
    )
    assert after.ok and after.attempts == 1 and after.url.startswith(live_url)
