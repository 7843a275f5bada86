"""The bad-input corpus (issue 11): what strangers and careless clients send, against one real
`midiscribe serve` (no workers: nothing is transcribed). Each case asserts the exact status and
error code, and that the server still answers on the same kept-alive connection afterwards."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest

from audiogen import encode, melody
from service_harness import Service

API = "/api/public/v1/audio_to_midi"
TASKS = "/api/public/v1/tasks"
MAX_UPLOAD = 1_000_000


@dataclass
class Env:
    svc: Service
    key: str
    other: str
    revoked: str
    files: str  # base URL of the audio/redirect server
    media: Path
    client: httpx.Client
    ids: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    root: Path

    def _serve(self, body: bool) -> None:
        url = urlparse(self.path)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.root / url.path.lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve(True)

    def do_HEAD(self) -> None:
        self._serve(False)

    def log_message(self, *args: Any) -> None:
        pass


def _lying_wav(seconds_claimed: float) -> bytes:
    """A WAV whose header claims ``seconds_claimed`` of 16-bit mono 8 kHz audio but holds 0.1 s."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(800, dtype="<i2").tobytes())
    data = bytearray(buf.getvalue())
    claimed = int(seconds_claimed * 8000 * 2)
    data[4:8] = struct.pack("<I", claimed + 36)
    data[40:44] = struct.pack("<I", claimed)
    return bytes(data)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    media = tmp_path_factory.mktemp("corpus-media")
    encode(media / "tune.flac", melody([(0.1, 0.4, 60), (0.5, 0.4, 67)], 1.0, sr=22_050), sr=22_050, kind="flac")
    encode(media / "long.flac", np.zeros(22_050 * 90, dtype=np.float32), sr=22_050, kind="flac")  # 90 s > 60 s
    noise = np.random.default_rng(1).uniform(-0.9, 0.9, 22_050 * 30).astype(np.float32)
    encode(media / "noise.flac", noise, sr=22_050, kind="flac")  # a real FLAC over 1 MB
    assert (media / "noise.flac").stat().st_size > MAX_UPLOAD
    (media / "lie.wav").write_bytes(_lying_wav(7200))
    handler = type("H", (_Handler,), {"root": media})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    svc = Service(
        tmp_path_factory.mktemp("corpus-svc"),
        workers=0,
        env={
            "MIDISCRIBE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "MIDISCRIBE_MAX_AUDIO_DURATION_S": "60",
            "MIDISCRIBE_RATE_LIMIT_PER_MINUTE": "100000",
            "MIDISCRIBE_MAX_CONCURRENT_TASKS_PER_KEY": "100000",
            "MIDISCRIBE_FETCH_CONNECT_TIMEOUT_S": "2",
        },
    )
    key, _ = svc.create_key("corpus")
    other, _ = svc.create_key("other")
    revoked, _ = svc.create_key("revoked")
    svc.cli("keys", "revoke", revoked[:10])
    svc.start()
    client = httpx.Client(base_url=svc.url, timeout=30)
    e = Env(svc, key, other, revoked, f"http://127.0.0.1:{server.server_address[1]}", media, client)
    tune = (media / "tune.flac").read_bytes()
    r = client.post(API, headers={"Authorization": key}, files={"audio_file": ("t.flac", tune)})
    assert r.status_code == 200, r.text
    e.ids["mine"] = r.json()["task_id"]
    r = client.post(API, headers={"Authorization": other}, files={"audio_file": ("t.flac", tune)})
    e.ids["others"] = r.json()["task_id"]
    yield e
    client.close()
    svc.stop()
    server.shutdown()


# A case: (category, name, request builder, status, code). The builder gets the Env and returns
# keyword arguments for httpx.Client.request (method and url included).
Builder = Callable[[Env], dict[str, Any]]


def post(body: Any = None, *, auth: str | None = "key", **kwargs: Any) -> Builder:
    def build(e: Env) -> dict[str, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            headers.setdefault("Authorization", getattr(e, auth))
        out = {"method": "POST", "url": API, "headers": headers, **kwargs}
        if body is not None:
            out["json"] = body(e) if callable(body) else body
        return out

    return build


def raw(content: bytes, ctype: str, path: str = API) -> Builder:
    return lambda e: {
        "method": "POST",
        "url": path.format(**e.ids),
        "content": content,
        "headers": {"Authorization": e.key, "content-type": ctype},
    }


def upload(name: str, data: Callable[[Env], bytes], field: str = "audio_file", **fields: str) -> Builder:
    return lambda e: {
        "method": "POST",
        "url": API,
        "headers": {"Authorization": e.key},
        "files": {field: (name, data(e))},
        "data": fields,
    }


def get(path: str, auth: str | None = "key", headers: dict[str, str] | None = None) -> Builder:
    def build(e: Env) -> dict[str, Any]:
        h = dict(headers or {})
        if auth is not None:
            h["Authorization"] = getattr(e, auth)
        return {"method": "GET", "url": path.format(**e.ids), "headers": h}

    return build


def media(name: str) -> Callable[[Env], bytes]:
    return lambda e: (e.media / name).read_bytes()


def url(path: str) -> Builder:
    return post(lambda e: {"audio_path": path.format(files=e.files)})


def hook(target: str) -> Builder:
    return post(lambda e: {"audio_path": f"{e.files}/tune.flac", "webhook_url": target})


def redirect(to: str) -> Builder:
    return post(lambda e: {"audio_path": f"{e.files}/redirect?to={to}"})


def signed_file(mutate: Callable[[str], str]) -> Builder:
    def build(e: Env) -> dict[str, Any]:
        r = e.client.get(f"{TASKS}/{e.ids['mine']}", headers={"Authorization": e.key})
        link = r.json()["input"]["file_path"]
        return {"method": "GET", "url": mutate(link.removeprefix(e.svc.url))}

    return build


DEEP = b'{"audio_path": ' + b"[" * 1000 + b"]" * 1000 + b"}"
OK = (200, None)
CASES: list[tuple[str, str, Builder, int, str | None]] = [
    # --- auth
    ("auth", "no header", post({"audio_path": "https://example.com/a.wav"}, auth=None), 401, "unauthorized"),
    ("auth", "empty", post({"audio_path": "x"}, headers={"Authorization": ""}, auth=None), 401, "unauthorized"),
    (
        "auth",
        "wrong key",
        post({"audio_path": "x"}, headers={"Authorization": "ms_wrong"}, auth=None),
        401,
        "unauthorized",
    ),
    ("auth", "bearer alone", post({}, headers={"Authorization": "Bearer"}, auth=None), 401, "unauthorized"),
    ("auth", "bearer wrong", post({}, headers={"Authorization": "Bearer ms_x"}, auth=None), 401, "unauthorized"),
    ("auth", "revoked key", post({"audio_path": "x"}, auth="revoked"), 401, "unauthorized"),
    ("auth", "8 KB key", post({}, headers={"Authorization": "k" * 8000}, auth=None), 401, "unauthorized"),
    ("auth", "status without key", get(TASKS + "/{mine}", auth=None), 401, "unauthorized"),
    ("auth", "list without key", get(TASKS, auth=None), 401, "unauthorized"),
    ("auth", "other key's task", get(TASKS + "/{others}"), 404, "task_not_found"),
    # --- JSON shape
    ("json", "empty object", post({}), 400, "invalid_parameters"),
    ("json", "array", post([1, 2]), 400, "invalid_parameters"),
    ("json", "string", post("audio"), 400, "invalid_parameters"),
    ("json", "null", raw(b"null", "application/json"), 400, "invalid_parameters"),
    ("json", "not JSON", raw(b"{not json", "application/json"), 400, "invalid_parameters"),
    ("json", "trailing garbage", raw(b'{"audio_path": "x"} x', "application/json"), 400, "invalid_parameters"),
    ("json", "empty body", raw(b"", "application/json"), 400, "invalid_parameters"),
    ("json", "nested 1000 deep", raw(DEEP, "application/json"), 400, "invalid_parameters"),
    (
        "json",
        "nested 40 deep",
        raw(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "application/json"),
        400,
        "invalid_parameters",
    ),
    (
        "json",
        "lone surrogate in audio_path",
        raw(b'{"audio_path": "https://a.com/\\ud800"}', "application/json"),
        400,
        "invalid_parameters",
    ),
    (
        "json",
        "lone surrogate in webhook_url",
        raw(b'{"audio_path": "https://a.com/a", "webhook_url": "https://b.com/\\udfff"}', "application/json"),
        400,
        "invalid_parameters",
    ),
    ("json", "lone surrogate in a key", raw(b'{"\\ud800": 1}', "application/json"), 400, "invalid_parameters"),
    (
        "json",
        "NUL in audio_path",
        raw(b'{"audio_path": "https://a.com/\\u0000"}', "application/json"),
        400,
        "invalid_parameters",
    ),
    ("json", "NaN", raw(b'{"audio_path": "x", "onset_threshold": NaN}', "application/json"), 400, "invalid_parameters"),
    (
        "json",
        "Infinity",
        raw(b'{"audio_path": "x", "midi_tempo": Infinity}', "application/json"),
        400,
        "invalid_parameters",
    ),
    (
        "json",
        "huge integer",
        raw(b'{"audio_path": "x", "midi_program": 1' + b"0" * 5000 + b"}", "application/json"),
        400,
        "invalid_parameters",
    ),
    ("json", "invalid UTF-8", raw(b'{"audio_path": "\xff\xfe"}', "application/json"), 400, "invalid_parameters"),
    # --- types
    (
        "types",
        "sonify_midi yes",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "sonify_midi": "yes"}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "sonify_midi '0'",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "sonify_midi": "0"}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "sonify_midi 0",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "sonify_midi": 0}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "sonify_midi null",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "sonify_midi": None}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "save_note_events 'true'",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "save_note_events": "true"}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "threshold as string",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "onset_threshold": "0.5"}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "threshold out of range",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "onset_threshold": 2}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "program 1.5",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "midi_program": 1.5}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "program true",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "midi_program": True}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "program 128",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "midi_program": 128}),
        400,
        "invalid_parameters",
    ),
    ("types", "audio_path a number", post({"audio_path": 123}), 400, "invalid_parameters"),
    ("types", "audio_path a list", post({"audio_path": ["https://a.com/a.wav"]}), 400, "invalid_parameters"),
    (
        "types",
        "webhook_url an object",
        post({"audio_path": "https://a.com/a.wav", "webhook_url": {}}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "sonify_format ogg",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "sonify_format": "ogg"}),
        400,
        "invalid_parameters",
    ),
    (
        "types",
        "integer thresholds are numbers",
        post(lambda e: {"audio_path": f"{e.files}/tune.flac", "onset_threshold": 1}),
        *OK,
    ),
    ("types", "unknown fields ignored", post(lambda e: {"audio_path": f"{e.files}/tune.flac", "foo": {"bar": 1}}), *OK),
    # --- content types
    (
        "content",
        "JSON as text/plain",
        raw(b'{"audio_path": "https://a.com/a.wav"}', "text/plain"),
        415,
        "unsupported_media_type",
    ),
    ("content", "XML", raw(b"<audio_path>x</audio_path>", "application/xml"), 415, "unsupported_media_type"),
    ("content", "octet-stream", raw(b"RIFF", "application/octet-stream"), 415, "unsupported_media_type"),
    ("content", "multipart without boundary", raw(b"--x\r\n", "multipart/form-data"), 400, "invalid_parameters"),
    (
        "content",
        "form sonify_midi=yes",
        lambda e: {
            "method": "POST",
            "url": API,
            "headers": {"Authorization": e.key},
            "data": {"audio_path": f"{e.files}/tune.flac", "sonify_midi": "yes"},
        },
        400,
        "invalid_parameters",
    ),
    (
        "content",
        "curl -d JSON (urlencoded)",
        lambda e: {
            "method": "POST",
            "url": API,
            "headers": {"Authorization": e.key, "content-type": "application/x-www-form-urlencoded"},
            "content": f'{{"audio_path": "{e.files}/tune.flac"}}'.encode(),
        },
        *OK,
    ),
    (
        "content",
        "text/plain on notes",
        raw(b"{}", "text/plain", TASKS + "/{mine}/notes"),
        415,
        "unsupported_media_type",
    ),
    # --- schemes
    ("schemes", "ftp", url("ftp://example.com/a.wav"), 400, "invalid_audio_path"),
    ("schemes", "file", url("file:///etc/passwd"), 400, "invalid_audio_path"),
    ("schemes", "gopher", url("gopher://example.com/"), 400, "invalid_audio_path"),
    ("schemes", "javascript", url("javascript:alert(1)"), 400, "invalid_audio_path"),
    ("schemes", "data", url("data:audio/wav;base64,UklGRg=="), 400, "invalid_audio_path"),
    ("schemes", "no scheme", url("example.com/a.wav"), 400, "invalid_audio_path"),
    ("schemes", "s3 not configured", url("s3://bucket/a.wav"), 400, "s3_not_configured"),
    ("schemes", "no host", url("http:///a.wav"), 400, "invalid_audio_path"),
    ("schemes", "credentials", url("https://user:pw@example.com/a.wav"), 400, "invalid_audio_path"),
    ("schemes", "webhook ftp", hook("ftp://example.com/hook"), 400, "invalid_webhook_url"),
    # --- SSRF
    ("ssrf", "private 10/8", url("http://10.0.0.1/a.wav"), 400, "forbidden_address"),
    ("ssrf", "decimal IP", url("http://167772161/a.wav"), 400, "forbidden_address"),
    ("ssrf", "octal IP (refused by the URL parser)", url("http://012.0.0.1/a.wav"), 400, "invalid_audio_path"),
    ("ssrf", "hex IP", url("http://0x0a000001/a.wav"), 400, "forbidden_address"),
    ("ssrf", "metadata", url("http://169.254.169.254/latest/meta-data/"), 400, "forbidden_address"),
    ("ssrf", "metadata hex", url("http://0xA9FEA9FE/latest/"), 400, "forbidden_address"),
    ("ssrf", "IPv6-mapped private", url("http://[::ffff:10.0.0.1]/a.wav"), 400, "forbidden_address"),
    ("ssrf", "IPv6-mapped metadata", url("http://[::ffff:a9fe:a9fe]/a.wav"), 400, "forbidden_address"),
    ("ssrf", "IPv6 loopback", url("http://[::1]/a.wav"), 400, "forbidden_address"),
    ("ssrf", "IPv6 ULA", url("http://[fd00::1]/a.wav"), 400, "forbidden_address"),
    ("ssrf", "0.0.0.0", url("http://0.0.0.0/a.wav"), 400, "forbidden_address"),
    ("ssrf", "CGNAT", url("http://100.64.0.1/a.wav"), 400, "forbidden_address"),
    ("ssrf", "loopback outside the allowed /32", url("http://127.0.0.2/a.wav"), 400, "forbidden_address"),
    ("ssrf", "localhost name", url("http://localhost/a.wav"), 400, "forbidden_address"),
    ("ssrf", "metadata name", url("http://metadata.google.internal/"), 400, "forbidden_address"),
    ("ssrf", "redirect to private", redirect("http://10.0.0.1/a.wav"), 400, "forbidden_address"),
    ("ssrf", "redirect to metadata", redirect("http://169.254.169.254/latest/"), 400, "forbidden_address"),
    ("ssrf", "redirect to IPv6 loopback", redirect("http://[::1]/a.wav"), 400, "forbidden_address"),
    ("ssrf", "redirect to decimal IP", redirect("http://167772161/a.wav"), 400, "forbidden_address"),
    ("ssrf", "webhook private", hook("http://192.168.1.1/hook"), 400, "invalid_webhook_url"),
    ("ssrf", "webhook metadata", hook("http://169.254.169.254/"), 400, "invalid_webhook_url"),
    ("ssrf", "missing on the origin", url("{files}/missing.wav"), 404, "input_not_found"),
    # --- uploads
    ("uploads", "empty", upload("a.wav", lambda e: b""), 422, "unsupported_audio"),
    (
        "uploads",
        "random bytes",
        upload("a.flac", lambda e: np.random.default_rng(2).bytes(50_000)),
        422,
        "unsupported_audio",
    ),
    ("uploads", "truncated FLAC", upload("a.flac", lambda e: media("tune.flac")(e)[:60]), 422, "unsupported_audio"),
    ("uploads", "text", upload("a.mp3", lambda e: b"hello, this is not audio\n" * 100), 422, "unsupported_audio"),
    (
        "uploads",
        "over size (random)",
        upload("a.flac", lambda e: np.random.default_rng(3).bytes(1_285_741)),
        413,
        "input_too_large",
    ),
    ("uploads", "over size (real FLAC)", upload("noise.flac", media("noise.flac")), 413, "input_too_large"),
    ("uploads", "over duration", upload("long.flac", media("long.flac")), 413, "audio_too_long"),
    ("uploads", "header claims 2 h, holds 0.1 s", upload("lie.wav", media("lie.wav")), *OK),
    ("uploads", "FLAC named .wav", upload("tune.wav", media("tune.flac")), *OK),
    ("uploads", "file part named file", upload("t.flac", media("tune.flac"), field="file"), 400, "invalid_parameters"),
    (
        "uploads",
        "form sonify_midi=yes",
        upload("t.flac", media("tune.flac"), sonify_midi="yes"),
        400,
        "invalid_parameters",
    ),
    (
        "uploads",
        "form sonify_midi=True",
        upload("t.flac", media("tune.flac"), sonify_midi="True"),
        400,
        "invalid_parameters",
    ),
    ("uploads", "form sonify_midi=0", upload("t.flac", media("tune.flac"), sonify_midi="0"), *OK),
    (
        "uploads",
        "form program abc",
        upload("t.flac", media("tune.flac"), midi_program="abc"),
        400,
        "invalid_parameters",
    ),
    (
        "uploads",
        "form program 1.5",
        upload("t.flac", media("tune.flac"), midi_program="1.5"),
        400,
        "invalid_parameters",
    ),
    (
        "uploads",
        "form threshold nan",
        upload("t.flac", media("tune.flac"), onset_threshold="nan"),
        400,
        "invalid_parameters",
    ),
    ("uploads", "form threshold 0.6", upload("t.flac", media("tune.flac"), onset_threshold="0.6"), *OK),
    (
        "uploads",
        "truncated multipart",
        raw(
            b'--b\r\nContent-Disposition: form-data; name="audio_file"; filename="a"\r\n\r\nRIFF',
            "multipart/form-data; boundary=b",
        ),
        400,
        "invalid_parameters",
    ),
    (
        "uploads",
        "two audio_file parts",
        lambda e: {
            "method": "POST",
            "url": API,
            "headers": {"Authorization": e.key},
            "files": [
                ("audio_file", ("a.flac", media("tune.flac")(e))),
                ("audio_file", ("b.flac", media("tune.flac")(e))),
            ],
        },
        400,
        "invalid_parameters",
    ),
    # --- /files/ tampering
    ("files", "no signature", signed_file(lambda u: u.split("?")[0]), 403, "invalid_link"),
    (
        "files",
        "no expires",
        signed_file(lambda u: u.split("?")[0] + "?signature=" + u.split("signature=")[1]),
        403,
        "invalid_link",
    ),
    ("files", "wrong signature", signed_file(lambda u: u.replace("signature=", "signature=0")), 403, "invalid_link"),
    ("files", "expires not a number", signed_file(lambda u: u.replace("expires=", "expires=x")), 403, "invalid_link"),
    (
        "files",
        "expired",
        signed_file(lambda u: u.split("?")[0] + "?expires=1&signature=" + u.split("signature=")[1]),
        403,
        "invalid_link",
    ),
    (
        "files",
        "traversal",
        signed_file(lambda u: u.replace("/files/uploads/", "/files/uploads/%2e%2e/%2e%2e/")),
        403,
        "invalid_link",
    ),
    (
        "files",
        "another file, same signature",
        signed_file(lambda u: u.replace("/files/uploads/", "/files/results/x")),
        403,
        "invalid_link",
    ),
    ("files", "the real link", signed_file(lambda u: u), *OK),
    # --- ids, paging, methods, protocol
    ("ids", "malformed id", get(TASKS + "/not-a-task"), 404, "task_not_found"),
    ("ids", "unknown id", get(TASKS + "/00000000-0000-0000-0000-000000000000"), 404, "task_not_found"),
    ("ids", "id with a surrogate escape", get(TASKS + "/%ED%A0%80"), 404, "task_not_found"),
    ("ids", "offset 2**63", get(TASKS + "?offset=9223372036854775808"), 400, "invalid_parameters"),
    ("ids", "offset -1", get(TASKS + "?offset=-1"), 400, "invalid_parameters"),
    ("ids", "offset 1e3", get(TASKS + "?offset=1e3"), 400, "invalid_parameters"),
    ("ids", "limit 0", get(TASKS + "?limit=0"), 400, "invalid_parameters"),
    ("ids", "limit 101", get(TASKS + "?limit=101"), 400, "invalid_parameters"),
    ("ids", "limit abc", get(TASKS + "?limit=abc"), 400, "invalid_parameters"),
    ("ids", "a real page", get(TASKS + "?limit=2&offset=0"), *OK),
    (
        "ids",
        "delete unknown",
        lambda e: {
            "method": "DELETE",
            "url": TASKS + "/00000000-0000-0000-0000-000000000000",
            "headers": {"Authorization": e.key},
        },
        404,
        "task_not_found",
    ),
    (
        "ids",
        "notes of a queued task",
        lambda e: {
            "method": "POST",
            "url": f"{TASKS}/{e.ids['mine']}/notes",
            "json": {},
            "headers": {"Authorization": e.key},
        },
        409,
        "task_not_completed",
    ),
    (
        "ids",
        "notes with a string threshold",
        lambda e: {
            "method": "POST",
            "url": f"{TASKS}/{e.ids['mine']}/notes",
            "json": {"onset_threshold": "1"},
            "headers": {"Authorization": e.key},
        },
        400,
        "invalid_parameters",
    ),
    (
        "ids",
        "notes nested 1000 deep",
        raw(DEEP, "application/json", TASKS + "/{mine}/notes"),
        400,
        "invalid_parameters",
    ),
    (
        "ids",
        "notes format xml",
        lambda e: {
            "method": "POST",
            "url": f"{TASKS}/{e.ids['mine']}/notes?format=xml",
            "json": {},
            "headers": {"Authorization": e.key},
        },
        400,
        "invalid_parameters",
    ),
    ("protocol", "TRACE", lambda e: {"method": "TRACE", "url": API}, 405, "method_not_allowed"),
    ("protocol", "PUT", lambda e: {"method": "PUT", "url": API, "json": {}}, 405, "method_not_allowed"),
    ("protocol", "unknown path", get("/api/public/v1/nothing"), 404, "not_found"),
    (
        "protocol",
        "bad Idempotency-Key",
        post({"audio_path": "x"}, headers={"Idempotency-Key": "has spaces in it"}),
        400,
        "invalid_parameters",
    ),
    (
        "protocol",
        "long Idempotency-Key",
        post({"audio_path": "x"}, headers={"Idempotency-Key": "k" * 256}),
        400,
        "invalid_parameters",
    ),
]


@pytest.mark.parametrize(("category", "name", "build", "status", "code"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input(env: Env, category: str, name: str, build: Builder, status: int, code: str | None) -> None:
    r = env.client.request(**build(env))
    assert r.status_code == status, r.text[:500]
    if code is not None:
        body = r.json()
        assert body["success"] is False and body["error"]["code"] == code, body
        assert body["error"]["message"] and body["error"]["request_id"] == r.headers["x-request-id"]
        assert "/tmp" not in body["error"]["message"] and "Traceback" not in r.text
    if status == 405:
        assert r.headers["allow"]
    if status in (429, 503):
        assert int(r.headers["retry-after"]) >= 1
    health = env.client.get("/healthz")  # the same kept-alive connection, unless the server closed it
    assert health.status_code == 200


def test_oversized_header_gets_the_envelope(env: Env) -> None:
    """Headers over h11's 16 KiB, still arriving: the protocol layer answers, in the envelope."""
    import json
    import socket

    with socket.create_connection(("127.0.0.1", env.svc.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 30_000)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert env.client.get("/healthz").status_code == 200


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80
    assert {c[0] for c in CASES} >= {"auth", "json", "types", "content", "schemes", "ssrf", "uploads", "files", "ids"}
