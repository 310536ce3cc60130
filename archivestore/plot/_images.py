"""Images with their superpixel borders and mask contours; figures saved as small PNGs."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from archivestore.errors import NotFoundError
from archivestore.layout import GROUND_TRUTH

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MASK_COLORS", "image_overlay", "save_png", "store_image", "superpixel_boundaries"]

MASK_COLORS = ("#00e5ff", "#ff2bd6", "#ffe600", "#7CFC00", "#ff8c00")
"""Contour colours of the raters' masks, in the order they are given (cycled)."""


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    import matplotlib.pyplot as plt

    fig, new = plt.subplots(figsize=figsize, layout="constrained")
    return fig, new


def superpixel_boundaries(index: Any) -> np.ndarray:
    """Pixels on a border between superpixels.

    Parameters
    ----------
    index
        ``(y, x)`` superpixel index of every pixel.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` bool, true where the pixel's right or lower neighbour belongs to
        another superpixel (a one-pixel line along every border).
    """
    index = np.asarray(index)
    edge = np.zeros(index.shape, dtype=bool)
    edge[:, :-1] |= index[:, :-1] != index[:, 1:]
    edge[:-1, :] |= index[:-1, :] != index[1:, :]
    return edge


def image_overlay(
    image: Any,
    *,
    superpixels: Any = None,
    masks: Mapping[str, Any] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """An RGB image with its superpixel boundaries and mask contours.

    Parameters
    ----------
    image
        ``(y, x, 3)`` uint8 (numpy, or a DataArray with dims ``y, x, channel``).
    superpixels
        ``(y, x)`` superpixel index; its borders are drawn as thin white lines.
    masks
        ``{label: (y, x) 0/1 mask}``; each is outlined in a colour of
        :data:`MASK_COLORS` and named in the legend.
    title
        Axes title.
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D

    rgb = _yx(image, "y", "x", "channel")
    fig, ax = new_axes(ax, (6.0, 6.0 * rgb.shape[0] / max(1, rgb.shape[1])))
    ax.imshow(rgb, interpolation="nearest")
    if superpixels is not None:
        edges = superpixel_boundaries(_yx(superpixels, "y", "x"))
        overlay = np.zeros(edges.shape + (4,), dtype=np.float32)
        overlay[edges] = (1.0, 1.0, 1.0, 0.55)
        ax.imshow(overlay, interpolation="nearest")
    handles = []
    for k, (label, mask) in enumerate((masks or {}).items()):
        color = MASK_COLORS[k % len(MASK_COLORS)]
        ax.contour(_yx(mask, "y", "x").astype(np.float32), levels=[0.5], colors=[color], linewidths=1.8)
        handles.append(Line2D([], [], color=color, linewidth=1.8, label=label))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize="small", framealpha=0.8)
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return fig


def store_image(
    store: Any,
    image_id: str,
    *,
    raters: Sequence[str] = (GROUND_TRUTH,),
    superpixels: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """One image of a store with its superpixels and the lesion masks of ``raters``.

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    image_id
        The image.
    raters
        Whose lesion masks to outline (``ground_truth`` is the image's own mask);
        raters without a mask of this image are left out.
    superpixels
        Draw the superpixel boundaries (if the image has superpixels).
    ax
        Draw into this axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ds = store.image(image_id)
    masks = {}
    for rater in raters:
        try:
            masks[rater] = store.read(image_id, "mask", rater=rater)
        except NotFoundError:
            continue
    index = store.read(image_id, "superpixels") if superpixels and "superpixels" in ds else None
    return image_overlay(store.read(image_id, "image"), superpixels=index, masks=masks, title=image_id, ax=ax)


def _yx(array: Any, *dims: str) -> np.ndarray:
    """``array`` as numpy, transposed to ``dims`` first if it is a DataArray."""
    if isinstance(array, xr.DataArray):
        array = array.transpose(*dims)
    return np.asarray(array)


def save_png(fig: Figure, path: str | os.PathLike[str], *, dpi: float = 80, colors: int = 128) -> None:
    """Save a figure as a PNG with a palette of at most ``colors`` colours.

    Photographs with sensor noise compress badly as full-colour PNG; a palette
    made for the figure (Pillow's median cut, no dithering) keeps it looking the
    same at about half the bytes. No software version is written into the file,
    so redrawing a figure with the same data and libraries gives the same bytes.

    Parameters
    ----------
    fig
        The figure.
    path
        Where to write the PNG.
    dpi
        Resolution: the PNG is ``figure inches x dpi`` pixels.
    colors
        Palette size (2 to 256).
    """
    from PIL import Image

    if not 2 <= colors <= 256:
        raise ValueError(f"colors must lie in 2..256, not {colors}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    buffer.seek(0)
    with Image.open(buffer) as rendered:
        palette = rendered.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                                   dither=Image.Dither.NONE)
    palette.save(path, format="PNG", optimize=True)
