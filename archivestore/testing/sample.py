"""Synthetic imaging data: deterministic images, superpixels and masks.

Everything here is drawn offline from a seed or from an id, so tests, benchmarks
and the demo get the same data on every machine.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

__all__ = ["png", "seed_of", "synthetic_image", "synthetic_mask", "synthetic_superpixels"]


def seed_of(*parts: str) -> int:
    """A 64-bit seed derived from ``parts`` (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "little")


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    """``array`` as PNG bytes (``mode`` as Pillow's, or inferred from the dtype and shape)."""
    buf = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buf, format="PNG")
    return buf.getvalue()


def synthetic_image(name: str, shape: tuple[int, int]) -> bytes:
    """A deterministic RGB PNG for image ``name`` (smooth gradients, so it compresses)."""
    h, w = shape
    rng = np.random.default_rng(seed_of("image", name))
    base = rng.integers(0, 256, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(base[c] + (c + 1) * xx + (3 - c) * yy) % 256 for c in range(3)], axis=-1).astype(np.uint8)
    return png(rgb, "RGB")


def synthetic_superpixels(shape: tuple[int, int], block: int = 4) -> np.ndarray:
    """A superpixel index image of ``block`` x ``block`` squares numbered row by row (``uint32``)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    ncols = -(-w // block)
    return ((yy // block) * ncols + xx // block).astype(np.uint32)


def synthetic_mask(mask_id: str, shape: tuple[int, int]) -> np.ndarray:
    """A 0/255 centred ellipse whose size depends on ``mask_id`` (so masks differ)."""
    h, w = shape
    r = 0.25 + (seed_of("mask", mask_id) % 1000) / 4000  # 0.25 .. 0.5
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (r * h)) ** 2 + ((xx - w / 2) / (r * w)) ** 2 <= 1
    return np.where(inside, 255, 0).astype(np.uint8)
