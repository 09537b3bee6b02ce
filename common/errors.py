"""batchlake's exception types. Every message is one line that says what is wrong and what to
do; none ever contains a secret. The CLI prints ``str(error)`` and exits non-zero."""

from __future__ import annotations


class BatchlakeError(Exception):
    """Base class: an expected mistake or fault, reported without a traceback."""

    exit_code = 1


class ConfigError(BatchlakeError):
    """A setting is wrong: base URL, provider name, DB path, options."""

    exit_code = 2


class GatewayError(BatchlakeError):
    """The gateway could not give us what we asked for."""

    def __init__(self, message: str, *, status: int | None = None,
                 bifrost_body: bool = True) -> None:
        super().__init__(message)
        self.status = status
        # False: the answer's body was not a Bifrost error body (a router's or a proxy's
        # own 404/405: the route itself is missing, not the thing asked for)
        self.bifrost_body = bifrost_body


class GatewayUnreachable(GatewayError):
    """No HTTP answer at all (DNS, refused connection, timeouts after retries)."""


class GatewayAuthError(GatewayError):
    """401/403: the key is missing, wrong or not allowed."""


class GatewayNotFound(GatewayError):
    """404: the batch (or route) does not exist."""


class GatewayBadRequest(GatewayError):
    """400: e.g. 'provider query parameter is required' or an unconfigured provider."""


class GatewayServerError(GatewayError):
    """429/5xx still failing after the retries."""


class GatewayBadResponse(GatewayError):
    """The gateway answered 200 with a body that is not the JSON it should be."""

    def __init__(self, message: str, *, payload: bytes = b"", unreadable: bool = False
                 ) -> None:
        super().__init__(message)
        self.payload = payload
        # The body arrived whole but cannot be read: the same bytes fail the same way, so a
        # retry soon is not worth a download (a body that broke off is worth one).
        self.unreadable = unreadable


class DatabaseError(BatchlakeError):
    """The DuckDB file cannot be opened or written."""


class DatabaseLocked(DatabaseError):
    """Another process holds the DuckDB file's write lock."""
