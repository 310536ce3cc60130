"""Writing one item group (``images/<id>``, ``masks/<rater>/<id>``, ...), completion marker last.

A group is written in three steps, each one round of requests:

1. its ``zarr.json`` with the item's attributes and an *incomplete* ``_archivestore``
   state (a new group; a group that gains parts keeps its document until step 3);
2. every array — metadata document and chunks — at once;
3. its ``zarr.json`` again, now with ``complete: true`` and the metadata of every array
   inline (zarr's consolidated metadata), so an interrupted write is never taken for a
   complete one and opening the group needs one read.

Metadata documents are written directly (no existence checks of the parents: the
store's top groups exist from its creation), and the attribute masks of a tile share one
object (:func:`~archivestore.layout.tile_shards`): a new one-tile image with superpixels,
a mask and attribute masks takes 15 requests, its state read and claim included.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
import time
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ShardingCodec, VLenUTF8Codec, ZstdCodec
from zarr.core.array_spec import ArrayConfigParams
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import ConsolidatedMetadata, GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.dtype import parse_data_type
from zarr.storage import StorePath, WrapperStore

from archivestore.layout import STATE_KEY, compressors, tile_chunks, tile_shards
from archivestore.store._lock import LEASE_SECONDS, RENEWER, create_exclusive, parse_doc, read_doc

__all__ = ["GroupWriter", "array", "checksum", "read_group_doc", "read_if_complete", "read_state"]

_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}
"""Every chunk is written: no comparing each with the fill value first (in zarr 3.1 that check
costs more CPU than compressing), and ``verify`` finds every chunk."""


class _Unread(WrapperStore[Any]):
    """The store as the writer of whole arrays sees it: nothing to read back.

    zarr writes a shard by reading the old one and merging the chunks written into it; a
    writer that writes every chunk of every shard (as :class:`GroupWriter` does) replaces
    all of it, so the read is one wasted request per shard.
    """

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> None:
        return None


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (``KeyError`` if absent, ``TypeError`` if it is a group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{group.path}/{name} is a group, not an array")
    return node


def checksum(data: np.ndarray) -> str:
    """``sha256:<hex>`` of an array's C-ordered bytes."""
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(data).data).hexdigest()


def read_group_doc(zstore: Any, path: str) -> dict[str, Any] | None:
    """The ``zarr.json`` of the group at ``path`` as a dict; None if absent, ``{}`` if unreadable (one GET)."""
    return read_doc(zstore, f"{path}/zarr.json")


def read_state(zstore: Any, path: str) -> dict[str, Any] | None:
    """The ``_archivestore`` attribute of the group at ``path``; None if there is no group.

    One GET of the group's ``zarr.json`` (this runs for every item of every ingest),
    ``{}`` for a group without the attribute or with unreadable metadata.
    """
    doc = read_group_doc(zstore, path)
    if doc is None:
        return None
    return dict(doc.get("attributes", {}).get(STATE_KEY, {}))


@functools.lru_cache(maxsize=256)
def _parsed(doc: str) -> ArrayV3Metadata:
    """An array's metadata from its JSON (images of one size share it: parsed once)."""
    return ArrayV3Metadata.from_dict(json.loads(doc))


def read_if_complete(zstore: Any, path: str, name: str) -> tuple[bool, np.ndarray | None]:
    """Whether the group at ``path`` is complete, and if so its array ``name``, in one pass.

    Reads the group's document and, from the array metadata inline in it, the array's
    chunks (no read of the array's own ``zarr.json``). The array is None when the group is
    incomplete or holds no inline metadata of ``name`` (a group written before it had any,
    or no such array): then open it the usual way.
    """
    return sync(_read_if_complete(zstore, path, name))


async def _read_if_complete(zstore: Any, path: str, name: str) -> tuple[bool, np.ndarray | None]:
    doc = parse_doc(await zstore.get(f"{path}/zarr.json", prototype=default_buffer_prototype())) or {}
    if not (doc.get("attributes") or {}).get(STATE_KEY, {}).get("complete"):
        return False, None
    inline = (doc.get("consolidated_metadata") or {}).get("metadata") or {}
    if name not in inline:
        return True, None
    meta = _parsed(json.dumps(inline[name], sort_keys=True))
    arr = zarr.AsyncArray(metadata=meta, store_path=StorePath(zstore, f"{path}/{name}"))
    return True, np.asarray(await arr.getitem(...))


def _metadata(data: np.ndarray, dims: tuple[str, ...], chunks: tuple[int, ...], codecs: tuple[Any, ...],
              shards: tuple[int, ...] | None, attrs: dict[str, Any]) -> ArrayV3Metadata:
    """The Zarr v3 metadata of an array holding ``data``, as ``zarr.create_array`` would write it."""
    text = data.dtype.kind in "UOT"
    dtype = parse_data_type(str if text else data.dtype, zarr_format=3)
    chain: list[Any] = [VLenUTF8Codec() if text else BytesCodec(), *codecs]
    if shards is not None:
        chain = [ShardingCodec(chunk_shape=chunks, codecs=chain)]
    return ArrayV3Metadata(
        shape=data.shape, data_type=dtype,
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": shards or chunks}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
        fill_value="" if text else dtype.cast_scalar(0), codecs=chain, attributes=attrs,
        dimension_names=dims, storage_transformers=None)


class GroupWriter:
    """Writes the arrays of one group, then its state (see :meth:`finish`).

    Arrays are queued by the ``put_*`` methods (each returns at once) and written
    together by :meth:`finish`, before the group's document that marks it complete.

    Parameters
    ----------
    zstore
        The zarr store.
    path
        The group's path in the store.
    attributes
        The group's attributes other than the state (the item's record).
    arrays
        Metadata of the arrays the group already has (``{}`` for a new group), kept in
        its consolidated metadata; None if they are not known (a group written before
        consolidation), and then the group is not consolidated.
    """

    def __init__(self, zstore: Any, path: str, attributes: dict[str, Any] | None = None,
                 arrays: dict[str, Any] | None = None) -> None:
        self.zstore = zstore
        self.path = path
        self.attributes = dict(attributes or {})
        self.consolidate = arrays is not None
        self.arrays: dict[str, ArrayV3Metadata] = {
            name: ArrayV3Metadata.from_dict(dict(meta)) for name, meta in (arrays or {}).items()}
        self._pending: list[tuple[str, ArrayV3Metadata, np.ndarray]] = []
        self.claimed = False
        self._claim: dict[str, Any] = {}
        self._claim_lock = threading.Lock()
        self.lease_seconds = LEASE_SECONDS
        self.renewed = time.monotonic()

    def start(self, state: dict[str, Any], *, exclusive: bool = False) -> bool:
        """Write the group's document with an incomplete ``state``: the group exists, unfinished.

        With ``exclusive``, only if there is no document yet (an atomic create where the store
        has one, see :mod:`archivestore.store._lock`); returns whether this call wrote it. A
        ``writer`` in ``state`` makes the document a claim, renewed in the background (like a
        lease) until :meth:`finish`.
        """
        written = self._put_doc({**self.attributes, STATE_KEY: {**state, "complete": False}}, consolidated=False,
                                exclusive=exclusive)
        self.claimed = written and "writer" in state
        if self.claimed:
            self._claim = dict(state)
            self.renewed = time.monotonic()
            RENEWER.add(self)
        return written

    def renew(self) -> None:
        """Push the claim's expiry on (one PUT); not once it has expired (another writer may own the group)."""
        with self._claim_lock:
            writer = self._claim.get("writer") or {}
            if not self.claimed or writer.get("expires", 0) < time.time():
                RENEWER.drop(self)
                return
            self._claim = {**self._claim, "writer": {**writer, "expires": time.time() + self.lease_seconds}}
            self._put_doc({**self.attributes, STATE_KEY: {**self._claim, "complete": False}}, consolidated=False)
            self.renewed = time.monotonic()

    def _unclaim(self) -> bool:
        """Stop renewing the claim (waiting for a renewal under way); whether there was one."""
        RENEWER.drop(self)
        with self._claim_lock:
            claimed, self.claimed = self.claimed, False
        return claimed

    def put_array(self, name: str, data: np.ndarray, dims: tuple[str, ...], *,
                  chunks: tuple[int, ...] | None = None, codecs: tuple[Any, ...] | None = None,
                  **attrs: Any) -> str:
        """Queue ``data`` as array ``name`` (TILE-sized chunks, every feature of a tile in one shard, and the
        layout's compressors unless ``chunks``/``codecs`` are given); return its checksum."""
        shards = None if chunks else tile_shards(data.shape, dims)
        chunks = chunks or tile_chunks(data.shape, dims)
        self._queue(name, data, _metadata(data, dims, chunks, codecs or compressors(), shards, attrs))
        return checksum(data)

    def put_coord(self, name: str, labels: list[str], *, dim: str | None = None, **attrs: Any) -> None:
        """Queue a string coordinate ``name`` along ``dim`` (default: the dimension of the same name)."""
        self.put_text(name, np.array(labels, dtype=str), (dim or name,), **attrs)

    def put_text(self, name: str, values: np.ndarray, dims: tuple[str, ...], **attrs: Any) -> None:
        """Queue a small n-D array of strings (one chunk), e.g. a plate's image ids by well."""
        values = np.asarray(values, dtype=str)
        chunks = tuple(max(n, 1) for n in values.shape)
        self._queue(name, values, _metadata(values, dims, chunks, (ZstdCodec(level=0),), None, attrs))

    def put_values(self, name: str, values: np.ndarray, dim: str, **attrs: Any) -> None:
        """Queue a small numeric 1-D array (a coordinate such as ``z`` in mm) in one chunk."""
        chunks = (max(values.shape[0], 1),)
        self._queue(name, values, _metadata(values, (dim,), chunks, (ZstdCodec(level=0),), None, attrs))

    def finish(self, state: dict[str, Any]) -> None:
        """Write the queued arrays, then the group's document with ``state``: the completion marker last."""
        sync(self._write_arrays())
        self._unclaim()
        self._put_doc({**self.attributes, STATE_KEY: state}, consolidated=self.consolidate)

    def __enter__(self) -> GroupWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """A write that failed gives up its claim: the group stays incomplete, for the next writer to replace."""
        if self._unclaim() and kind is not None:
            self._put_doc({**self.attributes, STATE_KEY: {"complete": False}}, consolidated=False)

    def _queue(self, name: str, data: np.ndarray, meta: ArrayV3Metadata) -> None:
        self._pending.append((name, meta, data))
        self.arrays[name] = meta

    async def _write_arrays(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*(self._write_array(name, meta, data) for name, meta, data in pending))

    async def _write_array(self, name: str, meta: ArrayV3Metadata, data: np.ndarray) -> None:
        path = f"{self.path}/{name}"
        docs = meta.to_buffer_dict(default_buffer_prototype())
        arr = zarr.AsyncArray(metadata=meta, store_path=StorePath(_Unread(self.zstore), path), config=_CONFIG)
        await asyncio.gather(self.zstore.set(f"{path}/zarr.json", docs["zarr.json"]), arr.setitem(..., data))

    def _put_doc(self, attributes: dict[str, Any], *, consolidated: bool, exclusive: bool = False) -> bool:
        meta = GroupMetadata(attributes=attributes, zarr_format=3, consolidated_metadata=ConsolidatedMetadata(
            metadata=dict(self.arrays)) if consolidated else None)
        doc = meta.to_buffer_dict(default_buffer_prototype())["zarr.json"]
        if exclusive:
            return create_exclusive(self.zstore, f"{self.path}/zarr.json", doc.to_bytes())
        sync(self.zstore.set(f"{self.path}/zarr.json", doc))
        return True
