"""Reading slides (``slides/<SM SeriesInstanceUID>``) as :class:`~archivestore.Store` methods (a mixin).

A slide is a group per pyramid level (``0`` full resolution, ``1``, ...) and per associated image
(``label``, ``overview``, ``thumbnail``), each holding ``image`` (y, x, channel) whose chunks are the
DICOM tiles in their encoding (:mod:`archivestore.codecs` decodes them). Reading is lazy: a region
costs the tiles it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archivestore.errors import NotFoundError

if TYPE_CHECKING:
    import xarray as xr

    from archivestore.layout import Layout

__all__ = ["DASK_BLOCK", "StoreSlides"]

DASK_BLOCK = 2048
"""Pixels per dask chunk (y and x) of :meth:`StoreSlides.slide`, rounded to whole tiles: one task reads
many tiles with one zarr call (concurrent requests, decoding in threads), where a task per tile costs
more in scheduling than the tile's decoding (``benchmarks/bench_slides.py``)."""


class StoreSlides:
    """The slide half of :class:`~archivestore.Store`."""

    url: str
    layout: Layout
    root: Any
    zstore: Any

    if TYPE_CHECKING:  # provided by Store and StoreWriting
        def group_state(self, path: str) -> dict[str, Any] | None: ...

        def open_dataset(self, path: str) -> xr.Dataset: ...

        def _names(self, path: str) -> list[str]: ...

    def slides(self) -> list[str]:
        """The SeriesInstanceUIDs of the complete slides in the store (lists the ``slides`` group, reads
        each slide's state)."""
        return [uid for uid in self._names(self.layout.SLIDES)
                if (self.group_state(self.layout.slide(uid)) or {}).get("complete")]

    def slide_attrs(self, series_uid: str) -> dict[str, Any]:
        """The slide's attributes (metadata, ``pyramid``, ``associated``, ``dicom``, ``record``); one read."""
        path = self.layout.slide(series_uid)
        if not (self.group_state(path) or {}).get("complete"):
            raise NotFoundError(f"no complete slide {series_uid!r} in {self.url}")
        return {k: v for k, v in self.root[path].attrs.items() if k != "_archivestore"}

    def slide(self, series_uid: str, level: int | str = 0, *, chunks: int | str | None = None) -> xr.DataArray:
        """One level of a slide as a lazy, dask-backed ``(y, x, channel)`` DataArray.

        Parameters
        ----------
        series_uid
            The SM series' SeriesInstanceUID.
        level
            ``0`` (full resolution), ``1``, ... as the series holds them, or ``"label"``,
            ``"overview"``, ``"thumbnail"``.
        chunks
            Pixels per dask chunk along y and x: a multiple of the DICOM tile, by default the one
            nearest :data:`DASK_BLOCK`; ``"tile"`` for one task per tile. Whatever the dask chunks,
            reading a region fetches and decodes only the tiles (zarr chunks) it touches.

        Returns
        -------
        xarray.DataArray
            ``image`` with coordinates ``y``/``x`` in micrometres (as stored) and ``channel``; its
            attributes are the level's (``spacing_um``, ``downsample``, ``image_type``, ...) and the
            array's (``transfer_syntax``, ``tiling``, ...). Opened from the level's one document (two
            reads in all), as ``xr.open_zarr(..., group="slides/<uid>/<level>")`` opens it.
        """
        import dask.array as da
        import numpy as np
        import xarray as xr
        import zarr
        from zarr.core.metadata.v3 import ArrayV3Metadata
        from zarr.storage import StorePath

        from archivestore.store._groups import read_group_doc

        path = self.layout.slide(series_uid)
        state = self.group_state(path) or {}
        if not state.get("complete"):
            raise NotFoundError(f"no complete slide {series_uid!r} in {self.url}")
        names = [str(n) for n in (state.get("checksums") or {})]
        if str(level) not in names:
            raise NotFoundError(f"slide {series_uid!r} has no level {level!r}; it has {', '.join(names)}")
        doc = read_group_doc(self.zstore, f"{path}/{level}") or {}
        meta = ArrayV3Metadata.from_dict(dict(doc["consolidated_metadata"]["metadata"]["image"]))
        array = zarr.Array(zarr.AsyncArray(metadata=meta, store_path=StorePath(self.zstore, f"{path}/{level}/image")))
        tile = meta.chunks
        if chunks == "tile":
            block = tile[:2]
        else:
            size = int(chunks) if chunks is not None else DASK_BLOCK
            block = tuple(t * max(1, round(size / t)) for t in tile[:2])
        data = da.from_zarr(array, chunks=(*block, meta.shape[2]))
        attrs = {k: v for k, v in doc.get("attributes", {}).items() if k != "_archivestore"}
        spacing = attrs.get("spacing_um") or [1.0, 1.0]
        units = "micrometer" if attrs.get("spacing_um") else "pixel"
        coords = {
            "y": ("y", np.arange(meta.shape[0], dtype=np.float64) * spacing[0],
                  {"units": units, "long_name": "row offset from the first pixel"}),
            "x": ("x", np.arange(meta.shape[1], dtype=np.float64) * spacing[1],
                  {"units": units, "long_name": "column offset from the first pixel"}),
            "channel": ("channel", np.asarray(attrs.get("channels") or [str(i) for i in range(meta.shape[2])])),
        }
        out = xr.DataArray(data, dims=("y", "x", "channel"), coords=coords, name="image",
                           attrs={**meta.attributes, **attrs, "series_instance_uid": series_uid})
        out.encoding = {"chunks": tuple(tile), "preferred_chunks": dict(zip(out.dims, tile, strict=True))}
        return out

    def slide_damage(self, series_uid: str) -> list[str]:
        """What is wrong with a stored slide against the checksums recorded at ingest (empty if nothing).

        Each level's tiles are read as stored (no decoding) in the order they were written and hashed.
        """
        import hashlib

        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.metadata.v3 import ArrayV3Metadata
        from zarr.core.sync import sync

        from archivestore.store._groups import read_group_doc

        path = self.layout.slide(series_uid)
        state = self.group_state(path)
        if state is None:
            return [f"{path} is not in the store"]
        if not state.get("complete"):
            return [f"{path} was not written to the end"]
        problems = []
        for name, want in sorted((state.get("checksums") or {}).items()):
            doc = read_group_doc(self.zstore, f"{path}/{name}") or {}
            try:
                meta = ArrayV3Metadata.from_dict(dict(doc["consolidated_metadata"]["metadata"]["image"]))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{path}/{name}/image cannot be read: {exc}")
                continue
            digest = hashlib.sha256()
            grid = [-(-n // c) for n, c in zip(meta.shape, meta.chunks, strict=True)]
            for c in range(grid[2]):
                keys = [f"{path}/{name}/image/{meta.encode_chunk_key((y, x, c))}"
                        for y in range(grid[0]) for x in range(grid[1])]
                for buffer in sync(self._get_all(keys, default_buffer_prototype())):
                    if buffer is not None:
                        digest.update(buffer.to_bytes())
            if "sha256:" + digest.hexdigest() != want:
                problems.append(f"{path}/{name}/image does not match its checksum")
        return problems

    async def _get_all(self, keys: list[str], prototype: Any) -> list[Any]:
        import asyncio

        return list(await asyncio.gather(*(self.zstore.get(key, prototype=prototype) for key in keys)))
