"""A real webhook receiver on 127.0.0.1 for tests: records requests, checks signatures."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook

# What to answer: a status, a status with headers, or a status with headers and a body.
Response = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Request:
    """One request as the receiver saw it."""

    method: str
    path: str                  # with the query string
    headers: dict[str, str]    # names lower-cased
    body: bytes
    json: Any                  # the body parsed as JSON; None when it is not JSON
    time: float                # time.time() on arrival
    verified: bool | None      # signature valid; None when the receiver has no secret
    status: int                # what the receiver answered


class Receiver:
    """Context manager: a ThreadingHTTPServer on a free port in a daemon thread.

    With `secret`, every request is checked with the standardwebhooks library and a bad
    or missing signature is answered 401. `respond()` queues answers; then 200."""

    def __init__(self, secret: str | None = None, delay: float = 0.0):
        self.delay = delay  # seconds to wait before answering (a slow endpoint)
        # standardwebhooks base64-decodes any str secret; SPEC keys a non-whsec_ secret
        # with its UTF-8 bytes, which the library takes when given bytes.
        self._verifier = (
            None if secret is None
            else Webhook(secret if secret.startswith("whsec_") else secret.encode())
        )
        self._responses: deque[Response] = deque()
        self._requests: list[Request] = []
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval makes shutdown (and so every test using this) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def respond(self, responses: list[Response], *, replace: bool = False) -> None:
        """Answer the next requests with these, in order; 200 once they are used up.
        `replace` drops the answers still waiting from before."""
        with self._changed:
            if replace:
                self._responses.clear()
            self._responses.extend(responses)

    @property
    def requests(self) -> list[Request]:
        """Every request, whatever it was answered."""
        with self._changed:
            return list(self._requests)

    @property
    def received(self) -> list[Request]:
        """Requests that were accepted: answered 2xx and, with a secret, verified."""
        return [r for r in self.requests if 200 <= r.status < 300 and r.verified is not False]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Request]:
        """Block until `n` requests have been accepted; TimeoutError if they do not come."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(accepted := self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"received {len(accepted)} of {n} within {timeout}s")
                self._changed.wait(left)
            return accepted

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        verified = None if self._verifier is None else self._verify(body, headers)
        with self._changed:
            if verified is False:
                response: Response = 401
            else:
                response = self._responses.popleft() if self._responses else 200
            status = response if isinstance(response, int) else response[0]
            parsed = _json_or_none(body)
            self._requests.append(
                Request(method, path, headers, body, parsed, time.time(), verified, status)
            )
            self._changed.notify_all()
        return response

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        assert self._verifier is not None
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except Exception:  # the library raises several kinds for malformed headers
            return False
        return True


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default (5) drops connections under a burst of alerts


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            response = receiver._answer(self.command, self.path, headers, body)
            time.sleep(receiver.delay)
            status, extra, content = _unpack(response)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def _unpack(response: Response) -> tuple[int, dict[str, str], bytes]:
    if isinstance(response, int):
        return response, {}, b"ok" if 200 <= response < 300 else b""
    if len(response) == 2:
        return response[0], response[1], b""
    status, headers, content = response
    return status, headers, content


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
