"""An OME-Zarr image as an :class:`~archivestore.sources.ArrayImage`, and an HCS plate's well grid.

The image's axes become archivestore's (``c`` is ``channel``; the order is always t, channel,
z, y, x, transposed when the file has another), one resolution level is read (0, the full
one, by default), each axis' scale and translation at that level (the dataset's transforms,
then the multiscale's) become its coordinates with the axis' unit, OMERO's channels become
``channels``, and every label image of ``labels/`` is read at the level with the image's
size (its channel axis, which NGFF allows, dropped when it has one element).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archivestore.errors import InvalidInputError
from archivestore.sources._base import AXES, ArrayImage
from archivestore.sources.ome_zarr._ngff import Ngff, check_arrays, models, transforms, validate

__all__ = ["PlateLayout", "check_image", "read_image", "read_plate"]

_NAMES = {"t": "t", "c": "channel", "channel": "channel", "z": "z", "y": "y", "x": "x"}


def _axes(ngff: Ngff, multiscale: Any) -> list[str]:
    """archivestore's names of the multiscale's axes, in the file's order."""
    names = []
    for axis in multiscale.axes:
        name = "channel" if axis.type == "channel" else _NAMES.get(str(axis.name))
        if name is None or name in names:
            found = [str(a.name) for a in multiscale.axes]
            raise InvalidInputError(f"{ngff.where}: axes {found} are not a subset of t, c, z, y, x")
        names.append(name)
    return names


def _canonical(data: Any, axes: list[str]) -> tuple[Any, tuple[str, ...]]:
    """``data`` transposed to archivestore's axis order."""
    order = sorted(range(len(axes)), key=lambda k: AXES.index(axes[k]))
    if order == list(range(len(axes))):
        return data, tuple(axes)
    return data.transpose(order), tuple(axes[k] for k in order)


def _read(ngff: Ngff, array: Any, lazy: bool) -> Any:
    """The array's values (numpy), or a dask array that reads them when computed (``lazy``)."""
    if lazy:
        import dask.array as da

        return da.from_zarr(array)
    try:
        return array[...]
    except Exception as exc:  # a chunk that does not decode, a read that fails: name the array
        raise InvalidInputError(f"{ngff.where}: cannot read array {array.path.rsplit('/', 1)[-1]!r}: "
                                f"{type(exc).__name__}: {exc}") from None


def _channels(ngff: Ngff, count: int) -> tuple[list[dict[str, Any]], str | None]:
    """OMERO's channel entries, kept as written when there is one per channel, and what the model
    found wrong with them (the ``omero`` block is transitional NGFF: a flaw is reported, not fatal)."""
    omero = ngff.attrs.get("omero")
    if not isinstance(omero, dict):
        return [], None
    from ome_zarr_models.common.omero import Omero
    from pydantic import ValidationError

    problem = None
    try:
        Omero.model_validate(omero)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = f"invalid omero metadata: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    channels = [dict(c) for c in omero.get("channels") or [] if isinstance(c, dict)]
    return (channels if len(channels) == count else []), problem


def check_image(ngff: Ngff) -> tuple[Any, list[str], list[Any]]:
    """An image group's multiscale (validated), its axes (archivestore's names) and its arrays (checked)."""
    # omero is checked on its own (:func:`_channels`): a flaw in the rendering settings is not a broken image
    multiscale = validate(ngff, models(ngff.version).image.ImageAttrs, "image", exclude=("omero",)).multiscales[0]
    return multiscale, _axes(ngff, multiscale), check_arrays(ngff, multiscale)


def read_image(ngff: Ngff, *, level: int = 0, lazy: bool = False) -> ArrayImage:
    """The image of an OME-Zarr ``multiscales`` group at one resolution level (see the module docstring)."""
    multiscale, names, arrays = check_image(ngff)
    if not 0 <= level < len(arrays):
        raise InvalidInputError(f"{ngff.where}: no resolution level {level}; the image has levels 0 to "
                                f"{len(arrays) - 1}")
    array = arrays[level]
    scale, offset = transforms(ngff, multiscale, level)
    coords, units = {}, {}
    for k, (name, axis) in enumerate(zip(names, multiscale.axes, strict=True)):
        if name != "channel":
            coords[name] = offset[k] + scale[k] * np.arange(array.shape[k], dtype=np.float64)
            if axis.unit:
                units[name] = str(axis.unit)
    sizes = dict(zip(names, array.shape, strict=True))
    data, axes = _canonical(_read(ngff, array, lazy), names)
    labels = read_labels(ngff, sizes, level, lazy)
    channels, problem = _channels(ngff, sizes["channel"]) if "channel" in sizes else ([], None)
    attrs = {"ngff": ngff.attrs, "url": ngff.where, "level": level, "version": ngff.version, "name": multiscale.name}
    return ArrayImage(data=data, axes=axes, coords=coords, units=units, channels=channels, labels=labels,
                      attrs={**attrs, "warnings": [problem]} if problem else attrs)


def read_labels(ngff: Ngff, sizes: dict[str, int], level: int, lazy: bool) -> dict[str, Any]:
    """Every label image of the image's ``labels/`` group, on the image's grid at ``level``."""
    group = ngff.child("labels", missing_ok=True)
    if group is None:
        return {}
    m = models(ngff.version)
    listed = validate(group, m.labels.LabelsAttrs, "labels").labels
    out = {}
    for name in listed:
        label = group.child(name)
        multiscale = validate(label, m.image_label.ImageLabelAttrs, "label image").multiscales[0]
        names = _axes(label, multiscale)
        arrays = check_arrays(label, multiscale)
        wanted = [a for a in names if a != "channel"]
        fits = [k for k, a in enumerate(arrays) if all(sizes.get(ax) == n for ax, n in
                                                       zip(names, a.shape, strict=True) if ax != "channel")]
        if not fits or any(ax not in sizes for ax in wanted):
            shape = dict(zip(names, arrays[0].shape, strict=True))
            raise InvalidInputError(f"{label.where}: label image {name!r} {shape} has no level on the image's "
                                    f"grid {sizes}")
        array = arrays[level if level in fits else fits[0]]
        if not np.issubdtype(array.dtype, np.integer):
            raise InvalidInputError(f"{label.where}: label image {name!r} has dtype {array.dtype}, not an integer")
        data = _read(label, array, lazy)
        if "channel" in names:
            k = names.index("channel")
            if array.shape[k] != 1:
                raise InvalidInputError(f"{label.where}: label image {name!r} has {array.shape[k]} channels")
            data = data[tuple(0 if j == k else slice(None) for j in range(len(names)))]
        out[name], _ = _canonical(data, wanted)
    return out


@dataclass
class PlateLayout:
    """An HCS plate's grid: row and column names, and each well's field image paths."""

    name: str | None
    rows: list[str]
    columns: list[str]
    field_count: int
    wells: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    """``(row, column, well path, [field image paths])`` of every well with metadata."""
    attrs: dict[str, Any] = field(default_factory=dict)


def read_plate(ngff: Ngff) -> PlateLayout:
    """The well grid of an OME-Zarr plate: its metadata and every well's (reads each well's metadata)."""
    m = models(ngff.version)
    plate = validate(ngff, m.hcs.HCSAttrs, "plate").plate
    rows: Sequence[str] = [r.name for r in plate.rows]
    columns: Sequence[str] = [c.name for c in plate.columns]
    layout = PlateLayout(plate.name, list(rows), list(columns), 0, attrs=ngff.attrs)
    for well in plate.wells:
        if not (0 <= well.rowIndex < len(rows) and 0 <= well.columnIndex < len(columns)):
            raise InvalidInputError(f"{ngff.where}: well {well.path!r} is outside the plate's rows and columns")
        meta = validate(ngff.child(well.path), m.well.WellAttrs, "well").well
        layout.wells.append((rows[well.rowIndex], columns[well.columnIndex], well.path,
                             [image.path for image in meta.images]))
    most = max((len(paths) for *_, paths in layout.wells), default=0)
    layout.field_count = max(int(plate.field_count or 0), most)
    return layout
