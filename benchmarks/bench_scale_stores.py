"""The two stand-ins of ``bench_scale_sim.py``: a store that delays every request, a proxy that throttles a bucket.

Not part of archivestore; the benchmarks import it as a sibling module.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest
from zarr.storage import WrapperStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.faulty_proxy import FaultyProxy  # noqa: E402

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


class ThrottlingProxy(FaultyProxy):
    """An HTTP proxy on 127.0.0.1 in front of the local S3 server that answers ``503 SlowDown``, as a bucket's
    prefix does, to write requests (PUT, POST, DELETE) beyond ``put_rate`` per second and reads beyond
    ``get_rate`` (token buckets holding one second's worth). Serving from the start; :meth:`close` stops it."""

    def __init__(self, upstream: str, put_rate: float, get_rate: float) -> None:
        super().__init__(upstream, share=0.0)
        self.rates = {"write": put_rate, "read": get_rate}
        self.tokens = dict(self.rates)
        self.stamp = time.monotonic()
        self.passed: Counter[str] = Counter()  # type: ignore[assignment]
        self.throttled: Counter[str] = Counter()
        self.thread.start()

    def refuse(self, command: str) -> bytes | None:
        kind = "read" if command in ("GET", "HEAD") else "write"
        with self.lock:
            now = time.monotonic()
            for k, rate in self.rates.items():
                self.tokens[k] = min(rate, self.tokens[k] + (now - self.stamp) * rate)
            self.stamp = now
            if self.tokens[kind] < 1:
                self.throttled[kind] += 1
                return b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.tokens[kind] -= 1
            self.passed[kind] += 1
            return None

    def close(self) -> None:
        self.__exit__()
