"""An HTTP proxy on 127.0.0.1 that fails a share of requests before passing the rest on.

Put in front of the local S3 server, it stands in for a flaky bucket: a seeded share of
requests is answered ``503 SlowDown`` (or ``500``) without reaching the server.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host"}


class FaultyProxy:
    """Forward to ``upstream``, failing ``share`` of the requests (seeded, counted).

    ``requests`` lists every request as ``(method, path)``: with ``share=0`` the proxy
    counts what a bucket is asked, request by request. ``delay`` seconds are added to each
    request, as a bucket across a network would take them.
    """

    def __init__(self, upstream: str, share: float, seed: int = 0, delay: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.delay = delay
        self.share = share
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.failed = 0
        self.passed = 0
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

            def _any(self) -> None:
                proxy.forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def refuse(self, command: str) -> bytes | None:
        """The error message to answer ``command`` with instead of passing it on, or None to pass it."""
        with self.lock:
            fail = self.rng.random() < self.share
            self.failed += fail
            self.passed += not fail
        return b"<Error><Code>SlowDown</Code><Message>injected fault</Message></Error>" if fail else None

    def answer(self, command: str, path: str) -> tuple[int, bytes] | None:
        """The status and body to answer a request with instead of passing it on (``503`` when :meth:`refuse`
        says so), or None to pass it."""
        msg = self.refuse(command)
        return None if msg is None else (503, msg)

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request: refused (see :meth:`answer`) or passed upstream after ``delay``."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((handler.command, handler.path))
        answer = self.answer(handler.command, handler.path)
        if answer is not None:
            status, msg = answer
            handler.send_response(status)
            handler.send_header("Content-Length", str(len(msg)))
            handler.end_headers()
            handler.wfile.write(msg)
            return
        if self.delay:
            time.sleep(self.delay)
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        conn.request(handler.command, handler.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        conn.close()

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
