"""What each store item becomes in OME-Zarr: axes, lazy arrays, physical scale, channels and label images.

- An ISIC image (``image`` (y, x, channel) uint8 RGB) becomes (c, y, x) with the channels R, G, B
  in red, green and blue (window 0-255); its ``mask`` (value 1: ``lesion``), ``superpixels`` and
  each ``attribute`` feature (``attribute_<feature>``, value 1) become label images.
- A microscopy image (axes from t, channel, z, y, x) keeps its axes (``channel`` is NGFF's ``c``),
  raw dtype, physical scale and origin (from its coordinates, with their units) and OMERO channels;
  its label arrays become label images of the same names.
- A CT/MR volume (z, y, x) gets its voxel spacing and origin in millimetre; each DICOM SEG of it
  becomes **one label image named by the SEG's SeriesInstanceUID whose values are the segment
  numbers** (fractional segments binarised at >= 0.5), with each segment's label, code and rater
  in the label's ``properties``. Segments of one SEG may overlap (a tumour inside an organ), which
  one label image cannot hold: a SEG whose segments overlap becomes one label image per segment
  instead (``<SEG uid>_<segment number>``, value = the segment number), so no voxel is lost.

Every array stays a lazy dask array read from the store; nothing is computed here except the
overlap check of each SEG (one pass over its labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from archivestore.layout import STATE_KEY, array_chunks, escape_name, volume_chunks
from archivestore.store import Store

__all__ = ["ImageSpec", "LabelSpec", "image_spec", "volume_specs"]

RGB = {"R": "FF0000", "G": "00FF00", "B": "0000FF"}
PALETTE = ["FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "00FFFF", "FF8000", "8000FF", "0080FF", "80FF00"]
UNITS = {"mm": "millimeter", "um": "micrometer", "µm": "micrometer", "μm": "micrometer", "nm": "nanometer",
         "s": "second", "ms": "millisecond"}
"""Unit spellings of the store mapped to the UDUNITS names NGFF uses."""


@dataclass
class LabelSpec:
    """One label image: an integer array over the image's axes without ``c``."""

    name: str
    data: da.Array
    axes: str
    properties: list[dict[str, Any]] = field(default_factory=list)
    colors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ImageSpec:
    """One OME-Zarr image to write: its id (the multiscales name), array, geometry, channels, labels."""

    id: str
    data: da.Array
    axes: str
    """NGFF axis names in array order (``cyx``, ``zyx``, ``tczyx``, ...)."""
    scale: dict[str, float]
    translation: dict[str, float]
    units: dict[str, str]
    omero: dict[str, Any] | None
    labels: list[LabelSpec]
    record: dict[str, Any]
    """Kept as the image group's ``archivestore`` attribute (id, kind, the store's record)."""


def _rgba(hex_color: str) -> list[int]:
    return [int(hex_color[k:k + 2], 16) for k in (0, 2, 4)] + [255]


def _window(dtype: np.dtype[Any], given: Any) -> dict[str, float]:
    """An OMERO window: the given start/end/min/max where present, the dtype's range otherwise."""
    low, high = (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)) if dtype.kind in "ui" else (0.0, 1.0)
    given = given if isinstance(given, dict) else {}
    out = {"min": given.get("min", low), "max": given.get("max", high)}
    out["start"], out["end"] = given.get("start", out["min"]), given.get("end", out["max"])
    return {k: float(v) for k, v in out.items()}


def _omero(names: list[str], stored: list[Any], dtype: np.dtype[Any], colors: dict[str, str]) -> dict[str, Any]:
    channels = []
    for k, name in enumerate(names):
        entry = dict(stored[k]) if k < len(stored) and isinstance(stored[k], dict) else {}
        color = str(entry.get("color") or colors.get(name) or PALETTE[k % len(PALETTE)]).lstrip("#")
        channels.append({**entry, "label": str(entry.get("label") or name), "color": color,
                         "window": _window(dtype, entry.get("window")), "active": bool(entry.get("active", True))})
    return {"channels": channels}


def _geometry(ds: Any, dims: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Scale, origin and unit of each axis with coordinates (scale 1 and origin 0 otherwise)."""
    scale, translation, units = {}, {}, {}
    for d in dims:
        axis = "c" if d == "channel" else d
        scale[axis], translation[axis] = 1.0, 0.0
        if d == "channel" or d not in ds.coords:
            continue
        values = np.asarray(ds[d].values, dtype=np.float64)
        if values.size:
            translation[axis] = float(values[0])
        if values.size > 1 and values[-1] != values[0]:
            scale[axis] = float((values[-1] - values[0]) / (values.size - 1))
        unit = ds[d].attrs.get("units")
        if unit:
            units[axis] = UNITS.get(str(unit), str(unit))
    return scale, translation, units


def _mask_label(name: str, values: da.Array, prop: dict[str, Any], color: str) -> LabelSpec:
    """A 0/1 mask as it is stored (value 1 described by ``prop``)."""
    return LabelSpec(name, values, "yx", [{"label-value": 1, **prop}], [{"label-value": 1, "rgba": _rgba(color)}])


def _record(store: Store, image_id: str, kind: str) -> dict[str, Any]:
    return {"id": image_id, "kind": kind, "record": store.image_record(image_id)}


def image_spec(store: Store, image_id: str) -> ImageSpec:
    """The OME-Zarr image of ``images/<id>`` (an ISIC image or a microscopy image)."""
    ds = store.image(image_id)
    image = ds["image"]
    if image.dims == ("y", "x", "channel"):
        names = [str(c) for c in ds["channel"].values]
        labels = [_mask_label("mask", ds["mask"].data, {"name": "lesion"}, "FF0000")] if "mask" in ds else []
        if "superpixels" in ds:
            labels.append(LabelSpec("superpixels", ds["superpixels"].data, "yx"))
        for k, feature in enumerate(ds["feature"].values if "attribute" in ds else []):
            labels.append(_mask_label(escape_name(f"attribute_{feature}"), ds["attribute"].data[k],
                                      {"name": str(feature)}, PALETTE[k % len(PALETTE)]))
        data = image.data.transpose(2, 0, 1)
        return ImageSpec(image_id, data.rechunk(array_chunks(data.shape, ("channel", "y", "x"))), "cyx",
                         {"c": 1.0, "y": 1.0, "x": 1.0}, {"c": 0.0, "y": 0.0, "x": 0.0}, {},
                         _omero(names, [], image.dtype, RGB), labels, _record(store, image_id, "image"))
    dims = tuple(str(d) for d in image.dims)
    axes = "".join("c" if d == "channel" else d for d in dims)
    scale, translation, units = _geometry(ds, dims)
    omero = None
    if "channel" in dims:
        names = [str(c) for c in ds["channel"].values] if "channel" in ds.coords else \
            [f"C{k}" for k in range(image.sizes["channel"])]
        omero = _omero(names, list(image.attrs.get("channels") or []), image.dtype, {})
    labels = []
    for name, variable in ds.data_vars.items():
        if variable.attrs.get("label") is True and name != "image":
            labels.append(LabelSpec(escape_name(str(name)), variable.data.rechunk(
                array_chunks(variable.shape, tuple(map(str, variable.dims)))), "".join(map(str, variable.dims))))
    return ImageSpec(image_id, image.data.rechunk(array_chunks(image.shape, dims)), axes, scale, translation, units,
                     omero, labels, _record(store, image_id, "image"))


def _seg_labels(segs: list[tuple[str, Any]]) -> list[LabelSpec]:
    """The label images of a volume's SEGs (see the module docstring); one dask pass checks overlaps."""
    binaries = []
    for _, ds in segs:
        labels = ds["labels"].data
        binaries.append(labels >= 0.5 if labels.dtype.kind == "f" else labels > 0)
    overlapping = dask.compute(*[(b.sum(axis=0, dtype=np.uint16) > 1).any() for b in binaries]) if binaries else []
    out = []
    for (uid, ds), binary, overlaps in zip(segs, binaries, overlapping, strict=True):
        numbers = [int(n) for n in ds["segment"].values]
        dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
        props = [{"label-value": n, "segment_label": str(ds["segment_label"].values[k]),
                  "segment_code": str(ds["segment_code"].values[k]), "rater": str(ds.attrs.get("rater") or ""),
                  "segmentation": uid} for k, n in enumerate(numbers)]
        colors = [{"label-value": n, "rgba": _rgba(PALETTE[(n - 1) % len(PALETTE)])} for n in numbers]
        if not overlaps:
            weights = da.from_array(np.asarray(numbers, dtype=dtype)[:, None, None, None], chunks=1)
            merged = (binary.astype(dtype) * weights).max(axis=0).astype(dtype)
            out.append(LabelSpec(escape_name(uid), merged.rechunk(volume_chunks(merged.shape, ("z", "y", "x"))),
                                 "zyx", props, colors))
            continue
        for k, n in enumerate(numbers):
            part = binary[k].astype(dtype) * dtype(n)
            out.append(LabelSpec(escape_name(f"{uid}_{n}"), part, "zyx", [props[k]], [colors[k]]))
    return out


def volume_specs(store: Store, uids: list[str]) -> list[ImageSpec]:
    """The OME-Zarr images of ``series/<uid>`` volumes, each with its SEGs as label images."""
    frame = store.metadata_frame("series")
    sources = frame["store.source_series"].astype(object) if "store.source_series" in frame else None
    specs = []
    for uid in uids:
        ds = store.volume(uid)
        volume = ds["volume"]
        spacing = [float(s) for s in ds.attrs.get("spacing", [1.0, 1.0, 1.0])]
        origin = {d: float(ds[d].values[0]) if d in ds.coords and ds[d].size else 0.0 for d in ("z", "y", "x")}
        seg_uids = [] if sources is None else [str(s) for s, src in sources.items()
                                               if isinstance(src, str) and src == uid]
        segs = [(seg_uid, store.segmentation(seg_uid)) for seg_uid in seg_uids]
        record = {"id": uid, "kind": "volume", "record": ds.attrs.get("record"),
                  **{k: ds.attrs[k] for k in ("spacing", "affine", "orientation", "uniform_spacing", "modality")
                     if k in ds.attrs}, "segmentations": seg_uids}
        record.pop(STATE_KEY, None)
        specs.append(ImageSpec(uid, volume.data.rechunk(volume_chunks(volume.shape, ("z", "y", "x"))), "zyx",
                               dict(zip("zyx", spacing, strict=True)), origin,
                               dict.fromkeys("zyx", "millimeter"), None, _seg_labels(segs), record))
    return specs
