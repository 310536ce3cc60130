"""Writing one image group (``images/<id>``) or one rater's mask group (``masks/<rater>/<id>``).

A group is written arrays first and its ``_archivestore`` attribute with
``complete: true`` last, so an interrupted write is never taken for a complete one.
Adding parts to a complete group (a mask that came in a later run) writes the new
arrays, then the attribute listing them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

__all__ = ["TILE", "checksum", "put_array", "write_group_state"]

TILE = 1024
COMPRESSORS = (ZstdCodec(level=3),)


def checksum(data: np.ndarray) -> str:
    """``sha256:<hex>`` of an array's C-ordered bytes."""
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(data).data).hexdigest()


def _chunks(shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for n, d in zip(shape, dims, strict=True):
        out.append(max(1, min(n, TILE)) if d in ("y", "x") else (1 if d == "feature" else max(n, 1)))
    return tuple(out)


def put_array(group: zarr.Group, name: str, data: np.ndarray, dims: tuple[str, ...], *,
              fresh: bool = False, **attrs: Any) -> str:
    """Write ``data`` as array ``name`` of ``group`` in 1024² tiles; return its checksum.

    ``fresh=True`` says the group was just created empty, which spares deleting an
    old array first (a listing and a delete on a bucket).
    """
    spec = dict(
        shape=data.shape,
        dtype=data.dtype,
        chunks=_chunks(data.shape, dims),
        compressors=COMPRESSORS,
        fill_value=0,
        dimension_names=dims,
        attributes=attrs or None,
        # every chunk is written: no comparing each with the fill value first (in zarr 3.1
        # that check costs more CPU than compressing), and verify finds every chunk
        config={"write_empty_chunks": True},
    )
    try:
        arr = group.create_array(name, overwrite=not fresh, **spec)
    except zarr.errors.ContainsArrayError:  # remains of a write cut short while its group was dropped
        arr = group.create_array(name, overwrite=True, **spec)
    arr[...] = data
    return checksum(data)


def put_coord(group: zarr.Group, name: str, labels: list[str], *, fresh: bool = False) -> None:
    """Write a string coordinate ``name`` (dimension of the same name)."""
    arr = group.create_array(
        name, shape=(len(labels),), dtype=str, chunks=(max(len(labels), 1),), fill_value="",
        dimension_names=(name,), overwrite=not fresh,
    )
    arr[...] = np.array(labels, dtype=str)


def write_group_state(group: zarr.Group, state: dict[str, Any]) -> None:
    """Write the ``_archivestore`` attribute (the completion marker goes in last)."""
    group.attrs["_archivestore"] = state
