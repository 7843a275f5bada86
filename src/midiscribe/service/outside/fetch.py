"""Fetch audio from URLs that strangers submit, without letting them reach our own network (SSRF).

Every address is checked twice: :func:`check_url` resolves the host and refuses non-public addresses
(at submit time and on every redirect hop, for a clear 400), and the connection pool's network backend
resolves and checks again, then connects to one of the addresses it just checked. So a DNS answer that
changes between the check and the connect (rebinding) cannot steer a connection inwards: there is no
check-then-use gap for TCP. TLS still verifies the certificate against the URL's hostname.

Messages name hosts and statuses, never the URL: presigned URLs carry secrets in their query strings.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpcore
import httpx

from midiscribe import __version__
from midiscribe.errors import MidiscribeError

__all__ = ["USER_AGENT", "FetchError", "FetchPolicy", "check_url", "download", "probe"]

log = logging.getLogger("midiscribe.fetch")

USER_AGENT = f"midiscribe/{__version__}"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GONE = frozenset({404, 410})
# 403 too: an S3 presigned URL is signed for GET only and refuses HEAD with 403.
_HEAD_REFUSED = frozenset({403, 405, 501})
# Names that reach this machine or a cloud metadata service whatever DNS says.
_BLOCKED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d, also holds :: and ::1
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix embeds any IPv4 address

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(MidiscribeError):
    """An audio URL was refused or could not be fetched.

    ``status`` is the HTTP status our API reports (400, 404, 413 or 502); ``code`` is a short machine code.
    """

    status: int
    code: str

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch. Sizes in bytes, times in seconds.

    ``allow_networks`` lists CIDRs or exact hostnames that may be fetched even though they are private
    or loopback, e.g. ``("127.0.0.1/32", "minio.internal")``.
    """

    max_bytes: int = 200 * 1024 * 1024
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0  # longest silence between bytes
    total_timeout_s: float = 600.0  # whole download, checked between chunks and hops
    max_redirects: int = 5
    allow_networks: tuple[str, ...] = ()
    allowed_schemes: tuple[str, ...] = ("https", "http")


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse `url` (FetchError 400) unless it is a plain http(s) URL whose host resolves only to public
    addresses, or is allowed by ``policy.allow_networks``. Resolves DNS; never connects."""
    _checked(url, policy)


def probe(url: str, policy: FetchPolicy) -> int | None:
    """Check at submit time that `url` exists and is not too large; return its size in bytes if known.

    Sends HEAD, or GET with ``Range: bytes=0-0`` if HEAD is refused (403, 405, 501), following
    redirects by hand with :func:`check_url` at every hop. Reads no body.
    """
    deadline = time.monotonic() + policy.total_timeout_s
    with _client(policy) as client, _upstream_errors():
        response = _open(client, "HEAD", url, policy, deadline)
        response.close()
        if response.status_code in _HEAD_REFUSED:
            response = _open(client, "GET", url, policy, deadline, {"Range": "bytes=0-0"})
            response.close()
        _raise_for_status(response)
        size = _declared_size(response)
        _check_size(size, policy)
        return size


def download(url: str, dest: Path, policy: FetchPolicy, *, progress: Callable[[int], None] | None = None) -> int:
    """Stream `url` to `dest` and return the number of bytes written.

    Writes ``dest.with_suffix('.part')`` and renames it when complete, so `dest` never holds a partial
    file; the part file is deleted on any failure. ``progress`` is called with the bytes written so far.
    """
    deadline = time.monotonic() + policy.total_timeout_s
    part = dest.with_suffix(".part")
    with _client(policy) as client, _upstream_errors():
        response = _open(client, "GET", url, policy, deadline)
        try:
            _raise_for_status(response)
            _check_size(_declared_size(response), policy)
            written = _stream_to(response, part, policy, deadline, progress)
        finally:
            response.close()
    part.replace(dest)
    return written


def _stream_to(
    response: httpx.Response,
    part: Path,
    policy: FetchPolicy,
    deadline: float,
    progress: Callable[[int], None] | None,
) -> int:
    written = 0
    try:
        with part.open("wb") as fh:
            # Raw bytes: we ask for identity encoding, and never inflate a compressed body (zip bombs).
            for chunk in response.iter_raw():
                written += len(chunk)
                if written > policy.max_bytes:
                    raise FetchError(413, "input_too_large", f"the audio is over the {policy.max_bytes}-byte limit")
                fh.write(chunk)
                if progress is not None:
                    progress(written)
                _check_deadline(deadline, policy)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return written


def _open(
    client: httpx.Client,
    method: str,
    url: str,
    policy: FetchPolicy,
    deadline: float,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send `method`, following redirects by hand; return the final response with its body unread."""
    for hop in range(policy.max_redirects + 1):
        target = _checked(url, policy)
        _check_deadline(deadline, policy)
        response = client.send(client.build_request(method, target, headers=headers), stream=True)
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or location is None:
            return response
        response.close()
        try:
            url = str(target.join(location))
        except httpx.InvalidURL as exc:
            raise FetchError(502, "upstream_error", f"{target.host} sent an invalid redirect") from exc
        log.debug("redirect %d from %s to %s", hop + 1, target.host, httpx.URL(url).host)
    raise FetchError(502, "upstream_error", f"more than {policy.max_redirects} redirects")


def _client(policy: FetchPolicy) -> httpx.Client:
    return httpx.Client(
        transport=_GuardedTransport(policy),
        timeout=httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s),
        follow_redirects=False,
        # No proxies or .netrc from the environment: a proxy would connect for us, past the check.
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, with a pool whose every TCP connection goes through `_GuardedBackend`."""

    def __init__(self, policy: FetchPolicy) -> None:
        ssl_context = httpx.create_ssl_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR for private CAs
        super().__init__(verify=ssl_context)
        # httpx 0.28 has no network_backend option, so replace the pool it built; test_fetch's
        # rebinding test fails if a future httpx stops using `_pool`.
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=_GuardedBackend(policy))


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in _resolve_checked(host, self._policy):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # getaddrinfo returns at least one address or raises
        raise error


def _checked(url: str, policy: FetchPolicy) -> httpx.URL:
    # Parse with httpx, the parser that will make the request, so both read the same host.
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(400, "invalid_audio_path", "audio_path is not a valid URL") from exc
    if parsed.scheme not in policy.allowed_schemes:
        schemes = " or ".join(policy.allowed_schemes)
        raise FetchError(400, "invalid_audio_path", f"audio_path must be an {schemes} URL")
    if parsed.userinfo:
        raise FetchError(400, "invalid_audio_path", "audio_path must not contain credentials (user:pass@)")
    host = parsed.raw_host.decode("ascii").rstrip(".")
    if not host:
        raise FetchError(400, "invalid_audio_path", "audio_path has no host")
    names, _ = _allowed(policy.allow_networks)
    if host not in names and (host in _BLOCKED_NAMES or host.endswith(".localhost")):
        raise FetchError(400, "forbidden_address", f"host {host!r} is not allowed")
    _resolve_checked(host, policy)
    return parsed


def _resolve_checked(host: str, policy: FetchPolicy) -> list[str]:
    """Resolve `host`; return its addresses if every one may be fetched, else raise FetchError 400."""
    # getaddrinfo takes no timeout: a stalling resolver can hold a worker past total_timeout_s.
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(400, "invalid_audio_path", f"host {host!r} could not be resolved") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    names, networks = _allowed(policy.allow_networks)
    if host.lower().rstrip(".") in names:
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone index
        forms = [ip, ip.ipv4_mapped] if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else [ip]
        if not _is_public(ip) and not any(form in net for form in forms for net in networks):
            # The address itself stays out of the message: it would map internal DNS for a stranger.
            raise FetchError(400, "forbidden_address", f"host {host!r} is not a public address")
    return addresses


def _is_public(ip: _IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if ip in _IPV4_COMPATIBLE:
            return False
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and not _is_public(embedded):
            return False
    # is_global excludes loopback, RFC 1918, fc00::/7, link-local, unspecified, CGNAT 100.64/10 and
    # most reserved blocks; multicast and the rest of reserved are refused explicitly.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


@functools.lru_cache(maxsize=32)
def _allowed(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[_Net, ...]]:
    names: set[str] = set()
    networks: list[_Net] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    host = response.url.host
    if status in _GONE:
        raise FetchError(404, "input_not_found", f"{host} answered HTTP {status}: the audio is not there")
    if not response.is_success:
        raise FetchError(502, "upstream_error", f"{host} answered HTTP {status}")


def _declared_size(response: httpx.Response) -> int | None:
    """The full size in bytes from Content-Range (a 206 to our Range probe) or Content-Length."""
    if response.status_code == 206:
        total = response.headers.get("content-range", "").rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "").strip()
    return int(length) if length.isdigit() else None


def _check_size(size: int | None, policy: FetchPolicy) -> None:
    if size is not None and size > policy.max_bytes:
        raise FetchError(413, "input_too_large", f"the audio is {size} bytes, over the {policy.max_bytes}-byte limit")


def _check_deadline(deadline: float, policy: FetchPolicy) -> None:
    # Between chunks only, so a trickling server overshoots by at most one read_timeout_s.
    if time.monotonic() > deadline:
        raise FetchError(502, "upstream_timeout", f"the download took over {policy.total_timeout_s:g} s")


@contextmanager
def _upstream_errors() -> Iterator[None]:
    """Turn httpx's network errors into FetchError 502."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise FetchError(502, "upstream_timeout", f"the audio server timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(502, "upstream_error", f"fetching the audio failed ({type(exc).__name__})") from exc
