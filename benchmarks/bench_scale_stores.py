"""The two stand-ins of ``bench_scale_sim.py``: a store that delays every request, a proxy that throttles a bucket.

Not part of archivestore; the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zarr.abc.store import ByteRequest
from zarr.storage import WrapperStore

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["LatencyStore", "ThrottlingProxy"]


class LatencyStore(WrapperStore[Any]):
    """Delay every request by ``latency`` seconds before passing it on (a bucket's round trip)."""

    def __init__(self, store: Any, latency: float) -> None:
        super().__init__(store)
        self.latency = latency

    def _with_store(self, store: Any) -> LatencyStore:
        return type(self)(store, self.latency)

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        await asyncio.sleep(self.latency)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        await asyncio.sleep(self.latency)  # concurrent range requests: one round trip
        return await self._store.get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        await asyncio.sleep(self.latency)
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        await asyncio.sleep(self.latency)
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await asyncio.sleep(self.latency)
        await self._store.set_if_not_exists(key, value)

    async def delete(self, key: str) -> None:
        await asyncio.sleep(self.latency)
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        await asyncio.sleep(self.latency)
        await self._store.delete_dir(prefix)

    async def _listed(self, it: AsyncIterator[str]) -> AsyncIterator[str]:
        await asyncio.sleep(self.latency)
        async for key in it:
            yield key

    def list(self) -> AsyncIterator[str]:
        return self._listed(self._store.list())

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        return self._listed(self._store.list_prefix(prefix))

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        return self._listed(self._store.list_dir(prefix))


class ThrottlingProxy:
    """An HTTP proxy on 127.0.0.1 in front of the local S3 server that answers ``503 SlowDown``, as a bucket's
    prefix does, to write requests (PUT, POST, DELETE) beyond ``put_rate`` per second and reads beyond
    ``get_rate`` (token buckets holding one second's worth)."""

    def __init__(self, upstream: str, put_rate: float, get_rate: float) -> None:
        self.target = urlsplit(upstream)
        self.rates = {"write": put_rate, "read": get_rate}
        self.tokens = dict(self.rates)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()
        self.passed: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _admit(self, kind: str) -> bool:
        with self.lock:
            now = time.monotonic()
            for k, rate in self.rates.items():
                self.tokens[k] = min(rate, self.tokens[k] + (now - self.stamp) * rate)
            self.stamp = now
            if self.tokens[kind] < 1:
                self.throttled[kind] += 1
                return False
            self.tokens[kind] -= 1
            self.passed[kind] += 1
            return True

    def forward(self, handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if not self._admit("read" if handler.command in ("GET", "HEAD") else "write"):
            msg = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            handler.send_response(503)
            handler.send_header("Content-Length", str(len(msg)))
            handler.end_headers()
            handler.wfile.write(msg)
            return
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        hop = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host"}
        conn.request(handler.command, handler.path, body=body,
                     headers={k: v for k, v in handler.headers.items() if k.lower() not in hop})
        resp = conn.getresponse()
        data = resp.read()
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in hop and k.lower() != "content-length":
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
