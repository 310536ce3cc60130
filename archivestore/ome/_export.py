"""Store → OME-Zarr 0.5: every chosen image and volume as ``<out>/<escaped id>.zarr``, written in parallel."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from archivestore.errors import NotFoundError
from archivestore.layout import escape_name
from archivestore.ome._specs import ImageSpec, image_spec, volume_specs
from archivestore.ome._write import open_output, validate_ome_zarr, write_image
from archivestore.store import Store

__all__ = ["export_ome_zarr", "output_url"]


def output_url(out: str | os.PathLike[str], item_id: str) -> str:
    """Where :func:`export_ome_zarr` writes an image or volume: ``<out>/<escaped id>.zarr``."""
    return f"{os.fspath(out).rstrip('/')}/{escape_name(item_id)}.zarr"


def _volume_ids(frame: pd.DataFrame) -> list[str]:
    if "store.kind" not in frame:
        return []
    return [str(uid) for uid, kind in frame["store.kind"].astype(object).items() if kind == "volume"]


def _chosen(store: Store, images: Sequence[str] | None, series: Sequence[str] | None,
            frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The image ids and volume ids to export (everything when neither is given); unknown ids raise."""
    if images is None and series is None:
        return store.image_ids(), _volume_ids(frame)
    missing = [i for i in images or [] if not store.is_complete(i)]
    if missing:
        raise NotFoundError(f"no complete image {', '.join(map(repr, missing))} in {store.url}")
    volumes = _volume_ids(frame)
    chosen = []
    for uid in series or []:
        parts = [v for v in volumes if v == uid or v.startswith(f"{uid}_part")]
        if not parts:
            raise NotFoundError(f"no volume {uid!r} in {store.url}")
        chosen.extend(parts)
    return list(images or []), chosen


def _specs(store: Store, image_ids: list[str], volume_ids: list[str], frame: pd.DataFrame,
           batch: int) -> Iterator[list[ImageSpec]]:
    for start in range(0, len(image_ids), batch):
        yield [image_spec(store, i) for i in image_ids[start:start + batch]]
    for start in range(0, len(volume_ids), batch):
        yield volume_specs(store, volume_ids[start:start + batch], frame)


def export_ome_zarr(store: Store, out: str | os.PathLike[str], *, images: Sequence[str] | None = None,
                    series: Sequence[str] | None = None, storage_options: Mapping[str, Any] | None = None,
                    levels: int | None = None, batch: int = 16) -> list[str]:
    """Write store images and volumes as OME-Zarr 0.5 images with multiscale pyramids and label images.

    ISIC images become (c, y, x) with red/green/blue channels and their ``mask``, ``superpixels``
    and ``attribute_<feature>`` masks as label images; microscopy images keep their axes, physical
    scale, channels and label images; CT/MR volumes become (z, y, x) in millimetre with each DICOM
    SEG as a label image of segment numbers (one per segment if its segments overlap). See
    :mod:`archivestore.ome` for the details. Pixel values are written unchanged.

    Parameters
    ----------
    store
        An open store.
    out
        A directory or fsspec URL; each item goes to ``<out>/<escaped id>.zarr`` (replaced if there).
    images, series
        Image ids and volume SeriesInstanceUIDs to export (a split series' parts all go); when
        neither is given, every complete image and volume.
    storage_options
        fsspec options for ``out``.
    levels
        Resolution levels per image; by default y and x are halved until both are at most 256.
    batch
        Images (or volumes) whose pyramids are computed together in one parallel ``dask.compute``
        (on dask's current scheduler: threads, or a ``dask.distributed`` client).

    Returns
    -------
    list of str
        The written OME-Zarr URLs, in order; each was validated with ome-zarr-models.

    Raises
    ------
    NotFoundError
        An image id or series uid the store does not have.
    """
    import dask

    # the series table, read once (volumes and which SEGs segment them); a store without series has none
    wanted = series is not None or images is None
    frame = store.metadata_frame("series") if wanted and store.series_ids() else pd.DataFrame()
    image_ids, volume_ids = _chosen(store, images, series, frame)
    written = []
    for specs in _specs(store, image_ids, volume_ids, frame, max(batch, 1)):
        tasks, urls = [], []
        for spec in specs:
            url = output_url(out, spec.id)
            tasks.extend(write_image(spec, open_output(url, storage_options), levels=levels))
            urls.append(url)
        dask.compute(*tasks)
        for url in urls:
            validate_ome_zarr(url, storage_options)
        written.extend(urls)
    return written
