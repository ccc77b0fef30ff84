"""A throwaway RFC 3161 timestamp server for tests.

It serves real tokens from a :class:`LocalTimestampAuthority` over real HTTP on
127.0.0.1, so the HTTP client is exercised end to end, and it can misbehave in
the ways external authorities do (HTTP errors, rejections, stale nonces, wrong
imprints, junk, silence) to test the client's checks and fallback.

    with TsaServer(authority, behaviour="grant") as url:
        HttpTimestampAuthority([url]).timestamp(digest)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

from asn1crypto import cms, core, tsp

from evidence.timestamping import (
    TIMESTAMP_REPLY_MEDIA_TYPE,
    LocalTimestampAuthority,
)

Behaviour = Literal[
    "grant",
    "http_error",
    "reject",
    "wrong_nonce",
    "wrong_imprint",
    "garbage",
    "hang",
]

# Long enough to outlast any client timeout used in tests, short enough that
# a forgotten server cannot stall the test run for long.
_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    content_type: str | None
    body: bytes


def _rejection_response() -> bytes:
    # asn1crypto's tsp.TimeStampResp wrongly insists on a token, which RFC 3161
    # omits from rejections.
    spec: Any = type(
        "TimeStampResp",
        (core.Sequence,),
        {
            "_fields": [
                ("status", tsp.PKIStatusInfo),
                ("time_stamp_token", cms.ContentInfo, {"optional": True}),
            ]
        },
    )
    response = spec(
        {
            "status": {
                "status": "rejection",
                "status_string": ["test authority is out of service"],
                "fail_info": {"system_failure"},
            }
        }
    )
    der: bytes = response.dump()
    return der


def _altered_request(request_der: bytes, behaviour: Behaviour) -> bytes:
    # Lying about what was asked makes the real authority sign a token that
    # answers a different question, which is what a broken or replaying TSA
    # returns.
    request = tsp.TimeStampReq.load(request_der)
    if behaviour == "wrong_nonce":
        nonce = request["nonce"].native
        request["nonce"] = (nonce or 0) + 1
    elif behaviour == "wrong_imprint":
        imprint = request["message_imprint"]["hashed_message"].native
        request["message_imprint"] = {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": bytes(b ^ 0xFF for b in imprint),
        }
    der: bytes = request.dump(force=True)
    return der


class TsaServer:
    """Context manager running the server in a background thread; yields its URL."""

    def __init__(self, authority: LocalTimestampAuthority, behaviour: Behaviour = "grant") -> None:
        self.authority = authority
        self.behaviour: Behaviour = behaviour
        self.requests: list[ReceivedRequest] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"tsa-server-{behaviour}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        # shutdown() waits for serve_forever() and would hang if it never ran.
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        if self.behaviour == "http_error":
            return 500, "text/plain", b"internal error"
        if self.behaviour == "reject":
            return 200, TIMESTAMP_REPLY_MEDIA_TYPE, _rejection_response()
        if self.behaviour == "garbage":
            return 200, TIMESTAMP_REPLY_MEDIA_TYPE, b"\x30\x03\x02\x01"
        if self.behaviour == "hang":
            self._stopping.wait(_HANG_SECONDS)
            return 503, "text/plain", b"gave up"
        if self.behaviour in ("wrong_nonce", "wrong_imprint"):
            body = _altered_request(body, self.behaviour)
        return 200, TIMESTAMP_REPLY_MEDIA_TYPE, self.authority.respond(body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with server._lock:
                    server.requests.append(
                        ReceivedRequest(self.path, self.headers.get("Content-Type"), body)
                    )
                status, content_type, payload = server._answer(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (timeout test); nothing left to tell it.
                    pass

            def log_message(self, format: str, *args: object) -> None:
                # Keep pytest output free of access-log noise.
                pass

        return Handler
