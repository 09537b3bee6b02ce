"""HTTP access to a Bifrost gateway's batch API (httpx). Nothing else in batchlake speaks
HTTP. What the other layers may use is ``__all__``."""

from batchlake.gateway.answers import parse_retry_after
from batchlake.gateway.client import GatewayClient
from batchlake.gateway.files_api import FilesClient, InputUnavailable
from batchlake.gateway.limiter import AdaptiveLimit, LimitStats, Slot
from batchlake.gateway.listing import ListingReport, Page
from batchlake.gateway.logs_api import LogsApi, LogsApiAuthError, LogsProbe
from batchlake.gateway.stream import ResultsBody

__all__ = ["AdaptiveLimit", "FilesClient", "GatewayClient", "InputUnavailable", "LimitStats",
           "ListingReport", "LogsApi", "LogsApiAuthError", "LogsProbe", "Page", "ResultsBody",
           "Slot", "parse_retry_after"]
