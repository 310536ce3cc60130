"""Segmentation scores of one rater's masks against another's.

The definitions, edge cases and averages are those of the official ISIC challenge
scoring (``isic-challenge-scoring`` 5.6.0, ``segmentation.py``, ``metrics.py``,
``confusion.py`` and ``task2.py``):

* every image gets a binary confusion matrix (TP, FP, FN, TN pixel counts);
* accuracy = (TP + TN) / all; sensitivity = TP / (TP + FN), 1 when the truth is
  empty; specificity = TN / (TN + FP), 1 when the truth covers the whole image;
  Jaccard = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN), both 1 when
  truth and prediction are both empty; threshold Jaccard = Jaccard if it is at
  least 0.65, else 0;
* the macro average is the plain mean over images;
* for attribute masks (ISIC 2018 task 2) the official score is, per attribute, the
  Jaccard and Dice of the *sum of the per-image confusion matrices normalised to
  fractions of their image* (a micro average that weighs every image equally);
  ``micro_average`` pools all attributes the same way.

Masks in the store are 0/1 (the ``> 128`` threshold on 0-255 gray levels is
applied when masks are decoded at ingest, see :func:`archivestore.imaging.decode_mask`),
so a pixel is inside a mask when its stored value is non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "METRICS",
    "confusion_counts",
    "metrics_from_counts",
    "score",
    "score_table",
    "scored_image_ids",
]

from archivestore.layout import GROUND_TRUTH  # noqa: E402

METRICS = ("accuracy", "sensitivity", "specificity", "jaccard", "threshold_jaccard", "dice")
"""The per-image metrics, in the order of the official scoring."""

COUNTS = ("tp", "fp", "fn", "tn")

THRESHOLD_JACCARD = 0.65

Kind = Literal["mask", "attribute"]


# --------------------------------------------------------------------------- metrics


def confusion_counts(truth: Any, prediction: Any, axis: int | tuple[int, ...] | None = None) -> Any:
    """Binary confusion counts of two masks.

    Parameters
    ----------
    truth, prediction
        numpy or dask arrays of the same shape; non-zero values are inside the mask.
    axis
        Axes to count over (all by default), e.g. ``(-2, -1)`` for per-feature
        counts of ``(feature, y, x)`` masks.

    Returns
    -------
    array
        int64 array with a last axis of length 4: TP, FP, FN, TN. Lazy if the
        inputs are dask arrays.
    """
    if truth.shape != prediction.shape:
        raise ValueError(f"truth has shape {truth.shape}, prediction {prediction.shape}")
    t = truth != 0
    p = prediction != 0
    if axis is None:
        axis = tuple(range(t.ndim))
    elif isinstance(axis, int):
        axis = (axis,)
    axis = tuple(a % t.ndim for a in axis)
    size = int(np.prod([t.shape[a] for a in axis], dtype=np.int64))
    tp = (t & p).sum(axis=axis, dtype=np.int64)
    fp = (p & ~t).sum(axis=axis, dtype=np.int64)
    fn = (t & ~p).sum(axis=axis, dtype=np.int64)
    tn = size - tp - fp - fn
    stack = da.stack if isinstance(tp, da.Array) else np.stack
    return stack([tp, fp, fn, tn], axis=-1)


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def metrics_from_counts(counts: Any, threshold: float = THRESHOLD_JACCARD) -> dict[str, np.ndarray]:
    """The official per-image metrics from confusion counts.

    Parameters
    ----------
    counts
        Array with a last axis TP, FP, FN, TN (as :func:`confusion_counts` returns);
        any leading shape. Fractions (normalised counts) work as well.
    threshold
        Threshold of the threshold Jaccard (0.65 in the challenge).

    Returns
    -------
    dict
        ``{metric: float64 array}`` for every name in :data:`METRICS`, with the
        official edge cases (see the module docstring). Accuracy is NaN for an
        image of no pixels.
    """
    c = np.asarray(counts, dtype=np.float64)
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    jaccard = _ratio(tp, tp + fp + fn, 1.0)
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn, np.nan),
        "sensitivity": _ratio(tp, tp + fn, 1.0),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "jaccard": jaccard,
        "threshold_jaccard": np.where(jaccard >= threshold, jaccard, 0.0),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
    }


# --------------------------------------------------------------------------- store access


def _masks_dataset(store: Any, rater: str, image_id: str) -> xr.Dataset | None:
    """``rater``'s masks of ``image_id`` (:meth:`Store.masks`), or ``None`` if it has none."""
    try:
        return store.masks(image_id, rater)
    except KeyError:
        return None


def _rater_image_ids(store: Any, rater: str) -> list[str]:
    """Image ids for which ``rater`` may have masks (complete images only)."""
    return list(store.mask_image_ids(rater))


def scored_image_ids(store: Any, truth: str = GROUND_TRUTH, prediction: str = "model") -> list[str]:
    """Complete images for which both raters have masks (store order).

    For ``ground_truth`` every complete image counts; :func:`score` skips the ones
    whose group lacks the scored variable.
    """
    other = set(_rater_image_ids(store, prediction if truth == GROUND_TRUTH else truth))
    return [i for i in _rater_image_ids(store, truth) if i in other]


def _image_counts(
    t_ds: xr.Dataset | None, p_ds: xr.Dataset | None, kind: Kind
) -> tuple[da.Array | np.ndarray, list[str] | None] | None:
    """Lazy counts for one image, or ``None`` when one side lacks the variable.

    Returns ``(counts, None)`` with counts ``(4,)`` for lesion masks, and
    ``(counts, names)`` with counts ``(len(names), 4)`` for the attribute features
    ``names`` that both raters have (in the truth's order).
    """
    if t_ds is None or p_ds is None or kind not in t_ds or kind not in p_ds:
        return None
    t, p = t_ds[kind], p_ds[kind]
    if kind == "mask":
        return confusion_counts(t.data, p.data), None
    p_feat = {str(f) for f in p["feature"].values}
    both = [str(f) for f in t["feature"].values if str(f) in p_feat]
    if not both:
        return None
    return confusion_counts(t.sel(feature=both).data, p.sel(feature=both).data, axis=(-2, -1)), both


def _compute_counts(
    store: Any,
    ids: Sequence[str],
    truth: str,
    prediction: str,
    kind: Kind,
    batch_size: int,
    strict: bool,
) -> tuple[list[str], list[np.ndarray], list[list[str] | None], list[str]]:
    """Counts of every scorable image, ``batch_size`` images per dask computation.

    Returns the scored ids, their counts, their scored features (attributes) and the
    union of the truth's features over all images, in first-seen order.
    """
    done_ids: list[str] = []
    done_counts: list[np.ndarray] = []
    done_names: list[list[str] | None] = []
    features: dict[str, None] = {}
    for start in range(0, len(ids), batch_size):
        lazy = []
        for image_id in ids[start : start + batch_size]:
            t_ds = _masks_dataset(store, truth, image_id)
            p_ds = _masks_dataset(store, prediction, image_id)
            if kind == "attribute" and t_ds is not None and "attribute" in t_ds:
                features.update((str(f), None) for f in t_ds["feature"].values)
            try:
                got = _image_counts(t_ds, p_ds, kind)
            except ValueError as exc:
                raise ValueError(f"{image_id}: {exc}") from None
            if got is None:
                if strict:
                    who = truth if t_ds is None or kind not in t_ds else prediction
                    raise KeyError(f"{image_id}: no {kind} masks of rater {who!r} (or none in common)")
                continue
            lazy.append((image_id, *got))
        computed = dask.compute(*[counts for _, counts, _ in lazy])
        for (image_id, _, names), counts in zip(lazy, computed, strict=False):
            done_ids.append(image_id)
            done_counts.append(np.asarray(counts, dtype=np.int64))
            done_names.append(names)
    return done_ids, done_counts, done_names, list(features)


# --------------------------------------------------------------------------- score


def score(
    store: Any,
    truth: str = GROUND_TRUTH,
    prediction: str = "model",
    kind: Kind = "mask",
    *,
    image_ids: Sequence[str] | None = None,
    threshold: float = THRESHOLD_JACCARD,
    batch_size: int = 64,
) -> xr.Dataset:
    """Score rater ``prediction``'s masks against rater ``truth``'s, per image.

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    truth, prediction
        Rater names; ``"ground_truth"`` is the masks in ``images/<id>``, any other
        rater's masks are in ``masks/<rater>/<id>``.
    kind
        ``"mask"`` for lesion segmentation (ISIC task 1), ``"attribute"`` for the
        per-feature attribute masks (ISIC 2018 task 2).
    image_ids
        Images to score. By default every complete image that has masks of both
        raters; if given, an image lacking either raises ``KeyError``.
    threshold
        Threshold of the threshold Jaccard.
    batch_size
        Images per dask computation (bounds the size of one task graph).

    Returns
    -------
    xarray.Dataset
        For ``kind="mask"``: ``tp, fp, fn, tn`` (image) int64 pixel counts, one float64
        variable (image) per metric of :data:`METRICS`, and ``macro_average`` (metric)
        the mean over images. ``attrs["overall"]`` is the macro threshold Jaccard (the
        challenge's ranking score).

        For ``kind="attribute"`` the per-image variables have dims (image, feature) and
        are NaN (counts 0, ``scored`` false) where either rater has no mask for that
        feature; ``macro_average`` is (feature, metric); ``micro_jaccard`` and
        ``micro_dice`` (feature) are the official task 2 per-attribute scores and
        ``micro_average`` (summary) with coord ``summary`` = jaccard, dice pools all
        attributes; ``attrs["overall"]`` is its Jaccard.

    Raises
    ------
    KeyError
        ``prediction`` has no masks in the store, or an image named in ``image_ids``
        lacks a mask.
    ValueError
        ``kind`` is unknown, or two masks of an image differ in shape.
    """
    if kind not in ("mask", "attribute"):
        raise ValueError(f"kind must be 'mask' or 'attribute', not {kind!r}")
    if truth == prediction:
        raise ValueError("truth and prediction are the same rater")
    strict = image_ids is not None
    if image_ids is None:
        ids = scored_image_ids(store, truth, prediction)
    else:
        ids = list(image_ids)
        _rater_image_ids(store, prediction)  # raises KeyError for an unknown rater
    done_ids, counts, names, features = _compute_counts(store, ids, truth, prediction, kind, batch_size, strict)
    attrs = {
        "truth": truth,
        "prediction": prediction,
        "kind": kind,
        "threshold": float(threshold),
        "definitions": "isic-challenge-scoring 5.6.0",
    }
    if kind == "mask":
        return _mask_dataset(done_ids, counts, threshold, attrs)
    return _attribute_dataset(done_ids, counts, names, features, threshold, attrs)


def _mask_dataset(ids: list[str], counts: list[np.ndarray], threshold: float, attrs: dict) -> xr.Dataset:
    c = np.stack(counts) if counts else np.zeros((0, 4), dtype=np.int64)
    per_image = metrics_from_counts(c, threshold)
    ds = xr.Dataset(coords={"image": np.array(ids, dtype=object)}, attrs=attrs)
    for i, name in enumerate(COUNTS):
        ds[name] = ("image", c[:, i])
    for name in METRICS:
        ds[name] = ("image", per_image[name])
    macro = [float(np.mean(per_image[name])) if len(ids) else np.nan for name in METRICS]
    ds["macro_average"] = xr.DataArray(macro, dims="metric", coords={"metric": list(METRICS)})
    ds.attrs["overall"] = float(ds["macro_average"].sel(metric="threshold_jaccard"))
    return ds


def _attribute_dataset(
    ids: list[str],
    counts: list[np.ndarray],
    names: list[list[str] | None],
    features: list[str],
    threshold: float,
    attrs: dict,
) -> xr.Dataset:
    n_img, n_feat = len(ids), len(features)
    c = np.zeros((n_img, n_feat, 4), dtype=np.int64)
    scored = np.zeros((n_img, n_feat), dtype=bool)
    column = {f: k for k, f in enumerate(features)}
    for i, (cnt, scored_names) in enumerate(zip(counts, names, strict=False)):
        cols = [column[f] for f in scored_names or []]
        scored[i, cols] = True
        c[i, cols] = cnt
    per_image = metrics_from_counts(c, threshold)
    ds = xr.Dataset(
        coords={"image": np.array(ids, dtype=object), "feature": np.array(features, dtype=object)},
        attrs=attrs,
    )
    ds["scored"] = (("image", "feature"), scored)
    for i, name in enumerate(COUNTS):
        ds[name] = (("image", "feature"), c[..., i])
    for name in METRICS:
        ds[name] = (("image", "feature"), np.where(scored, per_image[name], np.nan))
    ds["macro_average"] = xr.concat(
        [ds[name].mean("image", skipna=True) for name in METRICS], dim="metric"
    ).assign_coords(metric=list(METRICS))
    # official task 2: sum per-image confusion matrices normalised to fractions of the image
    total = c.sum(axis=-1, keepdims=True)
    frac = np.divide(c, total, out=np.zeros(c.shape, dtype=np.float64), where=total != 0)
    frac[~scored] = 0.0
    per_feature = frac.sum(axis=0)
    pooled = per_feature.sum(axis=0)
    m_feat = metrics_from_counts(per_feature, threshold)
    m_all = metrics_from_counts(pooled, threshold)
    has = scored.any(axis=0)
    ds["micro_jaccard"] = ("feature", np.where(has, m_feat["jaccard"], np.nan))
    ds["micro_dice"] = ("feature", np.where(has, m_feat["dice"], np.nan))
    any_scored = bool(scored.any())
    ds["micro_average"] = xr.DataArray(
        [float(m_all["jaccard"]) if any_scored else np.nan, float(m_all["dice"]) if any_scored else np.nan],
        dims="summary",
        coords={"summary": ["jaccard", "dice"]},
    )
    ds.attrs["overall"] = float(ds["micro_average"].sel(summary="jaccard"))
    return ds


def score_table(scores: xr.Dataset) -> pd.DataFrame:
    """The per-image rows of a :func:`score` result as a DataFrame.

    Index ``image`` (``(image, feature)`` for attribute scores, unscored pairs
    dropped); columns ``tp, fp, fn, tn`` and the metrics of :data:`METRICS`.
    """
    cols = list(COUNTS) + list(METRICS)
    if "feature" in scores.dims:
        frame = scores[cols + ["scored"]].to_dataframe()
        frame = frame[frame["scored"]].drop(columns="scored")
    else:
        frame = scores[cols].to_dataframe()
    return frame[cols]
