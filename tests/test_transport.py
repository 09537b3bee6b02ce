"""The httpx transport over http.client (gateway/transport.py), against real servers on
127.0.0.1: keep-alive, connections the server dropped, short and encoded bodies, timeouts,
TLS."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchlake.common import GatewayUnreachable, Settings
from batchlake.gateway import GatewayClient
from batchlake.gateway.transport import READ_CHUNK, StdlibTransport

BODY = b'{"data": [], "has_more": false}'
BIG = b"x" * (3 * READ_CHUNK + 17)  # streams in several reads


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self) -> tuple[Any, Any]:
        self.connections += 1
        return super().get_request()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a response says otherwise

    def log_message(self, *args: Any) -> None:
        return None

    def _send(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._send(BODY)
        elif self.path == "/big":
            self._send(BIG)
        elif self.path == "/drop":  # answers, then closes without saying so (an idle timeout)
            self._send(BODY)
            self.close_connection = True
        elif self.path == "/short":  # promises 1,000 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"data": [')
            self.close_connection = True
        elif self.path == "/gzip":
            self._send(gzip.compress(BODY), {"Content-Encoding": "gzip"})
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (BODY[:7], BODY[7:]):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(BODY)
        elif self.path.startswith("/echo"):  # the request line and headers as received
            self._send(f"{self.path}\n{self.headers.get('Host')}\n"
                       f"{self.headers.get('X-Test')}".encode())


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, _Server]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"{'https' if tls else 'http'}://{host!s}:{port}", server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[tuple[str, _Server]]:
    yield from _serve()


@pytest.fixture
def client(server: tuple[str, _Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], transport=StdlibTransport(), timeout=5) as c:
        yield c


def test_requests_share_one_kept_alive_connection(client: httpx.Client,
                                                  server: tuple[str, _Server]) -> None:
    for _ in range(50):
        assert client.get("/ok").content == BODY
    assert client.get("/big").content == BIG
    assert server[1].connections == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced_without_an_error(
        client: httpx.Client, server: tuple[str, _Server]) -> None:
    # Each answer leaves a pooled connection the server has closed: the next request finds
    # it dead and goes again on a fresh one, so the caller sees no error at all.
    for _ in range(5):
        assert client.get("/drop").content == BODY
    assert server[1].connections == 5


def test_a_body_shorter_than_its_length_is_an_error_not_a_short_body(
        client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="IncompleteRead"):
        client.get("/short")
    assert client.get("/ok").content == BODY  # and the next request works


def test_gzip_and_chunked_bodies_arrive_whole_and_decoded(client: httpx.Client) -> None:
    assert client.get("/gzip").json() == {"data": [], "has_more": False}
    assert client.get("/chunked").content == BODY


def test_path_query_and_headers_are_sent_as_httpx_built_them(
        client: httpx.Client, server: tuple[str, _Server]) -> None:
    got = client.get("/echo/a%2Fb", params={"after": "arn:aws:x/y z"},
                     headers={"X-Test": "yes"}).text.splitlines()
    assert got == ["/echo/a%2Fb?after=arn%3Aaws%3Ax%2Fy+z", server[0].split("//")[1], "yes"]


def test_a_slow_answer_is_a_read_timeout(server: tuple[str, _Server]) -> None:
    with httpx.Client(base_url=server[0], transport=StdlibTransport(), timeout=0.2) as c, \
            pytest.raises(httpx.ReadTimeout):
        c.get("/slow")


def test_a_refused_connection_is_a_connect_error() -> None:
    with _Server(("127.0.0.1", 0), _Handler) as s:
        port = s.server_address[1]  # bound, then closed: nothing listens there
    with httpx.Client(transport=StdlibTransport(), timeout=2) as c, \
            pytest.raises(httpx.ConnectError):
        c.get(f"http://127.0.0.1:{port}/ok")


def _self_signed(tmp: Path) -> ssl.SSLContext:
    """A TLS server context with a certificate for 127.0.0.1 that nobody trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


def test_https_verifies_certificates_and_insecure_skips_it(tmp_path: Path) -> None:
    for url, _ in _serve(_self_signed(tmp_path)):
        with httpx.Client(transport=StdlibTransport(verify=False), timeout=5) as c:
            assert c.get(url + "/ok").content == BODY
        with httpx.Client(transport=StdlibTransport(), timeout=5) as c, \
                pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            c.get(url + "/ok")
        # Through the gateway client: one line that says what is wrong and what to do.
        with GatewayClient(Settings(base_url=url, timeout_s=5, max_retries=0)) as gw, \
                pytest.raises(GatewayUnreachable) as e:
            gw.get_json("/ok", {})
        assert "certificate" in str(e.value) and "--insecure" in str(e.value)
        assert "\n" not in str(e.value)
        with GatewayClient(Settings(base_url=url, timeout_s=5, verify_tls=False)) as gw:
            assert gw.get_json("/ok", {}) == {"data": [], "has_more": False}
