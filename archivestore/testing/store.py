"""A zarr store wrapper that counts the requests made through it, per operation and per key.

Like xarray's instrumented-store tests: wrap the store a
:class:`~archivestore.store.Store` reads through, run one action, then bound the
numbers. zarr's own ``zarr.storage.LoggingStore`` counts calls per method only (not
which key or prefix), also counts property reads, and inspects the stack on every call,
so it suits neither "which prefixes were listed" nor timing runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Self

from zarr.abc.store import ByteRequest, Store
from zarr.storage import WrapperStore

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = ["CountingStore"]


class CountingStore(WrapperStore[Store]):
    """Count every read, write, existence check and listing made through ``store``.

    Parameters
    ----------
    store
        The zarr store to wrap.

    Attributes
    ----------
    counts
        Calls per operation: ``get`` (one per key range of a partial read too), ``set``,
        ``exists``, ``delete``, ``list``, ``list_prefix``, ``list_dir``, ``delete_dir``.
    calls
        Calls per ``(operation, key or prefix)``; ``list`` has the prefix ``""``.

    Examples
    --------
    >>> import zarr
    >>> counting = CountingStore(zarr.storage.MemoryStore())
    >>> _ = zarr.open_group(counting, mode="w")
    >>> counting.counts["set"]
    1
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.counts: Counter[str] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()

    def _count(self, operation: str, key: str) -> None:
        self.counts[operation] += 1
        self.calls[operation, key] += 1

    def total(self) -> int:
        """All calls counted so far."""
        return sum(self.counts.values())

    def keys(self, *operations: str) -> set[str]:
        """The keys or prefixes that any of ``operations`` was called with."""
        return {key for op, key in self.calls if op in operations}

    def reset(self) -> None:
        """Forget the calls counted so far."""
        self.counts.clear()
        self.calls.clear()

    def _with_store(self, store: Store) -> Self:
        # zarr re-wraps for read-only views: the new wrapper shares the counters
        other = type(self)(store)
        other.counts, other.calls = self.counts, self.calls
        return other

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Count, then read ``key``."""
        self._count("get", key)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Count one ``get`` per key range, then read them."""
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._count("get", key)
        return await self._store.get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        """Count, then check ``key``."""
        self._count("exists", key)
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        """Count, then write ``key``."""
        self._count("set", key)
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Count as a ``set``, then write ``key`` unless it exists."""
        self._count("set", key)
        await self._store.set_if_not_exists(key, value)

    async def delete(self, key: str) -> None:
        """Count, then delete ``key``."""
        self._count("delete", key)
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        """Count, then delete everything under ``prefix``."""
        self._count("delete_dir", prefix)
        await self._store.delete_dir(prefix)

    def list(self) -> AsyncIterator[str]:
        """Count, then list every key."""
        self._count("list", "")
        return self._store.list()

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Count, then list the keys under ``prefix``."""
        self._count("list_prefix", prefix)
        return self._store.list_prefix(prefix)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Count, then list the direct children of ``prefix``."""
        self._count("list_dir", prefix)
        return self._store.list_dir(prefix)

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:  # one counted get each
            yield key, await self.get(key, prototype, byte_range)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)
