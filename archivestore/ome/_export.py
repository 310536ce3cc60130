"""Store → OME-Zarr 0.5: every chosen image and volume as ``<out>/<escaped id>.zarr``, written in parallel."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from archivestore.errors import NotFoundError
from archivestore.layout import escape_name
from archivestore.ome._slides import export_slide
from archivestore.ome._specs import ImageSpec, image_spec, volume_specs
from archivestore.ome._write import DEFAULT_METHOD, open_output, validate_ome_zarr, write_image
from archivestore.store import Store

__all__ = ["SeriesTable", "export_ome_zarr", "output_url", "series_table"]

SeriesTable = dict[str, tuple[str, str]]
"""``{SeriesInstanceUID: (kind, source series)}``: ``volume``/``segmentation``, and what a SEG segments."""


def output_url(out: str | os.PathLike[str], item_id: str) -> str:
    """Where :func:`export_ome_zarr` writes an image or volume: ``<out>/<escaped id>.zarr``."""
    return f"{os.fspath(out).rstrip('/')}/{escape_name(item_id)}.zarr"


def series_table(store: Store) -> SeriesTable:
    """``{uid: (kind, source series)}`` from two columns of the ``series_metadata`` table (read in one go)."""
    if not store.series_ids():
        return {}
    columns = store.metadata("series")
    names = [n for n in ("store.kind", "store.source_series") if n in columns]
    table = columns[names].load()
    uids = [str(u) for u in table["series"].values]
    kinds = [str(k) for k in table["store.kind"].values] if "store.kind" in table else [""] * len(uids)
    sources = [str(k) for k in table["store.source_series"].values] if "store.source_series" in table else \
        [""] * len(uids)
    return dict(zip(uids, zip(kinds, sources, strict=True), strict=True))


def _chosen(store: Store, images: Sequence[str] | None, series: Sequence[str] | None,
            table: SeriesTable) -> tuple[list[str], list[str]]:
    """The image ids and volume ids to export (everything when neither is given); unknown ids raise."""
    volumes = [uid for uid, (kind, _) in table.items() if kind == "volume"]
    if images is None and series is None:
        return store.image_ids(), volumes
    missing = [i for i in images or [] if not store.is_complete(i)]
    if missing:
        raise NotFoundError(f"no complete image {', '.join(map(repr, missing))} in {store.url}")
    chosen = []
    for uid in series or []:
        parts = [v for v in volumes if v == uid or v.startswith(f"{uid}_part")]
        if not parts:
            raise NotFoundError(f"no volume {uid!r} in {store.url}")
        chosen.extend(parts)
    return list(images or []), chosen


def _specs(store: Store, image_ids: list[str], volume_ids: list[str], table: SeriesTable,
           batch: int) -> Iterator[list[ImageSpec]]:
    for start in range(0, len(image_ids), batch):
        yield [image_spec(store, i) for i in image_ids[start:start + batch]]
    segs = [(uid, source) for uid, (kind, source) in table.items() if kind == "segmentation"]
    for start in range(0, len(volume_ids), batch):
        yield volume_specs(store, volume_ids[start:start + batch], segs)


def export_ome_zarr(store: Store, out: str | os.PathLike[str], *, images: Sequence[str] | None = None,
                    series: Sequence[str] | None = None, slides: Sequence[str] | None = None,
                    storage_options: Mapping[str, Any] | None = None,
                    levels: int | None = None, method: str = DEFAULT_METHOD, batch: int = 8) -> list[str]:
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
    images, series, slides
        Image ids, volume SeriesInstanceUIDs (a split series' parts all go) and slide (SM)
        SeriesInstanceUIDs to export; when none is given, every complete image, volume and slide.
        A slide's own DICOM pyramid is its multiscale (:mod:`archivestore.ome._slides`).
    storage_options
        fsspec options for ``out``.
    levels
        Resolution levels per image; by default y and x are halved until both are at most 256.
    method
        How the intensities are downsampled, one of ome-zarr-py's methods: ``local_mean`` (the mean
        of each 2x2 block; default), ``resize`` (ome-zarr-py's own default: Gaussian, then bilinear),
        ``nearest``, ``zoom``. Labels are always downsampled by ``nearest``.
    batch
        Images (or volumes) whose pyramids are computed together in one parallel ``dask.compute``
        (on dask's current scheduler: threads, or a ``dask.distributed`` client). While a batch is
        computed, the next one's metadata and task graphs are made and the one before is validated.

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

    every_slide = images is None and series is None and slides is None
    if slides is not None and images is None and series is None:
        images, series = [], []
    # which series are volumes, and which SEGs segment them: two columns of the series table, read once
    table = series_table(store) if series is not None or images is None else {}
    image_ids, volume_ids = _chosen(store, images, series, table)
    written: list[str] = []
    running: tuple[Future[Any], list[str]] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="ome-export") as computing:
        for specs in _specs(store, image_ids, volume_ids, table, max(batch, 1)):
            tasks, urls = [], []
            for spec in specs:  # metadata and task graphs, while the batch before is computed
                url = output_url(out, spec.id)
                tasks.extend(write_image(spec, open_output(url, storage_options), levels=levels, method=method))
                urls.append(url)
            if running is not None:
                running[0].result()
            started = computing.submit(dask.compute, *tasks)
            if running is not None:  # the batch before is written: check it while this one computes
                written.extend(_validated(running[1], storage_options))
            running = (started, urls)
        if running is not None:
            running[0].result()
            written.extend(_validated(running[1], storage_options))
    for uid in store.slides() if every_slide else list(slides or []):
        written.extend(export_slide(store, uid, out, storage_options))
    return written


def _validated(urls: list[str], storage_options: Mapping[str, Any] | None) -> list[str]:
    for url in urls:
        validate_ome_zarr(url, storage_options)
    return urls
