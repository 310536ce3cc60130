"""Study analyses on an archivestore store: superpixel maps, rater overlap, scores, heatmaps.

Everything here works on plain xarray/numpy objects as read from a store
(``xr.open_zarr(store, group="studies/<name>", consolidated=False)``) and is
dask-parallel: results are lazy until computed or written.

The names below load on first use (PEP 562), so one analysis imports only what it needs
(``overlap`` of a study in memory imports no dask, PIL or scipy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archivestore.analysis._findings import (
        cohen_kappa,
        findings_agreement,
        findings_agreement_table,
        fleiss_kappa,
        write_findings_agreement,
    )
    from archivestore.analysis._heatmap import agreement_counts, heatmap, montage, write_heatmaps
    from archivestore.analysis._overlap import MEASURES, overlap, overlap_summary, write_overlap
    from archivestore.analysis._overlap_arrays import OverlapArrays, overlap_arrays, write_overlap_arrays
    from archivestore.analysis._scores import METRICS, score, score_table
    from archivestore.analysis._segmentations import (
        segmentation_overlap,
        segmentation_overlap_summary,
        write_segmentation_overlap,
    )
    from archivestore.analysis._superpixels import SuperpixelMap, superpixel_map, superpixel_stats

_MODULES = {
    "archivestore.analysis._findings": ("cohen_kappa", "findings_agreement", "findings_agreement_table",
                                        "fleiss_kappa", "write_findings_agreement"),
    "archivestore.analysis._heatmap": ("agreement_counts", "heatmap", "montage", "write_heatmaps"),
    "archivestore.analysis._overlap": ("MEASURES", "overlap", "overlap_summary", "write_overlap"),
    "archivestore.analysis._overlap_arrays": ("OverlapArrays", "overlap_arrays", "write_overlap_arrays"),
    "archivestore.analysis._scores": ("METRICS", "score", "score_table"),
    "archivestore.analysis._segmentations": ("segmentation_overlap", "segmentation_overlap_summary",
                                             "write_segmentation_overlap"),
    "archivestore.analysis._superpixels": ("SuperpixelMap", "superpixel_map", "superpixel_stats"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
"""Public name → the module that defines it."""

__all__ = [
    "MEASURES",
    "METRICS",
    "OverlapArrays",
    "SuperpixelMap",
    "agreement_counts",
    "cohen_kappa",
    "findings_agreement",
    "findings_agreement_table",
    "fleiss_kappa",
    "heatmap",
    "montage",
    "overlap",
    "overlap_arrays",
    "overlap_summary",
    "score",
    "score_table",
    "segmentation_overlap",
    "segmentation_overlap_summary",
    "superpixel_map",
    "superpixel_stats",
    "write_findings_agreement",
    "write_heatmaps",
    "write_overlap",
    "write_overlap_arrays",
    "write_segmentation_overlap",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name in the package's globals."""
    try:
        module = importlib.import_module(_EXPORTS[name])
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
