"""The store: open or create a Zarr v3 hierarchy at a path or fsspec URL, and read it.

Reading never lists the ``images`` group: one image is found by its path, and the
list of images is the ``image`` coordinate of the ``metadata`` table, so opening one
image costs the same in a 10-image store as in a 400,000-image one. Every method
takes names as the archive gives them; :attr:`Store.layout` turns them into paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
import zarr.storage
from zarr.abc.store import Store as StoreLike
from zarr.core.sync import sync

from archivestore.errors import InvalidInputError, NotFoundError, StoreNotFoundError
from archivestore.layout import GROUND_TRUTH, LAYOUT_VERSION, STATE_KEY, Layout
from archivestore.store import _metadata
from archivestore.store._groups import read_if_complete
from archivestore.store._owned import check_readable, claim_root
from archivestore.store._reach import check_endpoint
from archivestore.store._slides import StoreSlides
from archivestore.store._studies import StudyArrays, read_study
from archivestore.store._writing import StoreWriting

if TYPE_CHECKING:  # xarray and pandas load with the first Dataset or DataFrame (not for numpy reads)
    import pandas as pd
    import xarray as xr

__all__ = ["Chunks", "Store", "open_store"]

Chunks = int | Literal["auto", "default"] | dict[str, Any] | None
"""What :func:`xarray.open_zarr` takes as ``chunks``; ``"default"`` is its default (dask, chunked as stored)."""


BUCKET_DEFAULTS = {"s3": {"max_concurrency": 1,
                          "config_kwargs": {"retries": {"mode": "adaptive", "max_attempts": 10}}}}
"""fsspec options a store on a bucket gets unless it is opened with others. s3fs splits the
download of an object into concurrent ranges by default, asking its size first: a HEAD before
every GET (and a HEAD plus a listing for a missing key). Store objects are chunks of a few MB
that zarr already reads concurrently, so one GET each is cheaper. botocore's adaptive retries
slow each process down when the bucket answers ``503 SlowDown`` (many workers writing to one
prefix): with s3fs's default retries alone, up to 15 % of the images failed at 5x a prefix's rate
(``benchmarks/scale.md``)."""


def _zarr_store(url: str, mode: str, storage_options: Mapping[str, Any] | None) -> StoreLike:
    read_only = mode == "r"
    if "://" in url and not url.startswith("file://"):
        options = {**BUCKET_DEFAULTS.get(url.split("://")[0], {}), **(storage_options or {})}
        check_endpoint(url, options)
        return zarr.storage.FsspecStore.from_url(url, storage_options=options, read_only=read_only)
    path = url[len("file://"):] if url.startswith("file://") else url
    return zarr.storage.LocalStore(path, read_only=read_only)


def open_store(
    url: str | os.PathLike[str],
    mode: str = "r",
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open (``mode="r"``) or open-or-create (``mode="a"``) a store.

    Parameters
    ----------
    url
        A local path or any fsspec URL (``s3://bucket/isic.zarr``, ``memory://x``).
    mode
        ``"r"`` read only; ``"a"`` read and write, creating the store where nothing is (or in an
        empty directory).
    storage_options
        Passed to fsspec (e.g. ``{"anon": True}`` or an ``endpoint_url``).

    Raises
    ------
    StoreNotFoundError
        ``mode="r"`` and there is no store at ``url`` (also a ``FileNotFoundError``).
    NotAStoreError
        Something that is not an archivestore store is at ``url`` (a Zarr v2 or v3 hierarchy
        without the ``archivestore`` root attribute, an OME-Zarr image, a non-empty directory,
        a file); with ``mode="a"`` nothing is written to it (also a ``ValueError``).
    """
    if mode not in ("r", "a"):
        raise InvalidInputError(f"mode must be 'r' or 'a', not {mode!r}")
    url = os.fspath(url)
    zstore = _zarr_store(url, mode, storage_options)
    if mode == "r":
        try:
            found = check_readable(zstore, url)
        except FileNotFoundError:
            found = False
        if not found:
            raise StoreNotFoundError(f"no archivestore store at {url}")
        root = zarr.open_group(zstore, mode="r", zarr_format=3)
    else:
        claim_root(zstore, url)  # creates it where nothing is; refuses what is not ours, writing nothing
        root = zarr.open_group(zstore, mode="r+", zarr_format=3)
    marker = root.attrs.get("archivestore")
    version = int(str(marker.get("layout", 1))) if isinstance(marker, dict) else 1
    if version > LAYOUT_VERSION:
        raise InvalidInputError(f"{url} has store layout {version}; this archivestore reads up to {LAYOUT_VERSION}")
    if isinstance(marker, dict) and "upgrading" in marker:
        raise InvalidInputError(f"the upgrade of {url} to layout {marker['upgrading']} did not finish; "
                                f"run 'archivestore upgrade {url}' again")
    store = Store(url, zstore, root, mode=mode, storage_options=storage_options, layout=Layout(version))
    if mode == "a":
        for name in store.layout.top_groups:
            store.ensure_group(name)
    return store


def _reopen(url: str, mode: str, storage_options: dict[str, Any]) -> Store:
    key = (url, mode, repr(sorted(storage_options.items())))
    if key not in _OPENED:
        _OPENED[key] = open_store(url, mode, storage_options)
    return _OPENED[key]


_OPENED: dict[tuple[str, str, str], Store] = {}


class Store(StoreWriting, StoreSlides):
    """A store opened with :func:`open_store`; reading methods return lazy xarray objects.

    Attributes
    ----------
    url
        Where the store is (path or fsspec URL).
    layout
        The :class:`~archivestore.layout.Layout` it was written with: group paths of names.
    """

    def __init__(self, url: str, zstore: Any, root: zarr.Group, *, mode: str = "r",
                 storage_options: Mapping[str, Any] | None = None, layout: Layout | None = None) -> None:
        self.url = url
        self.zstore = zstore
        self.root = root
        self.mode = mode
        self.storage_options = dict(storage_options or {})
        self.layout = layout or Layout()

    def __reduce__(self) -> tuple[Any, tuple[str, str, dict[str, Any]]]:
        # a Store travels to dask workers as what it takes to open it again there
        return _reopen, (self.url, self.mode, self.storage_options)

    def __repr__(self) -> str:
        return f"<archivestore.Store {self.url!r}>"

    # -- opening groups ---------------------------------------------------------------
    def open_dataset(self, path: str, chunks: Chunks = "default") -> xr.Dataset:
        """The group at ``path`` as a lazy Dataset, as plain xarray opens it.

        ``chunks`` means what it means to :func:`xarray.open_zarr`: by default dask arrays chunked
        as stored; ``None`` gives lazily indexed arrays read straight from zarr on access (no dask:
        for ``.values`` of a whole variable or a small selection, and a second or more less of
        imports in a fresh process).
        """
        import xarray as xr

        if chunks == "default":
            return xr.open_zarr(self.zstore, group=path, consolidated=False)
        return xr.open_zarr(self.zstore, group=path, consolidated=False, chunks=chunks)

    def image_state(self, image_id: str) -> dict[str, Any] | None:
        """The ``_archivestore`` attribute of ``images/<id>``, or None if there is no such group."""
        return self.group_state(self.layout.image(image_id))

    def masks_state(self, image_id: str, rater: str) -> dict[str, Any] | None:
        """The ``_archivestore`` attribute of a rater's mask group of an image (None if absent)."""
        return self.group_state(self.layout.masks(image_id, rater))

    def image_record(self, image_id: str) -> dict[str, Any]:
        """The original metadata record kept as the attributes of ``images/<id>``."""
        return self.record_of(self.layout.image(image_id))

    def record_of(self, path: str) -> dict[str, Any]:
        """The archive's record of the item group at ``path``.

        An image group's attributes are its record; a volume or segmentation group
        keeps it in its ``record`` attribute beside the geometry.
        """
        attrs = dict(self.root[path].attrs)
        if path.startswith((f"{self.layout.SERIES}/", f"{self.layout.SEGMENTATIONS}/")):
            record = attrs.get("record")
            return dict(record) if isinstance(record, dict) else {}
        attrs.pop(STATE_KEY, None)
        return attrs

    def is_complete(self, image_id: str) -> bool:
        """Whether ``images/<id>`` was written to the end."""
        return bool((self.image_state(image_id) or {}).get("complete"))

    def image(self, image_id: str, chunks: Chunks = "default") -> xr.Dataset:
        """The image group ``images/<id>`` as a lazy Dataset; ``KeyError`` if absent or incomplete.

        ``chunks``: as :meth:`open_dataset` (default dask; ``None``: no dask, read on access).
        """
        if not self.is_complete(image_id):
            raise NotFoundError(f"no complete image {image_id!r} in {self.url}")
        return self.open_dataset(self.layout.image(image_id), chunks)

    def read(self, image_id: str, variable: str = "image", rater: str = GROUND_TRUTH) -> np.ndarray:
        """One array of an image as numpy, straight from zarr (no xarray, no dask graph).

        The fast path for a training loop or a kernel: one read of the group's document
        (its state, and the array's metadata inline) and the chunks. ``variable`` is
        ``image``, ``superpixels``, ``mask`` or ``attribute``; ``rater`` picks another
        rater's ``mask``/``attribute``.
        """
        path = self.layout.masks(image_id, rater if variable in ("mask", "attribute") else GROUND_TRUTH)
        return self._read_complete(path, variable, repr(path))

    def read_array(self, group: str, name: str) -> np.ndarray:
        """The array ``name`` of the group at path ``group`` as numpy (no completeness check)."""
        try:
            return np.asarray(zarr.open_array(self.zstore, path=f"{group}/{name}", mode="r", zarr_format=3)[...])
        except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError):
            raise NotFoundError(f"{group} has no {name!r}") from None

    def masks(self, image_id: str, rater: str = GROUND_TRUTH) -> xr.Dataset:
        """The masks (``mask``, ``attribute``) of one rater for one image."""
        if rater == GROUND_TRUTH:
            ds = self.image(image_id)
            return ds[[v for v in ("mask", "attribute") if v in ds]]
        if not (self.masks_state(image_id, rater) or {}).get("complete"):
            raise NotFoundError(f"no masks of rater {rater!r} for image {image_id!r} in {self.url}")
        return self.open_dataset(self.layout.masks(image_id, rater))

    def mask(self, image_id: str, rater: str = GROUND_TRUTH) -> xr.DataArray:
        """The lesion mask (y, x) 0/1 of one rater for one image."""
        ds = self.masks(image_id, rater)
        if "mask" not in ds:
            raise NotFoundError(f"image {image_id!r} has no lesion mask of rater {rater!r}")
        return ds["mask"]

    def _names(self, path: str) -> list[str]:
        """The archive names of the groups under ``path`` (lists that group)."""
        try:
            group = self.root[path]
        except KeyError:
            return []
        return sorted(self.layout.name(node) for node, _ in group.groups())  # type: ignore[union-attr]

    def mask_raters(self) -> list[str]:
        """Raters other than ground_truth that have masks."""
        return self._names(self.layout.MASKS)

    def mask_image_ids(self, rater: str) -> list[str]:
        """Complete images (table order) for which ``rater`` may have masks."""
        complete = self.image_ids()
        if rater == GROUND_TRUTH:
            return complete
        if rater not in self.mask_raters():
            raise NotFoundError(f"no masks of rater {rater!r} in the store")
        have = set(self._names(self.layout.rater(rater)))
        return [i for i in complete if i in have]

    # -- metadata tables ---------------------------------------------------------------
    def _table_path(self, table: str) -> str:
        paths = {"images": self.layout.METADATA, "series": self.layout.SERIES_METADATA}
        if table not in paths:
            raise InvalidInputError(f"table is 'images' or 'series', not {table!r}")
        return paths[table]

    def _table_group(self, table: str = "images") -> zarr.Group | None:
        try:
            group = self.root[self._table_path(table)]
        except KeyError:
            return None
        return group if isinstance(group, zarr.Group) else None

    def metadata(self, table: str = "images") -> xr.Dataset:
        """A metadata table: one row per complete image (``images``) or series (``series``)."""
        return self._metadata(table, lazy=True)

    def _metadata(self, table: str, *, lazy: bool) -> xr.Dataset:
        """The table as a Dataset (``lazy``: dask arrays; else read on access)."""
        group = self._table_group(table)
        row = "image" if table == "images" else "series"
        if group is None or row not in group:
            import xarray as xr

            return xr.Dataset({"field_state": ((row, "field"), np.zeros((0, 0), np.uint8))},
                              coords={row: np.array([], dtype=str), "field": np.array([], dtype=str)})
        return self.open_dataset(self._table_path(table), "default" if lazy else None)

    def _table_for_reading(self, table: str) -> zarr.Group | xr.Dataset:
        """The table's zarr group, read with zarr alone; an empty Dataset while it has no rows."""
        group = self._table_group(table)
        row = "image" if table == "images" else "series"
        return group if group is not None and row in group else self._metadata(table, lazy=False)

    def image_ids(self) -> list[str]:
        """Ids of the complete images, in ingest order."""
        group = self._table_group()
        return [] if group is None else _metadata.table_ids(group)

    def series_ids(self) -> list[str]:
        """Ids of the complete volumes and segmentations (``series_metadata`` rows), in ingest order."""
        group = self._table_group("series")
        return [] if group is None else _metadata.table_ids(group)

    def __len__(self) -> int:
        return len(self.image_ids())

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.is_complete(image_id)

    def metadata_frame(self, table: str = "images") -> pd.DataFrame:
        """A table as a pandas DataFrame (index image or series id, columns dotted key paths)."""
        from archivestore.store._metadata_read import read_frame

        return read_frame(self._table_for_reading(table))  # zarr alone: no xarray, no dask

    def metadata_records(self, table: str = "images") -> dict[str, dict[str, Any]]:
        """Every row's leaf values re-nested exactly as in the original records."""
        from archivestore.store._metadata_read import read_records

        return read_records(self._table_for_reading(table))

    # -- plates -------------------------------------------------------------------------
    def plates(self) -> list[str]:
        """Names of the screening plates in the store (lists the ``plates`` group)."""
        return self._names(self.layout.PLATES)

    def plate(self, plate_id: str) -> xr.Dataset:
        """``plates/<id>``: ``image_id`` (row, column, field), ``""`` where a well has no image."""
        return self._complete(self.layout.plate(plate_id), f"plate {plate_id!r}")

    # -- radiology ----------------------------------------------------------------------
    def _complete(self, path: str, what: str, chunks: Chunks = "default") -> xr.Dataset:
        if not (self.group_state(path) or {}).get("complete"):
            raise NotFoundError(f"no complete {what} in {self.url}")
        return self.open_dataset(path, chunks)

    def volume(self, series_id: str, chunks: Chunks = "default") -> xr.Dataset:
        """``series/<id>`` as a lazy Dataset: ``volume`` (z, y, x) with coordinates in mm.

        ``chunks``: as :meth:`open_dataset` (default dask; ``None``: no dask, read on access).
        """
        return self._complete(self.layout.series(series_id), f"volume {series_id!r}", chunks)

    def segmentation(self, series_uid: str, chunks: Chunks = "default") -> xr.Dataset:
        """``segmentations/<uid>`` as a lazy Dataset: ``labels`` (segment, z, y, x).

        ``chunks``: as :meth:`open_dataset` (default dask; ``None``: no dask, read on access).
        """
        return self._complete(self.layout.segmentation(series_uid), f"segmentation {series_uid!r}", chunks)

    def read_volume(self, series_id: str, variable: str = "volume") -> np.ndarray:
        """One array of ``series/<id>`` as numpy, straight from zarr (no xarray, no dask), like :meth:`read`.

        The fast path for the voxels in memory: ``volume`` (z, y, x), or ``z``, ``sop_instance_uid``, ...
        :meth:`volume` gives them with their coordinates and attributes.
        """
        return self._read_complete(self.layout.series(series_id), variable, f"volume {series_id!r}")

    def read_segmentation(self, series_uid: str, variable: str = "labels") -> np.ndarray:
        """One array of ``segmentations/<uid>`` as numpy (``labels``: segment, z, y, x), like :meth:`read_volume`."""
        return self._read_complete(self.layout.segmentation(series_uid), variable, f"segmentation {series_uid!r}")

    def _read_complete(self, path: str, variable: str, what: str) -> np.ndarray:
        complete, data = read_if_complete(self.zstore, path, variable)
        if not complete:
            raise NotFoundError(f"no complete {what} in {self.url}")
        return self.read_array(path, variable) if data is None else data

    def segmentations_of(self, series_uid: str, chunks: Chunks = "default") -> list[xr.Dataset]:
        """The stored segmentations of a series (found through the ``series_metadata`` table)."""
        return self.segmentations_by_series([series_uid], chunks).get(series_uid, [])

    def segmentations_by_series(self, series: list[str] | None = None,
                                chunks: Chunks = "default") -> dict[str, list[xr.Dataset]]:
        """``{source SeriesInstanceUID: [segmentation Datasets]}`` (the series table read once).

        ``series`` limits it to these source series; every series with a segmentation by default.
        ``chunks``: as :meth:`open_dataset`.
        """
        frame = self.metadata_frame("series")
        if "store.source_series" not in frame:
            return {}
        sources = frame["store.source_series"].astype(object)
        wanted = None if series is None else set(series)
        out: dict[str, list[xr.Dataset]] = {}
        for seg_uid, source in sources.items():
            if isinstance(source, str) and (wanted is None or source in wanted):
                out.setdefault(source, []).append(self.segmentation(str(seg_uid), chunks))
        return out

    def findings(self, series: list[str] | None = None) -> pd.DataFrame:
        """Every SR finding (``findings/<uid>`` groups) as one DataFrame; see :mod:`archivestore.store._findings`."""
        from archivestore.store._findings import findings_frame

        return findings_frame(self, series)

    # -- studies ----------------------------------------------------------------------
    def studies(self) -> list[str]:
        """Names of the studies in the store (as the archive gave them)."""
        return self._names(self.layout.STUDIES)

    def study(self, name: str) -> xr.Dataset:
        """``studies/<name>`` as a lazy Dataset (``annotation``, ``superpixel_area``, ...);
        :meth:`read_study` reads it with numpy alone."""
        if name not in self.studies():
            raise self._no_study(name)
        return self.open_dataset(self.layout.study(name))

    def read_study(self, name: str, *, max_bytes: int | None = None) -> StudyArrays | None:
        """``studies/<name>`` straight from zarr (no xarray, no dask graph): numpy, and the
        annotations read a block of images at a time (``StudyRows``).

        The fast path for a study whose results fit in memory (``analysis.overlap_arrays``);
        None when its annotations take more than ``max_bytes`` (then open it lazily with
        :meth:`study`). A reader that meets an append under way gets the rows of the last
        complete one.
        """
        try:
            group = self.root[self.layout.study(name)]
        except KeyError:
            raise self._no_study(name) from None
        return read_study(group, max_bytes)  # type: ignore[arg-type]

    def _no_study(self, name: str) -> NotFoundError:
        names = self.studies()
        return NotFoundError(f"no study {name!r} in {self.url}; studies: {', '.join(map(repr, names)) or 'none'}")

    # -- summary ----------------------------------------------------------------------
    def disk_usage(self) -> dict[str, int]:
        """Bytes stored under each top-level group (``images``, ``metadata``, ...).

        Lists every object of the store: cost grows with its size (``info --sizes``).
        """
        if isinstance(self.zstore, zarr.storage.FsspecStore):
            fs, root = self.zstore.fs, self.zstore.path
            sizes = sync(fs._du(root, total=False)) if fs.async_impl else fs.du(root, total=False)
        else:
            import fsspec

            fs, root = fsspec.filesystem("file"), os.path.abspath(str(self.zstore.root))
            sizes = fs.du(root, total=False)
        out: dict[str, int] = {}
        for path, size in sizes.items():
            rel = str(path)[len(root):].lstrip("/")
            top = rel.split("/", 1)[0] if "/" in rel else "(root)"
            out[top] = out.get(top, 0) + int(size)
        return dict(sorted(out.items()))

    def info(self) -> dict[str, Any]:
        """What is in the store: images, studies (images, features, raters), mask raters."""
        studies = {}
        for name in self.studies():
            ds = self.study(name)
            studies[name] = {
                "images": int(ds.sizes.get("image", 0)),
                "features": [str(f) for f in ds["feature"].values],
                "raters": [str(r) for r in ds["rater"].values],
                "max_superpixels": int(ds.sizes.get("superpixel", 0)),
            }
        return {
            "url": self.url,
            "layout": self.layout.version,
            "images": len(self),
            "series": len(self.series_ids()),
            "plates": self.plates(),
            "slides": self.slides(),
            "metadata_fields": int(self.metadata().sizes.get("field", 0)),
            "studies": studies,
            "mask_raters": self.mask_raters(),
        }
