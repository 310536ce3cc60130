"""OME-Zarr fixtures written by ome-zarr-py itself: NGFF 0.4 (Zarr v2) and 0.5 (Zarr v3) images and HCS plates.

>>> fixtures = write_ome_fixtures(tmp_path)                                   # doctest: +SKIP
>>> fixtures["v05"].url, fixtures["v05"].data.shape, sorted(fixtures["v05"].labels)   # doctest: +SKIP
('.../image-v05.zarr', (2, 2, 5, 64, 48), ['cells', 'nuclei'])

Every image is written with :func:`ome_zarr.writer.write_image` (and its label images with
:func:`ome_zarr.writer.write_labels`, plates with ``write_plate_metadata``/``write_well_metadata``),
exactly as ome-zarr-py 0.18 writes them — including its known slip of writing a 0.5 ``labels``
group without ``version`` — to a local directory or any fsspec URL (``s3://bucket/x.zarr`` with
``storage_options``). Each builder returns what it wrote (arrays, scales, units, channels), the
expected values of an import. :func:`break_ome_zarr` spoils a written image in the ways a reader
must report (not OME-Zarr, a missing array, an unknown version, a corrupt chunk).

Needs the ``ome`` extra (ome-zarr, ome-zarr-models).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage

__all__ = [
    "OmeImageFixture",
    "OmePlateFixture",
    "break_ome_zarr",
    "open_group",
    "write_ome_fixtures",
    "write_ome_image",
    "write_ome_plate",
]

VERSIONS = {"0.4": 2, "0.5": 3}
"""The NGFF versions ome-zarr-py writes, with their Zarr format."""

_COLORS = ["0000FF", "00FF00", "FF0000", "FF00FF"]
_NAMES = ["DAPI", "GFP", "mCherry", "Cy5"]
_UNITS = {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}


@dataclass
class OmeImageFixture:
    """One OME-Zarr image as written: full-resolution arrays and the metadata an import should give back."""

    url: str
    version: str
    name: str
    axes: str
    """NGFF axis names in array order, e.g. ``"czyx"``."""
    data: np.ndarray
    scale: dict[str, float]
    units: dict[str, str]
    channels: list[dict[str, Any]]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    label_axes: dict[str, str] = field(default_factory=dict)
    levels: int = 2


@dataclass
class OmePlateFixture:
    """One HCS plate as written: every field image by (row, column, field index)."""

    url: str
    version: str
    name: str
    rows: list[str]
    columns: list[str]
    field_count: int
    fields: dict[tuple[str, str, int], OmeImageFixture]


def open_group(url: str | Path, *, mode: str = "r", zarr_format: int | None = None,
               storage_options: Mapping[str, Any] | None = None) -> zarr.Group:
    """The Zarr group at a path or fsspec URL (``mode="w"`` creates it afresh)."""
    text = str(url)
    if "://" in text and not text.startswith("file://"):
        store: Any = zarr.storage.FsspecStore.from_url(text, storage_options=dict(storage_options or {}),
                                                       read_only=mode == "r")
    else:
        store = zarr.storage.LocalStore(text.removeprefix("file://"), read_only=mode == "r")
    return zarr.open_group(store, mode=mode, zarr_format=zarr_format)  # type: ignore[arg-type]


def _format(version: str) -> Any:
    from ome_zarr.format import FormatV04, FormatV05

    if version not in VERSIONS:
        raise ValueError(f"ome-zarr-py writes NGFF {sorted(VERSIONS)}, not {version!r}")
    return FormatV04() if version == "0.4" else FormatV05()


def _channels(n: int, dtype: np.dtype[Any]) -> list[dict[str, Any]]:
    top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
    return [{"label": _NAMES[k % len(_NAMES)] + ("" if k < len(_NAMES) else f"_{k}"),
             "color": _COLORS[k % len(_COLORS)], "active": True,
             "window": {"min": 0.0, "max": top, "start": float(100 * k), "end": float(4000 + 500 * k)}}
            for k in range(n)]


def _label_array(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    """Blobs of ``count`` label values on a background of zeros (int32)."""
    values = rng.integers(1, count + 1, shape, dtype=np.int32)
    return np.where(rng.random(shape) > 0.7, values, 0).astype(np.int32)


def write_ome_image(url: str | Path, *, version: str = "0.5", axes: str = "czyx",
                    shape: Sequence[int] = (2, 5, 64, 48), dtype: Any = np.uint16,
                    labels: Sequence[str] = ("nuclei",), name: str = "image", seed: int = 0, levels: int = 2,
                    scale: Mapping[str, float] | None = None,
                    storage_options: Mapping[str, Any] | None = None) -> OmeImageFixture:
    """Write one OME-Zarr image (random ``dtype`` values) with ome-zarr-py; return what it wrote.

    Parameters
    ----------
    url
        Where: a local path or an fsspec URL; replaced if it exists.
    version
        ``"0.4"`` (Zarr v2) or ``"0.5"`` (Zarr v3).
    axes, shape, dtype
        NGFF axis names in order (from ``tczyx``), the array shape and type.
    labels
        Names of label images to write beside it (over the image's axes without ``c``).
    name
        The multiscales ``name`` (ome-zarr-py's default is ``"image"``).
    levels
        Resolution levels (the full one and ``levels - 1`` halvings of y and x).
    scale
        Physical pixel size per axis (micrometres; seconds for ``t``); a default otherwise.
    """
    from ome_zarr.writer import write_image, write_labels

    fmt = _format(version)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    top = int(np.iinfo(dtype).max) if dtype.kind in "ui" else 1
    data = (rng.integers(0, top, tuple(shape), endpoint=True).astype(dtype) if dtype.kind in "ui"
            else rng.random(tuple(shape)).astype(dtype))
    pixel = {"t": 2.0, "c": 1.0, "z": 0.5, "y": 0.1625, "x": 0.1625, **dict(scale or {})}
    sizes = dict(zip(axes, data.shape, strict=True))
    channels = _channels(sizes.get("c", 1), dtype) if "c" in axes else []
    units = {a: _UNITS[a] for a in axes if a in _UNITS}
    group = open_group(url, mode="w", zarr_format=VERSIONS[version], storage_options=storage_options)
    factors = tuple(2 ** k for k in range(1, levels))
    write_image(data, group, fmt=fmt, axes=axes, scale={a: pixel[a] for a in axes}, axes_units=units,
                scale_factors=factors, name=name, **({"omero": {"channels": channels}} if channels else {}))
    fixture = OmeImageFixture(str(url), version, name, axes, data, {a: pixel[a] for a in axes}, units,
                              channels, levels=levels)
    label_axes = axes.replace("c", "")
    for k, label in enumerate(labels):
        values = _label_array(rng, tuple(sizes[a] for a in label_axes), count=5 + 10 * k)
        write_labels(values, group, name=label, fmt=fmt, axes=label_axes, scaler=None,
                     scale={a: pixel[a] for a in label_axes}, axes_units={a: units[a] for a in label_axes},
                     scale_factors=factors)
        fixture.labels[label] = values
        fixture.label_axes[label] = label_axes
    return fixture


def write_ome_plate(url: str | Path, *, version: str = "0.5", name: str = "plate1",
                    rows: Sequence[str] = ("A", "B"), columns: Sequence[str] = ("1", "2", "3"),
                    wells: Sequence[tuple[str, str]] | None = None, fields: int = 2,
                    shape: Sequence[int] = (2, 32, 40), seed: int = 100,
                    storage_options: Mapping[str, Any] | None = None) -> OmePlateFixture:
    """Write an HCS plate with ome-zarr-py: ``fields`` (c, y, x) uint16 images in each of ``wells``.

    ``wells`` defaults to every well but the last column of the last row (a plate with an empty well).
    """
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    fmt = _format(version)
    wells = list(wells) if wells is not None else [(r, c) for r in rows for c in columns
                                                   if (r, c) != (rows[-1], columns[-1])]
    group = open_group(url, mode="w", zarr_format=VERSIONS[version], storage_options=storage_options)
    write_plate_metadata(group, list(rows), list(columns), [f"{r}/{c}" for r, c in wells], fmt=fmt,
                         field_count=fields, name=name)
    plate = OmePlateFixture(str(url), version, name, list(rows), list(columns), fields, {})
    for k, (row, column) in enumerate(wells):
        well = group.require_group(row).require_group(column)
        write_well_metadata(well, [{"path": str(f), "acquisition": 0} for f in range(fields)], fmt=fmt)
        for f in range(fields):
            image_url = f"{str(url).rstrip('/')}/{row}/{column}/{f}"
            plate.fields[(row, column, f)] = write_ome_image(
                image_url, version=version, axes="cyx", shape=shape, labels=(), name=f"{name}_{row}{column}_{f}",
                seed=seed + 10 * k + f, levels=2, storage_options=storage_options)
    return plate


def write_ome_fixtures(root: str | Path, *, storage_options: Mapping[str, Any] | None = None,
                       ) -> dict[str, OmeImageFixture | OmePlateFixture]:
    """The standard set under ``root`` (a directory or fsspec URL prefix).

    - ``v04``: NGFF 0.4, (c, z, y, x) uint16, two channels, label image ``nuclei``;
    - ``v05``: NGFF 0.5, (t, c, z, y, x) uint16, three channels, labels ``nuclei`` and ``cells``;
    - ``plain``: NGFF 0.5, (z, y, x) uint16, no labels, ome-zarr-py's default name ``image``;
    - ``plate`` / ``plate_v04``: HCS plates (2 rows x 3 columns, one empty well, 2 fields).
    """
    base = str(root).rstrip("/")
    so = storage_options
    return {
        "v04": write_ome_image(f"{base}/image-v04.zarr", version="0.4", axes="czyx", shape=(2, 5, 64, 48),
                               name="cells-v04", seed=1, storage_options=so),
        "v05": write_ome_image(f"{base}/image-v05.zarr", version="0.5", axes="tczyx", shape=(2, 3, 4, 56, 40),
                               labels=("nuclei", "cells"), name="cells-v05", seed=2, storage_options=so),
        "plain": write_ome_image(f"{base}/plain.zarr", version="0.5", axes="zyx", shape=(3, 40, 30), labels=(),
                                 seed=3, storage_options=so),
        "plate": write_ome_plate(f"{base}/plate.zarr", version="0.5", name="plate1", storage_options=so),
        "plate_v04": write_ome_plate(f"{base}/plate-v04.zarr", version="0.4", name="plate2", seed=300,
                                     storage_options=so),
    }


def break_ome_zarr(url: str | Path, how: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Spoil the OME-Zarr image at ``url`` in place.

    ``how``: ``"not-ome"`` (drop its NGFF attributes: a plain Zarr group with arrays),
    ``"missing-array"`` (remove the array of its last resolution level),
    ``"unknown-version"`` (claim NGFF ``0.7``), ``"corrupt-chunk"`` (garbage in a chunk of level 0).
    """
    import fsspec

    group = open_group(url, mode="r+", storage_options=storage_options)
    v3 = group.metadata.zarr_format == 3
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    ngff: dict[str, Any] = dict(attrs["ome"]) if v3 else attrs
    paths = [d["path"] for d in ngff["multiscales"][0]["datasets"]]
    fs, root = fsspec.core.url_to_fs(str(url), **dict(storage_options or {}))
    if how == "not-ome":
        group.attrs.clear()
        group.attrs.update({"note": "a plain Zarr group"})
    elif how == "missing-array":
        fs.rm(f"{root}/{paths[-1]}", recursive=True)
    elif how == "unknown-version":
        if v3:
            group.attrs["ome"] = {**ngff, "version": "0.7"}
        else:
            multiscales = json.loads(json.dumps(ngff["multiscales"]))
            multiscales[0]["version"] = "0.7"
            group.attrs["multiscales"] = multiscales
    elif how == "corrupt-chunk":
        metadata = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}
        chunks = sorted(p for p in fs.find(f"{root}/{paths[0]}") if p.rsplit("/", 1)[-1] not in metadata)
        fs.pipe_file(chunks[0], b"this is not a compressed chunk")
    else:
        raise ValueError(f"unknown way to break an OME-Zarr: {how!r}")
