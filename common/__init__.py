"""The bottom layer: error types, settings and process-wide switches, used by every other
layer and importing none of them. What the other layers may use is ``__all__``; the config
file reader (pydantic) loads on first use, so ``batchlake --help`` does not pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchlake.common.errors import (
    BatchlakeError,
    ConfigError,
    DatabaseError,
    DatabaseLocked,
    GatewayAuthError,
    GatewayBadRequest,
    GatewayBadResponse,
    GatewayError,
    GatewayNotFound,
    GatewayServerError,
    GatewayUnreachable,
)
from batchlake.common.runtime import configure_polars_allocator, paused_gc, sync_runtime
from batchlake.common.settings import (
    DEFAULT_DB,
    Auth,
    Settings,
    check_base_url,
    parse_providers,
    redact_url,
)

if TYPE_CHECKING:
    from batchlake.common.config import from_env, resolve

__all__ = [
    "DEFAULT_DB",
    "Auth",
    "BatchlakeError",
    "ConfigError",
    "DatabaseError",
    "DatabaseLocked",
    "GatewayAuthError",
    "GatewayBadRequest",
    "GatewayBadResponse",
    "GatewayError",
    "GatewayNotFound",
    "GatewayServerError",
    "GatewayUnreachable",
    "Settings",
    "check_base_url",
    "configure_polars_allocator",
    "from_env",
    "parse_providers",
    "paused_gc",
    "redact_url",
    "resolve",
    "sync_runtime",
]


def __getattr__(name: str) -> Any:
    if name in ("from_env", "resolve"):
        from batchlake.common import config

        return getattr(config, name)
    raise AttributeError(name)
