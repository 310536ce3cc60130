"""Writing one item group (``images/<id>``, ``masks/<rater>/<id>``, ...), completion marker last.

A group is written arrays first and its ``_archivestore`` attribute with
``complete: true`` last, so an interrupted write is never taken for a complete one.
Adding parts to a complete group (a mask that came in a later run) writes the new
arrays, then the attribute listing them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from archivestore.layout import STATE_KEY, compressors, tile_chunks

__all__ = ["GroupWriter", "array", "checksum", "read_state"]


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (``KeyError`` if absent, ``TypeError`` if it is a group)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{group.path}/{name} is a group, not an array")
    return node


def checksum(data: np.ndarray) -> str:
    """``sha256:<hex>`` of an array's C-ordered bytes."""
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(data).data).hexdigest()


def read_state(zstore: Any, path: str) -> dict[str, Any] | None:
    """The ``_archivestore`` attribute of the group at ``path``; None if there is no group.

    One GET of the group's ``zarr.json`` (this runs for every item of every ingest),
    ``{}`` for a group without the attribute or with unreadable metadata.
    """
    buf = sync(zstore.get(f"{path}/zarr.json", prototype=default_buffer_prototype()))
    if buf is None:
        return None
    try:
        doc = json.loads(buf.to_bytes())
    except ValueError:
        return {}
    return dict(doc.get("attributes", {}).get(STATE_KEY, {}))


class GroupWriter:
    """Writes the arrays of one group, then its state (see :meth:`finish`).

    Parameters
    ----------
    group
        The Zarr group.
    fresh
        The group was just created empty, which spares deleting an old array before
        each write (a listing and a delete on a bucket).
    """

    def __init__(self, group: zarr.Group, *, fresh: bool) -> None:
        self.group = group
        self.fresh = fresh

    def put_array(self, name: str, data: np.ndarray, dims: tuple[str, ...], *,
                  chunks: tuple[int, ...] | None = None, codecs: tuple[Any, ...] | None = None,
                  **attrs: Any) -> str:
        """Write ``data`` as array ``name`` (TILE-sized chunks and Zstd unless ``chunks``/``codecs``); return
        its checksum."""
        spec: dict[str, Any] = dict(
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks or tile_chunks(data.shape, dims),
            compressors=codecs or compressors(),
            fill_value=0,
            dimension_names=dims,
            attributes=attrs or None,
            # every chunk is written: no comparing each with the fill value first (in zarr 3.1
            # that check costs more CPU than compressing), and verify finds every chunk
            config={"write_empty_chunks": True},
        )
        try:
            arr = self.group.create_array(name, overwrite=not self.fresh, **spec)
        except zarr.errors.ContainsArrayError:  # remains of a write cut short while its group was dropped
            arr = self.group.create_array(name, overwrite=True, **spec)
        arr[...] = data
        return checksum(data)

    def put_coord(self, name: str, labels: list[str], *, dim: str | None = None, **attrs: Any) -> None:
        """Write a string coordinate ``name`` along ``dim`` (default: the dimension of the same name)."""
        arr = self.group.create_array(
            name, shape=(len(labels),), dtype=str, chunks=(max(len(labels), 1),), fill_value="",
            dimension_names=(dim or name,), overwrite=not self.fresh, attributes=attrs or None,
        )
        arr[...] = np.array(labels, dtype=str)

    def put_text(self, name: str, values: np.ndarray, dims: tuple[str, ...], **attrs: Any) -> None:
        """Write a small n-D array of strings (one chunk), e.g. a plate's image ids by well."""
        arr = self.group.create_array(
            name, shape=values.shape, dtype=str, chunks=tuple(max(n, 1) for n in values.shape), fill_value="",
            dimension_names=dims, overwrite=not self.fresh, attributes=attrs or None,
        )
        arr[...] = np.asarray(values, dtype=str)

    def put_values(self, name: str, values: np.ndarray, dim: str, **attrs: Any) -> None:
        """Write a small numeric 1-D array (a coordinate such as ``z`` in mm) in one chunk."""
        arr = self.group.create_array(
            name, shape=values.shape, dtype=values.dtype, chunks=(max(values.shape[0], 1),), fill_value=0,
            dimension_names=(dim,), overwrite=not self.fresh, attributes=attrs or None,
        )
        arr[...] = values

    def finish(self, state: dict[str, Any]) -> None:
        """Write the ``_archivestore`` attribute: the completion marker goes in last."""
        self.group.attrs[STATE_KEY] = state
