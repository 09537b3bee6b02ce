"""The simulated gateway's files and batch creation, answered as Bifrost answers them
(../notes/bifrost-files.md): the model behind simulator/files_routes.py, no HTTP here.

- File content: OpenAI and Azure input files served as raw bytes, Bedrock's from their S3
  URIs; Gemini's content download answers Bifrost's 500 ("doesn't support direct content
  download") unless ``gemini_file_content`` (a newer or direct gateway serving Gemini's
  ``{key, request}`` lines); Anthropic batches have no input file (Anthropic's own 404).
- Uploads (``POST /v1/files``) are kept as they came; a batch created from one (``POST
  /v1/batches``) joins the population and runs its lifecycle, its results naming the
  uploaded requests' custom_ids (a share of them failing again, ``retry_fail_ratio``).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from batchlake.simulator.input_files import input_body, input_file_id
from batchlake.simulator.population import DROP, Plan, render


class GatewayModel(Protocol):
    """What the store needs of the gateway it belongs to (simulator/gateway_model.py)."""

    now: int
    providers: tuple[str, ...]
    results_max_lines: int | None
    uncapped: dict[str, int]

    def visible(self, provider: str) -> list[Plan]: ...
    def add_plan(self, plan: Plan) -> None: ...

GEMINI_NO_CONTENT = ("Gemini Files API doesn't support direct content download. Use the file "
                     "URI in your requests instead.")
_KEY_FIELD = {"openai": "custom_id", "azure": "custom_id", "anthropic": "custom_id",
              "gemini": "key", "bedrock": "recordId"}
_BIG_CACHE = 1 << 20  # input bodies larger than this are kept once made (the bench's)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def error(status: int, message: str, *, bifrost: bool = True, code: str | None = None
          ) -> Answer:
    err: dict[str, Any] = {"message": message}
    if code:
        err["code"] = code
    return Answer(status, orjson.dumps({"is_bifrost_error": bifrost, "status_code": status,
                                        "error": err, "extra_fields": {}}))


class FileStore:
    """Uploaded files and the batches made of them, for one simulated gateway."""

    def __init__(self, *, gemini_file_content: bool = False, retry_fail_ratio: float = 0.25
                 ) -> None:
        self.gemini_file_content = gemini_file_content
        self.retry_fail_ratio = retry_fail_ratio
        self.uploads: dict[tuple[str, str], bytes] = {}
        self.input_padding: dict[str, int] = {}  # batch id -> prompt padding (the bench)
        self.created: list[Plan] = []
        self._big: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._n = 0

    # -- content ---------------------------------------------------------------------------
    def _plan_for(self, gw: GatewayModel, provider: str, file_id: str) -> Plan | None:
        for plan in gw.visible(provider):
            if input_file_id(plan) == file_id:
                return plan
        return None

    def content(self, gw: GatewayModel, provider: str, file_id: str) -> Answer:
        """``GET /v1/files/{id}/content``: the file's bytes, or Bifrost's error."""
        if provider == "gemini" and not self.gemini_file_content:
            return error(500, GEMINI_NO_CONTENT)
        if provider == "bedrock" and not file_id.startswith("s3://"):
            return error(500, "invalid S3 URI format, expected s3://bucket/key")
        if provider == "anthropic":  # message batches have no input file
            return error(404, f"File not found: {file_id}", bifrost=False)
        with self._lock:
            uploaded = self.uploads.get((provider, file_id))
        if uploaded is not None:
            return Answer(200, uploaded, "application/octet-stream")
        plan = self._plan_for(gw, provider, file_id)
        if plan is None:
            what = ("S3 GET failed: NoSuchKey" if provider == "bedrock"
                    else f"No such File object: {file_id}")
            return error(404, what, bifrost=False)
        return Answer(200, self.input_of(gw, plan), "application/octet-stream")

    def input_of(self, gw: GatewayModel, plan: Plan) -> bytes:
        """A population batch's input file (simulator/input_files.py)."""
        body = self._big.get(plan.id)
        if body is None:
            lines = None if plan.id in gw.uncapped else gw.results_max_lines
            body = input_body(plan, lines, padding=self.input_padding.get(plan.id, 0))
            if len(body) > _BIG_CACHE:
                self._big[plan.id] = body
        return body

    # -- uploads ---------------------------------------------------------------------------
    def upload(self, gw: GatewayModel, provider: str, fields: dict[str, str],
               file: tuple[str, bytes] | None) -> Answer:
        """``POST /v1/files`` (multipart already read into ``fields`` and ``file``)."""
        if file is None:
            return error(400, "file is required", bifrost=False)
        if not fields.get("purpose"):
            return error(400, "purpose is required", bifrost=False)
        name, data = file
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._n += 1
            n = self._n
        if provider == "bedrock":
            bucket = fields.get("s3_bucket")
            if not bucket:
                return error(500, "s3_bucket is required for Bedrock file operations (set it in "
                             "the key config or pass s3_bucket)")
            file_id = f"s3://{bucket}/{fields.get('s3_prefix', '')}{n:04d}-{name}"
        elif provider == "gemini":
            file_id = f"files/{digest[:12]}{n:04d}"
        elif provider == "anthropic":
            file_id = f"file_{digest[:20]}{n:04d}"
        else:
            file_id = f"file-{digest[:20]}{n:04d}"
        with self._lock:
            self.uploads[(provider, file_id)] = data
        obj = {"id": file_id, "object": "file", "bytes": len(data), "created_at": gw.now,
               "filename": name, "purpose": fields["purpose"], "status": "processed",
               "storage_backend": "s3" if provider == "bedrock" else "api",
               "extra_fields": {"request_type": "file_upload", "provider": provider,
                                "latency": 12}}
        return Answer(200, orjson.dumps(obj))

    # -- batch creation --------------------------------------------------------------------
    def create_batch(self, gw: GatewayModel, provider_hint: str | None, body: bytes) -> Answer:
        """``POST /v1/batches``: a new batch of the uploaded file's (or the inline) requests,
        which then runs its lifecycle on the gateway's clock."""
        try:
            req = orjson.loads(body)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            return error(400, f"Invalid request format: {e}", bifrost=False)
        model_str = str(req["model"]) if isinstance(req.get("model"), str) else ""
        provider, _, model = model_str.partition("/")
        provider = provider if model_str and "/" in model_str else (provider_hint or "")
        if not provider:
            return error(400, "model should be in provider/model format or provider must be "
                         "specified", bifrost=False)
        if provider not in gw.providers:
            return error(400, f"provider {provider} is not configured on this gateway")
        file_id, inline = req.get("input_file_id"), req.get("requests")
        if not file_id and not inline:
            return error(400, "either input_file_id or requests is required", bifrost=False)
        lines, why = self._requests(gw, provider, file_id, inline, req)
        if why is not None:
            return why
        keys = [line.get(_KEY_FIELD[provider]) for line in lines]
        ids = [k for k in keys if isinstance(k, str)]
        if not ids or len(ids) != len(keys):
            return error(400, f"every request needs a string {_KEY_FIELD[provider]}")
        first = lines[0].get("params") or lines[0].get("body") or {}
        model = model or (first.get("model") if isinstance(first, dict) else None) or (
            "gemini-2.5-flash" if provider == "gemini" else "unknown")
        return Answer(200, orjson.dumps(self._new_batch(gw, provider, req, model, ids, file_id)))

    def _requests(self, gw: GatewayModel, provider: str, file_id: Any, inline: Any,
                  req: dict[str, Any]) -> tuple[list[dict[str, Any]], Answer | None]:
        """The batch's request lines, or the error Bifrost (or the provider) answers."""
        if provider == "anthropic":
            if not isinstance(inline, list) or not inline:
                return [], error(500, "requests array is required for Anthropic batch API")
            return [r for r in inline if isinstance(r, dict)], None
        if provider == "gemini" and file_id and inline:
            return [], error(500, "cannot specify both input_file_id and requests")
        if provider == "openai" and not req.get("endpoint"):
            return [], error(500, "endpoint is required for OpenAI batch API")
        if provider == "bedrock":
            if not req.get("model") or req["model"].endswith("/"):
                return [], error(500, "model is required for Bedrock batch API")
            if not req.get("output_s3_uri"):
                return [], error(500, "output_s3_uri is required for Bedrock batch API")
        if inline:
            return [r for r in inline if isinstance(r, dict)], None
        got = self.content(gw, provider, str(file_id))
        if got.status != 200:
            return [], got
        lines = []
        for raw in got.body.split(b"\n"):
            if raw.strip():
                try:
                    lines.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    return [], error(400, "the input file holds a line that is not JSON")
        return lines, None

    def _new_batch(self, gw: GatewayModel, provider: str, req: dict[str, Any], model: str,
                   ids: list[str], file_id: Any) -> dict[str, Any]:
        with self._lock:
            self._n += 1
            k = self._n
        batch_id = {"openai": f"batch_retry{k:06d}", "azure": f"batch_retry-{k:06d}",
                    "anthropic": f"msgbatch_retry{k:06d}", "gemini": f"batches/retry{k:06d}"
                    }.get(provider, "arn:aws:bedrock:us-east-1:123456789012:"
                          f"model-invocation-job/retry{k:06d}")
        md = req.get("metadata")
        plan = Plan(provider=provider, id=batch_id, created_at=gw.now, validate_s=60,
                    run_s=1800, finalize_s=60, outcome="completed", total=len(ids),
                    fail_ratio=self.retry_fail_ratio, model=model,
                    endpoint=str(req.get("endpoint") or "/v1/chat/completions"),
                    metadata={k: v for k, v in md.items() if isinstance(v, str)}
                    if isinstance(md, dict) and provider != "anthropic" else {},
                    cache=None, n_errors=0, custom_ids=tuple(ids),
                    overrides={"input_file_id": file_id if file_id else DROP})
        gw.add_plan(plan)
        with self._lock:
            self.created.append(plan)
        return render(plan, gw.now, retrieve=True)
