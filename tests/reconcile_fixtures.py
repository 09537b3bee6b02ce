"""What the reconcile tests build: a simulated gateway whose finished batches each have a
known fate in its logs API (simulator/logs_routes.py), synced by batchlake with the gateway's
own catalog as its prices file, so that an honest row matches to the last digit. Lines carry
~100k tokens, so that every batch costs cents, far above the $0.0001 tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from batchlake.simulator import SimGateway, logs_book, prices_csv
from tests.results_fixtures import NOW, body, chat, finished

# batch id -> (fate, echo rows, the lines' model)
OPENAI = {
    "b-match": ("settled", 0, "gpt-4o-mini-2024-07-18"),
    "b-echoed": ("settled", 2, "gpt-4o-mini-2024-07-18"),
    "b-double": ("double", 1, "gpt-4.1-2025-04-14"),
    "b-rate": ("off-rate", 0, "gpt-4o-mini-2024-07-18"),
    "b-null": ("unpriced", 0, "gpt-4o-mini-2024-07-18"),
    "b-missing": ("missing", 2, "gpt-4o-mini-2024-07-18"),  # echo rows, no cost row
    "b-legacy": ("legacy-id", 1, "gpt-4o-mini-2024-07-18"),
    "b-mine": ("settled", 0, "acme-private-1"),  # the gateway prices it, batchlake cannot
}
ANTHROPIC = {"m-cache": ("cache", 0, "claude-sonnet-4-20250514")}
STATUSES = {"b-match": "match", "b-echoed": "match", "b-double": "differs",
            "b-rate": "differs", "b-null": "gateway_unpriced", "b-missing": "gateway_missing",
            "b-legacy": "match", "b-mine": "batchlake_unpriced", "m-cache": "differs"}


def message(cid: str, model: str, fresh: int, read: int, written: int, out: int
            ) -> dict[str, Any]:
    """A succeeded Anthropic line: ``fresh`` input tokens besides the cache's."""
    return {"custom_id": cid, "result": {"type": "succeeded", "message": {
        "model": model, "usage": {"input_tokens": fresh, "output_tokens": out,
                                  "cache_read_input_tokens": read,
                                  "cache_creation_input_tokens": written}}}}


def reconcile_gateway(make_gateway: Any, **kw: Any) -> SimGateway:
    """Finished OpenAI and Anthropic batches, each with its fate in the logs API."""
    gw: SimGateway = make_gateway(0, providers=("openai", "anthropic"), now=NOW, **kw)
    book = logs_book(gw)
    for i, (bid, (fate, echoes, model)) in enumerate(OPENAI.items()):
        gw.add_plan(finished("openai", bid, 1 + i * 0.1))
        gw.results_bodies[("openai", bid)] = body(bid, [
            chat(f"{bid}-{k}", model, 100_000 + 10 * k, 20_000 * (k % 2), 5_000 + k)
            for k in range(4)])
        book.fates[("openai", bid)], book.echoes[("openai", bid)] = fate, echoes
    for bid, (fate, echoes, model) in ANTHROPIC.items():
        gw.add_plan(finished("anthropic", bid, 2, model="claude-sonnet-4"))
        gw.results_bodies[("anthropic", bid)] = orjson.dumps({"batch_id": bid, "results": [
            message(f"{bid}-{k}", model, 30_000, 50_000, 10_000 * (k % 2), 4_000)
            for k in range(3)]})
        book.fates[("anthropic", bid)], book.echoes[("anthropic", bid)] = fate, echoes
    return gw


def write_prices(tmp_path: Path) -> str:
    """The gateway's catalog as a batchlake prices file."""
    path = tmp_path / "gateway-prices.csv"
    path.write_text(prices_csv(), encoding="utf-8")
    return str(path)


def logs_requests(gw: SimGateway) -> int:
    return sum(v for (endpoint, _), v in gw.requests.items() if endpoint == "logs")
