"""Microscopy pictures: a plate's well grid, and a multichannel image as an additive colour composite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from archivestore.errors import InvalidInputError
from archivestore.plot._images import new_axes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_CHANNEL_COLORS", "channel_composite", "composite_rgb", "plate_map"]

DEFAULT_CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00")
"""Channel colours (RRGGBB) where an image has no OMERO channel metadata, in channel order (cycled)."""

_EMPTY_FACE = "white"
_IMAGED_FACE = "0.75"  # a well with images and no value
_MAX_WELL_TEXT = 96  # wells of a plate up to which categorical values are written into the wells


# ------------------------------------------------------------------------------------------ plate map
def _grid(plate_ds: xr.Dataset | xr.DataArray) -> xr.DataArray:
    grid = plate_ds["image_id"] if isinstance(plate_ds, xr.Dataset) else plate_ds
    if not {"row", "column"} <= set(grid.dims):
        raise InvalidInputError(f"a plate grid has dimensions (row, column[, field]), not {grid.dims}")
    return grid.transpose("row", "column", ...)


def _well_values(values: Mapping[str, Any] | pd.Series | None) -> dict[str, Any]:
    """``{well: value}``; a list of values (a repeated annotation key) becomes its values joined by ", "."""
    out: dict[str, Any] = {}
    if values is None:
        return out
    for well, value in values.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        out[str(well)] = value
    return out


def plate_map(
    plate_ds: xr.Dataset | xr.DataArray,
    values: Mapping[str, Any] | pd.Series | None = None,
    *,
    title: str | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
) -> Figure:
    """A plate's well grid as a plate: one circle per well, row and column labels on the sides.

    Parameters
    ----------
    plate_ds
        A ``plates/<id>`` group (``Store.plate(id)`` or ``xr.open_zarr``) or its ``image_id``
        DataArray: (row, column[, field]) image ids, ``""`` where a well has none, with row and
        column labels as coordinates.
    values
        A value per well, keyed by well name (row label + column label, e.g. ``"B3"``, as the
        metadata table's ``well`` column): numbers are coloured on ``cmap`` with a colour bar;
        anything else (e.g. ``map.Gene Symbol``) is a category with a colour of its own, named in
        the legend (and written in the wells of plates of up to 96 wells). A list (a repeated
        annotation key) is one category, its values joined by ``", "``. Wells with images but
        no value are grey; wells without images are white.
    title
        Axes title.
    cmap
        Colour map of numeric values.
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
        Each well is a :class:`matplotlib.patches.Circle` whose ``gid`` is the well's name.
    """
    import matplotlib as mpl
    from matplotlib.patches import Circle, Patch

    grid = _grid(plate_ds)
    rows = [str(r) for r in np.asarray(grid["row"].values)] if "row" in grid.coords else \
        [str(r) for r in range(grid.sizes["row"])]
    columns = [str(c) for c in np.asarray(grid["column"].values)] if "column" in grid.coords else \
        [str(c) for c in range(grid.sizes["column"])]
    ids = np.asarray(grid.values).astype(object).reshape(len(rows), len(columns), -1)  # StringDType, str, object
    imaged = (ids != "").any(axis=-1)
    by_well = _well_values(values)
    numeric = bool(by_well) and all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
                                    for v in by_well.values())
    colormap = mpl.colormaps[cmap]
    norm = mpl.colors.Normalize(*(np.nanmin(list(by_well.values())), np.nanmax(list(by_well.values())))
                                if numeric else (0, 1))
    categories = {} if numeric else {v: None for v in by_well.values()}
    palette = mpl.colormaps["tab10" if len(categories) <= 10 else "tab20"]
    category_colors = {v: palette(k % palette.N) for k, v in enumerate(categories)}

    fig, ax = new_axes(ax, (1.2 + 0.55 * len(columns), 0.8 + 0.55 * len(rows)))
    text = not numeric and len(rows) * len(columns) <= _MAX_WELL_TEXT
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            well = f"{row}{column}"
            value = by_well.get(well)
            if value is not None and numeric:
                face: Any = colormap(norm(value))
            elif value is not None:
                face = category_colors[value]
            else:
                face = _IMAGED_FACE if imaged[i, j] else _EMPTY_FACE
            ax.add_patch(Circle((j, i), 0.42, facecolor=face, edgecolor="0.35", linewidth=0.8, gid=well))
            if text and value is not None:
                dark = float(np.dot(mpl.colors.to_rgb(face), (0.299, 0.587, 0.114))) < 0.5
                ax.text(j, i, str(value), ha="center", va="center", fontsize="xx-small", clip_on=True,
                        color="white" if dark else "black")
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # row A at the top
    ax.set_aspect("equal")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize="small")
    for spine in ax.spines.values():
        spine.set_color("0.6")
    if numeric:
        fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=colormap), ax=ax, shrink=0.8)
    valued = np.array([[f"{r}{c}" in by_well for c in columns] for r in rows], dtype=bool)
    handles = [Patch(facecolor=c, edgecolor="0.35", label=str(v)) for v, c in category_colors.items()]
    if (imaged & ~valued).any():
        handles.append(Patch(facecolor=_IMAGED_FACE, edgecolor="0.35", label="imaged"))
    if (~imaged & ~valued).any():
        handles.append(Patch(facecolor=_EMPTY_FACE, edgecolor="0.35", label="no image"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


# ---------------------------------------------------------------------------------- channel composite
def _image(image_ds: xr.Dataset | xr.DataArray) -> xr.DataArray:
    image = image_ds["image"] if isinstance(image_ds, xr.Dataset) else image_ds
    if not {"y", "x"} <= set(image.dims) or not set(image.dims) <= {"t", "channel", "z", "y", "x"}:
        raise InvalidInputError(f"a microscopy image has dimensions from (t, channel, z, y, x), not {image.dims}")
    return image


def _index(image: xr.DataArray, dim: str, index: int | None) -> int | None:
    if index is None:
        return None
    if dim not in image.dims:
        raise InvalidInputError(f"{dim}={index}: the image has no {dim} axis ({image.dims})")
    n = image.sizes[dim]
    if not -n <= index < n:
        raise InvalidInputError(f"{dim}={index} is outside the image's {n} {dim} positions")
    return index % n


def _rgb(color: str) -> np.ndarray:
    color = color.lstrip("#")
    if len(color) not in (6, 8):
        raise InvalidInputError(f"channel colour {color!r} is not RRGGBB")
    return np.array([int(color[k:k + 2], 16) for k in (0, 2, 4)], dtype=np.float64) / 255


def _channel_settings(image: xr.DataArray, planes: np.ndarray, channels: Sequence[Mapping[str, Any]] | None,
                      ) -> list[tuple[int, np.ndarray, float, float]]:
    """``(channel index, RGB colour, window start, window end)`` of each channel drawn."""
    channels = list(channels if channels is not None else image.attrs.get("channels") or [])
    if channels and len(channels) != planes.shape[0]:
        raise InvalidInputError(f"{len(channels)} channel settings for {planes.shape[0]} channels")
    drawn = [k for k, c in enumerate(channels) if c.get("active", True)] if channels else []
    out = []
    for k in drawn or range(planes.shape[0]):
        setting = channels[k] if channels else {}
        window = setting.get("window") or {}
        start = float(window.get("start", np.min(planes[k])))
        end = float(window.get("end", np.max(planes[k])))
        out.append((k, _rgb(setting.get("color") or DEFAULT_CHANNEL_COLORS[k % len(DEFAULT_CHANNEL_COLORS)]),
                    start, end))
    return out


def _composite(image_ds: xr.Dataset | xr.DataArray, z: int | None, t: int | None,
               channels: Sequence[Mapping[str, Any]] | None,
               ) -> tuple[np.ndarray, list[tuple[int, np.ndarray, float, float]]]:
    """The composite (see :func:`composite_rgb`) and the settings of the channels drawn."""
    image = _image(image_ds)
    zi, ti = _index(image, "z", z), _index(image, "t", t)
    if "t" in image.dims:
        image = image.isel(t=ti or 0)
    if "z" in image.dims:
        image = image.isel(z=zi) if zi is not None else image.max("z")
    if "channel" not in image.dims:
        image = image.expand_dims("channel")
    planes = np.asarray(image.transpose("channel", "y", "x").values, dtype=np.float64)
    rgb = np.zeros(planes.shape[1:] + (3,))
    settings = _channel_settings(_image(image_ds), planes, channels)
    for k, color, start, end in settings:
        scaled = np.clip((planes[k] - start) / (end - start if end != start else 1.0), 0.0, 1.0)
        rgb += scaled[..., None] * color
    return np.clip(rgb, 0.0, 1.0), settings


def composite_rgb(
    image_ds: xr.Dataset | xr.DataArray,
    *,
    z: int | None = None,
    t: int | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
) -> np.ndarray:
    """The additive colour composite of a multichannel image (what :func:`channel_composite` draws).

    Each channel is scaled linearly from its window's ``start`` (black) to ``end`` (full colour),
    clipped, multiplied by its colour, and the channels are added, clipped to 1.

    Parameters
    ----------
    image_ds
        An ``images/<id>`` group or its ``image`` DataArray with axes from (t, channel, z, y, x)
        (an image without ``channel`` is one channel).
    z
        The z plane; default: the maximum projection over z.
    t
        The time point (default the first).
    channels
        OMERO channel settings, one per channel: ``color`` (``RRGGBB``), ``window`` (``start``,
        ``end``), ``active`` (inactive channels are left out). Default: the image's
        ``channels`` attribute; without one, :data:`DEFAULT_CHANNEL_COLORS` and each channel's
        range.

    Returns
    -------
    numpy.ndarray
        ``(y, x, 3)`` float64 in 0..1.

    Raises
    ------
    archivestore.errors.InvalidInputError
        Other axes, an index out of range, channel settings that do not match the channels.
    """
    return _composite(image_ds, z, t, channels)[0]


def _extent(image: xr.DataArray) -> tuple[tuple[float, float, float, float] | None, str]:
    """imshow extent from the y and x coordinates (pixel edges), and the axis unit."""
    if "y" not in image.coords or "x" not in image.coords:
        return None, "pixels"
    y, x = (np.asarray(image[d].values, dtype=float) for d in ("y", "x"))
    dy = float(y[1] - y[0]) if y.size > 1 else 1.0
    dx = float(x[1] - x[0]) if x.size > 1 else 1.0
    unit = str(image["x"].attrs.get("units") or image["x"].attrs.get("unit") or "")
    unit = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm"}.get(unit, unit)
    return (float(x[0] - dx / 2), float(x[-1] + dx / 2), float(y[-1] + dy / 2), float(y[0] - dy / 2)), unit


def channel_composite(
    image_ds: xr.Dataset | xr.DataArray,
    *,
    z: int | None = None,
    t: int | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A multichannel microscopy image as an additive colour composite in its OMERO colours and windows.

    Parameters
    ----------
    image_ds, z, t, channels
        As :func:`composite_rgb` (by default the maximum projection over z of the first time
        point, in the image's OMERO channel colours and windows).
    title
        Axes title (default: the image's ``Name`` attribute, if any).
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
        The composite drawn with ``imshow`` in the image's physical units (its y and x
        coordinates), the channels named in their colours in the legend.
    """
    from matplotlib.patches import Patch

    rgb, settings = _composite(image_ds, z, t, channels)
    image = _image(image_ds)
    extent, unit = _extent(image)
    fig, ax = new_axes(ax, (5.0 * rgb.shape[1] / max(rgb.shape), 0.6 + 5.0 * rgb.shape[0] / max(rgb.shape)))
    ax.imshow(rgb, interpolation="nearest", extent=extent)
    names = ([str(c) for c in np.asarray(image["channel"].values)] if "channel" in image.coords
             else [f"channel {k}" for k in range(image.sizes.get("channel", 1))])
    handles = [Patch(facecolor=(color[0], color[1], color[2]), edgecolor="0.3", label=f"{names[k]} ({start:g}–{end:g})")
               for k, color, start, end in settings]
    ax.legend(handles=handles, loc="lower right", fontsize="x-small", framealpha=0.7)
    ax.set_xlabel(f"x ({unit})", fontsize="small")
    ax.set_ylabel(f"y ({unit})", fontsize="small")
    ax.tick_params(labelsize="x-small")
    projection = "" if "z" not in image.dims else (f", z = {z}" if z is not None else ", max over z")
    heading = title if title is not None else str(image_ds.attrs.get("Name") or image.name or "")
    ax.set_title(f"{heading}{projection}".lstrip(", "), fontsize="medium")
    return fig
