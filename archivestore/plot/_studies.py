"""Figures of study analyses: overlap distributions, feature x feature matrices, agreement grids, scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from archivestore.analysis import agreement_counts
from archivestore.analysis._heatmap import agreement_palette
from archivestore.plot._images import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["agreement_grid", "feature_matrix", "overlap_distributions", "score_figure"]

_LIMITS = {"dice": (0.0, 1.0), "superpixel_dice": (0.0, 1.0), "correlation": (-1.0, 1.0)}
_LABELS = {"dice": "pixel Dice", "superpixel_dice": "superpixel-set Dice", "correlation": "Pearson correlation"}


def _pair_values(overlap: xr.Dataset, measure: str) -> dict[str, np.ndarray]:
    """``{feature: defined values of measure}`` over images and unordered rater pairs."""
    var = overlap[measure].transpose("feature", "image", "rater", "other")
    upper = np.triu(np.ones((var.sizes["rater"], var.sizes["other"]), dtype=bool), k=1)
    values = np.asarray(var.values)[:, :, upper]
    per_feature = values.reshape(len(values), -1)
    return {str(f): v[~np.isnan(v)] for f, v in zip(var["feature"].values, per_feature, strict=True)}


def overlap_distributions(
    overlap: xr.Dataset,
    measures: Sequence[str] = ("dice", "correlation"),
    *,
    kind: Literal["violin", "box"] = "violin",
) -> Figure:
    """Per-feature distributions of rater-pair overlap measures, one panel per measure.

    Parameters
    ----------
    overlap
        A result of :func:`archivestore.analysis.overlap` (computed or lazy; read
        from ``studies/<study>/overlap`` with plain xarray works too).
    measures
        Variables of ``overlap`` to show (``dice``, ``correlation``, ``superpixel_dice``).
    kind
        ``"violin"`` (with the median marked) or ``"box"``.

    Returns
    -------
    matplotlib.figure.Figure
        Each rater pair counts once per image (the measures are symmetric; the
        ordered pairs of the result hold each value twice); NaN cases are left out
        and ``n`` under each feature says how many values remain.
    """
    import matplotlib.pyplot as plt

    if kind not in ("violin", "box"):
        raise ValueError(f"kind must be 'violin' or 'box', not {kind!r}")
    missing = [m for m in measures if m not in overlap]
    if missing:
        raise KeyError(f"the overlap result has no {', '.join(map(repr, missing))}")
    features = [str(f) for f in overlap["feature"].values]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.8), layout="constrained", squeeze=False)
    for ax, measure in zip(axes[0], measures, strict=True):
        per_feature = _pair_values(overlap, measure)
        drawn = [(i, v) for i, v in enumerate(per_feature.values()) if v.size]
        positions, data = [i + 1 for i, _ in drawn], [v for _, v in drawn]
        if data and kind == "violin":
            ax.violinplot(data, positions=positions, showmedians=True, showextrema=False)
        elif data:
            ax.boxplot(data, positions=positions, widths=0.5, showfliers=True)
        ax.set_xticks(range(1, len(features) + 1))
        labels = [f"{f}\nn={per_feature[f].size}" for f in features]
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
        ax.set_ylim(*_LIMITS.get(measure, (None, None)))
        ax.set_ylabel(_LABELS.get(measure, measure))
        ax.grid(axis="y", alpha=0.3)
    return fig


def feature_matrix(
    overlap: xr.Dataset,
    measure: str = "dice",
    stat: Literal["median", "std", "count"] = "median",
    *,
    ax: Axes | None = None,
) -> Figure:
    """Feature x feature agreement: one rater's feature against another rater's feature.

    Parameters
    ----------
    overlap
        A result of :func:`archivestore.analysis.overlap` with ``cross_features=True``
        (it holds ``<measure>_cross_<stat>`` over ``feature, other_feature``).
    measure, stat
        Which summary to show, e.g. the median pixel Dice.
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
        An annotated matrix; rows are the first rater's feature, columns the other's.
    """
    name = f"{measure}_cross_{stat}"
    if name not in overlap:
        raise KeyError(f"the overlap result has no {name!r}: compute it with overlap(..., cross_features=True)")
    matrix = overlap[name].transpose("feature", "other_feature")
    values = np.asarray(matrix.values, dtype=np.float64)
    features = [str(f) for f in matrix["feature"].values]
    fig, ax = new_axes(ax, (1.3 * len(features) + 2.4, 1.1 * len(features) + 1.4))
    low, high = _LIMITS.get(measure, (np.nanmin(values), np.nanmax(values))) if stat == "median" else (None, None)
    cmap = "RdBu_r" if measure == "correlation" and stat == "median" else "viridis"
    shown = ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
    ax.figure.colorbar(shown, ax=ax, label=f"{stat} of {_LABELS.get(measure, measure)}")
    ax.set_xticks(range(len(features)), features, rotation=30, ha="right")
    ax.set_yticks(range(len(features)), features)
    ax.set_xlabel("other rater's feature")
    ax.set_ylabel("rater's feature")
    luminance = np.asarray(shown.cmap(shown.norm(values)))[..., :3] @ np.array([0.299, 0.587, 0.114])
    for (i, j), v in np.ndenumerate(values):
        text = "-" if np.isnan(v) else (f"{v:.0f}" if stat == "count" else f"{v:.2f}")
        dark_cell = np.isnan(v) or luminance[i, j] < 0.5
        weight = "bold" if i == j else "normal"  # the same feature on both sides: the plain agreement
        ax.text(j, i, text, ha="center", va="center", fontsize="small", fontweight=weight,
                color="white" if dark_cell else "black")
    return fig


def agreement_grid(
    store: Any,
    study: str | xr.Dataset,
    image_ids: Sequence[str],
    features: Sequence[str],
    *,
    definite: bool = False,
    cell_inches: float = 2.4,
) -> Figure:
    """How many raters marked each superpixel: images (rows) x features (columns).

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    study
        Study name or its Dataset (``store.study(name)``).
    image_ids, features
        The rows and columns of the grid.
    definite
        Count only "definite" marks (value 1), as :func:`archivestore.analysis.agreement_counts`.
    cell_inches
        Width of one cell.

    Returns
    -------
    matplotlib.figure.Figure
        Every cell paints the count of its superpixels over the image (count 0
        leaves the image), in the colours of :func:`archivestore.analysis.heatmap`
        for the study's number of raters, with one shared colour bar.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    ds = store.study(study) if isinstance(study, str) else study
    n_raters = int(ds.sizes["rater"])
    if n_raters == 0:
        raise ValueError("the study has no raters")
    cmap = ListedColormap(agreement_palette(n_raters)[1:] / 255.0)
    norm = BoundaryNorm(np.arange(0.5, n_raters + 1), cmap.N)
    fig, axes = plt.subplots(len(image_ids), len(features), squeeze=False, layout="constrained",
                             figsize=(cell_inches * len(features) + 1.0, cell_inches * 0.8 * len(image_ids) + 0.6))
    shown = None
    for i, image_id in enumerate(image_ids):
        rgb, index = store.read(image_id, "image"), store.read(image_id, "superpixels")
        for j, feature in enumerate(features):
            ax = axes[i, j]
            counts = np.asarray(agreement_counts(store, ds, image_id, feature, definite=definite).values)
            ax.imshow(rgb, interpolation="nearest")
            painted = np.ma.masked_equal(counts[index], 0)
            shown = ax.imshow(painted, cmap=cmap, norm=norm, alpha=0.6, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(image_id, fontsize="small")
            if i == 0:
                ax.set_title(feature, fontsize="small")
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, ticks=range(1, n_raters + 1), shrink=0.8)
        bar.set_label(f"raters who marked it ({'definite' if definite else 'possible or definite'})")
    return fig


def score_figure(
    scores: xr.Dataset,
    metrics: Sequence[str] = ("jaccard", "dice", "sensitivity", "specificity"),
    *,
    ax: Axes | None = None,
) -> Figure:
    """Per-image segmentation scores, with the macro averages as dashed lines.

    Parameters
    ----------
    scores
        A :func:`archivestore.analysis.score` result of lesion masks (``kind="mask"``);
        for attribute scores pick one feature first: ``scores.sel(feature=name)``.
    metrics
        Per-image metrics to show.
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
        One marker per image and metric; the threshold of the threshold Jaccard
        (``attrs["threshold"]``) as a grey line.
    """
    if "feature" in scores.dims:
        raise ValueError("attribute scores: pick one feature first, scores.sel(feature=name)")
    images = [str(i) for i in scores["image"].values]
    fig, ax = new_axes(ax, (max(4.0, 0.6 * len(images) + 2.5), 3.6))
    offsets = np.linspace(-0.2, 0.2, len(metrics)) if len(metrics) > 1 else np.zeros(1)
    for k, metric in enumerate(metrics):
        color = f"C{k}"
        values = np.asarray(scores[metric].values, dtype=np.float64)
        ax.plot(np.arange(len(images)) + offsets[k], values, "o", color=color, label=metric)
        if "macro_average" in scores:
            ax.axhline(float(scores["macro_average"].sel(metric=metric)), color=color, linestyle="--", linewidth=1)
    if "threshold" in scores.attrs:
        ax.axhline(float(scores.attrs["threshold"]), color="0.5", linewidth=1, label="threshold Jaccard cut")
    ax.set_xticks(range(len(images)), images, rotation=30, ha="right", fontsize="small")
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("score")
    truth, prediction = scores.attrs.get("truth"), scores.attrs.get("prediction")
    if truth and prediction:
        ax.set_title(f"{prediction} against {truth} (dashed: macro averages)", fontsize="medium")
    ax.legend(fontsize="small", loc="lower left", ncols=min(3, len(metrics) + 1))
    ax.grid(axis="y", alpha=0.3)
    return fig
