"""What each store item becomes in OME-Zarr: axes, lazy arrays, physical scale, channels and label images.

- An ISIC image (``image`` (y, x, channel) uint8 RGB) becomes (c, y, x) with the channels R, G, B
  in red, green and blue (window 0-255); its ``mask`` (value 1: ``lesion``), ``superpixels`` and
  each ``attribute`` feature (``attribute_<feature>``, value 1) become label images.
- A microscopy image (axes from t, channel, z, y, x) keeps its axes (``channel`` is NGFF's ``c``),
  raw dtype, physical scale and origin (from its coordinates, with their units) and OMERO channels;
  its label arrays become label images of the same names.
- A CT/MR volume (z, y, x) gets its voxel spacing (the ``spacing`` attribute; with uneven slice
  gaps NGFF's one scale per axis cannot hold the true z positions, which stay in the store and in
  the ``archivestore`` attribute's affine) and origin in millimetre; each DICOM SEG of it
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
import zarr

from archivestore.errors import NotFoundError
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


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of an item group."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise NotFoundError(f"{group.path} has no array {name!r}")
    return node


def _values(group: zarr.Group, name: str) -> np.ndarray:
    return np.asarray(_array(group, name)[...])


def _dims(array: zarr.Array) -> tuple[str, ...]:
    return tuple(str(d) for d in (getattr(array.metadata, "dimension_names", None) or ()))


def _complete(store: Store, path: str, what: str) -> zarr.Group:
    """The item group at ``path`` (read straight with zarr: no xarray per image), if it is complete."""
    if not (store.group_state(path) or {}).get("complete"):
        raise NotFoundError(f"no complete {what} in {store.url}")
    return store.root[path]  # type: ignore[return-value]


def _geometry(group: zarr.Group, dims: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Scale, origin and unit of each axis with a coordinate array (scale 1 and origin 0 otherwise)."""
    scale, translation, units = {}, {}, {}
    for d in dims:
        axis = "c" if d == "channel" else d
        scale[axis], translation[axis] = 1.0, 0.0
        if d == "channel" or d not in group:
            continue
        coord = _array(group, d)
        values = np.asarray(coord[...], dtype=np.float64)
        if values.size:
            translation[axis] = float(values[0])
        if values.size > 1 and values[-1] != values[0]:
            scale[axis] = float((values[-1] - values[0]) / (values.size - 1))
        unit = coord.attrs.get("units")
        if unit:
            units[axis] = UNITS.get(str(unit), str(unit))
    return scale, translation, units


def _mask_label(name: str, values: da.Array, prop: dict[str, Any], color: str) -> LabelSpec:
    """A 0/1 mask as it is stored (value 1 described by ``prop``)."""
    return LabelSpec(name, values, "yx", [{"label-value": 1, **prop}], [{"label-value": 1, "rgba": _rgba(color)}])


def _record(group: zarr.Group, item_id: str, kind: str) -> dict[str, Any]:
    """The ``archivestore`` attribute of an exported image: id, kind and the store's record of it."""
    attrs = group.attrs.asdict()
    return {"id": item_id, "kind": kind, "record": {k: v for k, v in attrs.items() if k != STATE_KEY}}


def _lazy(group: zarr.Group, name: str) -> da.Array:
    return da.from_zarr(_array(group, name))


def image_spec(store: Store, image_id: str) -> ImageSpec:
    """The OME-Zarr image of ``images/<id>`` (an ISIC image or a microscopy image)."""
    group = _complete(store, store.layout.image(image_id), f"image {image_id!r}")
    image = _array(group, "image")
    dims = _dims(image)
    record = _record(group, image_id, "image")
    if dims == ("y", "x", "channel"):
        names = [str(c) for c in _values(group, "channel")]
        labels = [_mask_label("mask", _lazy(group, "mask"), {"name": "lesion"}, "FF0000")] if "mask" in group else []
        if "superpixels" in group:
            labels.append(LabelSpec("superpixels", _lazy(group, "superpixels"), "yx"))
        features = [str(f) for f in _values(group, "feature")] if "attribute" in group else []
        for k, feature in enumerate(features):
            labels.append(_mask_label(escape_name(f"attribute_{feature}"), _lazy(group, "attribute")[k],
                                      {"name": feature}, PALETTE[k % len(PALETTE)]))
        data = _lazy(group, "image").transpose(2, 0, 1)
        return ImageSpec(image_id, data.rechunk(array_chunks(data.shape, ("channel", "y", "x"))), "cyx",
                         {"c": 1.0, "y": 1.0, "x": 1.0}, {"c": 0.0, "y": 0.0, "x": 0.0}, {},
                         _omero(names, [], np.dtype(image.dtype), RGB), labels, record)
    axes = "".join("c" if d == "channel" else d for d in dims)
    scale, translation, units = _geometry(group, dims)
    omero = None
    if "channel" in dims:
        n = image.shape[dims.index("channel")]
        names = [str(c) for c in _values(group, "channel")] if "channel" in group else [f"C{k}" for k in range(n)]
        stored = image.attrs.get("channels")
        omero = _omero(names, list(stored) if isinstance(stored, list) else [], np.dtype(image.dtype), {})
    labels = [LabelSpec(escape_name(_label_name(name, array)), da.from_zarr(array), "".join(_dims(array)))
              for name, array in sorted(group.arrays()) if array.attrs.get("label") is True and name != "image"]
    return ImageSpec(image_id, da.from_zarr(image), axes, scale, translation, units, omero, labels, record)


def _label_name(node: str, array: zarr.Array) -> str:
    """A label image's name as its source gave it (kept in its ``_archivestore`` attribute since layout 3)."""
    state = array.attrs.get(STATE_KEY)
    name = state.get("name") if isinstance(state, dict) else None
    return name if isinstance(name, str) and name else node


def _seg_labels(segs: list[tuple[str, zarr.Group]]) -> list[LabelSpec]:
    """The label images of a volume's SEGs (see the module docstring); one dask pass checks overlaps."""
    binaries = []
    for _, group in segs:
        labels = _lazy(group, "labels")
        binaries.append(labels >= 0.5 if labels.dtype.kind == "f" else labels > 0)
    overlapping = dask.compute(*[(b.sum(axis=0, dtype=np.uint16) > 1).any() for b in binaries]) if binaries else []
    out = []
    for (uid, group), binary, overlaps in zip(segs, binaries, overlapping, strict=True):
        numbers = [int(n) for n in _values(group, "segment")]
        names, codes = _values(group, "segment_label"), _values(group, "segment_code")
        dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
        props = [{"label-value": n, "segment_label": str(names[k]), "segment_code": str(codes[k]),
                  "rater": str(group.attrs.get("rater") or ""), "segmentation": uid} for k, n in enumerate(numbers)]
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


def volume_specs(store: Store, uids: list[str], segmentations: list[tuple[str, str]]) -> list[ImageSpec]:
    """The OME-Zarr images of ``series/<uid>`` volumes, each with its SEGs as label images.

    ``segmentations``: ``(SEG uid, the series it segments)`` of the store's SEGs.
    """
    specs = []
    for uid in uids:
        group = _complete(store, store.layout.series(uid), f"volume {uid!r}")
        volume = _array(group, "volume")
        attrs: dict[str, Any] = dict(group.attrs.asdict())
        spacing = [float(s) for s in attrs.get("spacing", [1.0, 1.0, 1.0])]
        _, origin, _ = _geometry(group, ("z", "y", "x"))
        seg_uids = [seg for seg, source in segmentations if source == uid]
        segs = [(s, _complete(store, store.layout.segmentation(s), f"segmentation {s!r}")) for s in seg_uids]
        record: dict[str, Any] = {"id": uid, "kind": "volume", "record": attrs.get("record"), "segmentations": seg_uids,
                  **{k: attrs[k] for k in ("spacing", "affine", "orientation", "uniform_spacing", "modality")
                     if k in attrs}}
        data = da.from_zarr(volume)
        specs.append(ImageSpec(uid, data.rechunk(volume_chunks(data.shape, ("z", "y", "x"))), "zyx",
                               dict(zip("zyx", spacing, strict=True)), origin,
                               dict.fromkeys("zyx", "millimeter"), None, _seg_labels(segs), record))
    return specs
