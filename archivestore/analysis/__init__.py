"""Study analyses on an archivestore store: superpixel maps, rater overlap, ...

Everything here works on plain xarray/numpy objects as read from a store
(``xr.open_zarr(store, group="studies/<name>", consolidated=False)``) and is
dask-parallel: results are lazy until computed or written.
"""

from archivestore.analysis._overlap_cli import add_overlap_command
from archivestore.analysis._overlap import MEASURES, overlap, overlap_summary, write_overlap
from archivestore.analysis._superpixels import SuperpixelMap, superpixel_map, superpixel_stats

__all__ = [
    "MEASURES",
    "SuperpixelMap",
    "add_overlap_command",
    "overlap",
    "overlap_summary",
    "superpixel_map",
    "superpixel_stats",
    "write_overlap",
]
