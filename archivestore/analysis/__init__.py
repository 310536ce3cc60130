"""Study analyses on an archivestore store: superpixel maps, rater overlap, scores, heatmaps.

Everything here works on plain xarray/numpy objects as read from a store
(``xr.open_zarr(store, group="studies/<name>", consolidated=False)``) and is
dask-parallel: results are lazy until computed or written.
"""

from archivestore.analysis._heatmap import agreement_counts, heatmap, montage, write_heatmaps
from archivestore.analysis._overlap import MEASURES, overlap, overlap_summary, write_overlap
from archivestore.analysis._scores import METRICS, score, score_table
from archivestore.analysis._segmentations import (
    segmentation_overlap,
    segmentation_overlap_summary,
    write_segmentation_overlap,
)
from archivestore.analysis._superpixels import SuperpixelMap, superpixel_map, superpixel_stats

__all__ = [
    "MEASURES",
    "METRICS",
    "SuperpixelMap",
    "agreement_counts",
    "heatmap",
    "montage",
    "overlap",
    "overlap_summary",
    "score",
    "score_table",
    "segmentation_overlap",
    "segmentation_overlap_summary",
    "superpixel_map",
    "superpixel_stats",
    "write_heatmaps",
    "write_overlap",
    "write_segmentation_overlap",
]
