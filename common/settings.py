"""Settings: from CLI options, then environment (BIFROST_*, BATCHLAKE_*), then defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from batchlake.common.errors import ConfigError

DEFAULT_DB = Path("data/batchlake.duckdb")
DEFAULT_PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini", "bedrock", "azure")
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Auth:
    """How to authenticate. Exactly one of bearer key, basic (user, password) or headers.

    ``repr`` never shows the secret."""

    api_key: str | None = None  # sent as Authorization: Bearer <key> (incl. sk-bf-… keys)
    basic_user: str | None = None
    basic_password: str | None = None
    header_name: str | None = None  # send api_key in this header instead (e.g. x-api-key)
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Bifrost's admin credentials, for its management API (/api/*, e.g. the logs `batchlake
    # reconcile` reads): sent as Basic auth there only; inference keys are refused there.
    admin_user: str | None = None
    admin_password: str | None = None

    def __repr__(self) -> str:
        kinds = [k for k, v in (("bearer", self.api_key and not self.header_name),
                                ("basic", self.basic_user is not None),
                                ("header", self.header_name),
                                ("admin", self.admin_user is not None)) if v]
        return f"Auth({', '.join(kinds) or 'none'})"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        return [s for s in (self.api_key, self.basic_password, self.admin_password) if s] + [
            v for _, v in self.extra_headers if v]


@dataclass(frozen=True)
class Settings:
    """Everything a sync needs. Secrets live only in ``auth``."""

    base_url: str = "http://127.0.0.1:8080"
    auth: Auth = field(default_factory=Auth)
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    db_path: str = str(DEFAULT_DB)
    page_limit: int = 100  # objects per list request
    timeout_s: float = 30.0  # per request: connect, read, write and pool
    max_retries: int = 5  # attempts after the first, for 429/5xx/connection faults
    backoff_base_s: float = 0.5  # first retry waits about this long, doubling, with jitter
    backoff_max_s: float = 30.0  # no single wait longer than this (Retry-After included)
    # Requests at once to the gateway's by-id and results routes (results bodies, by-id
    # follow-ups, Bedrock model look-ups: one window per run, gateway/limiter.py): the
    # window starts at `concurrency` and adapts to the answers (grows while they come back
    # fast and clean, shrinks on 429, 5xx, resets and rising latency), between 1 and
    # `max_inflight`. 64 reads ~100 results bodies a second from a gateway answering in
    # 600 ms, CPU permitting; a gateway that caps downloads answers 429 past its cap, and
    # the window settles below it. Listing pages (one per provider at a time) are apart.
    concurrency: int = 8
    max_inflight: int = 64
    verify_tls: bool = True
    store_raw: bool = False  # keep extra_fields.raw_request/raw_response (redacted)
    # Incremental: list down to this far below the watermark. One completion window (24h)
    # plus an hour: open batches inside it are re-read by pages (1 request per 100), not
    # one by one by id.
    overlap_s: int = 25 * 3600
    # Providers whose listing is not globally newest-first (Bedrock walks one key after
    # another), so stopping at the watermark could skip a later key: always listed in full.
    unordered_providers: tuple[str, ...] = ("bedrock",)
    # Objects per load transaction at most (the loader groups every provider's waiting parts
    # up to this); flattened (and staged) flatten_size at a time. Fewer, larger merges cost
    # DuckDB less per row, within its 32MB sync cap (docs/scaling.md, the sync's sizes).
    chunk_size: int = 15_000
    # Objects flattened at a time, shared by the providers syncing at once (each flattens
    # parts of its share, at most half a chunk): larger parts raise peak memory, no faster
    # (docs/scaling.md, the sync's sizes).
    flatten_size: int = 10_000
    max_pages: int = 100_000  # a listing never reads more pages than this
    lock_timeout_s: float = 30.0  # wait this long for another writer to release the DB
    # The schedule's interval: long-open batches are re-read every 2, 5, 15 of these once
    # late (batchlake/planner.py). `batchlake serve`'s incremental cron runs every 10 minutes.
    poll_interval_s: float = 600.0
    # After the last commit, copy the database to this file (atomically replaced) for tools
    # that keep a connection open; optionally in an older DuckDB storage format (v1.4.0).
    publish_path: str | None = None
    publish_storage_version: str | None = None
    # Results: every sync reads the results of newly finished batches (once each) and prices
    # them; prices from this CSV first (prices_only: from it alone), then the shipped table.
    results: bool = True
    prices: str | None = None
    prices_only: bool = False
    store_result_bodies: bool = False  # keep each line's response body (redacted)
    results_limit: int | None = None  # at most this many batches' results per provider a run
    # Seconds a sync may spend reading results (newest finished batch first); the rest is the
    # backlog, read by later runs or `batchlake results`. 0: no limit. A time, not a count:
    # one results request costs from a millisecond (a 404) to minutes (a 100k-request body
    # the gateway downloads from the provider), and a scheduled run must end in its interval.
    results_budget_s: float = 60.0
    # `batchlake reconcile`: batchlake's and the gateway's cost of a batch match when they
    # differ by at most max(this % of the larger, this many USD) (docs/costs.md).
    reconcile_tolerance_pct: float = 0.01
    reconcile_tolerance_usd: float = 0.0001

    def __repr__(self) -> str:
        return (f"Settings(base_url={redact_url(self.base_url)!r}, auth={self.auth!r}, "
                f"providers={self.providers!r}, db_path={self.db_path!r})")


def redact_url(url: str) -> str:
    """Drop user:password@ from a URL before it is shown anywhere."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def check_base_url(url: str) -> tuple[str, Auth | None]:
    """Validate the gateway URL; credentials in it move to Basic auth."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"gateway URL {redact_url(url)!r} is not an http(s) URL; "
            "pass e.g. --base-url http://localhost:8080 or set BIFROST_BASE_URL")
    auth = None
    if parts.username or parts.password:
        auth = Auth(basic_user=parts.username or "", basic_password=parts.password or "")
    return redact_url(url.strip()).rstrip("/"), auth


def parse_providers(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None or value == "":
        return DEFAULT_PROVIDERS
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(p.strip().lower() for p in items if p.strip()))
    for p in out:
        if not _PROVIDER_NAME.match(p):
            raise ConfigError(
                f"provider name {p!r} is not valid; use names like openai,anthropic,gemini")
    if not out:
        raise ConfigError("no providers given; pass e.g. --providers openai,anthropic")
    return out
