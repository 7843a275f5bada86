"""Fetching audio URLs: SSRF guards, redirects, size limits and timeouts, against a real local server.

No test may reach beyond this machine: an autouse fixture resolves only IP literals and names from a
table, and refuses any TCP connection to a non-loopback address.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from midiscribe.service.outside.fetch import USER_AGENT, FetchError, FetchPolicy, check_url, download, probe

BODY = bytes(range(256)) * 40  # 10,240 bytes
LOCAL = FetchPolicy(allow_networks=("127.0.0.1/32",))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str, dict[str, str]]]
    release: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hangs up mid-body on purpose in several tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content_Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def _chunks(self, count: int, size: int, pause_s: float) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(count):
            self.wfile.write(b"%x\r\n%s\r\n" % (size, b"x" * size))
            self.wfile.flush()
            if self.server.release.wait(pause_s):
                break
        self.close_connection = True

    def _route(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        path, head = self.path, self.command == "HEAD"
        if path == "/small.wav":
            self._send(200, BODY, Content_Type="audio/wav")
        elif path in ("/missing", "/gone"):
            self._send(404 if path == "/missing" else 410)
        elif path == "/error":
            self._send(500, b"boom")
        elif path.startswith("/r/"):
            hops = int(path[3:])
            self._send(302, Location=f"/r/{hops - 1}" if hops > 1 else "/small.wav")
        elif path == "/to-metadata":
            self._send(302, Location="http://169.254.169.254/latest/meta-data")
        elif path == "/huge":
            self._send(200, Content_Length=str(10**12))
            self.close_connection = True
        elif path.startswith("/no-head/"):
            if head:
                self._send(int(path[9:]))
            elif self.headers.get("Range") == "bytes=0-0":
                self._send(206, BODY[:1], Content_Range=f"bytes 0-0/{len(BODY)}")
            else:
                self._send(200, BODY)
        elif path == "/chunked":
            self._chunks(count=1000, size=4096, pause_s=0)
        elif path == "/trickle":
            self._chunks(count=1000, size=1, pause_s=0.05)
        elif path in ("/stall", "/short"):
            self._send(200, BODY[:10], Content_Length=str(len(BODY)))
            self.wfile.flush()
            if path == "/stall":
                self.server.release.wait(5)
            self.close_connection = True
        else:
            self._send(404)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Resolve IP literals, and names from the returned table (each lookup takes the next address,
    the last one sticks); send no DNS query; refuse TCP connections beyond loopback."""
    table: dict[str, list[str]] = {}
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            host = table[host].pop(0) if len(table[host]) > 1 else table[host][0]
        family, type_, proto, flags = [*args, 0, 0, 0, 0][:4]
        flags = kwargs.get("flags", flags) | socket.AI_NUMERICHOST
        return real_getaddrinfo(host, port, kwargs.get("family", family), kwargs.get("type", type_), proto, flags)

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        assert address[0] in ("127.0.0.1", "::1"), f"test tried to connect to {address[0]}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return table


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.seen, srv.release = [], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def url(server: _Server) -> Callable[[str], str]:
    server.seen.clear()
    return lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"


def fails(call: Callable[[], object], status: int, code: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        call()
    assert (info.value.status, info.value.code) == (status, code), str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("ftp://x", "invalid_audio_path"),
        ("http://", "invalid_audio_path"),
        ("not a url", "invalid_audio_path"),
        ("http://user:pw@example.com/a.wav", "invalid_audio_path"),
        ("http://localhost/", "forbidden_address"),
        ("http://LOCALHOST./", "forbidden_address"),
        ("http://api.localhost/", "forbidden_address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "forbidden_address"),
        ("http://10.0.0.1/", "forbidden_address"),
        ("http://192.168.1.1/", "forbidden_address"),
        ("http://172.16.0.1/", "forbidden_address"),
        ("http://127.0.0.1/", "forbidden_address"),
        ("http://2130706433/", "forbidden_address"),  # 127.0.0.1 in decimal
        ("http://0x7f000001/", "forbidden_address"),
        ("http://127.1/", "forbidden_address"),
        ("http://169.254.169.254/latest/meta-data", "forbidden_address"),
        ("http://[::1]/", "forbidden_address"),
        ("http://[::ffff:127.0.0.1]/", "forbidden_address"),
        ("http://[::ffff:169.254.169.254]/", "forbidden_address"),
        ("http://[fe80::1]/", "forbidden_address"),
        ("http://[fd00::1]/", "forbidden_address"),
        ("http://[64:ff9b::a00:1]/", "forbidden_address"),  # NAT64 of 10.0.0.1
        ("http://[2002:a00:1::]/", "forbidden_address"),  # 6to4 of 10.0.0.1
        ("http://100.64.0.1/", "forbidden_address"),
        ("http://224.0.0.1/", "forbidden_address"),
        ("http://240.0.0.1/", "forbidden_address"),
        ("http://0.0.0.0/", "forbidden_address"),
        ("http://[::]/", "forbidden_address"),
    ],
)
def test_check_url_rejects(bad: str, code: str) -> None:
    fails(lambda: check_url(bad, FetchPolicy()), 400, code)


def test_check_url_accepts_public_literals_without_connecting() -> None:
    check_url("http://93.184.216.34/x.wav", FetchPolicy())
    check_url("https://[2606:2800:220:1:248:1893:25c8:1946]/x.wav?X-Amz-Signature=abc", FetchPolicy())


def test_messages_do_not_echo_credentials() -> None:
    error = fails(lambda: check_url("http://user:s3cret@example.com/a.wav", FetchPolicy()), 400, "invalid_audio_path")
    assert "s3cret" not in str(error) and "credentials" in str(error)


def test_allow_networks_admits_cidrs_and_names(dns: dict[str, list[str]]) -> None:
    fails(lambda: check_url("http://10.1.2.3/", FetchPolicy()), 400, "forbidden_address")
    check_url("http://10.1.2.3/", FetchPolicy(allow_networks=("10.0.0.0/8",)))
    check_url("http://[::ffff:10.1.2.3]/", FetchPolicy(allow_networks=("10.0.0.0/8",)))
    dns["minio.internal"] = ["10.1.2.3"]
    fails(lambda: check_url("http://minio.internal/", FetchPolicy()), 400, "forbidden_address")
    check_url("http://minio.internal:9000/", FetchPolicy(allow_networks=("minio.internal",)))
    dns["localhost"] = ["127.0.0.1"]
    check_url("http://localhost/", FetchPolicy(allow_networks=("127.0.0.0/8", "localhost")))


def test_loopback_server_is_refused_without_allow_networks(server: _Server, url: Callable[[str], str]) -> None:
    fails(lambda: check_url(url("/small.wav"), FetchPolicy()), 400, "forbidden_address")
    fails(lambda: probe(url("/small.wav"), FetchPolicy()), 400, "forbidden_address")
    fails(lambda: download(url("/small.wav"), Path("unused.wav"), FetchPolicy()), 400, "forbidden_address")
    assert server.seen == []


def test_download_small_file(tmp_path: Path, server: _Server, url: Callable[[str], str]) -> None:
    seen: list[int] = []
    dest = tmp_path / "a.wav"
    assert download(url("/small.wav"), dest, LOCAL, progress=seen.append) == len(BODY)
    assert dest.read_bytes() == BODY and not dest.with_suffix(".part").exists()
    assert seen and seen[-1] == len(BODY) and seen == sorted(seen)
    headers = server.seen[0][2]
    assert headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("midiscribe/")
    assert headers["Accept-Encoding"] == "identity"


def test_follows_redirect_chain(tmp_path: Path, server: _Server, url: Callable[[str], str]) -> None:
    assert download(url("/r/3"), tmp_path / "a.wav", LOCAL) == len(BODY)
    assert [path for _, path, _ in server.seen] == ["/r/3", "/r/2", "/r/1", "/small.wav"]
    assert probe(url("/r/3"), LOCAL) == len(BODY)
    limited = FetchPolicy(allow_networks=LOCAL.allow_networks, max_redirects=2)
    error = fails(lambda: download(url("/r/3"), tmp_path / "b.wav", limited), 502, "upstream_error")
    assert "redirects" in str(error)


def test_redirect_to_forbidden_address(tmp_path: Path, url: Callable[[str], str]) -> None:
    fails(lambda: download(url("/to-metadata"), tmp_path / "a.wav", LOCAL), 400, "forbidden_address")
    fails(lambda: probe(url("/to-metadata"), LOCAL), 400, "forbidden_address")
    assert not list(tmp_path.iterdir())


def test_not_found_and_upstream_errors(tmp_path: Path, url: Callable[[str], str]) -> None:
    for path in ("/missing", "/gone"):
        fails(lambda p=path: download(url(p), tmp_path / "a.wav", LOCAL), 404, "input_not_found")
        fails(lambda p=path: probe(url(p), LOCAL), 404, "input_not_found")
    error = fails(lambda: download(url("/error"), tmp_path / "a.wav", LOCAL), 502, "upstream_error")
    assert "500" in str(error)
    fails(lambda: probe(url("/error"), LOCAL), 502, "upstream_error")
    # the server closes after 10 of the 10,240 bytes it announced
    fails(lambda: download(url("/short"), tmp_path / "a.wav", LOCAL), 502, "upstream_error")
    closed = f"http://127.0.0.1:{_closed_port()}/a.wav"
    fails(lambda: probe(closed, LOCAL), 502, "upstream_error")
    assert not list(tmp_path.iterdir())


def test_huge_content_length_is_refused_before_reading(tmp_path: Path, url: Callable[[str], str]) -> None:
    fails(lambda: probe(url("/huge"), LOCAL), 413, "input_too_large")
    fails(lambda: download(url("/huge"), tmp_path / "a.wav", LOCAL), 413, "input_too_large")
    assert not list(tmp_path.iterdir())


def test_chunked_body_over_limit_is_aborted_and_deleted(tmp_path: Path, url: Callable[[str], str]) -> None:
    small = FetchPolicy(allow_networks=LOCAL.allow_networks, max_bytes=64 * 1024)
    seen: list[int] = []
    fails(
        lambda: download(url("/chunked"), tmp_path / "a.wav", small, progress=seen.append),
        413,
        "input_too_large",
    )
    assert not list(tmp_path.iterdir())
    assert seen[-1] <= small.max_bytes


def test_probe_falls_back_to_range_get(url: Callable[[str], str], server: _Server) -> None:
    for refused in (405, 501, 403):
        server.seen.clear()
        assert probe(url(f"/no-head/{refused}"), LOCAL) == len(BODY)
        assert [method for method, _, _ in server.seen] == ["HEAD", "GET"]
        assert server.seen[1][2]["Range"] == "bytes=0-0"


def test_stalled_read_times_out(tmp_path: Path, url: Callable[[str], str]) -> None:
    policy = FetchPolicy(allow_networks=LOCAL.allow_networks, read_timeout_s=0.3)
    start = time.monotonic()
    fails(lambda: download(url("/stall"), tmp_path / "a.wav", policy), 502, "upstream_timeout")
    assert time.monotonic() - start < 2
    assert not list(tmp_path.iterdir())


def test_trickling_body_hits_total_timeout(tmp_path: Path, url: Callable[[str], str]) -> None:
    policy = FetchPolicy(allow_networks=LOCAL.allow_networks, read_timeout_s=1, total_timeout_s=0.3)
    start = time.monotonic()
    fails(lambda: download(url("/trickle"), tmp_path / "a.wav", policy), 502, "upstream_timeout")
    assert time.monotonic() - start < 2
    assert not list(tmp_path.iterdir())


def test_connects_only_to_the_checked_address(
    tmp_path: Path, dns: dict[str, list[str]], server: _Server, url: Callable[[str], str]
) -> None:
    port = server.server_address[1]
    # A name that resolves to the allowed server is fetched from the address that was checked...
    dns["audio.test"] = ["127.0.0.1"]
    assert download(f"http://audio.test:{port}/small.wav", tmp_path / "a.wav", LOCAL) == len(BODY)
    assert server.seen[-1][2]["Host"] == f"audio.test:{port}"
    # ...and DNS rebinding (public when checked, loopback when connecting) is caught at connect time.
    server.seen.clear()
    dns["rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    rebind = f"http://rebind.test:{port}/small.wav"
    fails(lambda: download(rebind, tmp_path / "b.wav", FetchPolicy()), 400, "forbidden_address")
    assert server.seen == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
