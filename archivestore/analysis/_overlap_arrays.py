"""Study overlap with numpy alone: blocks of images computed on threads, written straight with zarr.

The same measures, rules and result group as :func:`archivestore.analysis.overlap` (see
:mod:`archivestore.analysis._overlap`), for a study whose results fit in memory: it is read
straight through zarr (``Store.read_study``), every block of images (a chunk of the study) is
read and goes through the kernel on a thread per CPU (numpy releases the GIL in it), and the
result is written as the group plain xarray opens.
No xarray object is made on the way, so neither xarray's nor dask's import is paid: for a
study of a few thousand images they cost more than the work (``benchmarks/README.md``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from archivestore.analysis._overlap_kernel import pair_measures

if TYPE_CHECKING:
    from archivestore.store._studies import StudyArrays

__all__ = ["MEASURES", "OverlapArrays", "overlap_arrays", "write_overlap_arrays"]

MEASURES = ("dice", "correlation", "superpixel_dice")
"""The per-pair measures of an overlap, in this order."""

MEASURE_ATTRS = {
    "dice": {"long_name": "pixel-grid Dice of the binarised maps of rater and other"},
    "correlation": {"long_name": "Pearson correlation over pixels of the graded maps of rater and other"},
    "superpixel_dice": {"long_name": "Dice of the sets of annotated superpixels (isicarchive's superpixel_dice)"},
}
STATS = (("median", "median"), ("std", "standard deviation"), ("count", "number of defined values"))
"""Summary statistics: variable suffix and what it is."""

IN_MEMORY_IMAGES = 32
"""Images per block when a study in memory is computed on threads."""

Variable = tuple[tuple[str, ...], Any, dict[str, Any]]
"""(dimensions, data, attributes), as ``xarray.Dataset`` takes a variable."""


def cross_attrs(name: str) -> dict[str, str]:
    """Attributes of ``<measure>_cross``."""
    long_name = MEASURE_ATTRS[name]["long_name"] + ", between feature and other_feature"
    return {**MEASURE_ATTRS[name], "long_name": long_name}


def summary_attrs(name: str, what: str) -> dict[str, str]:
    """Attributes of a summary variable of ``name``."""
    return {"long_name": f"{what} of {name} over images and rater pairs"}


def result_attrs(threshold: float, inclusive: bool, within_mask: bool) -> dict[str, Any]:
    """The attributes of an overlap result."""
    return {
        "threshold": float(threshold),
        "inclusive": bool(inclusive),
        "within_mask": bool(within_mask),
        "binarised": f"value {'>=' if inclusive else '>'} {float(threshold)}",
        "rules": "NaN where a rater gave no value for the image/feature, rater == other, "
        "both binary maps empty (Dice), a constant map (correlation), or, within_mask, no lesion mask",
    }


def block_per_feature(annotation: NDArray[Any], weights: NDArray[Any], valid: NDArray[Any], *, threshold: float,
                      inclusive: bool) -> NDArray[np.float64]:
    """(measure, image, feature, rater, other) of a block of images."""
    r = annotation.shape[2]
    return pair_measures(annotation, weights, valid, threshold, inclusive, np.eye(r, dtype=bool))


def block_cross(annotation: NDArray[Any], weights: NDArray[Any], valid: NDArray[Any], *, threshold: float,
                inclusive: bool) -> NDArray[np.float64]:
    """(measure, image, feature, other_feature, rater, other) of a block of images."""
    n_img, n_feat, n_rat, n_sp = annotation.shape
    same = np.tile(np.eye(n_rat, dtype=bool), (n_feat, n_feat))
    out = pair_measures(annotation.reshape(n_img, 1, n_feat * n_rat, n_sp), weights, valid, threshold, inclusive, same)
    # (3, image, 1, f1*r, f2*o) -> (3, image, f1, f2, r, o)
    return out.reshape(3, n_img, n_feat, n_rat, n_feat, n_rat).transpose(0, 1, 2, 4, 3, 5)


def measures_in_memory(values: Any, weights: NDArray[Any], valid: NDArray[Any], *, threshold: float,
                       inclusive: bool, cross_features: bool, images_per_task: int | None = None,
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """The per-feature measures and, with ``cross_features``, the cross-feature ones; blocks on threads.

    ``values`` (image, feature, rater, superpixel) is a numpy array or a study's ``StudyRows``
    (each block read by the thread that computes it, a chunk of images at a time).
    """
    n_img, n_feat, n_rat, _ = values.shape
    step = max(1, images_per_task or getattr(values, "block", IN_MEMORY_IMAGES))
    per = np.empty((len(MEASURES), n_img, n_feat, n_rat, n_rat))
    cross = np.empty((len(MEASURES), n_img, n_feat, n_feat, n_rat, n_rat)) if cross_features else None
    threshold, inclusive = float(threshold), bool(inclusive)

    def run(block: slice) -> None:
        args = (np.asarray(values[block]), weights[block], valid[block])
        per[:, block] = block_per_feature(*args, threshold=threshold, inclusive=inclusive)
        if cross is not None:
            cross[:, block] = block_cross(*args, threshold=threshold, inclusive=inclusive)

    _on_threads(run, [slice(lo, min(lo + step, n_img)) for lo in range(0, n_img, step)])
    return per, cross


def _on_threads(fn: Callable[[slice], None], blocks: list[slice]) -> None:
    """``fn`` of every block, on up to one thread per CPU."""
    workers = min(len(blocks), os.cpu_count() or 1)
    if workers <= 1:
        for block in blocks:
            fn(block)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, blocks):
            pass


def nan_stat(values: NDArray[Any], stat: str) -> NDArray[Any]:
    """``stat`` (median, std, count) of the non-NaN values over the last three axes; NaN (count 0) where none."""
    flat = values.reshape(values.shape[:-3] + (-1,))
    if stat == "count":
        return (~np.isnan(flat)).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as documented
        return np.nanmedian(flat, axis=-1) if stat == "median" else np.nanstd(flat, axis=-1)


@dataclass
class OverlapArrays:
    """An overlap result as numpy: ``variables`` and ``coords`` as ``xarray.Dataset`` takes them, ``attrs``."""

    variables: dict[str, Variable]
    coords: dict[str, Variable]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NDArray[Any]:
        return np.asarray((self.variables.get(name) or self.coords[name])[1])

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.coords


def _summaries(variables: Mapping[str, Variable]) -> dict[str, Variable]:
    """Median, std and count of every measure over (image, rater, other), as :func:`overlap_summary`."""
    out: dict[str, Variable] = {}
    for name, (dims, data, _attrs) in variables.items():
        kept = tuple(d for d in dims if d not in ("image", "rater", "other"))
        moved = np.moveaxis(data, [dims.index(d) for d in ("image", "rater", "other")], [-3, -2, -1])
        for stat, what in STATS:
            out[f"{name}_{stat}"] = (kept, nan_stat(moved, stat), summary_attrs(name, what))
    return out


def overlap_arrays(study: StudyArrays, *, threshold: float = 0.0, inclusive: bool = False, within_mask: bool = False,
                   cross_features: bool = False, images_per_task: int | None = None) -> OverlapArrays:
    """:func:`~archivestore.analysis.overlap` (with its summaries) of a study in memory, without xarray or dask.

    Parameters
    ----------
    study : StudyArrays
        A study as ``Store.read_study(name)`` reads it.
    threshold, inclusive, within_mask, cross_features
        As for :func:`~archivestore.analysis.overlap`.
    images_per_task : int, optional
        Images per block (default: the study's image chunks).

    Returns
    -------
    OverlapArrays
        The variables, coordinates and attributes of the result; :func:`write_overlap_arrays`
        writes them as the group :func:`~archivestore.analysis.write_overlap` writes.
    """
    if within_mask:
        weights, valid = study.superpixel_mask_area, study.has_mask
    else:
        weights, valid = study.superpixel_area, np.ones(len(study.image), dtype=bool)
    per, cross = measures_in_memory(study.annotation, weights, np.asarray(valid, dtype=bool), threshold=threshold,
                                    inclusive=inclusive, cross_features=cross_features,
                                    images_per_task=images_per_task)
    dims = ("image", "feature", "rater", "other")
    variables: dict[str, Variable] = {m: (dims, per[k], MEASURE_ATTRS[m]) for k, m in enumerate(MEASURES)}
    coords: dict[str, Variable] = {"image": (("image",), study.image, {}), "feature": (("feature",), study.feature, {}),
                                   "rater": (("rater",), study.rater, {}), "other": (("other",), study.rater, {})}
    if cross is not None:
        cdims = ("image", "feature", "other_feature", "rater", "other")
        variables.update({f"{m}_cross": (cdims, cross[k], cross_attrs(m)) for k, m in enumerate(MEASURES)})
        coords["other_feature"] = (("other_feature",), study.feature, {})
    attrs = result_attrs(threshold, inclusive, within_mask)
    return OverlapArrays({**variables, **_summaries(variables)}, coords, attrs)


def write_overlap_arrays(store: Any, study_name: str, result: OverlapArrays) -> str:
    """Write an :func:`overlap_arrays` result to ``studies/<study_name>/overlap`` (replacing it); return its path.

    ``store`` is an archivestore ``Store`` opened with ``mode="a"``; the group opens with plain
    xarray exactly as the one :func:`~archivestore.analysis.write_overlap` writes.
    """
    from archivestore.analysis._write import write_arrays

    return write_arrays(store, store.layout.overlap(study_name), {**result.coords, **result.variables}, result.attrs)
