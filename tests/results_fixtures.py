"""What the results tests build: finished batches at a fixed recent time, hand-made results
bodies in the gateway's shapes, and counts read back from the gateway and the database."""

from __future__ import annotations

import time
from typing import Any

import orjson

from batchlake.simulator import Plan, SimGateway
from tests.conftest import rows

DAY = 86400
# Recent, so that no batch is past a provider's results retention (Anthropic: 29 days)
NOW = (int(time.time()) // DAY - 1) * DAY


def plan(provider: str, bid: str, *, outcome: str = "completed", total: int = 10,
         model: str = "gpt-4o-mini", endpoint: str = "/v1/chat/completions",
         metadata: dict[str, str] | None = None) -> Plan:
    """A batch created three days before NOW that finished an hour later."""
    return Plan(provider=provider, id=bid, created_at=NOW - 3 * DAY, validate_s=10,
                run_s=3600, finalize_s=10, outcome=outcome, total=total, fail_ratio=0.0,
                model=model, endpoint=endpoint, metadata=metadata or {"team": "search"},
                cache=None, n_errors=0)


def finished(provider: str, bid: str, age_days: float, *, total: int = 3,
             model: str = "gpt-4o-mini") -> Plan:
    """A batch created ``age_days`` before NOW that finished an hour later."""
    return Plan(provider=provider, id=bid, created_at=int(NOW - age_days * DAY),
                validate_s=10, run_s=3600, finalize_s=10, outcome="completed", total=total,
                fail_ratio=0.0, model=model, endpoint="/v1/chat/completions",
                metadata={"team": "search"}, cache=None, n_errors=0)


def history(make_gateway: Any, n: int, **kw: Any) -> Any:
    """An OpenAI gateway of ``n`` finished batches b000 (the newest) … with three lines each."""
    gw = make_gateway(0, providers=("openai",), now=NOW, **kw)
    for i in range(n):
        bid = f"b{i:03d}"
        gw.add_plan(finished("openai", bid, 1 + i * 0.1))
        gw.results_bodies[("openai", bid)] = body(bid, [chat(f"{bid}-{k}", "gpt-4o-mini",
                                                              10, 0, 5) for k in range(3)])
    return gw


def results_requests(gw: SimGateway) -> int:
    return sum(v for (endpoint, _), v in gw.requests.items() if endpoint == "results")


def line_counts(db: str) -> dict[tuple[str, str], int]:
    return {(p, b): n for p, b, n in rows(
        db, "SELECT provider, batch_id, count(*) FROM batch_results GROUP BY ALL")}


def body(batch_id: str, lines: list[dict[str, Any]], **extra: Any) -> bytes:
    """A results body as the gateway answers it."""
    return orjson.dumps({"batch_id": batch_id, "results": lines, **extra})


def chat(cid: str, model: str, prompt: int, cached: int, completion: int) -> dict[str, Any]:
    """A succeeded OpenAI chat line with its usage."""
    return {"custom_id": cid, "response": {"status_code": 200, "request_id": f"r-{cid}",
            "body": {"model": model, "usage": {
                "prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached}}}}}
