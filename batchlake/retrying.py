"""``batchlake retry``: every request of the selected batches that did not succeed, back as
ready-to-submit batch input files (and, with ``submit``, as new batches).

For each chain of retries (batchlake/retry_plan.py) the root's input file is read through the
gateway (``GET /v1/files/{id}/content``, streamed to disk, never held in memory) or from the
user's own files (``--inputs``: Anthropic batches have none on the gateway, and any provider's
file route may fail). Its lines are joined by custom_id to what each request's latest attempt
did (sql/retry/attempts.sql): errored, expired, cancelled, in a failed batch, or with no
result line at all. Each offered line is written unchanged into a file per (source batch,
endpoint, model) (batchlake/retry_files.py); nothing of a request body goes into the
database. The run is recorded (retry_batches, retry_requests), and ``submit`` uploads each
file and creates its batch (batchlake/retry_submit.py), which a later sync links back
(v_retry_lineage).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from batchlake.common import BatchlakeError, ConfigError, parse_providers
from batchlake.gateway import FilesClient
from batchlake.retry_files import RetryFile, RetryWriter, prepare_out_dir, read_chunks
from batchlake.retry_inputs import fetch_input
from batchlake.retry_plan import Chain, RetryPlan, chain_groups, needs_input, plan_retry
from batchlake.transforms import (
    FORMATS,
    REASONS,
    Attempt,
    InputLineError,
    InputRequest,
    group_for,
    offer,
    parse_input_line,
    retry_line,
    split_lines,
)
from batchlake.warehouse import (
    FileVisits,
    record_retry_run,
    retry_writer,
    tree_attempts,
)

OnEvent = Callable[[str], None]
_REQUEST_COLUMNS = {"source_batch_id": pl.String, "root_batch_id": pl.String,
                    "custom_id": pl.String, "reason": pl.String, "error_code": pl.String,
                    "file_name": pl.String, "estimated_cost_usd": pl.Float64}


@dataclass
class RetryReport:
    """What a retry wrote (and submitted): the files, the requests by reason and by source
    batch, the estimated cost, and one line for each thing left out."""

    run_id: str
    provider: str
    out_dir: str
    files: list[RetryFile]
    requests: pl.DataFrame  # one row per request written (no body): source, reason, cost
    notes: list[str] = field(default_factory=list)
    submitted: bool = False

    @property
    def total(self) -> int:
        return self.requests.height

    @property
    def estimated_cost_usd(self) -> float | None:
        """The sum of the estimates (None when no request could be estimated)."""
        priced = self.requests["estimated_cost_usd"].drop_nulls()
        return float(priced.sum()) if priced.len() else None

    @property
    def unpriced(self) -> int:
        return int(self.requests["estimated_cost_usd"].null_count())

    def by_reason(self) -> pl.DataFrame:
        return (self.requests.group_by("reason")
                .agg(pl.len().alias("requests"),
                     pl.col("estimated_cost_usd").sum().round(4).alias("estimated_cost_usd"))
                .sort("requests", "reason", descending=[True, False]))

    def by_source(self) -> pl.DataFrame:
        reasons = [r for r in REASONS if r in set(self.requests["reason"])]
        return (self.requests.group_by("source_batch_id")
                .agg(pl.len().alias("requests"),
                     *(pl.col("reason").eq(r).sum().alias(r) for r in reasons),
                     pl.col("estimated_cost_usd").sum().round(4).alias("estimated_cost_usd"))
                .sort("requests", "source_batch_id", descending=[True, False]))

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "provider": self.provider, "out": self.out_dir,
                "requests": self.total, "estimated_cost_usd": self.estimated_cost_usd,
                "unpriced_requests": self.unpriced, "submitted": self.submitted,
                "by_reason": self.by_reason().to_dicts(),
                "by_source_batch": self.by_source().to_dicts(),
                "files": [f.as_json() for f in self.files], "notes": self.notes}


@dataclass
class _ChainJob:
    """One chain being read: the attempts, what was taken, and what was left out."""

    chain: Chain
    attempts: dict[str, Attempt]
    whole_input: bool  # the input read is the root's (else: lines joined to failures only)
    seen: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    taken_failed: set[str] = field(default_factory=set)


class _Run:
    """One retry run's state: options, plan, writer, the requests written, the notes."""

    def __init__(self, provider: str, writer: RetryWriter, plan: RetryPlan, *, force: bool,
                 error_code: str | None) -> None:
        self.provider, self.writer, self.plan = provider, writer, plan
        self.force, self.error_code = force, error_code
        self.rows: list[tuple[Any, ...]] = []
        self.fetched = False  # an input came from the gateway
        self.refused: str | None = None  # why the first input asked for did not
        self.notes: list[str] = []
        self.totals: Counter[str] = Counter()

    def take(self, job: _ChainJob, req: InputRequest) -> None:
        """Offer one input request of ``job``'s chain, or count why not."""
        if req.custom_id in job.seen:
            job.counts["duplicate"] += 1
            return
        attempt = job.attempts.get(req.custom_id)
        if attempt is None and not job.whole_input:
            job.counts["unmatched"] += 1
            return
        job.seen.add(req.custom_id)
        root = job.chain.root
        chosen = offer(attempt, root=root.batch_id, root_failed=root.settled == "failed",
                       force=self.force, error_code=self.error_code)
        if chosen is None:
            if attempt is not None and attempt.state in ("in_flight", "waiting"):
                job.counts[attempt.state] += 1
            elif attempt is None or attempt.state != "succeeded":
                job.counts["filtered"] += 1
            return
        source, reason, code = chosen
        if attempt is not None:
            job.taken_failed.add(req.custom_id)
        if req.model is None and root.model:  # a line read before its chain was known
            req = replace(req, model=root.model, endpoint=req.endpoint or root.endpoint)
        model = attempt.model if attempt is not None and attempt.model else req.model
        cost = self.plan.costs.estimate(source, model)
        rf = self.writer.add(group_for(self.provider, source, req), root.batch_id,
                             retry_line(self.provider, req), cost)
        self.rows.append((source, root.batch_id, req.custom_id, reason, code, rf.name, cost))

    def finish(self, job: _ChainJob, where: str) -> None:
        """Count the chain's failures that had no input line, and say what was left out."""
        wanted = [cid for cid, a in job.attempts.items()
                  if a.state == "failed" or (self.force and a.state == "in_flight")]
        no_input = [cid for cid in wanted if cid not in job.taken_failed
                    and self._wanted(job.attempts[cid])]
        root = job.chain.root.batch_id
        c = job.counts
        if no_input:
            self.totals["no_input"] += len(no_input)
            self.notes.append(f"{len(no_input):,} failed requests of batch {root} have no line "
                              f"in {where} (e.g. {no_input[0]!r}): counted, not retried")
        for key, text in (("duplicate", "custom_ids that appear again in {where}: the first "
                           "line kept"), ("unreadable", "lines of {where} that are not "
                           f"{self.provider} batch requests: skipped"),
                          ("waiting", "requests wait for the results of their retry batch "
                           "(run batchlake results): not offered")):
            if c[key]:
                self.notes.append(f"batch {root}: {c[key]:,} " + text.format(where=where))
        self.totals.update(c)
        self.writer.close_groups()

    def _wanted(self, a: Attempt) -> bool:
        return self.error_code is None or self.error_code in (a.reason, a.error_code)


def _lines(chunks: Iterable[bytes], job_of: Callable[[InputRequest], _ChainJob | None],
           provider: str, chain: Chain | None, counts: Counter[str]) -> Iterator[
               tuple[_ChainJob, InputRequest]]:
    root = chain.root if chain is not None else None
    for i, raw in enumerate(split_lines(chunks)):
        try:
            req = parse_input_line(provider, raw, i, batch_model=root.model if root else None,
                                   batch_endpoint=root.endpoint if root else None,
                                   measure=False)
        except InputLineError:
            counts["unreadable"] += 1
            continue
        job = job_of(req)
        if job is not None:
            yield job, req


def retry(provider: str, *, out: str, batch: str | Sequence[str] | None = None,
          since: str | None = None, error_code: str | None = None,
          inputs: Sequence[str] | None = None, submit: bool = False, force: bool = False,
          role_arn: str | None = None, output_s3_uri: str | None = None,
          base_url: str | None = None, db: str | None = None, api_key: str | None = None,
          api_key_header: str | None = None, lock_timeout: float | None = None,
          config: str | None = None, on_event: OnEvent | None = None) -> RetryReport:
    """``batchlake retry``: write into ``out`` batch input files (``*.jsonl``, the provider's
    own format) holding exactly the requests of the selected finished batches of
    ``provider`` (``batch`` ids, created ``since`` '7d') that did not succeed: errored,
    expired, cancelled, or without a result line (``error_code``: only those of that code or
    reason). ``inputs``: the user's own input files, joined by custom_id where the gateway
    cannot return a batch's input. ``submit``: upload each file and create its batch (the
    only writes to the gateway; ``force`` submits failures already submitted again).
    ``on_event`` hears each upload and batch created."""
    from batchlake.commands import settings_for
    from batchlake.report_frames import parse_duration

    prov = parse_providers(provider)
    if len(prov) != 1:
        raise ConfigError("retry works on one provider at a time; pass --provider P")
    p = prov[0]
    settings = settings_for(config, base_url=base_url, api_key=api_key,
                            api_key_header=api_key_header, db=db, providers=[p],
                            lock_timeout=lock_timeout)
    ids = [batch] if isinstance(batch, str) else (list(batch) if batch else None)
    since_at = datetime.now(UTC) - parse_duration(since) if since else None
    user_inputs = [Path(f) for f in inputs or []]
    for f in user_inputs:
        if not f.is_file():
            raise ConfigError(f"--inputs {f}: no such file")
    if submit and p == "bedrock" and not output_s3_uri:
        raise ConfigError("a Bedrock batch needs an output location: pass --output-s3-uri "
                          "s3://bucket/prefix/ (and --role-arn unless the gateway's key has "
                          "one) with --submit")
    out_dir = prepare_out_dir(out)
    say = on_event or (lambda _m: None)
    # one DuckDB for the run's many short visits to the file (see FileVisits)
    with FileVisits(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as lake:
        with lake.visit(read_only=True):
            pass  # the database exists: a retry never creates one
        with retry_writer(lake):
            pass  # the retry tables exist (a file synced by an older batchlake gains them)
        with lake.visit(read_only=True) as con:
            plan = plan_retry(con, p, batch_ids=ids, since=since_at)
        run_id = f"retry-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        run = _Run(p, RetryWriter(out_dir, p, run_id), plan, force=force, error_code=error_code)
        run.notes.extend(plan.skipped)
        try:
            with FilesClient(settings) as client:
                _read_chains(run, client, lake, user_inputs,
                             window=max(1, min(settings.concurrency, 8)))
        except BaseException:
            run.writer.abort()
            raise
        _note_in_flight(run, submit)
        requests = pl.DataFrame(run.rows, schema=_REQUEST_COLUMNS, orient="row")
        report = RetryReport(run_id, p, str(out_dir), [], requests, run.notes)
        if not run.rows and submit and run.totals["in_flight"] and not force:
            run.writer.abort()
            raise BatchlakeError(
                f"these {run.totals['in_flight']:,} failures were submitted already, in retry "
                "batches that have not finished: not submitted again (pass --force to submit "
                "them once more)")
        report.files = run.writer.commit()  # an empty run too: the folder holds this run's files
        if not run.rows:
            return report
        _record(run, report, lake)
        if submit:
            from batchlake.retry_submit import submit_files

            with FilesClient(settings) as client:
                submit_files(client, report.run_id, report.files, plan.stored, lake=lake,
                             role_arn=role_arn, output_s3_uri=output_s3_uri, say=say)
            report.submitted = True
        return report


def _read_chains(run: _Run, client: FilesClient, lake: FileVisits, user_inputs: list[Path],
                 window: int) -> None:
    """Read each chain's input (the gateway's, or the user's) and offer its failures. The
    chains' attempts are read a group at a time; their inputs are fetched ``window`` ahead,
    to disk, while the one before is read (a real gateway takes a while to answer each)."""
    p = run.provider
    from_user: list[_ChainJob] = []
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-inputs-"))
    try:
        with ThreadPoolExecutor(max_workers=window, thread_name_prefix="retry-input") as pool:
            for group in chain_groups(run.plan.chains):
                with lake.visit(read_only=True) as con:
                    known = tree_attempts(con, p, [t for c in group for t in c.tree()])
                jobs = [job for c in group
                        if (job := _job(run, c, known.pop(c.root.batch_id, {}))) is not None]
                ahead: deque[tuple[_ChainJob, Path, Future[tuple[str | None, bool]]]] = deque()
                for n, job in enumerate(jobs):
                    if run.refused is not None:  # the gateway has no inputs for any of them
                        from_user.append(job)  # (without --inputs the first refusal raised)
                        continue
                    dest = tmp / f"{n}.jsonl"
                    ahead.append((job, dest, pool.submit(fetch_input, client, p, job.chain,
                                                         dest)))
                    # one at a time until an input came: a gateway that has none says so once
                    while len(ahead) >= (window if run.fetched else 1):
                        _consume(run, *ahead.popleft(), bool(user_inputs), from_user)
                while ahead:
                    _consume(run, *ahead.popleft(), bool(user_inputs), from_user)
        if from_user:
            _read_user_inputs(run, from_user, user_inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _job(run: _Run, chain: Chain, attempts: dict[str, Attempt]) -> _ChainJob | None:
    """The chain to read, or None when its attempts say nothing can be offered."""
    failed = sum(a.state == "failed" for a in attempts.values())
    flying = sum(a.state == "in_flight" for a in attempts.values())
    if not needs_input(chain, failed, flying, force=run.force, error_code=run.error_code):
        run.totals["in_flight"] += flying
        return None
    return _ChainJob(chain, attempts, whole_input=True)


def _consume(run: _Run, job: _ChainJob, dest: Path, fetched: Future[tuple[str | None, bool]],
             have_inputs: bool, from_user: list[_ChainJob]) -> None:
    """Offer a chain's input lines once fetched (or queue it for the user's inputs)."""
    why, everywhere = fetched.result()
    root = job.chain.root
    if why is not None and everywhere:
        run.refused = why  # the gateway has no inputs for this provider: asked once
    if why is not None:
        if not have_inputs:
            raise BatchlakeError(
                f"the gateway cannot return the input of {run.provider} batch {root.batch_id} "
                f"({why}); pass --inputs FILE… with your own input files (joined by "
                "custom_id)")
        from_user.append(job)
        return
    run.fetched = True
    counts: Counter[str] = Counter()

    def this_chain(_req: InputRequest) -> _ChainJob:
        return job

    for j, req in _lines(read_chunks(dest), this_chain, run.provider, job.chain, counts):
        run.take(j, req)
    dest.unlink(missing_ok=True)
    job.counts.update(counts)
    run.finish(job, f"its input file {root.input_file_id}")


def _read_user_inputs(run: _Run, jobs: list[_ChainJob], files: list[Path]) -> None:
    """Join the user's input files to the chains the gateway could not give inputs for: with
    one chain, the files are its input; with several, each line goes to the chain whose
    failure names its custom_id, and a custom_id failed in two chains is refused."""
    owner: dict[str, _ChainJob] = {}
    if len(jobs) > 1:
        for job in jobs:
            job.whole_input = False
            for cid, a in job.attempts.items():
                if a.state != "failed" and not (run.force and a.state == "in_flight"):
                    continue
                other = owner.setdefault(cid, job)
                if other is not job:
                    raise ConfigError(
                        f"custom_id {cid!r} failed in both batch {other.chain.root.batch_id} "
                        f"and {job.chain.root.batch_id}: --inputs cannot tell their requests "
                        "apart; retry one batch at a time (--batch ID --inputs ITS_FILE)")
    single = jobs[0] if len(jobs) == 1 else None
    counts: Counter[str] = Counter()

    def chunks() -> Iterator[bytes]:
        for f in files:
            yield from read_chunks(f)
            yield b"\n"  # a file without a final line break ends its last line

    for job, req in _lines(chunks(), lambda r: single or owner.get(r.custom_id), run.provider,
                           single.chain if single else None, counts):
        run.take(job, req)
    where = "--inputs " + " ".join(str(f) for f in files)
    for job in jobs:
        run.finish(job, where)
    if counts["unreadable"]:
        run.notes.append(f"{counts['unreadable']:,} lines of {where} are not {run.provider} "
                         f"batch requests ({FORMATS.get(run.provider)} format): skipped")
    unmatched = sum(j.counts["unmatched"] for j in jobs)
    if unmatched:
        run.notes.append(f"{unmatched:,} lines of {where} match no failed request: ignored")


def _note_in_flight(run: _Run, submit: bool) -> None:
    n = run.totals["in_flight"]
    if not n:
        return
    running = ", ".join(f"{b} ({s})" for b, _, _, s in run.plan.in_flight[:3])
    run.notes.append(f"{n:,} requests are in retry batches that have not finished"
                     + (f" ({running})" if running else "") + ": not offered again"
                     + (" (--force submits them once more)" if submit else
                        " (--force offers them)"))


def _record(run: _Run, report: RetryReport, lake: FileVisits) -> None:
    """Store the run's files and requests (no body, no prompt: ids, reasons, estimates)."""
    now = datetime.now(UTC)
    stored = run.plan.stored
    files = [{"run_id": report.run_id, "provider": run.provider, "file_name": f.name,
              "source_batch_id": f.source_batch_id, "root_batch_id": f.root_batch_id,
              "endpoint": f.endpoint, "model": f.model,
              "completion_window": _window(stored.get(f.source_batch_id)),
              "requests": f.requests, "bytes": f.bytes,
              "estimated_cost_usd": f.estimated_cost_usd if f.unpriced < f.requests else None,
              "file_path": str(f.path), "written_at": now, "submit_state": "written",
              "uploaded_file_id": None, "retry_batch_id": None, "submitted_at": None,
              "submit_error": None} for f in report.files]
    requests = report.requests.with_columns(pl.lit(report.run_id).alias("run_id"),
                                            pl.lit(run.provider).alias("provider"))
    roots = sorted({c.root.batch_id for c in run.plan.chains})
    with retry_writer(lake) as con:
        record_retry_run(con, run.provider, roots, files, requests)


def _window(b: Any) -> str:
    return getattr(b, "completion_window", None) or "24h"
