"""Writing one OME-Zarr 0.5 image with ome-zarr-py, and checking it with ome-zarr-models.

The image and its label images are described with ome-zarr-py's own classes
(:class:`ome_zarr.OMEZarrMultiscale`, :class:`ome_zarr.OMEZarrLabels`): they build the pyramid
(``local_mean`` for intensities by default, ``nearest`` for labels, y and x halved per level, z
kept) and the
NGFF metadata, and :meth:`~ome_zarr.OMEZarrMultiscale.to_ome_zarr` with ``compute=False`` writes
the metadata and returns the array writes as dask tasks, so many images are written by one
parallel ``dask.compute``. Two things are added through the library's pydantic models, not by
hand: the image's physical origin (added to every level's translation, labels alike) and the
label images' ``image-label`` colours and properties. ome-zarr-py's functional ``write_labels``
is not used: in 0.18 it writes the 0.5 ``labels`` group without ``version``. Every written image
is validated with ``ome_zarr_models.v05.image.Image`` (labels included) before it is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import zarr
import zarr.storage

from archivestore.errors import ArchivestoreError, InvalidInputError
from archivestore.layout import compressors
from archivestore.ome._specs import ImageSpec, LabelSpec

__all__ = [
    "DEFAULT_METHOD", "EXTRA_HINT", "METHODS", "MIN_LEVEL_SIZE", "open_output", "pyramid_factors", "validate_ome_zarr",
    "write_image",
]

EXTRA_HINT = "pip install 'archivestore[ome]'"
METHODS = ("local_mean", "resize", "nearest", "zoom")
"""ome-zarr-py's downsampling methods (:class:`ome_zarr.scale.Methods`)."""
DEFAULT_METHOD = "local_mean"
"""The mean of each 2x2 block (skimage's ``downscale_local_mean``): anti-aliased for halvings, and a
third of the CPU time of ome-zarr-py's default ``resize`` (a Gaussian, then bilinear interpolation)."""
MIN_LEVEL_SIZE = 256
"""Levels are added, halving y and x, until the larger of them is at most this many pixels."""


def open_output(url: str, storage_options: Mapping[str, Any] | None = None, *, mode: str = "w") -> zarr.Group:
    """A Zarr v3 group at a path or fsspec URL (``mode="w"``: created afresh, replacing what was there)."""
    if "://" in url and not url.startswith("file://"):
        store: Any = zarr.storage.FsspecStore.from_url(url, storage_options=dict(storage_options or {}),
                                                       read_only=mode == "r")
    else:
        store = zarr.storage.LocalStore(url.removeprefix("file://"), read_only=mode == "r")
    return zarr.open_group(store, mode=mode, zarr_format=3)  # type: ignore[arg-type]


def pyramid_factors(sizes: Mapping[str, int], levels: int | None = None) -> tuple[int, ...]:
    """ome-zarr-py's ``scale_factors`` (2, 4, ...): ``levels - 1`` of them, or enough for :data:`MIN_LEVEL_SIZE`."""
    if levels is None:
        largest = max(sizes.get("y", 1), sizes.get("x", 1))
        levels = 1 + max(0, math.ceil(math.log2(largest / MIN_LEVEL_SIZE))) if largest > MIN_LEVEL_SIZE else 1
    return tuple(2 ** k for k in range(1, max(levels, 1)))


def _shifted(metadata: Any, origin: Mapping[str, float]) -> Any:
    """A multiscales model with ``origin`` (by axis name) added to every level's translation."""
    from ome_zarr_models.common.coordinate_transformations import VectorTranslation

    names = [str(a.name) for a in metadata.axes]
    shift = [float(origin.get(n, 0.0)) for n in names]
    if not any(shift):
        return metadata
    datasets = []
    for dataset in metadata.datasets:
        scale, *rest = dataset.coordinateTransformations
        offset = list(rest[0].translation) if rest else [0.0] * len(names)
        moved = VectorTranslation(type="translation", translation=[a + b for a, b in zip(offset, shift, strict=True)])
        datasets.append(dataset.model_copy(update={"coordinateTransformations": (scale, moved)}))
    return metadata.model_copy(update={"datasets": tuple(datasets)})


def _labels(spec: ImageSpec, factors: tuple[int, ...]) -> dict[str, Any]:
    from ome_zarr import OMEZarrImage, OMEZarrLabels
    from ome_zarr.scale import Methods

    out = {}
    for label in spec.labels:
        image = OMEZarrImage(data=label.data, axes=label.axes, scale={a: spec.scale[a] for a in label.axes},
                             axes_units={a: spec.units[a] for a in label.axes if a in spec.units} or None,
                             name=label.name)
        labels = OMEZarrLabels(image, scale_factors=factors, method=Methods.NEAREST, auto_parse_labels=False)
        labels.image_label = _image_label(label)
        labels.metadata = _shifted(labels.metadata, spec.translation)
        out[label.name] = labels
    return out


def _image_label(label: LabelSpec) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": {"image": "../../"}}
    if label.colors:
        meta["colors"] = label.colors
    if label.properties:
        meta["properties"] = label.properties
    return meta


def write_image(spec: ImageSpec, group: zarr.Group, *, levels: int | None = None,
                method: str = DEFAULT_METHOD) -> list[Any]:
    """Write ``spec``'s metadata into ``group`` now; return the dask tasks that write its arrays.

    ``group`` should be empty (:func:`open_output` with ``mode="w"``); ``method`` is one of
    ome-zarr-py's downsampling methods for the intensities (:data:`METHODS`; labels: ``nearest``).
    """
    try:
        from ome_zarr import OMEZarrImage, OMEZarrMultiscale
        from ome_zarr.scale import Methods
    except ImportError as exc:
        raise ModuleNotFoundError(f"OME-Zarr export needs ome-zarr: {EXTRA_HINT}", name="ome_zarr") from exc

    if method not in METHODS:
        raise InvalidInputError(f"downsampling method {method!r} is not one of {', '.join(METHODS)}")
    factors = pyramid_factors(dict(zip(spec.axes, spec.data.shape, strict=True)), levels)
    image = OMEZarrImage(data=spec.data, axes=spec.axes, scale=spec.scale, axes_units=spec.units or None,
                         name=spec.id)
    labels = _labels(spec, factors)
    multiscale = OMEZarrMultiscale(image, scale_factors=factors, method=Methods(method), labels=labels or None)
    multiscale.omero = spec.omero
    multiscale.metadata = _shifted(multiscale.metadata, spec.translation)
    tasks = multiscale.to_ome_zarr(group, storage_options={"compressors": compressors()}, version="0.5",
                                   compute=False, overwrite=True)
    group.attrs["archivestore"] = spec.record
    return list(tasks)


def validate_ome_zarr(url: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The ``ome_zarr_models.v05.image.Image`` of the OME-Zarr 0.5 image at ``url`` (labels checked too).

    Raises
    ------
    ArchivestoreError
        The image does not validate; the message names it and the first problems.
    """
    from ome_zarr_models.v05.image import Image
    from pydantic import ValidationError

    group = open_output(url, storage_options, mode="r")
    try:
        return Image.from_zarr(group)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:4])
        raise ArchivestoreError(f"{url}: the written OME-Zarr does not validate: {problems}") from None
    except (ValueError, RuntimeError) as exc:
        raise ArchivestoreError(f"{url}: the written OME-Zarr does not validate: {exc}") from None
