"""Three orthogonal slices of a volume, with the segments of one or more segmentations drawn over them.

Planes are drawn in patient millimetres, each in the radiological convention whatever the
acquisition plane: axial with anterior up and the patient's left on the viewer's right, coronal
with superior up and the patient's left on the right, sagittal with superior up and anterior on
the left. The plane an array axis cuts is named from the volume's ``affine`` (its column for that
axis, in LPS); without an affine the volume is taken as axial (z to superior, y to posterior, x to
the patient's left), as stored series of axial CT are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import xarray as xr

from archivestore.errors import InvalidInputError
from archivestore.plot._images import MASK_COLORS

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RATER_LINESTYLES", "store_volume", "volume_slices"]

RATER_LINESTYLES: tuple[Literal["solid", "dashed", "dotted", "dashdot"], ...] = (
    "solid", "dashed", "dotted", "dashdot")
"""Contour line styles of the segmentations, in the order they are given (cycled)."""

_DIMS = ("z", "y", "x")
# without an affine: z to superior (S), y to posterior (P), x to the patient's left (L); rows z, y, x
_AXIAL_LPS = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
# per plane (named by the LPS axis its normal is closest to): its name, the LPS axis drawn left to right
# (increasing rightwards) and the one drawn bottom to top with the sign that points up
_PLANES = {2: ("axial", 0, (1, -1.0)), 1: ("coronal", 0, (2, 1.0)), 0: ("sagittal", 1, (2, 1.0))}

_PANEL_INCHES = 3.0  # height of the tallest plane

Segmentations = xr.Dataset | Sequence[xr.Dataset] | Mapping[str, xr.Dataset] | None


@dataclass(frozen=True)
class _Plane:
    """How one slice is drawn: through ``dim`` at ``index``, ``across`` left to right, ``up`` bottom to top."""

    dim: str
    index: int
    name: str
    across: str
    up: str
    flip_across: bool
    flip_up: bool


def _volume(volume: xr.Dataset | xr.DataArray) -> xr.DataArray:
    array = volume["volume"] if isinstance(volume, xr.Dataset) else volume
    if set(array.dims) != set(_DIMS):
        raise InvalidInputError(f"a volume has dimensions (z, y, x), not {array.dims}")
    return array.transpose(*_DIMS)


def _directions(volume: xr.DataArray, attrs: Mapping[str, Any]) -> np.ndarray:
    """Unit LPS direction of increasing z, y and x index (rows), from the affine if there is one."""
    affine = attrs.get("affine", volume.attrs.get("affine"))
    if affine is None:
        return _AXIAL_LPS
    columns = np.asarray(affine, dtype=float)[:3, :3].T
    return columns / np.linalg.norm(columns, axis=1, keepdims=True)


def _planes(directions: np.ndarray, index: Mapping[str, int]) -> list[_Plane]:
    """The three planes (through z, y and x) in the radiological convention."""
    planes = []
    for k, dim in enumerate(_DIMS):
        name, across_axis, (up_axis, up_sign) = _PLANES[int(np.argmax(np.abs(directions[k])))]
        others = [d for d in _DIMS if d != dim]
        weights = [abs(directions[_DIMS.index(d)][across_axis]) for d in others]
        across = others[int(np.argmax(weights))]
        up = others[1 - others.index(across)]
        planes.append(_Plane(
            dim, index[dim], name, across, up,
            flip_across=directions[_DIMS.index(across)][across_axis] < 0,
            flip_up=directions[_DIMS.index(up)][up_axis] * up_sign < 0,
        ))
    return planes


def _segmentations(labels: Segmentations) -> dict[str, xr.Dataset]:
    """``{rater name: segmentation}``; names from the mapping, else ``rater``, else the SEG uid."""
    if labels is None:
        return {}
    if not isinstance(labels, xr.Dataset) and isinstance(labels, Mapping):
        return {str(name): seg for name, seg in cast(Mapping[str, xr.Dataset], labels).items()}
    out: dict[str, xr.Dataset] = {}
    for k, seg in enumerate([labels] if isinstance(labels, xr.Dataset) else labels, start=1):
        name = str(seg.attrs.get("rater") or seg.attrs.get("series_instance_uid") or f"segmentation {k}")
        out[name if name not in out else f"{name} ({k})"] = seg
    return out


def _segment_keys(seg: xr.Dataset) -> list[tuple[str, str]]:
    """``(name, SegmentNumber)`` of each segment; the name is ``segment_label``, else ``#<number>``."""
    n = seg.sizes["segment"]
    numbers = [str(v) for v in np.asarray(seg["segment"].values)] if "segment" in seg.variables else []
    numbers = numbers or [str(k + 1) for k in range(n)]
    labels = [str(v) for v in np.asarray(seg["segment_label"].values)] if "segment_label" in seg.variables else []
    labels = labels or [""] * n
    return [(label or f"#{number}", number) for label, number in zip(labels, numbers, strict=True)]


def _masks(segs: Mapping[str, xr.Dataset], volume: xr.DataArray, segments: Sequence[str | int] | None,
           threshold: float) -> dict[str, dict[str, xr.DataArray]]:
    """``{rater: {segment name: lazy (z, y, x) bool mask}}`` of the chosen segments, checked against the grid."""
    wanted = None if segments is None else {str(s).removeprefix("#") for s in segments}
    out: dict[str, dict[str, xr.DataArray]] = {}
    for rater, seg in segs.items():
        labels = seg["labels"].transpose("segment", *_DIMS)
        if labels.shape[1:] != volume.shape or any(
                d in labels.coords and d in volume.coords and not np.allclose(labels[d], volume[d]) for d in _DIMS):
            raise InvalidInputError(f"segmentation {rater!r} is not on the volume's grid "
                                    f"({labels.shape[1:]} voxels, the volume has {volume.shape})")
        out[rater] = {name: labels.isel(segment=k) >= threshold
                      for k, (name, number) in enumerate(_segment_keys(seg))
                      if wanted is None or name in wanted or number in wanted}
    return out


def _through_labels(counts: np.ndarray) -> int:
    """Of the slices showing the most segments, the one nearest the labelled voxels' mean position.

    ``counts`` is (segment, position): each segment's labelled voxels in each slice. With no
    labelled voxel at all, the middle slice.
    """
    total = counts.sum(axis=0)
    if not total.any():
        return (len(total) - 1) // 2
    centre = float(np.dot(np.arange(len(total)), total) / total.sum())
    shown = (counts > 0).sum(axis=0)
    best = np.flatnonzero(shown == shown.max())
    return int(best[np.argmin(np.abs(best - centre))])


def _indices(volume: xr.DataArray, masks: Mapping[str, Mapping[str, xr.DataArray]],
             chosen: Mapping[str, int | None]) -> dict[str, int]:
    """Slice indices: those given, else through the labels (:func:`_through_labels`), else the middle."""
    import dask

    by_segment: dict[str, list[Any]] = {}
    for per_rater in masks.values():
        for name, mask in per_rater.items():
            by_segment.setdefault(name, []).append(mask.data)
    missing = [k for k, d in enumerate(_DIMS) if chosen[d] is None]
    counts: dict[str, np.ndarray] = {}
    if by_segment and missing:
        unions = [functools.reduce(np.logical_or, marks) for marks in by_segment.values()]
        sums = [[u.sum(axis=tuple(o for o in range(3) if o != k)) for u in unions] for k in missing]
        counts = {_DIMS[k]: np.asarray(c) for k, c in zip(missing, dask.compute(*sums), strict=True)}
    out = {}
    for d, n in zip(_DIMS, volume.shape, strict=True):
        given = chosen[d]
        if given is not None and not -n <= given < n:
            raise InvalidInputError(f"{d}={given} is outside the volume's {n} {d} positions")
        if given is not None:
            out[d] = given % n
        else:
            out[d] = _through_labels(counts[d]) if d in counts else (n - 1) // 2
    return out


def _edges(centres: np.ndarray, step: float) -> np.ndarray:
    """Cell edges around coordinate centres (midpoints; half a step beyond the ends)."""
    centres = np.asarray(centres, dtype=float)
    if centres.size == 1:
        return np.array([centres[0] - step / 2, centres[0] + step / 2])
    inner = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - inner[0]], inner, [2 * centres[-1] - inner[-1]]])


def _coordinate(volume: xr.DataArray, dim: str, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Centres and edges (mm) along ``dim``; index x spacing where the volume has no coordinate."""
    step = float(spacing[_DIMS.index(dim)])
    centres = (np.asarray(volume[dim].values, dtype=float) if dim in volume.coords
               else np.arange(volume.sizes[dim]) * step)
    return centres, _edges(centres, step)


def _limits(edges: np.ndarray, flip: bool) -> tuple[float, float]:
    """Axis limits over the edges, decreasing when ``flip``."""
    low, high = float(edges[0]), float(edges[-1])
    return (high, low) if flip else (low, high)


def _fill(planes: Mapping[str, Mapping[str, np.ndarray]], colors: Mapping[str, str], alpha: float,
          shape: tuple[int, int]) -> np.ndarray:
    """RGBA of the segments: each segment's colour, opacity ``alpha`` x the share of raters marking the voxel."""
    from matplotlib.colors import to_rgb

    rgba = np.zeros(shape + (4,), dtype=np.float32)
    for name, color in colors.items():
        marks = [per_rater[name] for per_rater in planes.values() if name in per_rater]
        share = np.mean(marks, axis=0) if marks else np.zeros(shape)
        rgba[share > 0] = (*to_rgb(color), 0.0)
        rgba[share > 0, 3] = alpha * share[share > 0]
    return rgba


def _draw(ax: Axes, plane: _Plane, image: np.ndarray, marks: Mapping[str, Mapping[str, np.ndarray]],
          coords: Mapping[str, tuple[np.ndarray, np.ndarray]], colors: Mapping[str, str], window: tuple[float, float],
          fill: float) -> None:
    """One plane: the image, the segments' translucent fill and each rater's contours."""
    (h, h_edges), (v, v_edges) = coords[plane.across], coords[plane.up]
    ax.pcolormesh(h_edges, v_edges, image, cmap="gray", vmin=window[0], vmax=window[1], rasterized=True)
    if fill > 0 and colors:
        ax.pcolormesh(h_edges, v_edges, _fill(marks, colors, fill, image.shape), rasterized=True)
    for k, per_rater in enumerate(marks.values()):
        for name, mask in per_rater.items():
            if mask.any():
                ax.contour(h, v, mask.astype(np.float32), levels=[0.5], colors=[colors[name]],
                           linestyles=[RATER_LINESTYLES[k % len(RATER_LINESTYLES)]], linewidths=1.4)
    ax.set_aspect("equal")
    ax.set_xlim(*_limits(h_edges, plane.flip_across))
    ax.set_ylim(*_limits(v_edges, plane.flip_up))
    ax.set_xlabel(f"{plane.across} (mm)", fontsize="small")
    ax.set_ylabel(f"{plane.up} (mm)", fontsize="small")
    ax.tick_params(labelsize="x-small")
    position = coords[plane.dim][0][plane.index]
    ax.set_title(f"{plane.name}: {plane.dim} = {position:.1f} mm (#{plane.index})", fontsize="medium")


def _figure(sizes: Sequence[tuple[float, float]], *, title: bool, legend: float) -> tuple[Figure, list[Axes]]:
    """A figure with one axes per ``(width, height)`` in mm, side by side at one scale, ``legend`` inches on the right.

    Placed by hand rather than by constrained layout, whose solution varies in the last bits from
    one drawing to the next (and with it the antialiased contour pixels): the same data gives the
    same PNG.
    """
    import matplotlib.pyplot as plt

    scale = _PANEL_INCHES / max(height for _, height in sizes)
    left, gap, bottom, top = 0.6, 0.7, 0.6, 0.35 + (0.3 if title else 0.0)
    width = left + sum(w * scale for w, _ in sizes) + gap * (len(sizes) - 1) + max(legend, 0.2)
    height = bottom + _PANEL_INCHES + top
    fig = plt.figure(figsize=(width, height))
    axes, x = [], left
    for w, h in sizes:
        y = bottom + (_PANEL_INCHES - h * scale) / 2
        axes.append(fig.add_axes((x / width, y / height, w * scale / width, h * scale / height)))
        x += w * scale + gap
    return fig, axes


def volume_slices(
    volume_ds: xr.Dataset | xr.DataArray,
    labels_ds: Segmentations = None,
    *,
    z: int | None = None,
    y: int | None = None,
    x: int | None = None,
    segments: Sequence[str | int] | None = None,
    window: tuple[float, float] | None = (-1000, 400),
    threshold: float = 0.5,
    fill: float = 0.35,
    title: str | None = None,
) -> Figure:
    """Axial, coronal and sagittal slices of a volume, with segmentations drawn over them.

    Parameters
    ----------
    volume_ds
        A ``series/<uid>`` group (``Store.volume(uid)`` or ``xr.open_zarr(...)``) or its
        ``volume`` DataArray: dimensions (z, y, x), coordinates in mm, attribute ``affine``
        (used to name and orient the planes) and ``spacing``. Only the three planes are read.
    labels_ds
        Segmentations on the volume's grid (``Store.segmentation(uid)``, ``Store.segmentations_of``):
        one Dataset, a list (named by their ``rater`` attribute) or ``{name: Dataset}``. Each
        segment is filled in its colour (opacity ``fill`` times the share of segmentations that
        mark the voxel) and every segmentation outlines it in its own line style
        (:data:`RATER_LINESTYLES`); the legend names segments by ``segment_label`` and
        segmentations by rater.
    z, y, x
        Indices of the slices (negative counts from the end). Default: of the slices that show
        the most of the drawn segments, the one nearest the labelled voxels' centre (the middle
        slice when nothing is labelled).
    segments
        The segments to draw, by ``segment_label`` or SegmentNumber (default all).
    window
        ``(lower, upper)`` display limits in the volume's units (HU for CT): values below are
        black, above white. This is the minimum and maximum, not level and width (level ``L``,
        width ``W`` is ``(L - W/2, L + W/2)``); the default -1000..400 shows lung to soft tissue.
        ``None``: the range of the drawn planes.
    threshold
        A voxel is in a segment when its label is ``>= threshold`` (for FRACTIONAL SEGs).
    fill
        Opacity of the segments' fill (0: contours only).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes in millimetres at equal aspect (true physical proportions, uneven slice gaps
        included).

    Raises
    ------
    archivestore.errors.InvalidInputError
        A volume without (z, y, x), a segmentation on another grid, an index out of range.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    volume = _volume(volume_ds)
    attrs = dict(volume_ds.attrs)
    spacing = attrs.get("spacing", volume.attrs.get("spacing", (1.0, 1.0, 1.0)))
    segs = _segmentations(labels_ds)
    masks = _masks(segs, volume, segments, threshold)
    planes = _planes(_directions(volume, attrs), _indices(volume, masks, {"z": z, "y": y, "x": x}))
    coords = {d: _coordinate(volume, d, spacing) for d in _DIMS}
    names = list(dict.fromkeys(name for per_rater in masks.values() for name in per_rater))
    colors = {name: MASK_COLORS[k % len(MASK_COLORS)] for k, name in enumerate(names)}

    handles: list[Artist] = [Patch(facecolor=c, edgecolor=c, alpha=0.8, label=name) for name, c in colors.items()]
    handles += [Line2D([], [], color="0.3", linestyle=RATER_LINESTYLES[k % len(RATER_LINESTYLES)], label=rater)
                for k, rater in enumerate(masks)]
    sizes = [(float(np.ptp(coords[p.across][1])), float(np.ptp(coords[p.up][1]))) for p in planes]
    legend = 0.6 + 0.075 * max((len(str(h.get_label())) for h in handles), default=0)
    fig, axes = _figure(sizes, title=bool(title), legend=legend if handles else 0.0)
    for ax, plane in zip(axes, planes, strict=True):
        cut = {plane.dim: plane.index}
        image = np.asarray(volume.isel(cut).transpose(plane.up, plane.across).values)
        marks = {rater: {name: np.asarray(m.isel(cut).transpose(plane.up, plane.across).values)
                         for name, m in per_rater.items()} for rater, per_rater in masks.items()}
        limits = window if window is not None else (float(np.nanmin(image)), float(np.nanmax(image)))
        _draw(ax, plane, image, marks, coords, colors, limits, fill)
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize="small", frameon=False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def store_volume(store: Any, series_uid: str, *, segmentations: bool = True, **options: Any) -> Figure:
    """:func:`volume_slices` of a stored series with every stored segmentation of it.

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    series_uid
        The series (``series/<uid>``).
    segmentations
        Draw the series' segmentations (``Store.segmentations_of``).
    **options
        Passed to :func:`volume_slices` (``z``, ``y``, ``x``, ``segments``, ``window``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = store.segmentations_of(series_uid) if segmentations else None
    return volume_slices(store.volume(series_uid), labels or None, **options)
