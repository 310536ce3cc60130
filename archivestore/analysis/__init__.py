"""Study analyses on an archivestore store: superpixel maps, rater overlap, ...

Everything here works on plain xarray/numpy objects as read from a store
(``xr.open_zarr(store, group="studies/<name>", consolidated=False)``) and is
dask-parallel: results are lazy until computed or written.
"""

from archivestore.analysis._overlap import MEASURES, overlap, overlap_summary, write_overlap
from archivestore.analysis._superpixels import SuperpixelMap, superpixel_map

__all__ = [
    "MEASURES",
    "SuperpixelMap",
    "overlap",
    "overlap_summary",
    "superpixel_map",
    "write_overlap",
]
