"""One microscopy image (or one plate's well grid) into the store (a worker's task).

An :class:`~archivestore.sources.ArrayItem` becomes ``images/<id>`` like every image:
``image`` with the source's axes (a subsequence of t, channel, z, y, x) and raw dtype,
coordinates in physical units with the unit in their attributes, ``channel`` labelled
with the channel names, the OMERO channel colours and windows in ``image``'s attributes,
label images as integer arrays beside it (named by ``layout.member``, the name in their
``_archivestore`` attribute), and the source's record as the group's
attributes (state last). A :class:`~archivestore.sources.PlateItem` becomes
``plates/<id>``: ``image_id`` (row, column, field), ``""`` where a well has no image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from archivestore._ingest._results import ItemResult
from archivestore.errors import BadItem, InvalidInputError, UnreachableError
from archivestore.layout import STATE_KEY, array_chunks
from archivestore.sources import AXES, ArrayImage, ArrayItem, PlateItem
from archivestore.store import GroupWriter, Store

__all__ = ["process_array", "process_plate"]

_RESERVED = frozenset({"image", *AXES})  # a label "mask" or "superpixels" is that array (an exported ISIC image)


def _load(item: ArrayItem) -> ArrayImage:
    try:
        image = item.load()
    except (BadItem, UnreachableError):  # the endpoint out of reach concerns every item: the loop decides
        raise
    except Exception as exc:  # the loader's own failure (I/O, HTTP, a bad OME-Zarr) belongs to this image
        raise BadItem(item.id, item.where, f"cannot read the image: {exc}") from None
    axes = tuple(image.axes)
    if not axes or any(a not in AXES for a in axes) or list(axes) != sorted(axes, key=AXES.index):
        raise BadItem(item.id, item.where, f"axes {axes} are not in the order {AXES}")
    if np.ndim(image.data) != len(axes):
        raise BadItem(item.id, item.where, f"the image has {np.ndim(image.data)} dimensions but axes {axes}")
    return image


def process_array(store: Store, item: ArrayItem) -> ItemResult:
    """Write one microscopy image unless it is complete; return the record for the metadata table."""
    if (store.image_state(item.id) or {}).get("complete"):
        return ItemResult(False, [], None)
    with store.lease(store.layout.image(item.id)):
        state = store.image_state(item.id)
        if (state or {}).get("complete"):
            return ItemResult(False, [], None)
        if STATE_KEY in item.metadata:
            raise BadItem(item.id, item.where, f"metadata record has the reserved key {STATE_KEY!r}")
        image = _load(item)
        writer = store.item_group(item.id, replace=state is not None, attributes=item.metadata)
        sums = _write_image(writer, item, image, store.layout.member)
        writer.finish({"complete": True, "name": item.id, "axes": list(image.axes),
                       "shape": [int(n) for n in np.shape(image.data)], "rendered": image.rendered,
                       "checksums": sums, "source": item.where, "origin": item.origin})
    return ItemResult(True, [], dict(item.metadata))


def _write_image(writer: GroupWriter, item: ArrayItem, image: ArrayImage,
                 member: Callable[[str], str]) -> dict[str, str]:
    data = np.asarray(image.data)
    axes = tuple(image.axes)
    attrs: dict[str, Any] = {"rendered": image.rendered, "channels": image.channels,
                             "source": json.loads(json.dumps(image.attrs, default=str))}
    if image.rendered:
        attrs["long_name"] = "rendered 8-bit planes (not the raw pixel values)"
    sums = {"image": writer.put_array("image", data, axes, chunks=array_chunks(data.shape, axes), **attrs)}
    for axis, values in image.coords.items():
        if axis in axes and axis != "channel":
            units = {"units": image.units[axis]} if axis in image.units else {}
            writer.put_values(axis, np.asarray(values, dtype=np.float64), axis, **units)
    if "channel" in axes:
        n = data.shape[axes.index("channel")]
        names = [str(c.get("label") or f"C{k}") for k, c in enumerate(image.channels)] if image.channels else []
        writer.put_coord("channel", names if len(names) == n else [f"C{k}" for k in range(n)])
    spatial = tuple(a for a in axes if a != "channel")
    for name, label in image.labels.items():
        if name in _RESERVED:
            raise BadItem(item.id, item.where, f"label image {name!r} has a name the image group reserves")
        values = np.asarray(label)
        dims = spatial[-values.ndim:] if values.ndim <= len(spatial) else None
        if dims is None or values.shape != tuple(data.shape[axes.index(d)] for d in dims):
            raise BadItem(item.id, item.where, f"label image {name!r} of shape {values.shape} does not fit {axes}")
        try:
            node = member(name)
        except InvalidInputError as exc:
            raise BadItem(item.id, item.where, f"label image {name!r}: {exc}") from None
        sums[node] = writer.put_array(node, values, dims, chunks=array_chunks(values.shape, dims), label=True,
                                      _archivestore={"name": name})
    return sums


def process_plate(store: Store, item: PlateItem) -> ItemResult:
    """Write a plate's well grid ``plates/<id>`` (image ids by row, column, field) unless it is complete."""
    path = store.layout.plate(item.id)
    if (store.group_state(path) or {}).get("complete"):
        return ItemResult(False, [], None)
    grid = np.full((len(item.rows), len(item.columns), max(item.fields, 1)), "", dtype=object)
    rows = {r: k for k, r in enumerate(item.rows)}
    columns = {c: k for k, c in enumerate(item.columns)}
    for (row, column, fld), image_id in item.images.items():
        if row not in rows or column not in columns or not 0 <= fld < grid.shape[2]:
            raise BadItem(item.id, item.where, f"well {row}{column} field {fld} is outside the plate's grid")
        grid[rows[row], columns[column], fld] = image_id
    with store.lease(path):
        state = store.group_state(path)
        writer = store.new_group(path, replace=state is not None, attributes=item.metadata)
        writer.put_coord("row", list(item.rows))
        writer.put_coord("column", list(item.columns))
        writer.put_values("field", np.arange(grid.shape[2], dtype=np.int32), "field")
        writer.put_text("image_id", grid, ("row", "column", "field"),
                        long_name="image id of each well and field ('' where none)")
        writer.finish({"complete": True, "name": item.id, "shape": list(grid.shape), "source": item.where})
    return ItemResult(True, [], None)
