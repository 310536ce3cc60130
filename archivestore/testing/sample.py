"""Synthetic imaging data: lesion-like photographs, superpixels, masks, and a sample archive.

Everything here is drawn offline from a seed or from an id, so the demo, the tests and
the benchmarks get the same data on every machine.

- :func:`lesion_image`, :func:`voronoi_superpixels`: a dermoscopy-like RGB image with its
  lesion mask, and SLIC-like superpixels, from a random generator (any size).
- :func:`synthetic_image`, :func:`synthetic_superpixels`, :func:`synthetic_mask`: small
  images derived from an id (what the stand-in API servers serve).
- :func:`write_sample_archive`: a few images in the ISIC challenge folder layouts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from archivestore.imaging import encode_superpixels_rgb

__all__ = [
    "FEATURES",
    "RATERS",
    "SIZES",
    "STUDY",
    "jpeg",
    "lesion_image",
    "png",
    "seed_of",
    "synthetic_image",
    "synthetic_mask",
    "synthetic_superpixels",
    "voronoi_superpixels",
    "write_sample_archive",
]

SIZES = [(480, 640), (384, 512), (600, 800), (400, 300), (450, 600), (256, 384)]  # (rows, cols)
FEATURES = ["pigment_network", "negative_network", "milia_like_cyst", "streaks"]
RATERS = ["ground_truth", "rater_a", "rater_b"]
STUDY = "ISIC-2017_Part2_demo"
TRAIN = "ISIC-2017_Training_Data"
MASKS = "ISIC-2017_Training_Part1_GroundTruth"
PART2 = "ISIC-2017_Training_Part2_GroundTruth"
ATTRS = "ISIC2018_Task2_Training_GroundTruth_v3"
PRED = "model_segmentation_predictions"


# -- encoding -------------------------------------------------------------------------
def seed_of(*parts: str) -> int:
    """A 64-bit seed derived from ``parts`` (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "little")


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    """``array`` as PNG bytes (``mode`` as Pillow's, or inferred from the dtype and shape)."""
    buf = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """An RGB array as JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- drawn from a random generator ------------------------------------------------------
def voronoi_superpixels(rng: np.random.Generator, h: int, w: int, step: int = 24, strip: int = 512) -> np.ndarray:
    """Jittered-grid Voronoi cells numbered densely 0..N-1 (a stand-in for SLIC superpixels).

    Seeds sit one per ``step``-sized grid cell, so each pixel's nearest seed is in its
    own or a neighbouring cell: nine candidate distances per pixel, computed in row
    strips of ``strip`` rows so a 6000x4000 index needs little memory.
    """
    gh, gw = -(-h // step), -(-w // step)
    cy, cx = np.mgrid[0:gh, 0:gw]
    seed_y = (cy + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    seed_x = (cx + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    label = np.empty((h, w), dtype=np.uint32)
    xx = np.arange(w)[None, :]
    px = xx // step
    for y0 in range(0, h, strip):
        yy = np.arange(y0, min(h, y0 + strip))[:, None]
        py = yy // step
        best = np.full((yy.shape[0], w), np.inf)
        lab = np.zeros((yy.shape[0], w), dtype=np.uint32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = np.clip(py + dy, 0, gh - 1), np.clip(px + dx, 0, gw - 1)
                d = (yy - seed_y[ny, nx]) ** 2 + (xx - seed_x[ny, nx]) ** 2
                closer = d < best
                best[closer] = d[closer]
                lab[closer] = (ny * gw + nx)[closer]
        label[y0 : y0 + yy.shape[0]] = lab
    counts = np.bincount(label.ravel(), minlength=gh * gw)
    if (counts == 0).any():  # renumber densely (a seed cell won by its neighbours)
        lut = np.cumsum(counts > 0, dtype=np.int64) - 1
        label = lut[label].astype(np.uint32)
    return label


def lesion_image(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like RGB image (skin, dark irregular lesion, lighting, sensor noise) and its 0/1 mask."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.18, 0.3), w * rng.uniform(0.18, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.06 * np.sin(7 * angle)
    r = (np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / wobble).astype(np.float32)
    mask = (r < 1).astype(np.uint8)
    shade = np.clip(1.2 - r, 0, 1)[..., None]
    skin = np.array([226, 180, 160], np.float32)
    dark = np.array([110, 70, 50], np.float32) - 40 * np.clip(1 - r, 0, 1)[..., None]
    rgb = skin * (1 - shade) + dark * shade
    # smooth large-scale illumination and fine noise, as in a dermoscopy photograph
    grid = rng.normal(0, 1, (h // 64 + 2, w // 64 + 2)).astype(np.float32)
    coarse = Image.fromarray((grid * 20 + 128).clip(0, 255).astype(np.uint8))
    illumination = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.float32)[..., None] - 128
    rgb += illumination * 0.4
    rgb += rng.normal(0, 5, (h, w, 3)).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


# -- derived from an id ---------------------------------------------------------------------
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


# -- the sample archive ------------------------------------------------------------------------
def write_sample_archive(root: str | Path, seed: int = 2017) -> dict[str, Path]:
    """Write the sample archive under ``root``: :data:`SIZES` images in ISIC challenge layouts.

    Each image gets a JPEG, its superpixels (RGB-encoded, the fourth as a 16-bit
    grayscale label PNG), a lesion mask, a "model's" shifted lesion mask, 2018-style
    attribute masks and 2017 part 2 per-superpixel features of :data:`FEATURES` from the
    :data:`RATERS`; the training folder also holds the challenge CSVs.

    Parameters
    ----------
    root
        Folder to write into (created if missing).
    seed
        Seed of the random generator: the same seed writes the same files.

    Returns
    -------
    dict
        The folders by role: ``train``, ``masks``, ``part2``, ``attributes``,
        ``predictions`` and one per rater other than ``ground_truth``.
    """
    root = Path(root)
    named = {"train": TRAIN, "masks": MASKS, "part2": PART2, "attributes": ATTRS, "predictions": PRED}
    dirs = {role: root / name for role, name in named.items()}
    for rater in RATERS[1:]:
        dirs[rater] = root / f"{STUDY}_{rater}"
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gt_rows, meta_rows = [], []
    for k, (h, w) in enumerate(SIZES):
        image_id = f"ISIC_{k:07d}"
        _write_image(dirs, rng, image_id, h, w, label_png=k == 3)
        melanoma = float(rng.random() < 0.3)
        gt_rows.append([image_id, melanoma, float(not melanoma and rng.random() < 0.3)])
        age = int(rng.integers(25, 85) // 5 * 5) if k != 2 else "unknown"
        meta_rows.append([image_id, age, ["female", "male"][k % 2]])
    with open(dirs["train"] / "ISIC-2017_Training_Part3_GroundTruth.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_id", "melanoma", "seborrheic_keratosis"], *gt_rows])
    with open(dirs["train"] / "ISIC-2017_Training_Data_metadata.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_id", "age_approximate", "sex"], *meta_rows])
    (dirs["train"] / "ATTRIBUTION.txt").write_text("Synthetic sample data made by archivestore's demo.\n")
    (dirs["train"] / "LICENSE.txt").write_text("CC-0\n")
    return dirs


def _write_image(
    dirs: dict[str, Path], rng: np.random.Generator, image_id: str, h: int, w: int, label_png: bool
) -> None:
    """One image's files: JPEG, superpixels, masks, features of every rater, attribute masks."""
    rgb, mask = lesion_image(rng, h, w)
    sp = voronoi_superpixels(rng, h, w)
    n = int(sp.max()) + 1
    (dirs["train"] / f"{image_id}.jpg").write_bytes(jpeg(rgb))
    sp_png = png(sp.astype(np.uint16)) if label_png else encode_superpixels_rgb(sp)
    (dirs["train"] / f"{image_id}_superpixels.png").write_bytes(sp_png)
    (dirs["masks"] / f"{image_id}_segmentation.png").write_bytes(png(mask * 255))
    # a "model" whose masks are the truth shifted a little
    pred = np.roll(mask, rng.integers(-12, 12, 2), axis=(0, 1))
    (dirs["predictions"] / f"{image_id}_segmentation.png").write_bytes(png(pred * 255))
    inside = np.bincount(sp.ravel(), weights=mask.ravel(), minlength=n) / np.bincount(sp.ravel(), minlength=n)
    truth = {f: (rng.random(n) < (0.55 - 0.12 * j) * (inside > 0.5)).astype(float) for j, f in enumerate(FEATURES)}
    (dirs["part2"] / f"{image_id}_features.json").write_text(json.dumps({f: v.tolist() for f, v in truth.items()}))
    for rater in RATERS[1:]:
        (dirs[rater] / f"{image_id}_features.json").write_text(json.dumps(_disagree(rng, truth)))
    for feature, t in truth.items():
        attribute = (t[sp] > 0).astype(np.uint8) * 255
        (dirs["attributes"] / f"{image_id}_attribute_{feature}.png").write_bytes(png(attribute))


def _disagree(rng: np.random.Generator, truth: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """A rater's values: the truth with 15 % flipped and 30 % of the marked ones made 0.5."""
    values = {}
    for feature, t in truth.items():
        v = np.where(rng.random(t.size) < 0.15, 1 - t, t)
        values[feature] = np.where((v > 0) & (rng.random(t.size) < 0.3), 0.5, v).tolist()
    return values
