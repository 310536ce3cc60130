"""Swapping a complete fresh copy of an item group in for the old one, the group's document last.

``verify --repair`` writes the fresh copy of a damaged group elsewhere first (a scratch store)
and swaps it in only once it is complete and matches: the array objects (chunks and array
documents) are written over the old ones, then the group's ``zarr.json``, then whatever the old
group had that the new one lacks is deleted. Until the new document is written the old one —
record, recorded origin and checksums — stays where it was, so a swap cut short leaves a group
whose arrays hold the same values it promises (a chunk replaced by a fresh copy of itself), and a
rerun can repair it again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["copy_group", "swap_group"]

_AT_ONCE = 16
"""Objects copied concurrently."""


async def _keys(zstore: Any, path: str) -> list[str]:
    return [key async for key in zstore.list_prefix(f"{path}/")]


async def _copy(src: Any, dst: Any, keys: list[str]) -> None:
    proto = default_buffer_prototype()
    gate = asyncio.Semaphore(_AT_ONCE)

    async def one(key: str) -> None:
        async with gate:
            buf = await src.get(key, prototype=proto)
            if buf is None:
                raise FileNotFoundError(f"{key} vanished from the fresh copy")
            await dst.set(key, buf)

    await asyncio.gather(*(one(k) for k in keys))


def copy_group(src: Any, dst: Any, path: str) -> None:
    """Copy every object of the group at ``path`` from the zarr store ``src`` to ``dst`` (its document last)."""
    async def run() -> None:
        keys = await _keys(src, path)
        doc = f"{path}/zarr.json"
        await _copy(src, dst, [k for k in keys if k != doc])
        if doc in keys:
            await _copy(src, dst, [doc])

    sync(run())


def swap_group(src: Any, dst: Any, path: str) -> int:
    """Put the group at ``path`` of ``src`` in place of the one in ``dst``; returns the stale objects deleted.

    The caller holds the group's lease in ``dst`` (see :meth:`StoreWriting.item_lease`).
    """
    async def run() -> int:
        fresh = set(await _keys(src, path))
        if f"{path}/zarr.json" not in fresh:
            raise FileNotFoundError(f"the fresh copy has no group {path}")
        old = set(await _keys(dst, path))
        doc = f"{path}/zarr.json"
        await _copy(src, dst, sorted(fresh - {doc}))
        await _copy(src, dst, [doc])  # the swap: from here on the group is the fresh one
        stale = sorted(old - fresh)
        for start in range(0, len(stale), _AT_ONCE):
            await asyncio.gather(*(dst.delete(k) for k in stale[start:start + _AT_ONCE]))
        return len(stale)

    return int(sync(run()))
