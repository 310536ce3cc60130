"""Decoding of archive image files into the arrays the store keeps.

All decoders take encoded bytes (JPEG/PNG) and return numpy arrays; they raise
``ValueError`` with a plain reason when the bytes are not what they should be.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "decode_image",
    "decode_mask",
    "decode_superpixels",
    "encode_superpixels_rgb",
    "superpixel_dtype",
]

MASK_THRESHOLD = 128
"""Gray levels above this count as inside a mask (isic-challenge-scoring's rule)."""


def _open(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from None
    return img


def decode_image(data: bytes) -> np.ndarray:
    """Decode a JPEG/PNG into a ``(y, x, 3)`` uint8 RGB array (exactly Pillow's pixels)."""
    img = _open(data)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def superpixel_dtype(max_index: int) -> np.dtype:
    """The store's dtype for a superpixel index image: uint16 when it fits, else uint32."""
    return np.dtype(np.uint16) if max_index <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def decode_superpixels(data: bytes) -> np.ndarray:
    """Decode a superpixel index image into a ``(y, x)`` integer array.

    Two encodings are accepted: the archive's RGB encoding
    (index = R + 256*G + 65536*B) and single-channel 8/16/32-bit label PNGs.
    The result is uint16 when every index fits, else uint32.
    """
    img = _open(data)
    if img.mode in ("RGB", "RGBA"):
        return _rgb_index(img.convert("RGB") if img.mode == "RGBA" else img)
    if img.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "P"):
        raise ValueError(f"unsupported superpixel image mode {img.mode!r}")
    arr = np.asarray(img)
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError("superpixel labels are negative")
    top = int(arr.max()) if arr.size else 0
    return arr.astype(superpixel_dtype(top), copy=False)


def _rgb_index(img: Image.Image) -> np.ndarray:
    """R + 256*G + 65536*B of an RGB image, computed on Pillow's 4-byte pixels.

    Pillow keeps RGB pixels as 4 bytes (R, G, B, pad); read as little-endian 32-bit
    words with the pad byte masked off they are the index itself: one pass instead of a
    conversion and two shifts per channel.
    """
    words = np.frombuffer(img.tobytes("raw", "RGBX"), dtype="<u4").reshape(img.height, img.width)
    idx = np.bitwise_and(words, 0xFFFFFF, dtype=np.uint32)
    top = int(idx.max()) if idx.size else 0
    return idx.astype(superpixel_dtype(top), copy=False)


def encode_superpixels_rgb(index: np.ndarray) -> bytes:
    """Encode a superpixel index array as the archive's RGB PNG (inverse of :func:`decode_superpixels`)."""
    index = np.asarray(index, dtype=np.uint32)
    rgb = np.stack([index & 0xFF, (index >> 8) & 0xFF, (index >> 16) & 0xFF], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def decode_mask(data: bytes) -> np.ndarray:
    """Decode a segmentation or attribute mask into a ``(y, x)`` uint8 array of 0/1.

    Masks are single-channel 0/255 (or 0/1) PNGs; gray levels are binarised with
    ``> 128``, as the official challenge scoring does. Colour masks are reduced
    to their first channel.
    """
    img = _open(data)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == bool:  # a bilevel image: Pillow's bytes are 0/255, so no view
        return arr.astype(np.uint8)
    if arr.size and int(arr.max()) <= 1:
        return arr.astype(np.uint8, copy=False)
    if arr.dtype.itemsize > 1:
        raise ValueError(f"mask has {arr.dtype} pixels; expected 8-bit 0/255")
    return (arr > MASK_THRESHOLD).view(np.uint8)
