"""The store: open or create a Zarr v3 hierarchy at a path or fsspec URL, and read it.

Reading never lists the ``images`` group: one image is found by its path, and the
list of images is the ``image`` coordinate of the ``metadata`` table, so opening one
image costs the same in a 10-image store as in a 400,000-image one.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.storage
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from archivestore import _metadata

__all__ = ["LAYOUT_VERSION", "Store", "open_store"]

LAYOUT_VERSION = 1
GROUND_TRUTH = "ground_truth"


def _zarr_store(url: str | os.PathLike, mode: str, storage_options: Mapping[str, Any] | None):
    url = os.fspath(url)
    read_only = mode == "r"
    if "://" in url and not url.startswith("file://"):
        return zarr.storage.FsspecStore.from_url(url, storage_options=dict(storage_options or {}), read_only=read_only)
    path = url[len("file://"):] if url.startswith("file://") else url
    return zarr.storage.LocalStore(path, read_only=read_only)


def open_store(
    url: str | os.PathLike,
    mode: str = "r",
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """Open (``mode="r"``) or open-or-create (``mode="a"``) a store.

    Parameters
    ----------
    url
        A local path or any fsspec URL (``s3://bucket/isic.zarr``, ``memory://x``).
    mode
        ``"r"`` read only; ``"a"`` read and write, creating the store if missing.
    storage_options
        Passed to fsspec (e.g. ``{"anon": True}`` or an ``endpoint_url``).
    """
    if mode not in ("r", "a"):
        raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
    zstore = _zarr_store(url, mode, storage_options)
    if mode == "r":
        try:
            root = zarr.open_group(zstore, mode="r", zarr_format=3)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            raise FileNotFoundError(f"no archivestore store at {os.fspath(url)}") from None
    else:
        try:
            root = zarr.open_group(zstore, mode="a", zarr_format=3)
        except zarr.errors.ContainsGroupError:  # another writer created it a moment ago
            root = zarr.open_group(zstore, mode="r+", zarr_format=3)
        if "archivestore" not in root.attrs:
            root.attrs["archivestore"] = {"layout": LAYOUT_VERSION}
        for name in ("images", "masks", "studies", "metadata", "_locks", "_locks/images"):
            ensure_group(root, name)
    return Store(os.fspath(url), zstore, root, mode=mode, storage_options=storage_options)


def ensure_group(parent: zarr.Group, name: str) -> zarr.Group:
    """``parent[name]``, created if missing; safe when other writers create it at the same time."""
    try:
        return parent[name]
    except KeyError:
        pass
    try:
        return parent.create_group(name)
    except zarr.errors.ContainsGroupError:
        return parent[name]


def _reopen(url: str, mode: str, storage_options: dict) -> Store:
    key = (url, mode, repr(sorted(storage_options.items())))
    if key not in _OPENED:
        _OPENED[key] = open_store(url, mode, storage_options)
    return _OPENED[key]


_OPENED: dict[tuple, Store] = {}


class Store:
    """A store opened with :func:`open_store`; reading methods return lazy xarray objects."""

    def __init__(self, url: str, zstore, root: zarr.Group, *, mode: str = "r",
                 storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.zstore = zstore
        self.root = root
        self.mode = mode
        self.storage_options = dict(storage_options or {})

    def __reduce__(self):
        # a Store travels to dask workers as what it takes to open it again there
        return _reopen, (self.url, self.mode, self.storage_options)

    def __repr__(self) -> str:
        return f"<archivestore.Store {self.url!r}>"

    # -- opening groups ---------------------------------------------------------------
    def _open(self, group: str) -> xr.Dataset:
        return xr.open_zarr(self.zstore, group=group, consolidated=False)

    def image_state(self, image_id: str) -> dict[str, Any] | None:
        """The ``_archivestore`` attribute of ``images/<id>``, or None if there is no such group."""
        return self._group_state(f"images/{image_id}")

    def _group_state(self, path: str) -> dict[str, Any] | None:
        # one GET of the group's zarr.json: this runs for every item of every ingest
        buf = sync(self.zstore.get(f"{path}/zarr.json", prototype=default_buffer_prototype()))
        if buf is None:
            return None
        try:
            doc = json.loads(buf.to_bytes())
        except ValueError:
            return {}
        return dict(doc.get("attributes", {}).get("_archivestore", {}))

    @functools.cached_property
    def images_group(self) -> zarr.Group:
        """The ``images`` group (its own metadata never changes, so it is read once)."""
        return self.root["images"]

    def image_record(self, image_id: str) -> dict[str, Any]:
        """The original metadata record kept as the attributes of ``images/<id>``."""
        attrs = dict(self.images_group[image_id].attrs)
        attrs.pop("_archivestore", None)
        return attrs

    def is_complete(self, image_id: str) -> bool:
        """Whether ``images/<id>`` was written to the end."""
        return bool((self.image_state(image_id) or {}).get("complete"))

    def image(self, image_id: str) -> xr.Dataset:
        """The image group ``images/<id>`` as a lazy Dataset; ``KeyError`` if absent or incomplete."""
        if not self.is_complete(image_id):
            raise KeyError(f"no complete image {image_id!r} in {self.url}")
        return self._open(f"images/{image_id}")

    def read(self, image_id: str, variable: str = "image", rater: str = GROUND_TRUTH) -> np.ndarray:
        """One array of an image as numpy, straight from zarr (no xarray, no dask graph).

        The fast path for a training loop or a kernel: two metadata reads and the chunks.
        ``variable`` is ``image``, ``superpixels``, ``mask`` or ``attribute``; ``rater``
        picks another rater's ``mask``/``attribute``.
        """
        path = f"images/{image_id}" if rater == GROUND_TRUTH or variable not in ("mask", "attribute") \
            else f"masks/{rater}/{image_id}"
        if not (self._group_state(path) or {}).get("complete"):
            raise KeyError(f"no complete {path!r} in {self.url}")
        try:
            return zarr.open_array(self.zstore, path=f"{path}/{variable}", mode="r", zarr_format=3)[...]
        except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError):
            raise KeyError(f"{path} has no {variable!r}") from None

    def masks(self, image_id: str, rater: str = GROUND_TRUTH) -> xr.Dataset:
        """The masks (``mask``, ``attribute``) of one rater for one image."""
        if rater == GROUND_TRUTH:
            ds = self.image(image_id)
            return ds[[v for v in ("mask", "attribute") if v in ds]]
        state = self._group_state(f"masks/{rater}/{image_id}")
        if not (state or {}).get("complete"):
            raise KeyError(f"no masks of rater {rater!r} for image {image_id!r} in {self.url}")
        return self._open(f"masks/{rater}/{image_id}")

    def mask(self, image_id: str, rater: str = GROUND_TRUTH) -> xr.DataArray:
        """The lesion mask (y, x) 0/1 of one rater for one image."""
        ds = self.masks(image_id, rater)
        if "mask" not in ds:
            raise KeyError(f"image {image_id!r} has no lesion mask of rater {rater!r}")
        return ds["mask"]

    def mask_raters(self) -> list[str]:
        """Raters other than ground_truth that have masks."""
        return sorted(name for name, _ in self.root["masks"].groups()) if "masks" in self.root else []

    # -- metadata table ---------------------------------------------------------------
    def metadata(self) -> xr.Dataset:
        """The metadata table: one row per complete image along ``image``."""
        if "image" not in self.root["metadata"]:
            return xr.Dataset(coords={"image": np.array([], dtype=str), "field": np.array([], dtype=str)})
        return self._open("metadata")

    def image_ids(self) -> list[str]:
        """Ids of the complete images, in ingest order."""
        return _metadata.table_ids(self.root["metadata"])

    def __len__(self) -> int:
        group = self.root["metadata"]
        return group["image"].shape[0] if "image" in group else 0

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.is_complete(image_id)

    def metadata_frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame (index image id, columns dotted key paths)."""
        return _metadata.read_frame(self.metadata())

    def metadata_records(self) -> dict[str, dict[str, Any]]:
        """Every row's leaf values re-nested exactly as in the original records."""
        return _metadata.read_records(self.metadata())

    # -- studies ----------------------------------------------------------------------
    def studies(self) -> list[str]:
        """Names of the studies in the store."""
        return sorted(name for name, _ in self.root["studies"].groups()) if "studies" in self.root else []

    def study(self, name: str) -> xr.Dataset:
        """``studies/<name>`` as a lazy Dataset (``annotation``, ``superpixel_area``, ...)."""
        if name not in self.studies():
            raise KeyError(f"no study {name!r} in {self.url}; studies: {', '.join(self.studies()) or 'none'}")
        return self._open(f"studies/{name}")

    # -- summary ----------------------------------------------------------------------
    def disk_usage(self) -> dict[str, int]:
        """Bytes stored under each top-level group (``images``, ``metadata``, ...).

        Lists every object of the store: cost grows with its size (``info --sizes``).
        """
        if isinstance(self.zstore, zarr.storage.FsspecStore):
            fs, root = self.zstore.fs, self.zstore.path
            if fs.async_impl:
                sizes = sync(fs._du(root, total=False))
            else:
                sizes = fs.du(root, total=False)
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
        meta = self.metadata()
        return {
            "url": self.url,
            "images": len(self),
            "metadata_fields": int(meta.sizes.get("field", 0)),
            "studies": studies,
            "mask_raters": self.mask_raters(),
        }
