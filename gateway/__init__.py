"""HTTP access to a Bifrost gateway's batch API (httpx). Nothing else in batchlake speaks
HTTP. What the other layers may use is ``__all__``."""

from batchlake.gateway.client import GatewayClient, ListingReport, Page, parse_retry_after
from batchlake.gateway.logs_api import LogsApi, LogsApiAuthError, LogsProbe
from batchlake.gateway.stream import ResultsBody

__all__ = ["GatewayClient", "ListingReport", "LogsApi", "LogsApiAuthError", "LogsProbe", "Page",
           "ResultsBody", "parse_retry_after"]
