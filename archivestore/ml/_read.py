"""Reading several arrays of item groups at once: the groups' documents in one round, then every chunk.

An image group's ``zarr.json`` carries its arrays' metadata inline (zarr's consolidated metadata,
written with the completion marker), so an item of image + mask costs two rounds of requests on
a bucket — the documents, then all the chunks concurrently — where reading array by array costs
two rounds per array. A group without inline metadata (an older store) is read array by array.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import StorePath

from archivestore.errors import NotFoundError
from archivestore.layout import STATE_KEY
from archivestore.store._lock import parse_doc

if TYPE_CHECKING:
    from archivestore.store import Store

__all__ = ["read_groups"]


async def _doc(zstore: Any, path: str) -> dict[str, Any] | None:
    return parse_doc(await zstore.get(f"{path}/zarr.json", prototype=default_buffer_prototype()))


async def _read(store: Store, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], np.ndarray]:
    paths = list(wanted)
    docs = await asyncio.gather(*(_doc(store.zstore, p) for p in paths))
    reads: list[tuple[tuple[str, str], Any]] = []  # (key, array): read once every document is checked
    later: list[tuple[str, str]] = []
    for path, doc in zip(paths, docs, strict=True):
        if not ((doc or {}).get("attributes") or {}).get(STATE_KEY, {}).get("complete"):
            raise NotFoundError(f"no complete {path!r} in {store.url}")
        inline = ((doc or {}).get("consolidated_metadata") or {}).get("metadata") or {}
        for name in wanted[path]:
            if name in inline:
                meta = ArrayV3Metadata.from_dict(dict(inline[name]))
                reads.append(((path, name), zarr.AsyncArray(metadata=meta,
                                                             store_path=StorePath(store.zstore, f"{path}/{name}"))))
            else:
                later.append((path, name))
    values = await asyncio.gather(*(arr.getitem(...) for _, arr in reads))
    out = {key: np.asarray(v) for (key, _), v in zip(reads, values, strict=True)}
    for path, name in later:  # no inline metadata: the array's own document (NotFoundError if absent)
        out[(path, name)] = await asyncio.to_thread(store.read_array, path, name)
    return out


def read_groups(store: Store, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], np.ndarray]:
    """``{(group path, array): numpy}`` for every array named in ``wanted`` (``{group path: [arrays]}``).

    Raises
    ------
    NotFoundError
        A group is missing or incomplete, or has no such array.
    """
    return sync(_read(store, wanted))
