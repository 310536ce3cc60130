"""Rater-agreement heatmaps of study annotations, painted over the images.

For one image and feature of a study, every superpixel gets the number of raters
who marked it (value > 0, or value 1 with ``definite=True``). The counts are turned
into pixels by indexing a per-superpixel lookup table with the image's superpixel
index array (``colors[counts[superpixels]]``), blended over the RGB image, and a
legend maps each count to its colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from PIL import Image, ImageDraw, ImageFont

from archivestore.layout import escape_name

__all__ = [
    "agreement_counts",
    "agreement_palette",
    "heatmap",
    "heatmap_path",
    "montage",
    "paint_counts",
    "write_heatmaps",
]

ALPHA = 0.55
"""Opacity of the overlay where at least one rater marked the superpixel."""

_RAMP = np.array(
    [(255, 237, 160), (254, 178, 76), (240, 59, 32), (128, 0, 38)], dtype=np.float64
)
"""Anchor colours of the count ramp (light yellow to dark red, as ColorBrewer YlOrRd)."""

_STRIP_ROWS = 1024
"""Rows painted at a time: one chunk row of the store, so memory stays bounded on large images."""


def agreement_palette(n_raters: int) -> np.ndarray:
    """Colours for counts ``0 .. n_raters``.

    Returns
    -------
    numpy.ndarray
        ``(n_raters + 1, 3)`` uint8; row ``k`` is the colour of "k raters marked it".
        Row 0 is black but is never painted (count 0 leaves the image as it is).
        Counts ``1 .. n`` run from light yellow (one rater) to dark red (all).
    """
    out = np.zeros((n_raters + 1, 3), dtype=np.uint8)
    if n_raters == 1:
        out[1] = _RAMP[2]
    elif n_raters > 1:
        pos = np.linspace(0, len(_RAMP) - 1, n_raters)
        for c in range(3):
            out[1:, c] = np.rint(np.interp(pos, np.arange(len(_RAMP)), _RAMP[:, c]))
    return out


def _study_values(store: Any, study: str | xr.Dataset, image_id: str, feature: str) -> np.ndarray:
    ds = store.study(study) if isinstance(study, str) else study
    if image_id not in ds.indexes["image"]:
        raise KeyError(f"image {image_id!r} is not in the study")
    if feature not in ds.indexes["feature"]:
        features = ", ".join(map(str, ds["feature"].values))
        raise KeyError(f"feature {feature!r} is not in the study (features: {features})")
    return np.asarray(ds["annotation"].sel(image=image_id, feature=feature).transpose("rater", "superpixel").values)


def agreement_counts(
    store: Any, study: str | xr.Dataset, image_id: str, feature: str, *, definite: bool = False
) -> xr.DataArray:
    """How many raters marked each superpixel of an image for a feature.

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    study
        Study name (``studies/<study>``) or the already opened study Dataset.
    image_id, feature
        The image and feature.
    definite
        Count only "definite" marks (value 1); by default "possible" (0.5) counts too.

    Returns
    -------
    xarray.DataArray
        ``(superpixel,)`` int counts; ``attrs["n_raters"]`` is the number of raters who
        annotated this feature of this image (any non-NaN value), the largest possible count.
    """
    values = _study_values(store, study, image_id, feature)
    with np.errstate(invalid="ignore"):
        marked = values >= 1 if definite else values > 0
    counts = marked.sum(axis=0, dtype=np.int64)
    n_raters = int((~np.isnan(values)).any(axis=1).sum())
    return xr.DataArray(
        counts,
        dims="superpixel",
        attrs={"n_raters": n_raters, "image": image_id, "feature": feature, "definite": definite},
    )


def paint_counts(
    image: np.ndarray, superpixels: np.ndarray, counts: np.ndarray, n_raters: int, alpha: float = ALPHA
) -> np.ndarray:
    """Blend the colour of each pixel's superpixel count over an RGB image.

    Parameters
    ----------
    image
        ``(y, x, 3)`` uint8 RGB.
    superpixels
        ``(y, x)`` superpixel index of every pixel.
    counts
        Count per superpixel index (``counts[superpixels]`` is the per-pixel count).
    n_raters
        Largest count (size of the palette).
    alpha
        Overlay opacity where the count is above 0.

    Returns
    -------
    numpy.ndarray
        ``(y, x, 3)`` uint8: ``round((1 - a) * image + a * colour)`` per channel, with
        ``a = alpha`` where the count is at least 1 and 0 elsewhere.
    """
    counts = np.asarray(counts)
    if image.shape[:2] != superpixels.shape:
        raise ValueError(f"image is {image.shape[:2]}, superpixels {superpixels.shape}")
    top = int(superpixels.max()) if superpixels.size else 0
    if top >= len(counts):
        raise ValueError(f"superpixel index {top} has no annotation (the study has {len(counts)} superpixels)")
    if counts.size and (counts.min() < 0 or counts.max() > n_raters):
        raise ValueError(f"counts must lie in 0..{n_raters}")
    palette = agreement_palette(n_raters).astype(np.uint16)
    weight = int(round(alpha * 256))
    # per-superpixel lookup tables: overlay colour times its weight, and the image's weight
    sp_color = palette[counts] * np.uint16(weight)
    sp_keep = np.where(counts > 0, 256 - weight, 256).astype(np.uint16)
    keep = sp_keep[superpixels][..., None]
    out = (image.astype(np.uint16) * keep + sp_color[superpixels] + 128) >> 8
    return out.astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw_legend(img: Image.Image, title: str, n_raters: int) -> None:
    """Draw a count -> colour legend in the top-left corner of ``img`` (in place)."""
    w, h = img.size
    size = max(10, min(w, h) // 32)
    font = _font(size)
    pad, gap = size // 2, size // 3
    palette = agreement_palette(n_raters)
    rows: list[tuple[str, int | None]]
    if n_raters:
        rows = [(f"{k} of {n_raters} rater{'s' if n_raters > 1 else ''}", k) for k in range(n_raters, -1, -1)]
    else:
        rows = [("no rater annotated this", None)]
    draw = ImageDraw.Draw(img, "RGBA")
    text_w = max(draw.textlength(t, font=font) for t in [title, *(r[0] for r in rows)])
    box_w = int(pad * 3 + size + text_w)
    box_h = int(pad * 2 + (size + gap) * (len(rows) + 1))
    draw.rectangle([0, 0, box_w, box_h], fill=(255, 255, 255, 210), outline=(60, 60, 60, 255))
    draw.text((pad, pad), title, fill=(0, 0, 0, 255), font=font)
    for i, (label, k) in enumerate(rows, start=1):
        y = pad + i * (size + gap)
        if k:
            fill = tuple(int(c) for c in palette[k]) + (255,)
            draw.rectangle([pad, y, pad + size, y + size], fill=fill, outline=(60, 60, 60, 255))
        else:
            draw.rectangle([pad, y, pad + size, y + size], outline=(60, 60, 60, 255))
        draw.text((pad * 2 + size, y), label, fill=(0, 0, 0, 255), font=font)


def heatmap(
    store: Any,
    study: str | xr.Dataset,
    image_id: str,
    feature: str,
    *,
    definite: bool = False,
    alpha: float = ALPHA,
    legend: bool = True,
) -> Image.Image:
    """The rater agreement for a feature, painted over an image.

    Parameters
    ----------
    store
        An open :class:`archivestore.Store`.
    study
        Study name or its opened Dataset (``store.study(name)``; pass it when painting
        many images to open the study once).
    image_id, feature
        The image and the study feature.
    definite
        Count only "definite" marks (value 1) instead of any mark (value > 0).
    alpha
        Opacity of the colour overlay.
    legend
        Draw the count -> colour legend (top left).

    Returns
    -------
    PIL.Image.Image
        RGB image of the image's size.
    """
    counts = agreement_counts(store, study, image_id, feature, definite=definite)
    n_raters = counts.attrs["n_raters"]
    ds = store.image(image_id)
    if "superpixels" not in ds:
        raise KeyError(f"image {image_id!r} has no superpixels")
    height, width = ds.sizes["y"], ds.sizes["x"]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for y0 in range(0, height, _STRIP_ROWS):
        rows = slice(y0, min(y0 + _STRIP_ROWS, height))
        # read in the calling thread: heatmaps run as dask tasks themselves (write_heatmaps)
        strip = ds[["image", "superpixels"]].isel(y=rows).compute(scheduler="synchronous")
        out[rows] = paint_counts(
            strip["image"].transpose("y", "x", "channel").values,
            strip["superpixels"].transpose("y", "x").values,
            counts.values,
            n_raters,
            alpha,
        )
    img = Image.fromarray(out, "RGB")
    if legend:
        kind = "definite" if definite else "marked"
        _draw_legend(img, f"{feature} ({kind})", n_raters)
    return img


def montage(
    images: Iterable[Image.Image | str | Path],
    columns: int = 4,
    *,
    cell_size: tuple[int, int] | None = None,
    labels: Sequence[str] | None = None,
    padding: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Arrange images in a grid.

    Parameters
    ----------
    images
        PIL images or paths of image files (opened one at a time, so many large
        files need only one in memory).
    columns
        Cells per row (fewer if there are fewer images).
    cell_size
        ``(width, height)`` of a cell; each image is scaled down (aspect kept) to
        fit it, less ``padding``, and centred. Default: the largest image size.
    labels
        Optional caption per image, drawn at the bottom left of its cell.
    padding
        Pixels left free around each image inside its cell.
    background
        Fill colour of the grid.

    Returns
    -------
    PIL.Image.Image
        RGB image of ``columns' * cell_width`` by ``rows * cell_height`` pixels, with
        ``columns' = min(columns, n)`` and ``rows = ceil(n / columns')``.
    """
    if columns < 1:
        raise ValueError("columns must be at least 1")
    items = list(images)
    if not items:
        raise ValueError("no images for the montage")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} images")

    def _open(item: Image.Image | str | Path) -> Image.Image:
        return item if isinstance(item, Image.Image) else Image.open(item)

    if cell_size is None:
        sizes = []
        for item in items:
            im = _open(item)
            sizes.append(im.size)
            if im is not item:
                im.close()
        cell_size = (max(s[0] for s in sizes), max(s[1] for s in sizes))
    cw, ch = cell_size
    cols = min(columns, len(items))
    rows = math.ceil(len(items) / cols)
    grid = Image.new("RGB", (cols * cw, rows * ch), background)
    draw = ImageDraw.Draw(grid)
    font = _font(max(10, min(cw, ch) // 20))
    for i, item in enumerate(items):
        im = _open(item)
        try:
            tile = im.convert("RGB")
            tile.thumbnail((max(1, cw - 2 * padding), max(1, ch - 2 * padding)), Image.Resampling.LANCZOS)
        finally:
            if im is not item:
                im.close()
        r, c = divmod(i, cols)
        x0 = c * cw + (cw - tile.width) // 2
        y0 = r * ch + (ch - tile.height) // 2
        grid.paste(tile, (x0, y0))
        if labels is not None:  # bottom left, clear of the heatmap legend at the top left
            draw.text((c * cw + padding + 2, (r + 1) * ch - padding - 2), labels[i], fill=(0, 0, 0), font=font,
                      anchor="ld", stroke_width=2, stroke_fill=(255, 255, 255))
    return grid




def heatmap_path(out_dir: str | Path, image_id: str, feature: str, *, definite: bool = False) -> Path:
    """File name of a heatmap PNG: ``<out_dir>/<image_id>_<feature>[_definite].png``.

    The image id and the feature are escaped as store names are
    (:func:`archivestore.layout.escape_name`): no name becomes a path.
    """
    name = f"{escape_name(image_id)}_{escape_name(feature)}"
    return Path(out_dir) / f"{name}{'_definite' if definite else ''}.png"


def write_heatmaps(
    store: Any,
    study: str,
    feature: str,
    out_dir: str | Path,
    image_ids: Sequence[str] | None = None,
    *,
    definite: bool = False,
    alpha: float = ALPHA,
) -> list[Path]:
    """Write one heatmap PNG per image (see :func:`heatmap`, :func:`heatmap_path`).

    One dask task per image, run by the current dask scheduler (local threads by
    default, or a ``dask.distributed`` client's workers writing to a shared ``out_dir``).

    Parameters
    ----------
    store, study, feature, definite, alpha
        As for :func:`heatmap`.
    out_dir
        Directory for the PNGs (created if missing).
    image_ids
        Images to paint; default every image of the study that is in the store.

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of ``image_ids``.
    """
    ds = store.study(study)
    if image_ids is None:
        in_store = set(store.image_ids())
        image_ids = [str(i) for i in ds["image"].values if str(i) in in_store]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        dask.delayed(_write_one, pure=False)(store, ds, image_id, feature, out_dir, definite, alpha)
        for image_id in image_ids
    ]
    return list(dask.compute(*tasks))


def _write_one(store: Any, ds: xr.Dataset, image_id: str, feature: str, out_dir: Path, definite: bool,
               alpha: float) -> Path:
    path = heatmap_path(out_dir, image_id, feature, definite=definite)
    heatmap(store, ds, image_id, feature, definite=definite, alpha=alpha).save(path, format="PNG")
    return path
