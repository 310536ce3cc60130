"""Writing an analysis result into a store as one group, the way plain xarray reads it back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from archivestore.layout import Layout

__all__ = ["write_result"]


def write_result(store: Any, path: Callable[[Layout], str], ds: xr.Dataset, *,
                 storage_options: dict[str, Any] | None = None, compute: bool = True) -> str:
    """Write ``ds`` to the group ``path(layout)`` of a store (replacing it); return the group path.

    ``store`` is an archivestore ``Store`` (its layout names the group), or a path, fsspec
    URL or zarr store object (the current layout does). Strings are written as
    variable-length strings, as the store keeps its labels; encodings are reset.
    """
    from archivestore.layout import LAYOUT

    zstore = getattr(store, "zstore", None)
    target, options, layout = (zstore, None, store.layout) if zstore is not None else (store, storage_options, LAYOUT)
    group = path(layout)
    ds = ds.copy()
    for name in ds.variables:
        ds[name].encoding = {}
        if ds[name].dtype.kind in "UO":
            ds[name] = ds[name].astype(object)
    kwargs: dict[str, Any] = {"compute": compute, **({"storage_options": options} if options else {})}
    ds.to_zarr(target, group=group, mode="w", consolidated=False, zarr_format=3, **kwargs)
    return group


def write_arrays(store: Any, group: str, variables: Mapping[str, tuple[tuple[str, ...], Any, dict[str, Any]]],
                 attrs: dict[str, Any]) -> str:
    """Write numpy variables as the group ``group`` of a store (replacing it) with zarr alone; return ``group``.

    ``variables`` maps a name to ``(dimensions, data, attributes)``; a variable named as its only
    dimension is that dimension's coordinate. Strings become variable-length strings, as
    :func:`write_result` writes them, so plain xarray opens both groups alike. The arrays are
    created and written concurrently (their chunks compressed on zarr's threads).
    """
    import asyncio

    import numpy as np
    import zarr.api.asynchronous as zarr_async
    from zarr.core.sync import sync

    from archivestore.layout import compressors

    async def write_all() -> None:
        root = await zarr_async.open_group(store=store.zstore, path=group, mode="w", zarr_format=3, attributes=attrs)

        async def one(name: str, dims: tuple[str, ...], data: Any, var_attrs: dict[str, Any]) -> None:
            values = np.asarray(data)
            if values.dtype.kind in "UO":
                values = values.astype(str)
            kind = values.dtype.kind
            fill: Any = "" if kind == "U" else np.nan if kind == "f" else False if kind == "b" else 0
            arr = await root.create_array(name, shape=values.shape, dtype=str if kind == "U" else values.dtype,
                                          chunks=_chunks(values), fill_value=fill, compressors=compressors(),
                                          dimension_names=dims, attributes=dict(var_attrs))
            if values.size:
                await arr.setitem(..., values)

        await asyncio.gather(*(one(name, *variable) for name, variable in variables.items()))

    sync(write_all())
    return group


CHUNK_BYTES = 16 * 2**20
"""Largest chunk :func:`write_arrays` writes (whole rows along the first dimension)."""


def _chunks(values: Any) -> tuple[int, ...]:
    """Whole arrays up to :data:`CHUNK_BYTES`, else as many whole rows of the first dimension as fit."""
    if values.ndim == 0 or values.dtype.kind == "U":
        return tuple(max(1, n) for n in values.shape)
    row = max(1, values[:1].nbytes)
    return (max(1, min(values.shape[0], CHUNK_BYTES // row)), *(max(1, n) for n in values.shape[1:]))
