"""Reading request bodies that strangers send, with every limit decided while streaming.

* JSON (``application/json``, ``*/*+json``, or no content type): at most 1 MiB, nested at most
  32 levels, no lone surrogates or NUL characters in any string, no NaN/Infinity, integers of at
  most 18 digits. The original API's curl example sends JSON with curl's default
  ``application/x-www-form-urlencoded``; such a body that starts with ``{`` is read as JSON.
* Forms (``multipart/form-data``, ``application/x-www-form-urlencoded``): fields as strings (the
  strict models convert them), and one file part, ``audio_file``, streamed to a working file and
  counted as it arrives: over ``max_upload_bytes`` it is refused with 413 ``input_too_large`` at
  that byte, never buffered whole. A file part under another name is a 400 naming ``audio_file``.
* Anything else is 415 ``unsupported_media_type``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from midiscribe.service.api.errors import ApiError

MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_INT_DIGITS = 18
FILE_FIELD = "audio_file"
DRAIN_BYTES = 8 * 1024 * 1024  # read (and drop) this much of a refused upload so the client reads our 413
JSON_TYPES = ("application/json",)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass
class Upload:
    """An uploaded file, spooled to ``path`` in a working folder; ``sha256`` of its bytes."""

    path: Path
    filename: str
    size: int
    sha256: str

    def open(self) -> BinaryIO:
        return self.path.open("rb")


@dataclass
class Body:
    """The fields of a request; ``form`` when they came as strings from a form."""

    fields: dict[str, Any]
    form: bool = False
    upload: Upload | None = None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, *, max_upload_bytes: int, spool_dir: Path | None, empty_ok: bool = False) -> Body:
    """The request's fields and its upload (only where ``spool_dir`` allows one); an empty body
    is ``{}`` with ``empty_ok``, else a 400."""
    ctype = media_type(request)
    if ctype == "multipart/form-data" and spool_dir is not None:
        return await _read_multipart(request, max_upload_bytes, spool_dir)
    if ctype not in ("", *JSON_TYPES, *FORM_TYPES) and not ctype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content type {ctype[:80]!r} is not accepted: send application/json"
            + (" or multipart/form-data" if spool_dir is not None else ""),
        )
    raw = await _read_small(request)
    if ctype == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        return Body(_form_fields(raw), form=True)
    if ctype == "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "this endpoint takes application/json")
    return Body(parse_json(raw) if raw.strip() or not empty_ok else {})


async def _read_small(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise ApiError(413, "input_too_large", f"the request body is over {MAX_JSON_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object, or a 400 saying what is wrong with the body."""
    if not raw.strip():
        raise ApiError(
            400, "invalid_parameters", "the request has no body: send JSON with audio_path, or upload audio_file"
        )
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_int=_bounded_int)
    except RecursionError:
        raise ApiError(
            400, "invalid_parameters", f"the JSON body is nested too deeply (at most {MAX_DEPTH} levels)"
        ) from None
    except ApiError:
        raise
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_parameters", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_parameters", "the JSON body must be an object")
    _check_tree(data, 1)
    return data


def _no_constant(name: str) -> Any:
    raise ApiError(400, "invalid_parameters", f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ApiError(400, "invalid_parameters", f"a number in the body has over {MAX_INT_DIGITS} digits")
    return int(text)


def _check_tree(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ApiError(400, "invalid_parameters", f"the JSON body is nested too deeply (at most {MAX_DEPTH} levels)")
    if isinstance(value, str):
        check_text(value, "a string in the body")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, "a field name")
            _check_tree(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_tree(v, depth + 1)


def check_text(text: str, what: str) -> None:
    """Refuse what no database or URL can hold: lone surrogates (invalid Unicode) and NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_parameters", f"{what} is not valid Unicode (a lone surrogate)") from None
    if "\x00" in text:
        raise ApiError(400, "invalid_parameters", f"{what} contains a NUL character")


def _form_fields(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_parameters", "the form body is not valid UTF-8 form data") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        check_text(name, "a field name")
        check_text(value, f"field {name[:40]!r}")
        fields[name] = value
    return fields


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)


class _Multipart:
    """python-multipart's push parser, fed from the request stream; the file part to disk."""

    def __init__(self, limit: int, spool_dir: Path) -> None:
        self.limit, self.spool_dir = limit, spool_dir
        self.fields: dict[str, str] = {}
        self.upload: Upload | None = None
        self.ended = False
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._pending: list[bytes] = []  # file bytes parsed from the last chunk, to write
        self._file: BinaryIO | None = None
        self._file_path: Path | None = None
        self._filename = ""
        self._hash = hashlib.sha256()
        self._size = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_end": self._finish,
        }

    def _begin(self) -> None:
        self._part = _Part()

    def _header_end(self) -> None:
        self._part.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise ApiError(400, "invalid_parameters", "a multipart part has no name")
        part = self._part
        part.name = name.decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        part.filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        if part.name == FILE_FIELD:
            if self.upload is not None or self._file is not None:
                raise ApiError(400, "invalid_parameters", f"send one {FILE_FIELD} only")
            part.is_file = True
            self._file_path = self.spool_dir / f"upload-{os.urandom(8).hex()}"
            self._filename = part.filename or ""
            self._file = _spool(self._file_path)
        elif part.filename is not None:
            raise ApiError(
                400, "invalid_parameters", f"unknown file field {part.name[:40]!r}: upload the audio as {FILE_FIELD}"
            )
        elif len(self.fields) >= MAX_FIELDS:
            raise ApiError(400, "invalid_parameters", f"more than {MAX_FIELDS} form fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part.is_file:
            self._size += len(chunk)
            if self._size > self.limit:
                raise ApiError(413, "input_too_large", f"the upload is over the limit of {self.limit} bytes")
            self._hash.update(chunk)
            self._pending.append(chunk)
            return
        self._part.data.extend(chunk)
        if len(self._part.data) > MAX_FIELD_BYTES:
            raise ApiError(
                400, "invalid_parameters", f"form field {self._part.name[:40]!r} is over {MAX_FIELD_BYTES} bytes"
            )

    def _end(self) -> None:
        part = self._part
        if part.is_file:
            self._pending.append(b"")  # marks the end: written, then closed, by the reader
            return
        try:
            value = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_parameters", f"form field {part.name[:40]!r} is not UTF-8 text") from None
        check_text(part.name, "a field name")
        check_text(value, f"field {part.name[:40]!r}")
        self.fields[part.name] = value

    def _finish(self) -> None:
        self.ended = True

    def flush(self) -> None:
        """Write the file bytes parsed so far (in a worker thread: disk I/O)."""
        assert self._file is not None
        for chunk in self._pending:
            if chunk:
                self._file.write(chunk)
            else:
                self._file.close()
                assert self._file_path is not None
                self.upload = Upload(self._file_path, self._filename, self._size, self._hash.hexdigest())
        self._pending.clear()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


def _spool(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


async def _read_multipart(request: Request, limit: int, spool_dir: Path) -> Body:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "invalid_parameters", "the multipart body has no boundary")
    reader = _Multipart(limit, spool_dir)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    stream = request.stream()
    try:
        async for chunk in stream:
            parser.write(chunk)
            if reader._pending:
                await run_in_threadpool(reader.flush)
        parser.finalize()
    except ApiError as exc:
        if exc.status == 413:
            await _drain(stream)
        _discard(reader)
        raise
    except FormParserError:
        _discard(reader)
        raise ApiError(400, "invalid_parameters", "the multipart body is malformed") from None
    except BaseException:
        _discard(reader)
        raise
    if not reader.ended:
        _discard(reader)
        raise ApiError(400, "invalid_parameters", "the multipart body is truncated (no closing boundary)")
    if reader._file is not None and reader.upload is None:
        _discard(reader)
        raise ApiError(400, "invalid_parameters", f"the {FILE_FIELD} part is incomplete")
    return Body(reader.fields, form=True, upload=reader.upload)


def _discard(reader: _Multipart) -> None:
    reader.close()
    if reader._file_path is not None:
        reader._file_path.unlink(missing_ok=True)


async def _drain(stream: AsyncIterator[bytes]) -> None:
    """Read (and drop) a bounded rest of a refused body, so the client gets to read the answer."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > DRAIN_BYTES:
                return
    except Exception:  # the client gave up, or the body cap: nothing more to read
        return
