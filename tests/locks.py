"""Another process holding the DuckDB file's write lock, as a running sync does."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT

_HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
         " sys.stdin.readline() if sys.argv[2] == 'until-released' else "
         "time.sleep(float(sys.argv[2]))")


def hold_lock(db_path: str, seconds: float | None = None) -> subprocess.Popen[str]:
    """A process that holds ``db_path``'s write lock for ``seconds`` (None: until
    ``release``); returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, db_path,
         "until-released" if seconds is None else str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    if holder.stdin is not None and not holder.stdin.closed:
        holder.stdin.close()  # its readline returns: it exits and the lock goes with it
    holder.wait(timeout=30)


def run_cli_once_it_waits(db_path: str, *args: str, timeout: float = 60
                          ) -> subprocess.CompletedProcess[str]:
    """Run ``batchlake ARGS…`` while another process holds ``db_path``, release the lock once
    the command says on stderr that it waits, and return how the command ended: no timing
    guess, however slow the machine."""
    holder = hold_lock(db_path)
    try:
        cli = subprocess.Popen([sys.executable, "-m", "batchlake", *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert cli.stderr is not None
        said: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = cli.stderr.readline()
            said.append(line)
            if not line or "waiting" in line:
                break
        release(holder)
        out, rest = cli.communicate(timeout=timeout)
    finally:
        release(holder)
    return subprocess.CompletedProcess(cli.args, cli.returncode, out, "".join(said) + rest)
