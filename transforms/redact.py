"""Secret redaction for anything batchlake stores verbatim (raw payloads, rejects)."""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "[REDACTED]"
# Keys whose values are credentials wherever they appear in a nested payload.
_SECRET_KEY = re.compile(
    r"(authorization|api[-_]?key|x-api-key|password|passwd|secret|token|credential|cookie|"
    r"session[-_]?id|private[-_]?key|access[-_]?key|sk-bf-)",
    re.IGNORECASE,
)
# Values that look like bearer/virtual keys even under an innocent key name.
_SECRET_VALUE = re.compile(r"^(bearer\s+|basic\s+)?(sk-[A-Za-z0-9_\-]{8,}|sk-bf-\S+)", re.I)


@functools.lru_cache(maxsize=4096)  # payloads repeat their keys: one regex search per key
def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secret-looking keys and values replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.match(value):
        return REDACTED
    return value


def scrub_text(text: str, secrets: list[str]) -> str:
    """Remove known secret strings from free text (error messages, payload dumps)."""
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    return text
