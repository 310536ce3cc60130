"""Writing an analysis result into a store as one group, the way plain xarray reads it back."""

from __future__ import annotations

from collections.abc import Callable
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
