"""HTTP plumbing of the local stand-in servers: a routed server on 127.0.0.1, port 0.

A stand-in subclasses :class:`FakeServer` and implements :meth:`FakeServer.route`,
which maps a parsed :class:`Request` to an :class:`Answer`. The base class logs every
request, injects the faults of a :class:`~archivestore.testing.faults.Faults`, and
serves from a daemon thread (``with Server(...) as server:`` starts and stops it).
Stdlib only.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from archivestore.testing.faults import Faults

__all__ = ["Answer", "FakeServer", "Request", "error_answer", "json_answer"]


class Request:
    """A parsed request: decoded ``path`` and ``parts``, the ``raw_path``, ``query`` (last value wins; every value in
    ``query_lists``), ``headers``,
    the ``method``, and the fields of a POSTed form in ``form`` (last value wins)."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        self.path = unquote(parts.path)
        self.raw_path = parts.path
        self.parts = [unquote(p) for p in parts.path.split("/") if p]
        self.query_lists = parse_qs(parts.query, keep_blank_values=True)
        """Every value of every query parameter (``image=1&image=2``)."""
        self.query = {k: v[-1] for k, v in self.query_lists.items()}
        self.headers = handler.headers
        self.method = handler.command
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        is_form = "application/x-www-form-urlencoded" in (handler.headers.get("Content-Type") or "")
        self.form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()} if is_form else {}


class Answer:
    """What the server sends back: status, body, content type and extra headers."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def json_answer(data: Any, status: int = 200) -> Answer:
    """``data`` as a JSON answer."""
    return Answer(status, json.dumps(data).encode())


def error_answer(status: int, message: str) -> Answer:
    """A Girder-style JSON error."""
    return json_answer({"message": message, "type": "rest"}, status)


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; subclasses implement :meth:`route`.

    Parameters
    ----------
    faults
        Fault injection (``None``: every request is answered by :meth:`route`).

    Attributes
    ----------
    log
        ``(path, query, headers)`` of every request received, in order.
    port
        The port to bind (class attribute; default 0, any free port). A client that only talks to a
        fixed address (isic-cli's ``--dev`` is ``127.0.0.1:8000``) gets a subclass with that port.
    latency
        Seconds each request waits before it is answered, as a server across a network would take
        them (default 0: none; the benchmarks set it, tests leave it).
    """

    prefix = "/"
    port = 0
    latency = 0.0

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults
        self.log: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The API base URL (ends with ``/``)."""
        return self.origin + self.prefix

    def requests_to(self, path_prefix: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """Logged requests whose path starts with ``prefix + path_prefix``."""
        with self._lock:
            return [entry for entry in self.log if entry[0].startswith(self.prefix + path_prefix)]

    def route(self, request: Request) -> Answer:
        """The answer to ``request`` (subclasses implement it)."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: Request) -> str | None:
        with self._lock:
            self.log.append((request.path, dict(request.query), dict(request.headers)))
        return self.faults.draw(request.path) if self.faults else None


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            request = Request(self)
            if server.latency:
                time.sleep(server.latency)
            fault = server._record(request)
            if fault == "reset":
                self._reset()
            elif fault in ("429", "500"):
                self._refuse(int(fault))
            else:
                self._answer(request, truncate=fault == "truncate")

        def do_POST(self) -> None:  # noqa: N802 - answered like a GET: route() looks at request.method
            self.do_GET()

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.rfile.close()
            self.connection.close()  # no file refers to it any more: RST now
            self.wfile = io.BytesIO()  # the handler's final flush goes nowhere

        def _refuse(self, status: int) -> None:
            body = b'{"message": "injected fault"}'
            self.send_response(status)
            if status == 429 and server.faults is not None:
                self.send_header("Retry-After", server.faults.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, request: Request, truncate: bool) -> None:
            try:
                answer = server.route(request)
            except Exception as exc:  # a bug in the stand-in: answer 500 with the reason
                answer = error_answer(500, f"server error: {exc!r}")
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if truncate:
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(answer.body)

    return Handler
