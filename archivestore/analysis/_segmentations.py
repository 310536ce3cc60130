"""Segmentation overlap across raters: Dice, Jaccard and volumes of DICOM SEG label volumes.

The input is the store's ``segmentations/<SEG uid>`` groups (see the README's layout), grouped by
the series they segment: ``labels[segment, z, y, x]`` on the source series' grid, uint8 0/1
(BINARY, LABELMAP) or float32 in [0, 1] (FRACTIONAL), with the coordinates ``segment``,
``segment_label`` and ``segment_code`` and the attributes ``rater``, ``spacing`` and
``series_instance_uid``. The rules, shared by every function here:

1. **Series.** Only series with two or more segmentations are compared; the others are left out.
   All segmentations of a series must have the same grid (shape, and ``z``/``y``/``x``
   coordinates where present) and the same ``source_series``, else ``InvalidInputError``.
2. **Raters.** A segmentation's rater is its ``rater`` attribute (else its SEG uid). When two
   segmentations of one series have the same rater, each becomes ``"<rater> [<SEG uid>]"`` (the
   ``series_instance_uid`` attribute, else its position in the list, from 1) so they stay apart.
   The ``rater``/``other`` dimension is the union over series, in order of first appearance; the
   ``segmentation`` coordinate says which SEG each (series, rater) is.
3. **Matching segments.** Per series, one key for all its segmentations: ``segment_code``
   (``CodeValue:CodingSchemeDesignator``) when, in every segmentation of the series, every segment
   has a code with both parts non-empty and no two segments share one; else ``segment_label`` when
   every label is non-empty and unique within each segmentation; else the SegmentNumber (``"#3"``).
   One rule per series (not per segment) so that a SEG using one code for several lesions is
   matched by label with *all* raters of the series, never half by code and half by label. The
   ``matched_by`` coordinate records the choice; the ``segment`` dimension is the union of keys.
4. **Binarising.** A voxel is in a segment when its value ``>= threshold`` (default 0.5), compared
   exactly (integer labels against ``ceil(threshold)``; float32 labels against the smallest
   float32 not below the threshold). BINARY labels are 0/1, so any threshold in (0, 1] keeps them.
5. **Measures** of the binary masks ``A`` (rater) and ``B`` (other), counted in voxels:
   ``dice = 2|A∩B| / (|A| + |B|)``, ``jaccard = |A∩B| / |A∪B|``, ``volume_ml = |A| · dz·dy·dx / 1000``
   with the ``spacing`` attribute in mm (else the coordinate steps). Counts are exact integers.
6. **Undefined is NaN**, never 0 or an error: a pair where either rater has no such segment (or no
   segmentation of the series), both masks empty (0/0, as the study overlap does), and
   ``rater == other``. A segment one rater delineated as empty has ``volume_ml`` 0; one it lacks
   has NaN. Ordered pairs are kept both ways; Dice and Jaccard are symmetric.

Work is a dask graph per series (:mod:`archivestore.analysis._segmentation_counts`): one task per
z-chunk of its label arrays reads each segment of each rater once and counts every pair's
intersection, and one task per series turns the counts into measures. A task holds one z-chunk of
one series' segmentations; nothing is read before the result is computed, and computing part of
the result (``ds.sel(series=...)``) reads only those series.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from archivestore.analysis._segmentation_counts import series_measures
from archivestore.analysis._write import write_result
from archivestore.errors import InvalidInputError

__all__ = ["segmentation_overlap", "segmentation_overlap_summary", "write_segmentation_overlap"]

_DIMS = ("segment", "z", "y", "x")
_MATCH_KEYS = ("segment_code", "segment_label", "segment")

_DEFINITIONS = {
    "dice": "2 |A and B| / (|A| + |B|) of the binarised masks of rater (A) and other (B), in voxels",
    "jaccard": "|A and B| / |A or B| of the binarised masks of rater (A) and other (B), in voxels",
    "volume_ml": "voxels of rater's binarised mask x dz*dy*dx (mm) / 1000",
    "undefined": "NaN where rater or other lacks the segment (or a segmentation of the series), where both masks "
    "are empty, and where rater == other",
}


@dataclass(frozen=True)
class _Plan:
    """One series to compare: its raters, its segment keys and, per rater, where each key is."""

    series: str
    raters: tuple[str, ...]
    uids: tuple[str, ...]
    matched_by: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    index: np.ndarray  # (key, rater): the key's position in the rater's labels, -1 where absent
    arrays: tuple[da.Array, ...]  # (segment, z, y, x) of each rater, y and x in one chunk
    voxel_ml: float


def _strings(seg: xr.Dataset, name: str) -> list[str] | None:
    if name not in seg.variables:
        return None
    return ["" if v is None else str(v) for v in np.asarray(seg.variables[name].values).ravel()]


def _has_code(code: str) -> bool:
    value, _, scheme = code.partition(":")
    return bool(value.strip() and scheme.strip() and value.strip() != "None" and scheme.strip() != "None")


def _keys_by(segs: Sequence[xr.Dataset], how: str) -> list[list[str]] | None:
    """Every segmentation's keys by ``how``, or None where they would be missing or ambiguous."""
    out = []
    for seg in segs:
        n = seg.sizes["segment"]
        if how == "segment":
            numbers = _strings(seg, "segment") or [str(i + 1) for i in range(n)]
            keys = [f"#{v}" for v in numbers]
        else:
            keys = _strings(seg, how) or []
            present = [_has_code(k) if how == "segment_code" else bool(k.strip()) for k in keys]
            if len(keys) != n or not all(present):
                return None
        if len(set(keys)) != len(keys):
            return None
        out.append(keys)
    return out


def _match(segs: Sequence[xr.Dataset], series: str) -> tuple[str, list[list[str]]]:
    for how in _MATCH_KEYS:
        keys = _keys_by(segs, how)
        if keys is not None:
            return how, keys
    raise InvalidInputError(f"series {series}: a segmentation repeats a SegmentNumber")


def _raters(segs: Sequence[xr.Dataset], series: str) -> tuple[list[str], list[str]]:
    """Rater names (rule 2) and SEG uids of a series' segmentations."""
    uids = [str(seg.attrs.get("series_instance_uid") or f"{i + 1}") for i, seg in enumerate(segs)]
    if len(set(uids)) != len(uids):
        raise InvalidInputError(f"series {series}: the same segmentation is given twice ({uids})")
    names = [str(seg.attrs.get("rater") or "").strip() or uid for seg, uid in zip(segs, uids, strict=True)]
    return [f"{n} [{u}]" if names.count(n) > 1 else n for n, u in zip(names, uids, strict=True)], uids


def _check_grid(segs: Sequence[xr.Dataset], series: str) -> None:
    first = segs[0]
    sources = {str(s.attrs["source_series"]) for s in segs if s.attrs.get("source_series")}
    if len(sources) > 1:
        raise InvalidInputError(f"series {series}: segmentations of different source series {sorted(sources)}")
    for seg in segs[1:]:
        for dim in _DIMS[1:]:
            if seg.sizes.get(dim) != first.sizes.get(dim):
                raise InvalidInputError(f"series {series}: segmentations on different grids "
                                        f"({dim}: {first.sizes.get(dim)} vs {seg.sizes.get(dim)})")
            if dim in first.coords and dim in seg.coords:
                a, b = first.variables[dim].values, seg.variables[dim].values
                if not (np.array_equal(a, b) or np.allclose(a, b, rtol=0, atol=1e-3)):
                    raise InvalidInputError(f"series {series}: segmentations with different {dim} coordinates")


def _voxel_ml(seg: xr.Dataset) -> float:
    """dz*dy*dx / 1000 from the ``spacing`` attribute, else from the coordinate steps (NaN if unknown)."""
    spacing = seg.attrs.get("spacing")
    if spacing is not None and np.size(spacing) == 3:
        steps = [float(s) for s in np.asarray(spacing, dtype=np.float64).ravel()]
    else:
        steps = []
        for dim in _DIMS[1:]:
            values = np.asarray(seg.variables[dim].values, dtype=np.float64) if dim in seg.coords else np.empty(0)
            steps.append(float(np.median(np.abs(np.diff(values)))) if values.size > 1 else math.nan)
    return steps[0] * steps[1] * steps[2] / 1000.0


def _as_dask(seg: xr.Dataset, series: str) -> da.Array:
    if "labels" not in seg:
        raise InvalidInputError(f"series {series}: a segmentation without 'labels'")
    var = seg.variables["labels"]
    if set(var.dims) != set(_DIMS):
        raise InvalidInputError(f"series {series}: labels over {var.dims}, not {_DIMS}")
    data = var.transpose(*_DIMS).data
    if not isinstance(data, da.Array):  # in memory: one block, neither copied nor hashed (from_array does both)
        array = np.asarray(data)
        name = f"labels-{uuid.uuid4().hex}"
        return da.Array({(name, 0, 0, 0, 0): array}, name, tuple((n,) for n in array.shape), meta=array[:0, :0, :0, :0])
    return data.rechunk({2: -1, 3: -1})


def _plan(series: str, segs: Sequence[xr.Dataset]) -> _Plan:
    arrays = tuple(_as_dask(seg, series) for seg in segs)
    _check_grid(segs, series)
    raters, uids = _raters(segs, series)
    how, keys = _match(segs, series)
    order = list(dict.fromkeys(k for per in keys for k in per))
    index = np.full((len(order), len(segs)), -1, dtype=np.int64)
    label_of: dict[str, str] = {}
    for r, (seg, per) in enumerate(zip(segs, keys, strict=True)):
        labels = _strings(seg, "segment_label") or per
        for i, key in enumerate(per):
            index[order.index(key), r] = i
            label_of.setdefault(key, labels[i] if i < len(labels) else key)
    return _Plan(series, tuple(raters), tuple(uids), how, tuple(order), tuple(label_of[k] for k in order),
                 index, arrays, _voxel_ml(segs[0]))


def segmentation_overlap(groups: Mapping[str, Sequence[xr.Dataset]], *, threshold: float = 0.5) -> xr.Dataset:
    """Dice, Jaccard and volumes of every ordered pair of raters per segment of every series.

    Parameters
    ----------
    groups : mapping of str to sequence of xarray.Dataset
        Source SeriesInstanceUID -> the segmentation groups of that series, as
        ``Store.segmentation(uid)`` (or ``xr.open_zarr(store, group="segmentations/<uid>",
        consolidated=False)``) returns them: numpy- or dask-backed ``labels`` (segment, z, y, x).
        Series with fewer than two segmentations are left out.
    threshold : float
        Binarising: a voxel is in a segment when its value ``>= threshold`` (fractional SEGs).

    Returns
    -------
    xarray.Dataset
        Lazy (dask) ``dice`` and ``jaccard`` (series, segment, rater, other) and ``volume_ml``
        (series, segment, rater), float64. Coordinates ``series``, ``segment`` (the matching key),
        ``segment_label``, ``rater``, ``other``, ``matched_by`` (series), ``segmentation``
        (series, rater: SEG uid, ``""`` where none) and ``voxel_ml`` (series). Rules for raters,
        matching, binarising and NaN: see the module documentation.

    Raises
    ------
    archivestore.errors.InvalidInputError
        A non-finite threshold, a segmentation without ``labels`` (segment, z, y, x), or
        segmentations of one series on different grids or of different source series.
    """
    if not math.isfinite(float(threshold)):
        raise InvalidInputError(f"threshold must be a finite number, not {threshold!r}")
    threshold = float(threshold)
    plans = [_plan(str(series), segs) for series, segs in groups.items() if len(segs) >= 2]
    keys = list(dict.fromkeys(k for p in plans for k in p.keys))
    raters = list(dict.fromkeys(r for p in plans for r in p.raters))
    label_of: dict[str, str] = {}
    for p in plans:
        for k, label in zip(p.keys, p.labels, strict=True):
            label_of.setdefault(k, label)
    shape = (len(plans), 3, len(keys), len(raters), len(raters))
    if plans:
        measures = da.concatenate([
            series_measures(p.arrays, p.index, threshold, keys=[keys.index(k) for k in p.keys],
                            raters=[raters.index(r) for r in p.raters], shape=(len(keys), len(raters)),
                            voxel_ml=p.voxel_ml)
            for p in plans], axis=0)
    else:
        measures = da.zeros(shape, dtype=np.float64)
    voxel_ml = np.array([p.voxel_ml for p in plans], dtype=np.float64)
    seg_uid = np.full((len(plans), len(raters)), "", dtype=object)
    for s, p in enumerate(plans):
        for r, uid in zip(p.raters, p.uids, strict=True):
            seg_uid[s, raters.index(r)] = uid

    def strings(values: Iterable[str]) -> np.ndarray:
        return np.array(list(values), dtype=object)

    dims = ("series", "segment", "rater", "other")
    volume = measures[:, 2, :, :, 0] if raters else measures[:, 2].sum(axis=-1)  # no `other` to pick from
    ds = xr.Dataset(
        {
            "dice": (dims, measures[:, 0], {"long_name": "Dice coefficient", "definition": _DEFINITIONS["dice"]}),
            "jaccard": (dims, measures[:, 1], {"long_name": "Jaccard index", "definition": _DEFINITIONS["jaccard"]}),
            "volume_ml": (dims[:3], volume, {"long_name": "segment volume", "units": "ml",
                                             "definition": _DEFINITIONS["volume_ml"]}),
        },
        coords={
            "series": strings(p.series for p in plans),
            "segment": strings(keys),
            "segment_label": ("segment", strings(label_of[k] for k in keys)),
            "rater": strings(raters),
            "other": strings(raters),
            "matched_by": ("series", strings(p.matched_by for p in plans)),
            "segmentation": (("series", "rater"), seg_uid),
            "voxel_ml": ("series", voxel_ml, {"units": "ml"}),
        },
    )
    ds.attrs = {
        "threshold": threshold,
        "binarised": f"value >= {threshold}",
        "matching": "per series: segment_code if every code is present and unique within each segmentation, "
        "else segment_label if every label is, else SegmentNumber ('#n'); see matched_by",
        "undefined": _DEFINITIONS["undefined"],
    }
    return ds


def _nan_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, population std and count of the non-NaN values of each row (NaN, NaN, 0 for none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without values give NaN, as documented
        return np.nanmedian(values, axis=1), np.nanstd(values, axis=1), np.count_nonzero(~np.isnan(values), axis=1)


def segmentation_overlap_summary(ds: xr.Dataset) -> xr.Dataset:
    """Per segment: median, standard deviation and count of Dice and Jaccard over series and pairs.

    Parameters
    ----------
    ds : xarray.Dataset
        A :func:`segmentation_overlap` result (compute or write it first: a lazy one is computed here).

    Returns
    -------
    xarray.Dataset
        In memory, over ``segment`` (with ``segment_label``): ``dice_median``, ``dice_std``
        (population, as ``numpy.std``), ``dice_count`` (defined values; ordered pairs count both
        ways), the same for ``jaccard``, and ``series_count``: series in which two or more raters
        have the segment. A segment without defined values gets NaN statistics and count 0.
    """
    out: dict[str, tuple[str, np.ndarray]] = {}
    for name in ("dice", "jaccard"):
        values = ds[name].transpose("segment", "series", "rater", "other").values
        median, std, count = _nan_stats(values.reshape(values.shape[0], int(np.prod(values.shape[1:]))))
        out.update({f"{name}_median": ("segment", median), f"{name}_std": ("segment", std),
                    f"{name}_count": ("segment", count)})
    present = ~np.isnan(ds["volume_ml"].transpose("segment", "series", "rater").values)
    out["series_count"] = ("segment", np.count_nonzero(present.sum(axis=2) >= 2, axis=1))
    coords = {"segment": ds["segment"].values, "segment_label": ("segment", ds["segment_label"].values)}
    return xr.Dataset(out, coords=coords, attrs={"threshold": ds.attrs.get("threshold")})


def write_segmentation_overlap(store: Any, ds: xr.Dataset, *, storage_options: dict[str, Any] | None = None,
                               compute: bool = True) -> str:
    """Write a :func:`segmentation_overlap` result to the group ``segmentation_overlap`` of a store.

    Parameters
    ----------
    store
        An archivestore ``Store`` (opened with ``mode="a"``), a path or fsspec URL of a store,
        or a zarr store object.
    ds : xarray.Dataset
        The result (lazy: computing happens while writing, on the current dask scheduler).
    storage_options : dict, optional
        fsspec options for a URL.
    compute : bool
        Passed to :meth:`xarray.Dataset.to_zarr`.

    Returns
    -------
    str
        The group path (the group is replaced if it exists), readable with
        ``xr.open_zarr(store, group=path, consolidated=False)``.
    """
    return write_result(store, lambda layout: layout.SEGMENTATION_OVERLAP, ds, storage_options=storage_options,
                        compute=compute)
