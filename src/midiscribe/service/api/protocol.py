"""What uvicorn answers itself, before the app sees a request: a malformed request line or headers
over h11's limit (16 KiB) got a bare ``400 Invalid HTTP request received.``; here it gets the
error envelope, like every other answer (issue 11, defect 7)."""

from __future__ import annotations

import json
import uuid

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class EnvelopeH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the protocol-level 400 in the JSON error envelope."""

    def send_400_response(self, msg: str) -> None:
        rid = uuid.uuid4().hex
        body = json.dumps(
            {
                "success": False,
                "error": {
                    "code": "invalid_request",
                    "message": "the request is not valid HTTP (a malformed request line, or headers over 16 KiB)",
                    "request_id": rid,
                },
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"x-request-id", rid.encode()),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()
