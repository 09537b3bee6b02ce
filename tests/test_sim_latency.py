"""The simulated gateway keeps a real gateway's pace: each route answers after its latency,
requests on different connections wait together, a kept-alive connection's answers keep
their order, and a route's in-flight cap answers 429 with Retry-After at once."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest

from batchlake.simulator import SimGateway, parse_route_values
from tests.conftest import ROOT, run_cli


def finished_batch(gw: SimGateway) -> str:
    """An OpenAI batch that has a results body."""
    return next(p.id for p in gw.visible("openai") if gw.results("openai", p.id) is not None)


def timed_get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    r = client.get(path, params={"provider": "openai"})
    return time.perf_counter() - start, r


class Answer:
    """A request on a connection of its own (http.client: a connection costs nothing to set
    up), its answer and how long it took."""

    def __init__(self, base_url: str, path: str) -> None:
        url = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        self.conn.request("GET", "/health")  # connected before it is timed
        self.conn.getresponse().read()
        self.path = path + "?provider=openai"
        self.status, self.body, self.retry_after, self.elapsed = 0, b"", "", 0.0

    def get(self) -> Answer:
        start = time.perf_counter()
        self.conn.request("GET", self.path)
        r = self.conn.getresponse()
        self.status, self.body, self.retry_after = r.status, r.read(), r.getheader("Retry-After")
        self.elapsed = time.perf_counter() - start
        self.conn.close()
        return self


def burst(base_url: str, path: str, n: int) -> tuple[list[Answer], float]:
    """``n`` requests for ``path`` at once, each on its own connection; the answers and the
    seconds until the last came."""
    asks = [Answer(base_url, path) for _ in range(n)]
    barrier = threading.Barrier(n)

    def one(a: Answer) -> Answer:
        barrier.wait()
        return a.get()

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, asks))
    return answers, time.perf_counter() - start


def read_answer(f: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off a connection: status, headers (lower-cased), body."""
    status = int(f.readline().split()[1])
    headers: dict[str, str] = {}
    while line := f.readline().strip():
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, f.read(int(headers["content-length"]))


def test_each_route_answers_after_its_latency(make_gateway: Any) -> None:
    latency = {"list": 0.1, "retrieve": 0.05, "results": 0.15}
    gw = make_gateway(40, providers=("openai",), latency=latency)
    batch_id = quote(finished_batch(gw), safe="")
    with httpx.Client(base_url=gw.base_url) as c:
        for route, path in [("list", "/v1/batches"), ("retrieve", f"/v1/batches/{batch_id}"),
                            ("results", f"/v1/batches/{batch_id}/results")]:
            elapsed, r = timed_get(c, path)
            assert r.status_code == 200, r.text
            assert elapsed >= latency[route], (route, elapsed)


def test_jitter_varies_each_wait_within_its_share() -> None:
    gw = SimGateway(10, latency={"list": 0.1}, latency_jitter=0.5)
    waits = [gw.pacing.delay_s("list") for _ in range(50)]
    assert all(0.05 <= w <= 0.15 for w in waits)
    assert max(waits) - min(waits) > 0.05
    assert gw.pacing.delay_s("retrieve") == 0.0  # no latency set: loopback's pace


def test_requests_on_separate_connections_wait_together(make_gateway: Any) -> None:
    n, latency = 6, 0.2
    gw = make_gateway(40, providers=("openai",), latency={"retrieve": latency})
    path = f"/v1/batches/{quote(gw.visible('openai')[0].id, safe='')}"
    answers, total = burst(gw.base_url, path, n)
    assert all(a.status == 200 and a.elapsed >= latency for a in answers)
    assert total < n * latency / 2, f"{n} requests of {latency} s took {total:.2f} s"
    assert 2 <= gw.peak_inflight["retrieve"] <= n


def test_answers_on_one_kept_alive_connection_keep_their_order(make_gateway: Any) -> None:
    gw = make_gateway(40, providers=("openai",), latency={"retrieve": 0.15, "list": 0.05})
    batch_id = gw.visible("openai")[0].id
    url = urlsplit(gw.base_url)
    asks = [f"/v1/batches/{quote(batch_id, safe='')}?provider=openai",  # the slowest first
            "/v1/batches?provider=openai&limit=5", "/health"]  # /health has no latency
    pipelined = b"".join(f"GET {p} HTTP/1.1\r\nHost: sim\r\n\r\n".encode() for p in asks)
    answers = []
    with socket.create_connection((url.hostname, url.port or 80), timeout=10) as s, \
            s.makefile("rb") as f:
        start = time.perf_counter()
        s.sendall(pipelined)  # all three requests before any answer
        for _ in asks:
            status, _, body = read_answer(f)
            answers.append((time.perf_counter() - start, status, orjson.loads(body)))
    (t_one, _, one), (t_list, _, page), (t_health, _, health) = answers
    assert [a[1] for a in answers] == [200, 200, 200]
    assert one["id"] == batch_id and page["object"] == "list" and health == {"status": "ok"}
    assert t_one >= 0.15
    # each answer waits after the one before it: the list page's 50 ms start at 150 ms, and
    # /health, which waits for nothing, still comes last
    assert t_list >= 0.2 and t_health >= 0.2


def test_a_cap_answers_429_at_once_and_never_lets_more_in_flight(make_gateway: Any) -> None:
    cap, latency, n = 2, 0.2, 8
    gw = make_gateway(40, providers=("openai",), latency={"results": latency},
                      max_inflight={"results": cap}, retry_after_s=1)
    path = f"/v1/batches/{quote(finished_batch(gw), safe='')}/results"
    answers, _ = burst(gw.base_url, path, n)
    ok = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status == 429]
    assert len(ok) + len(refused) == n
    assert len(ok) >= cap and refused  # the first `cap` always get in; 8 at once overflow
    for a in refused:
        assert a.retry_after == "1"
        body = orjson.loads(a.body)
        assert body["is_bifrost_error"] is False and body["status_code"] == 429
        assert "rate limit" in body["error"]["message"]
        assert a.elapsed < latency  # answered at once, not after the route's latency
    assert all(a.elapsed >= latency for a in ok)
    assert gw.peak_inflight["results"] == cap
    assert gw.throttled["results"] == len(refused)
    stats = orjson.loads(Answer(gw.base_url, "/_sim/stats").get().body)
    assert stats["throttled"] == {"results": len(refused)}
    assert stats["peak_inflight"]["results"] == cap and stats["inflight"]["results"] == 0
    assert stats["requests"]["results:openai"] == n  # 429s are requests too
    # the slots are free again once the answers are out
    assert Answer(gw.base_url, path).get().status == 200


def test_a_route_the_gateway_lacks_cannot_be_paced() -> None:
    gw = SimGateway(10, latency={"reslts": 0.1})
    with pytest.raises(ValueError, match="no route named reslts"):
        gw.start()


def test_route_values_parse_as_the_command_line_gives_them() -> None:
    assert parse_route_values("list=300ms, retrieve=0.2s,results=600ms", "--latency",
                              "duration") == {"list": 0.3, "retrieve": 0.2, "results": 0.6}
    assert parse_route_values("results=12", "--max-inflight", "count") == {"results": 12}
    assert parse_route_values(None, "--latency", "duration") == {}
    for spec, option, kind, said in [
            ("list=abc", "--latency", "duration", "--latency 'list=abc': use route=300ms,…"),
            ("list=300", "--latency", "duration", "a duration in ms or s"),
            ("lists=1s", "--latency", "duration", "the route one of list, results, retrieve"),
            ("results=0", "--max-inflight", "count", "use route=12,…"),
            ("list=1s,list=2s", "--latency", "duration", "list is given twice")]:
        with pytest.raises(ValueError) as e:
            parse_route_values(spec, option, kind)
        assert said in str(e.value)


def test_a_bad_pace_on_the_command_line_is_one_line() -> None:
    res = run_cli("gateway", "--latency", "list=abc")
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [
        "error: --latency 'list=abc': use route=300ms,… (the value is a duration in ms or s, "
        "the route one of list, results, retrieve)"]


def test_the_gateway_command_serves_the_pace_it_is_given() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "gateway", "--port", "0", "--batches", "40",
         "--providers", "openai", "--latency", "list=100ms", "--max-inflight", "results=3",
         "--retry-after", "2"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None
        url = "http://127.0.0.1:" + proc.stderr.readline().split("http://127.0.0.1:")[1].split()[0]
        with httpx.Client(base_url=url, timeout=10) as c:
            elapsed, r = timed_get(c, "/v1/batches")
            assert r.status_code == 200 and elapsed >= 0.1
            stats = c.get("/_sim/stats").json()
        assert stats["latency_s"] == {"list": 0.1}
        assert stats["max_inflight"] == {"results": 3} and stats["retry_after_s"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
