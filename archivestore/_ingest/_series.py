"""One DICOM series into the store: an image series as volumes, a SEG as label volumes (a worker's task).

- An image series becomes ``series/<uid>`` (``volume`` (z, y, x) in modality units,
  coordinates ``z``/``y``/``x`` in mm and ``sop_instance_uid``), or, when it holds
  several stacks (orientations, sizes, localizers), one group per stack named
  ``<uid>_part<k>`` (k from 1).
- A slide-microscopy (SM) series becomes ``slides/<uid>`` (:mod:`archivestore._ingest._slide`).
- A SEG, and an RTSTRUCT (its contours rasterised by :func:`archivestore.dicom.read_rtstruct`), becomes
  ``segmentations/<uid>``: ``labels`` (segment, z, y, x) on the grid of the stored volume
  it segments (so that volume must be ingested first or in the same run: the ingest
  submits SEGs and RTSTRUCTs after the other series).
- An SR measurement report (TID 1500) becomes ``findings/<uid>``, a table of its findings
  (:mod:`archivestore._ingest._findings`).

Each group is written under its lease, arrays first and its state last; the state
carries the group's ``series_metadata`` row, so a rerun that finds it complete hands
the row back without fetching anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from archivestore._ingest._results import SeriesResult
from archivestore._ingest._slide import complete_slide_row, write_slide
from archivestore._ingest._warnings import with_notes
from archivestore.dicom import (
    Labels,
    Volume,
    is_report,
    is_rtstruct,
    is_segmentation,
    is_slide,
    read_rtstruct,
    read_segmentation,
    read_series,
    rtstruct_source,
    segmentation_source,
)
from archivestore.errors import BadItem, InvalidInputError, NotFoundError, UnreachableError
from archivestore.layout import volume_chunks, volume_compressors
from archivestore.sources import SeriesItem
from archivestore.store import Store

__all__ = ["part_id", "process_series", "stored_volume", "write_labels"]

_DICOM_FIELDS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "BodyPartExamined",
                 "Manufacturer", "SliceThickness", "PixelSpacing", "Rows", "Columns")


def part_id(uid: str, volume: Volume) -> str:
    """The group id of a volume: the SeriesInstanceUID, or ``<uid>_part<k>`` for a part of a split series."""
    return uid if volume.parts == 1 else f"{uid}_part{volume.part + 1}"


def process_series(store: Store, item: SeriesItem) -> SeriesResult:
    """Write what the store lacks of one series; return its table rows (worker thread or dask task)."""
    slide = str(item.metadata.get("Modality", "")) == "SM"
    done = complete_slide_row(store, item.id) if slide else _complete_rows(store, item.id)
    if done:
        return SeriesResult(False, done)
    try:
        files = list(item.files())
    except (BadItem, UnreachableError):  # the endpoint out of reach concerns every item: the loop decides
        raise
    except Exception as exc:  # a loader's own failure (I/O, HTTP, zip) belongs to this series
        raise BadItem(item.id, item.where, f"cannot read the series' files: {exc}") from None
    if not files:
        raise BadItem(item.id, item.where, "the series has no DICOM files")
    try:
        if is_slide(files):
            return write_slide(store, item, files)
        if is_segmentation(files):
            return _write_segmentation(store, item, files)
        if is_rtstruct(files):
            return _write_rtstruct(store, item, files)
        if is_report(files):
            from archivestore._ingest._findings import write_findings

            return write_findings(store, item, files)
        return _write_volumes(store, item, files)
    except InvalidInputError as exc:
        raise BadItem(item.id, item.where, str(exc)) from None


def _complete_rows(store: Store, uid: str) -> dict[str, dict[str, Any]]:
    """Rows of the complete groups a previous run wrote for this series (empty if none)."""
    layout = store.layout
    for path in (layout.series(uid), layout.segmentation(uid), layout.findings(uid)):
        state = store.group_state(path)
        if state and state.get("complete"):
            return {str(state["name"]): state["row"]}
    first = store.group_state(layout.series(f"{uid}_part1"))
    if not (first and first.get("complete")):
        return {}
    rows = {}
    for k in range(1, int(first["parts"]) + 1):
        state = store.group_state(layout.series(f"{uid}_part{k}")) or {}
        if not state.get("complete"):
            return {}
        rows[str(state["name"])] = state["row"]
    return rows


def _dicom_summary(header: dict[str, Any], slices: int) -> dict[str, Any]:
    """The main DICOM attributes of a header (DICOM JSON), for the table."""
    from pydicom.datadict import tag_for_keyword

    out: dict[str, Any] = {}
    for keyword in _DICOM_FIELDS:
        element = header.get(f"{tag_for_keyword(keyword):08X}", {})
        values = element.get("Value")
        if values:
            out[keyword] = values if len(values) > 1 else values[0]
    out["slices"] = slices
    return out


def _write_volumes(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    volumes, notes = with_notes(item.id, lambda: read_series(files))
    rows = {}
    for volume in volumes:
        vid = part_id(item.id, volume)
        rows[vid] = _write_volume(store, item, vid, volume)
    return SeriesResult(True, rows, notes)


def _write_volume(store: Store, item: SeriesItem, vid: str, volume: Volume) -> dict[str, Any]:
    path = store.layout.series(vid)
    row = {**item.metadata, "dicom": _dicom_summary(volume.header, len(volume.z)),
           "store": {"kind": "volume", "group": path, "part": volume.part + 1, "parts": volume.parts}}
    attrs = {
        "affine": volume.affine.tolist(), "spacing": list(volume.spacing), "orientation": list(volume.orientation),
        "uniform_spacing": volume.uniform_spacing, "modality": volume.modality,
        "series_instance_uid": volume.series_instance_uid, "frame_of_reference_uid": volume.frame_of_reference_uid,
        "part": volume.part + 1, "parts": volume.parts, "part_description": volume.part_description,
        "dicom": volume.header, "record": item.metadata,
    }
    with store.lease(path):
        state = store.group_state(path)
        if state and state.get("complete"):
            return dict(state["row"])
        writer = store.new_group(path, replace=state is not None, attributes=attrs)
        dims = ("z", "y", "x")
        sums = {"volume": writer.put_array("volume", volume.array, dims,
                                           chunks=volume_chunks(volume.array.shape, dims), codecs=volume_compressors(),
                                           long_name="value in modality units (rescaled)")}
        _put_grid(writer, volume.z, volume.y, volume.x, volume.sop_instance_uids, volume.frame_numbers)
        writer.finish({"complete": True, "name": vid, "series": item.id, "parts": volume.parts,
                       "shape": list(volume.array.shape), "checksums": sums, "row": row,
                       "source": item.where, "origin": item.origin})
    return row


def _put_grid(writer: Any, z: np.ndarray, y: np.ndarray, x: np.ndarray, uids: tuple[str, ...],
              frames: tuple[int, ...] | None) -> None:
    """The (z, y, x) coordinates of a volume (mm) and each slice's instance (and frame)."""
    for name, values, what in (("z", z, "position along the slice normal"), ("y", y, "row offset"),
                               ("x", x, "column offset")):
        writer.put_values(name, np.asarray(values, dtype=np.float64), name, units="mm", long_name=what)
    writer.put_coord("sop_instance_uid", list(uids), dim="z")
    if frames is not None:
        writer.put_values("frame_number", np.asarray(frames, dtype=np.int32), "z")


def stored_volume(store: Store, source: str, instances: frozenset[str]) -> tuple[str, Volume]:
    """The stored volume (group id and grid) holding a SEG's referenced instances."""
    candidates = [source]
    first = store.group_state(store.layout.series(f"{source}_part1"))
    if first and first.get("complete"):
        candidates = [f"{source}_part{k}" for k in range(1, int(first["parts"]) + 1)]
    for vid in candidates:  # read with zarr alone: the ingest never imports xarray for a grid
        try:
            uids = tuple(str(u) for u in store.read_volume(vid, "sop_instance_uid"))
        except NotFoundError:  # absent or incomplete
            continue
        if instances <= set(uids):
            path = store.layout.series(vid)
            group = zarr.open_group(store.zstore, path=path, mode="r", zarr_format=3)
            attrs: dict[str, Any] = dict(group.attrs)
            frames = (tuple(int(f) for f in store.read_volume(vid, "frame_number")) if "frame_number" in group
                      else None)
            voxels = zarr.open_array(store.zstore, path=f"{path}/volume", mode="r", zarr_format=3)
            shape = tuple(int(n) for n in voxels.shape)
            return vid, Volume(
                array=np.broadcast_to(np.zeros((), voxels.dtype), shape),  # the grid, not the voxels
                z=store.read_volume(vid, "z"), y=store.read_volume(vid, "y"), x=store.read_volume(vid, "x"),
                sop_instance_uids=uids, frame_numbers=frames, affine=np.asarray(attrs["affine"]),
                spacing=tuple(attrs["spacing"]), orientation=tuple(attrs["orientation"]),
                positions=np.zeros((shape[0], 3)), uniform_spacing=bool(attrs["uniform_spacing"]), header={},
                series_instance_uid=source, modality=str(attrs["modality"]),
                frame_of_reference_uid=str(attrs["frame_of_reference_uid"]))
    raise NotFoundError(f"the series it segments, {source}, is not in the store (ingest it first or together)")


def _write_segmentation(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    source = segmentation_source(files)
    try:
        vid, volume = stored_volume(store, source.source_series, source.source_instances)
    except NotFoundError as exc:
        raise BadItem(item.id, item.where, str(exc)) from None
    return write_labels(store, item, read_segmentation(files, volume), volume, vid)


def write_labels(store: Store, item: SeriesItem, labels: Labels, volume: Volume, vid: str,
                 notes: list[str] | None = None) -> SeriesResult:
    """Write a SEG's or an RTSTRUCT's labels as ``segmentations/<uid>`` on the grid of stored volume ``vid``."""
    path = store.layout.segmentation(item.id)
    row = {**item.metadata, "dicom": _dicom_summary(labels.header, len(volume.z)),
           "store": {"kind": "segmentation", "group": path, "source_series": labels.source_series,
                     "source_volume": vid, "rater": labels.rater}}
    with store.lease(path):
        state = store.group_state(path)
        if state and state.get("complete"):
            return SeriesResult(False, {item.id: dict(state["row"])}, list(notes or []))
        writer = store.new_group(path, replace=state is not None, attributes=_seg_attrs(item, labels, volume, vid))
        dims = ("segment", "z", "y", "x")
        sums = {"labels": writer.put_array("labels", labels.labels, dims, codecs=volume_compressors(),
                                           chunks=volume_chunks(labels.labels.shape, dims))}
        writer.put_values("segment", np.asarray(labels.segment, dtype=np.int32), "segment")
        writer.put_coord("segment_label", list(labels.segment_label), dim="segment")
        writer.put_coord("segment_code", list(labels.segment_code), dim="segment")
        _put_grid(writer, volume.z, volume.y, volume.x, volume.sop_instance_uids, volume.frame_numbers)
        writer.finish({"complete": True, "name": item.id, "series": item.id, "shape": list(labels.labels.shape),
                       "checksums": sums, "row": row, "source": item.where, "origin": item.origin})
    return SeriesResult(True, {item.id: row}, list(notes or []))


def _seg_attrs(item: SeriesItem, labels: Labels, volume: Volume, vid: str) -> dict[str, Any]:
    return {
        "source_series": labels.source_series, "source_volume": vid, "rater": labels.rater,
        "segmentation_type": labels.segmentation_type, "series_instance_uid": labels.series_instance_uid,
        "segments": list(labels.segments), "spacing": list(volume.spacing), "affine": volume.affine.tolist(),
        "dicom": labels.header, "record": item.metadata,
    }


def _write_rtstruct(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    """Rasterise an RTSTRUCT onto its stored volume's grid and write it like a SEG (``InvalidInputError`` on bad
    input; skipped contours are the item's WARNING notes)."""
    source = rtstruct_source(files)
    try:
        vid, volume = stored_volume(store, source.source_series, source.source_instances)
    except NotFoundError as exc:
        raise BadItem(item.id, item.where, str(exc).replace("it segments", "it contours")) from None
    labels, notes = with_notes(item.id, lambda: read_rtstruct(files, volume))
    return write_labels(store, item, labels, volume, vid, notes)
