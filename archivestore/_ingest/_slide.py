"""One slide-microscopy (SM) series into the store: ``slides/<uid>``, tiles kept in their DICOM encoding.

- ``slides/<uid>/<level>`` (``0`` the full resolution, then ``1``, ``2``, ... as the series holds
  them) and ``slides/<uid>/label``, ``overview``, ``thumbnail``: each a group with ``image``
  (y, x, channel) chunked by the DICOM tile, coordinates ``y``/``x`` in micrometres and
  ``channel``. Each chunk is one DICOM frame's codestream, byte for byte, and the array's
  serializer is the codec that decodes it (:mod:`archivestore.codecs`); tiles a
  ``TILED_SPARSE`` level leaves out are absent chunks (the fill value: white for colour).
- The slide group carries the slide's metadata and the index row as attributes, and its state,
  written last, holds the ``series_metadata`` row (``store.kind = "slide"``): an interrupted
  write is never taken for a complete slide, and a rerun hands the row back without fetching.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.dtype import parse_data_type

from archivestore._ingest._results import SeriesResult
from archivestore.codecs import CODECS
from archivestore.dicom import SlideImage, open_slide
from archivestore.sources import SeriesItem
from archivestore.store import GroupWriter, Store

__all__ = ["complete_slide_row", "write_slide"]

_WRITES = 128
"""Tiles written at a time (concurrent PUTs on a bucket)."""

_SUMMARY = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "Manufacturer",
            "ManufacturerModelName", "ContainerIdentifier", "TotalPixelMatrixRows", "TotalPixelMatrixColumns")


def complete_slide_row(store: Store, uid: str) -> dict[str, dict[str, Any]]:
    """The row of the complete slide group a previous run wrote for this series (empty if none)."""
    state = store.group_state(store.layout.slide(uid))
    return {str(state["name"]): state["row"]} if state and state.get("complete") else {}


def _summary(header: dict[str, Any], levels: int) -> dict[str, Any]:
    from pydicom.datadict import tag_for_keyword

    out: dict[str, Any] = {}
    for keyword in _SUMMARY:
        values = header.get(f"{tag_for_keyword(keyword):08X}", {}).get("Value")
        if values:
            out[keyword] = values if len(values) > 1 else values[0]
    out["levels"] = levels
    return out


def write_slide(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    """Write one SM series as ``slides/<uid>`` (under its lease); return its ``series_metadata`` row."""
    path = store.layout.slide(item.id)
    with open_slide(files) as slide:
        level0 = slide.levels[0]
        row = {**item.metadata, "dicom": _summary(slide.header, len(slide.levels)),
               "store": {"kind": "slide", "group": path, "levels": len(slide.levels),
                         "shape": list(level0.shape), "associated": [a.name for a in slide.associated]}}
        attrs = {**slide.attrs, "dicom": slide.header, "record": item.metadata,
                 "pyramid": [_describe(level) for level in slide.levels],
                 "associated": [_describe(image) for image in slide.associated]}
        store.ensure_group(store.layout.SLIDES)
        with store.lease(path):
            state = store.group_state(path)
            if state and state.get("complete"):
                return SeriesResult(False, {item.id: dict(state["row"])})
            writer = store.new_group(path, replace=state is not None, attributes=attrs)
            writer.consolidate = False  # the levels are groups of their own, each consolidated
            sums = {image.name: _write_image(store, f"{path}/{image.name}", image)
                    for image in [*slide.levels, *slide.associated]}
            writer.finish({"complete": True, "name": item.id, "series": item.id, "shape": list(level0.shape),
                           "checksums": sums, "row": row, "source": item.where, "origin": item.origin})
    return SeriesResult(True, {item.id: row})


def _describe(image: SlideImage) -> dict[str, Any]:
    return {"name": image.name, "kind": image.kind, "shape": list(image.shape), "tile": list(image.tile),
            "spacing_um": None if image.spacing_um is None else list(image.spacing_um),
            "downsample": image.downsample, "tiling": image.tiling, "image_type": list(image.image_type),
            "sop_instance_uids": list(image.instances), "tiles_present": image.present,
            "tiles_absent": image.absent, "codec": image.codec}


def _image_metadata(image: SlideImage) -> ArrayV3Metadata:
    dtype = parse_data_type(np.uint8, zarr_format=3)
    codec = CODECS[image.codec["name"]].from_dict(image.codec)
    return ArrayV3Metadata(
        shape=image.shape, data_type=dtype,
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": image.chunks}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
        fill_value=dtype.cast_scalar(image.fill), codecs=[codec],
        attributes={"long_name": "pixels as the DICOM frames encode them", "transfer_syntax": image.transfer_syntax,
                    "photometric_interpretation": image.photometric, "tiling": image.tiling,
                    "tiles_absent": image.absent},
        dimension_names=("y", "x", "channel"), storage_transformers=None)


def _write_image(store: Store, path: str, image: SlideImage) -> str:
    """Write one level (or label, ...) group; return the sha256 of its tiles' bytes in tile order."""
    spacing = image.spacing_um
    attrs = {"kind": image.kind, "level": image.name, "downsample": image.downsample,
             "spacing_um": None if spacing is None else list(spacing), "image_type": list(image.image_type),
             "sop_instance_uids": list(image.instances), "channels": list(image.channels)}
    writer = GroupWriter(store.zstore, path, attrs, arrays={})
    writer.start({})
    meta = _image_metadata(image)
    digest = hashlib.sha256()
    sync(_put_tiles(store.zstore, f"{path}/image", meta, image, digest))
    writer.arrays["image"] = meta
    dy, dx = spacing if spacing is not None else (1.0, 1.0)
    units = "micrometer" if spacing is not None else "pixel"
    writer.put_values("y", np.arange(image.shape[0], dtype=np.float64) * dy, "y", units=units,
                      long_name="row offset from the first pixel")
    writer.put_values("x", np.arange(image.shape[1], dtype=np.float64) * dx, "x", units=units,
                      long_name="column offset from the first pixel")
    writer.put_coord("channel", list(image.channels))
    checksum = "sha256:" + digest.hexdigest()
    writer.finish({"complete": True, "name": image.name, "checksums": {"image": checksum}})
    return checksum


async def _put_tiles(zstore: Any, path: str, meta: ArrayV3Metadata, image: SlideImage, digest: Any) -> None:
    proto = default_buffer_prototype()
    await zstore.set(f"{path}/zarr.json", meta.to_buffer_dict(proto)["zarr.json"])
    pending: list[tuple[str, bytes]] = []
    for coords, data in image.tiles():
        digest.update(data)
        pending.append((f"{path}/{meta.encode_chunk_key(coords)}", data))
        if len(pending) >= _WRITES:
            await asyncio.gather(*(zstore.set(key, proto.buffer.from_bytes(d)) for key, d in pending))
            pending = []
    await asyncio.gather(*(zstore.set(key, proto.buffer.from_bytes(d)) for key, d in pending))
