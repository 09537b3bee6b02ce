"""A headless Chromium driven over the DevTools protocol (websockets, already installed with
Prefect): load a page, collect console messages, exceptions and every network request,
evaluate JavaScript, take a screenshot. No browser download: Debian's ``chromium`` package,
which `.ci/run` and the Makefile install with apt-get."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import free_port, stop_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    values: dict[str, Any] = field(default_factory=dict)


def visit(url: str, expressions: dict[str, str], width: int = 1280, height: int = 1800,
          deadline_s: float = 60.0) -> PageVisit:
    """Open ``url`` in a fresh headless Chromium, wait for the load, evaluate each of
    ``expressions`` (name -> JavaScript), take a PNG screenshot."""
    assert CHROMIUM, "chromium is not installed"
    port = free_port()
    profile = tempfile.mkdtemp(prefix="batchlake-chromium-")
    # As root, with this machine's closed network: no sandbox, no background networking.
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", f"--window-size={width},{height}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + deadline_s
        target = None
        while target is None:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                target = next(p for p in pages if p.get("type") == "page")
            except (httpx.TransportError, StopIteration, ValueError):
                if time.monotonic() > end:
                    raise AssertionError("chromium did not start in time") from None
                time.sleep(0.1)
        return _drive(target["webSocketDebuggerUrl"], url, expressions, width, height, end)
    finally:
        stop_process(proc, 10)
        shutil.rmtree(profile, ignore_errors=True)


def _drive(ws_url: str, url: str, expressions: dict[str, str], width: int, height: int,
           end: float) -> PageVisit:
    out = PageVisit()
    with connect(ws_url, max_size=64 << 20) as ws:
        ids = iter(range(1, 10**6))

        def call(method: str, **params: Any) -> dict[str, Any]:
            n = next(ids)
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
                if msg.get("id") == n:
                    if "error" in msg:
                        raise AssertionError(f"{method}: {msg['error']}")
                    return dict(msg.get("result", {}))
                event(msg)

        def event(msg: dict[str, Any]) -> None:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                             "assert"):
                out.console_errors.append(str(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                out.console_errors.append(str(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.console_errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                out.requests.append(str(params.get("request", {}).get("url")))
            elif method == "Page.loadEventFired":
                loaded.append(True)

        loaded: list[bool] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            call(f"{domain}.enable")
        call("Emulation.setDeviceMetricsOverride", width=width, height=height,
             deviceScaleFactor=1, mobile=False)
        call("Page.navigate", url=url)
        while not loaded:
            event(json.loads(ws.recv(timeout=max(0.1, end - time.monotonic()))))
        for name, js in expressions.items():
            res = call("Runtime.evaluate", expression=js, returnByValue=True)
            out.values[name] = res.get("result", {}).get("value")
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        out.screenshot = base64.b64decode(shot["data"])
    return out


def png_is_blank(png: bytes) -> bool:
    """True when a screenshot has (almost) one colour: decodes the PNG with zlib only."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[colour] * depth // 8
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp + 1
    # sample rows (their filter byte varies; distinct byte values across rows are enough)
    distinct = {raw[r * stride + 1: (r + 1) * stride] for r in range(0, height, max(1,
                                                                                 height // 50))}
    colours = {row[i:i + bpp] for row in distinct for i in range(0, len(row), bpp * 7)}
    return len(colours) < 8


def save(png: bytes, path: Path) -> Path:
    path.write_bytes(png)
    return path
