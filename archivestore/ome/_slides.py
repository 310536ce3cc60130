"""A stored slide as OME-Zarr 0.5: its own DICOM pyramid as the multiscale, associated images beside.

``<out>/<escaped uid>.zarr`` is one multiscale image (c, y, x) whose resolution levels are the
slide's stored levels (the scanner's pyramid: nothing is recomputed), each level's scale its pixel
spacing in micrometres, channels R, G, B (or the optical paths) with OMERO rendering; its label,
overview and thumbnail go to ``<out>/<escaped uid>_<kind>.zarr`` (one level each). Tiles are
decoded and written with the store's lossless Zstd, so any OME-Zarr reader (napari, Fiji/MoBIE,
ome-zarr-py) opens them without archivestore's codecs; the metadata is ome-zarr-py's and every
image is validated with ome-zarr-models.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from archivestore.layout import compressors, escape_name
from archivestore.ome._write import open_output, validate_ome_zarr
from archivestore.store import Store

__all__ = ["export_slide"]

_COLOURS = {"R": "FF0000", "G": "00FF00", "B": "0000FF"}


def _url(out: str | os.PathLike[str], name: str) -> str:
    return f"{os.fspath(out).rstrip('/')}/{escape_name(name)}.zarr"


def _write(levels: list[Any], url: str, name: str, record: dict[str, Any],
           storage_options: Mapping[str, Any] | None) -> list[Any]:
    """Write the metadata of one multiscale image (levels: ``(y, x, channel)`` DataArrays); return its tasks."""
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscale

    channels = [str(c) for c in levels[0]["channel"].values]
    pyramid = [level.data.transpose(2, 0, 1) for level in levels]
    units = "micrometer" if levels[0]["y"].attrs.get("units") == "micrometer" else None
    axes = [{"name": "c", "type": "channel"},
            {"name": "y", "type": "space", **({"unit": units} if units else {})},
            {"name": "x", "type": "space", **({"unit": units} if units else {})}]
    transforms = []
    for level in levels:
        spacing = level.attrs.get("spacing_um") or [1.0, 1.0]
        transforms.append([{"type": "scale", "scale": [1.0, float(spacing[0]), float(spacing[1])]}])
    storage = [{"chunks": (1, *level.encoding["chunks"][:2]), "compressors": compressors()} for level in levels]
    omero = {"channels": [{"label": c, "color": _COLOURS.get(c, "FFFFFF"), "active": True,
                           "window": {"min": 0, "max": 255, "start": 0, "end": 255}} for c in channels],
             "rdefs": {"model": "color" if len(channels) == 3 else "greyscale"}}
    group = open_output(url, storage_options)
    with warnings.catch_warnings():
        # ome-zarr 0.18 would rather derive each level's scale from one scale and its own factors; a DICOM
        # pyramid's factors are the scanner's (2, 4, ... or uneven), so each level's scale is given as is
        warnings.filterwarnings("ignore", "The 'coordinate_transformations' argument", DeprecationWarning)
        tasks = write_multiscale(pyramid, group, fmt=FormatV05(), axes=axes, coordinate_transformations=transforms,
                                 storage_options=storage, name=name, compute=False)
    attrs: dict[str, Any] = dict(group.attrs)
    attrs["ome"] = {**dict(attrs.get("ome") or {}), "omero": omero}
    attrs["archivestore"] = record
    group.attrs.put(attrs)
    return list(tasks)


def export_slide(store: Store, uid: str, out: str | os.PathLike[str],
                 storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Write slide ``uid`` as OME-Zarr 0.5 (see the module docstring); return the validated URLs."""
    import dask

    attrs = store.slide_attrs(uid)
    record = {k: attrs.get(k) for k in ("series_instance_uid", "container_id", "objective_power", "specimens",
                                        "record", "pyramid")}
    jobs = [(_url(out, uid), uid, [store.slide(uid, p["name"]) for p in attrs["pyramid"]])]
    for image in attrs.get("associated", []):
        name = f"{uid}_{image['name']}"
        jobs.append((_url(out, name), name, [store.slide(uid, image["name"])]))
    tasks = [t for url, name, levels in jobs for t in _write(levels, url, name, record, storage_options)]
    dask.compute(*tasks)
    for url, _, _ in jobs:
        validate_ome_zarr(url, storage_options)
    return [url for url, _, _ in jobs]
