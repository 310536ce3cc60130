"""Rater overlap in a study: Dice and correlation of per-superpixel annotations.

A study (``studies/<name>``, see the README's store layout) holds ``annotation[image, feature,
rater, superpixel]`` (0 absent, 0.5 possible, 1 definite, NaN no value) and the
pixel count of every superpixel (``superpixel_area``) and of its part inside the
lesion mask (``superpixel_mask_area``). Painting a rater's values through the
superpixel image gives a value on every pixel, and the pixel-grid measures are
sums over pixels. Every pixel of superpixel ``s`` carries the same value, so a sum
over pixels is a sum over superpixels weighted by their pixel counts ``w[s]``:

- pixel Dice of binarised maps ``a, b``: ``2 Σ w·a·b / (Σ w·a + Σ w·b)``;
- Pearson correlation of the graded maps ``x, y`` over pixels: the weighted
  correlation with weights ``w`` (means ``Σ w·x / Σ w``, centred cross products).

Both are exact (equal to painting full-size maps and computing on pixels) at
O(superpixels) per pair; all rater pairs of one image and feature come out of
one small matrix product. The exact rules, shared by every function here:

1. **Missing values.** A rater *annotated* an (image, feature) when at least one of
   its superpixel values is not NaN. For an annotated rater, NaN superpixels count
   as 0 (absent). For a rater that did not annotate, every measure involving it is NaN.
2. **Binarising** (Dice measures): ``value > threshold`` (default ``threshold=0``: 0.5
   "possible" counts); ``inclusive=True`` uses ``>=`` (``threshold=1,
   inclusive=True``: "definite" only).
3. **Pixels.** ``within_mask=False``: all pixels of the image (weights
   ``superpixel_area``). ``within_mask=True``: only pixels inside the lesion mask
   (weights ``superpixel_mask_area``); an image without a mask (``has_mask``
   false) gives NaN for ``dice`` and ``correlation``.
4. **Undefined cases are NaN**, never an error or a silent 0: Dice with both
   binary maps empty; correlation where either map is constant over the pixels
   considered (or there are no pixels); any measure with ``rater == other``.
5. ``superpixel_dice`` is isicarchive's ``imfunc.superpixel_dice``: unweighted
   ``2|A∩B| / (|A| + |B|)`` over the *sets* of superpixels whose value passes the
   threshold (rule 2; the default matches isicarchive, whose sets are values > 0).
   It ignores ``within_mask``; both sets empty gives NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from archivestore.analysis._overlap_arrays import (
    MEASURE_ATTRS,
    MEASURES,
    STATS,
    block_cross,
    block_per_feature,
    cross_attrs,
    measures_in_memory,
    nan_stat,
    result_attrs,
    summary_attrs,
)
from archivestore.analysis._write import write_result

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["MEASURES", "overlap", "overlap_summary", "write_overlap"]

def _as_dask(var: xr.DataArray) -> da.Array:
    import dask.array as da

    data = var.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=-1)
    return data


def _study_inputs(study: xr.Dataset, within_mask: bool) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """The annotations (image, feature, rater, superpixel), the pixel weights of each superpixel, and
    which images count (all; or, within the mask, those with a mask)."""
    for name in ("annotation", "superpixel_area"):
        if name not in study:
            raise KeyError(f"study has no {name!r} variable")
    ann = study["annotation"].transpose("image", "feature", "rater", "superpixel")
    if within_mask:
        if "superpixel_mask_area" not in study:
            raise KeyError("within_mask needs the study's 'superpixel_mask_area'")
        weights = study["superpixel_mask_area"]
        valid = study["has_mask"] if "has_mask" in study else (weights.sum("superpixel") > 0)
    else:
        weights = study["superpixel_area"]
        valid = xr.DataArray(np.ones(ann.sizes["image"], dtype=bool), dims="image")
    return ann, weights.transpose("image", "superpixel"), valid


def _task_arrays(ann: xr.DataArray, weights: xr.DataArray, valid: xr.DataArray, images_per_task: int | None,
                 cross_features: bool) -> tuple[da.Array, da.Array, da.Array]:
    """The inputs as dask arrays chunked as the tasks take them: a block of images, all raters and superpixels."""
    ann_d, w_d, valid_d = _as_dask(ann), _as_dask(weights), _as_dask(valid)
    if images_per_task is None:
        image_chunks = ann_d.chunks[0] if ann_d.numblocks[0] > 1 else max(1, min(16, ann_d.shape[0]))
    else:
        image_chunks = images_per_task
    feature_chunks = -1 if cross_features else ann_d.chunks[1]
    ann_d = ann_d.rechunk((image_chunks, feature_chunks, -1, -1))
    return ann_d, w_d.rechunk((ann_d.chunks[0], -1)), valid_d.rechunk((ann_d.chunks[0],))


_Measures = tuple[Any, Any | None]
"""The (measure, image, feature, rater, other) array and the cross-feature one (or None)."""


def _lazy_measures(ann: xr.DataArray, weights: xr.DataArray, valid: xr.DataArray, images_per_task: int | None,
                   cross_features: bool, kwargs: dict[str, Any]) -> _Measures:
    """The measures as dask arrays: one task per block of images (a dask-backed study)."""
    import dask.array as da

    ann_d, w_d, valid_d = _task_arrays(ann, weights, valid, images_per_task, cross_features)
    n_img, n_feat, n_rat, _ = ann_d.shape
    per = da.blockwise(
        block_per_feature, "mifro",
        ann_d, "ifrs", w_d, "is", valid_d, "i",
        new_axes={"m": len(MEASURES), "o": n_rat},
        concatenate=True, dtype=np.float64, meta=np.empty((0,) * 5, dtype=np.float64), **kwargs,
    )
    if not cross_features:
        return per, None
    cross = da.blockwise(
        block_cross, "mifgro",
        ann_d, "ifrs", w_d, "is", valid_d, "i",
        new_axes={"m": len(MEASURES), "g": n_feat, "o": n_rat},
        concatenate=True, dtype=np.float64, meta=np.empty((0,) * 6, dtype=np.float64), **kwargs,
    )
    return per, cross


def _eager_measures(ann: xr.DataArray, weights: xr.DataArray, valid: xr.DataArray, images_per_task: int | None,
                    cross_features: bool, kwargs: dict[str, Any]) -> _Measures:
    """The measures as numpy arrays, blocks of images computed on a thread per CPU (a study in memory)."""
    return measures_in_memory(np.asarray(ann.values), np.asarray(weights.values), np.asarray(valid.values, dtype=bool),
                              cross_features=cross_features, images_per_task=images_per_task, **kwargs)

def _coords(study: xr.Dataset, ann: xr.DataArray) -> dict[str, NDArray[Any] | xr.DataArray]:
    """The result's coordinates: image, feature, rater and other (rater again, as the pair's second)."""
    coords: dict[str, NDArray[Any] | xr.DataArray] = {
        "image": study["image"].values if "image" in study.coords else np.arange(ann.sizes["image"]),
        "feature": ann["feature"].values if "feature" in ann.coords else np.arange(ann.sizes["feature"]),
        "rater": ann["rater"].values if "rater" in ann.coords else np.arange(ann.sizes["rater"]),
    }
    coords["other"] = xr.DataArray(coords["rater"], dims="other")
    return coords


def overlap(
    study: xr.Dataset,
    *,
    threshold: float = 0.0,
    inclusive: bool = False,
    within_mask: bool = False,
    cross_features: bool = False,
    summary: bool = True,
    images_per_task: int | None = None,
) -> xr.Dataset:
    """Overlap of every ordered pair of raters in every image and feature of a study.

    Parameters
    ----------
    study : xarray.Dataset
        A study group as read from a store (``store.study(name)`` or
        ``xr.open_zarr(store, group="studies/<name>", consolidated=False)``),
        numpy- or dask-backed, with ``annotation``, ``superpixel_area`` and, for
        ``within_mask``, ``superpixel_mask_area`` and ``has_mask``.
    threshold, inclusive : float, bool
        Binarising for the Dice measures: ``value > threshold``, or ``>=`` when
        ``inclusive``. ``threshold=1, inclusive=True`` counts "definite" only.
    within_mask : bool
        Count only pixels inside the ``ground_truth`` lesion mask.
    cross_features : bool
        Also compute every measure between rater's feature and other's
        *other_feature* (``*_cross`` variables over (image, feature,
        other_feature, rater, other)), as isicarchive's ``Study.overlap_stats``.
    summary : bool
        Add the summaries of :func:`overlap_summary`.
    images_per_task : int, optional
        Images per dask task (default: the study's image chunks), or per block of a
        study in memory (default 32).

    Returns
    -------
    xarray.Dataset
        ``dice``, ``correlation``, ``superpixel_dice`` float64 over (image, feature,
        rater, other); ``other`` holds rater names. Lazy (dask, one task per block of
        images) when the study is dask-backed, as ``store.study(name)`` and
        ``xr.open_zarr`` give it; computed here, on a thread per CPU, when it is in
        memory (numpy-backed, e.g. ``store.study(name).load()``). Rules for missing
        values and undefined cases: see the module documentation. Without xarray at all:
        :func:`~archivestore.analysis.overlap_arrays` of ``store.read_study(name)``.
    """
    ann, weights, valid = _study_inputs(study, within_mask)
    kwargs = {"threshold": float(threshold), "inclusive": bool(inclusive)}
    coords = _coords(study, ann)
    measures = _lazy_measures if ann.chunks is not None else _eager_measures
    per, cross = measures(ann, weights, valid, images_per_task, cross_features, kwargs)
    dims = ("image", "feature", "rater", "other")
    data: dict[str, tuple[tuple[str, ...], Any, dict[str, str]]] = {
        m: (dims, per[k], MEASURE_ATTRS[m]) for k, m in enumerate(MEASURES)
    }
    if cross is not None:
        coords["other_feature"] = xr.DataArray(coords["feature"], dims="other_feature")
        cdims = ("image", "feature", "other_feature", "rater", "other")
        for k, m in enumerate(MEASURES):
            data[f"{m}_cross"] = (cdims, cross[k], cross_attrs(m))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = result_attrs(threshold, inclusive, within_mask)
    if summary:
        ds = ds.merge(overlap_summary(ds))
    return ds


def overlap_summary(ds: xr.Dataset) -> xr.Dataset:
    """Median, standard deviation and count of every measure across images and rater pairs.

    For each measure ``m`` of :func:`overlap` present in ``ds`` this gives
    ``m_median``, ``m_std`` (population, as ``numpy.std``) and ``m_count`` over
    ``feature``: statistics of all non-NaN values over (image, rater, other).
    Ordered pairs count both ways, as in isicarchive's ``Study.overlap_stats``.
    For the ``m_cross`` variables the same over (feature, other_feature): the
    statistics of the measure between rater A's ``feature`` and rater B's
    ``other_feature`` (isicarchive's ``feature_dicestats``). A feature with no
    defined value gets NaN statistics and count 0.
    """
    out = {}
    over = ["image", "rater", "other"]
    for name in [*MEASURES, *(f"{m}_cross" for m in MEASURES)]:
        if name not in ds:
            continue
        var = ds[name]
        if var.chunks is not None:
            var = var.chunk({d: -1 for d in over})
        for stat, what in STATS:
            out[f"{name}_{stat}"] = xr.apply_ufunc(
                nan_stat, var, input_core_dims=[over], kwargs={"stat": stat},
                dask="parallelized", output_dtypes=[np.int64 if stat == "count" else np.float64],
            )
            out[f"{name}_{stat}"].attrs = summary_attrs(name, what)
    return xr.Dataset(out)


def write_overlap(
    store: Any,
    study_name: str,
    ds: xr.Dataset,
    *,
    storage_options: dict[str, Any] | None = None,
    compute: bool = True,
) -> str:
    """Write an :func:`overlap` result to ``studies/<study_name>/overlap`` of a store.

    Parameters
    ----------
    store
        An archivestore ``Store`` (opened with ``mode="a"``), a path or fsspec URL
        of a store, or a zarr store object.
    study_name : str
        The study; the group is replaced if it exists.
    ds : xarray.Dataset
        The result of :func:`overlap` (lazy: computing happens while writing,
        on the current dask scheduler).
    storage_options : dict, optional
        fsspec options for a URL.
    compute : bool
        Passed to :meth:`xarray.Dataset.to_zarr`.

    Returns
    -------
    str
        The group path, readable with
        ``xr.open_zarr(store, group=path, consolidated=False)``.
    """
    return write_result(store, lambda layout: layout.overlap(study_name), ds, storage_options=storage_options,
                        compute=compute)
