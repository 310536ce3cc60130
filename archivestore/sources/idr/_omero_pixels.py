"""Pixels an OMERO.web gives without the raw data: rendered 8-bit planes and thumbnails, as :class:`ArrayImage`.

OMERO.web serves no raw pixel values to the public; it renders. :func:`rendered_image` asks
``render_image`` for every (t, channel, z) plane with that channel active **alone**, in greyscale,
mapped **linearly** from the channel's full window (``window.min``..``window.max`` of ``imgData``,
the pixel range OMERO knows for the channel) to 0..255, and decodes the JPEG. The composite (all
active channels coloured and summed) is never used: it mixes channels. The result is marked
``rendered=True`` and its ``attrs["rendered"]`` says how it was made (route, model, windows, JPEG
quality), so it is never taken for raw values: a rendered value ``v`` stands for about
``min + v / 255 * (max - min)`` of the raw channel, up to JPEG's loss.

Axes are ``t`` (when there is more than one time point), ``channel`` (always), ``z`` (more than one
plane), ``y``, ``x``. ``x``, ``y`` and ``z`` get coordinates in micrometres (index × pixel size)
only when ``imgData`` gives that pixel size; a ``null`` size gives that axis no coordinates.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from archivestore.errors import APIError
from archivestore.sources._base import ArrayImage
from archivestore.sources._http import bounded_map

if TYPE_CHECKING:
    import numpy as np

    from archivestore.sources.idr._omero import OmeroWeb

__all__ = ["rendered_image", "thumbnail_image"]

MICROMETER = "micrometer"
"""The unit of imgData's pixel sizes, as OME-NGFF names it."""


def _decode(data: bytes, what: str) -> np.ndarray:
    """A JPEG/PNG as a uint8 array: (y, x) for greyscale, (y, x, 3) for colour."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            img = opened if opened.mode in ("L", "RGB") else opened.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{what}: cannot decode the rendered image: {exc}") from None


def _grey(data: bytes, shape: tuple[int, int], what: str) -> np.ndarray:
    """A greyscale rendering (OMERO sends it as RGB with R = G = B) as a (y, x) uint8 plane of ``shape``."""
    pixels = _decode(data, what)
    plane = pixels[..., 0] if pixels.ndim == 3 else pixels
    if plane.shape != shape:
        raise ValueError(f"{what}: the rendered plane is {plane.shape[1]}x{plane.shape[0]} pixels, "
                         f"imgData says {shape[1]}x{shape[0]}")
    return plane


def _channels(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Channel descriptions from imgData: label, colour, window, active, and what else OMERO says."""
    out = []
    for index, channel in enumerate(info.get("channels") or ()):
        described = {"label": str(channel.get("label", index)), "color": channel.get("color"),
                     "window": dict(channel.get("window") or {}), "active": bool(channel.get("active", True))}
        described.update({k: channel[k] for k in ("emissionWave", "family", "coefficient", "inverted", "lut")
                          if k in channel})
        out.append(described)
    return out


def _window(channel: dict[str, Any], pixels_type: str | None) -> tuple[float, float]:
    """The channel's full window (min..max), or the pixel type's range when OMERO has none."""
    window = channel.get("window") or {}
    low, high = window.get("min"), window.get("max")
    if low is None or high is None or float(high) <= float(low):
        import numpy as np

        try:
            limits = np.iinfo(np.dtype(pixels_type or "uint8"))
            return float(limits.min), float(limits.max)
        except (TypeError, ValueError):
            return 0.0, 255.0
    return float(low), float(high)


def _coords(info: dict[str, Any], sizes: dict[str, int]) -> tuple[dict[str, Any], dict[str, str]]:
    """Physical coordinates (µm) of x, y, z where imgData gives the pixel size."""
    import numpy as np

    coords: dict[str, Any] = {}
    units: dict[str, str] = {}
    pixel_size = info.get("pixel_size") or {}
    for axis in ("z", "y", "x"):
        step = pixel_size.get(axis)
        if step is None or axis not in sizes:
            continue
        coords[axis] = np.arange(sizes[axis], dtype=np.float64) * float(step)
        units[axis] = MICROMETER
    return coords, units


def rendered_image(web: OmeroWeb, image: int, info: dict[str, Any] | None = None) -> ArrayImage:
    """Every plane of an image, rendered 8-bit per channel (see the module docstring).

    Parameters
    ----------
    web
        The server.
    image
        The image id.
    info
        Its ``imgData`` record, if already fetched.

    Raises
    ------
    APIError
        A request failed; or the image is tiled (a pyramid, which ``render_image`` cannot give
        whole at full resolution).
    ValueError
        A plane that does not decode, or of another size than imgData says.
    """
    import numpy as np

    info = info if info is not None else web.image_data(image)
    if info.get("tiles"):
        raise APIError(web.client.url(f"webclient/imgData/{image}/"), "a tiled (pyramid) image: render_image gives "
                       "no full-resolution plane of it; read its OME-Zarr instead", item=str(image))
    size = info["size"]
    n_t, n_c, n_z = int(size.get("t") or 1), int(size.get("c") or 1), int(size.get("z") or 1)
    shape = (int(size["height"]), int(size["width"]))
    channels = _channels(info)
    pixels_type = (info.get("meta") or {}).get("pixelsType")
    raw_channels = info.get("channels") or [{}] * n_c
    windows = [_window(raw_channels[c] if c < len(raw_channels) else {}, pixels_type) for c in range(n_c)]
    planes = [(t, c, z) for t in range(n_t) for c in range(n_c) for z in range(n_z)]

    def fetch(plane: tuple[int, int, int]) -> np.ndarray:
        t, c, z = plane
        data = web.render_plane(image, z, t, c, windows[c])
        return _grey(data, shape, f"image {image} plane t={t} c={c} z={z}")

    data = np.empty((n_t, n_c, n_z, *shape), dtype=np.uint8)
    for (t, c, z), plane in zip(planes, bounded_map(fetch, planes, web.workers), strict=True):
        data[t, c, z] = plane
    keep = [axis for axis, n in (("t", n_t), ("channel", n_c), ("z", n_z)) if n > 1 or axis == "channel"]
    squeeze = tuple(i for i, (axis, n) in enumerate((("t", n_t), ("channel", n_c), ("z", n_z))) if axis not in keep)
    data = data.squeeze(axis=squeeze) if squeeze else data
    sizes = {"z": n_z, "y": shape[0], "x": shape[1]}
    coords, units = _coords(info, {k: v for k, v in sizes.items() if k != "z" or "z" in keep})
    rendering = {"route": "webgateway/render_image", "model": "greyscale", "channels": "one at a time",
                 "map": "linear", "windows": [list(w) for w in windows], "format": "jpeg", "quality": 1.0,
                 "pixels_type": pixels_type}
    return ArrayImage(data=data, axes=(*keep, "y", "x"), coords=coords, units=units, channels=channels,
                      rendered=True, attrs={"rendered": rendering, "imgData": info})


def thumbnail_image(web: OmeroWeb, image: int, size: int | None = None) -> ArrayImage:
    """The image's thumbnail (its default rendering, RGB, scaled) as a ``(channel, y, x)`` uint8 image.

    Marked ``rendered=True``, ``attrs["rendered"]["kind"] == "thumbnail"``; no physical coordinates
    (the thumbnail is scaled).
    """
    import numpy as np

    pixels = _decode(web.thumbnail(image, size), f"image {image} thumbnail")
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    channels = [{"label": label, "color": color} for label, color in
                (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))]
    rendering = {"kind": "thumbnail", "route": "webgateway/render_thumbnail", "size": size, "format": "jpeg"}
    return ArrayImage(data=np.ascontiguousarray(np.moveaxis(rgb, 2, 0)), axes=("channel", "y", "x"),
                      channels=channels, rendered=True, attrs={"rendered": rendering})
