"""The embedded sample archive: a few lesion-like images in the ISIC challenge layouts.

:func:`write_sample_archive` draws, offline and deterministically, RGB images of
different sizes with a dark irregular lesion, their superpixels (RGB-encoded, and
one as a 16-bit grayscale label PNG), lesion masks, 2018-style attribute masks,
challenge CSVs, and 2017 part 2 per-superpixel features from three raters, laid out
in folders named as the challenges name them. :func:`run_demo` ingests them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from archivestore.imaging import encode_superpixels_rgb

__all__ = ["FEATURES", "RATERS", "STUDY", "run_demo", "write_sample_archive"]

SIZES = [(480, 640), (384, 512), (600, 800), (400, 300), (450, 600), (256, 384)]  # (rows, cols)
FEATURES = ["pigment_network", "negative_network", "milia_like_cyst", "streaks"]
RATERS = ["ground_truth", "rater_a", "rater_b"]
STUDY = "ISIC-2017_Part2_demo"
TRAIN = "ISIC-2017_Training_Data"
MASKS = "ISIC-2017_Training_Part1_GroundTruth"
PART2 = "ISIC-2017_Training_Part2_GroundTruth"
ATTRS = "ISIC2018_Task2_Training_GroundTruth_v3"
PRED = "model_segmentation_predictions"


def _superpixels(rng: np.random.Generator, h: int, w: int, step: int = 24) -> np.ndarray:
    """Jittered-grid Voronoi cells numbered 0..N-1 (a stand-in for SLIC superpixels).

    Seeds sit one per ``step``-sized grid cell, so each pixel's nearest seed is in its
    own or a neighbouring cell: nine candidate distances per pixel, all vectorised.
    """
    gh, gw = -(-h // step), -(-w // step)
    cy, cx = np.mgrid[0:gh, 0:gw]
    seed_y = (cy + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    seed_x = (cx + 0.5) * step + rng.uniform(-step / 3, step / 3, (gh, gw))
    yy, xx = np.mgrid[0:h, 0:w]
    py, px = yy // step, xx // step
    best = np.full((h, w), np.inf)
    label = np.zeros((h, w), dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny, nx = np.clip(py + dy, 0, gh - 1), np.clip(px + dx, 0, gw - 1)
            d = (yy - seed_y[ny, nx]) ** 2 + (xx - seed_x[ny, nx]) ** 2
            closer = d < best
            best[closer] = d[closer]
            label[closer] = (ny * gw + nx)[closer]
    _, dense = np.unique(label, return_inverse=True)
    return dense.reshape(h, w).astype(np.uint32)


def _lesion(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    ry, rx = h * rng.uniform(0.18, 0.3), w * rng.uniform(0.18, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.06 * np.sin(7 * angle)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / wobble
    mask = (r < 1).astype(np.uint8)
    skin = np.array([226, 180, 160], float) + rng.normal(0, 4, (h, w, 1))
    lesion = np.array([110, 70, 50], float) - 40 * np.clip(1 - r, 0, 1)[..., None]
    shade = np.clip(1.2 - r, 0, 1)[..., None]
    rgb = skin * (1 - shade) + lesion * shade + rng.normal(0, 6, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG") if mode else Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_sample_archive(root: str | Path, seed: int = 2017) -> dict[str, Path]:
    """Write the sample archive under ``root``; return its folders by role."""
    root = Path(root)
    dirs = {role: root / name for role, name in
            (("train", TRAIN), ("masks", MASKS), ("part2", PART2), ("attributes", ATTRS), ("predictions", PRED))}
    for rater in RATERS[1:]:
        dirs[rater] = root / f"{STUDY}_{rater}"
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gt_rows, meta_rows = [], []
    for k, (h, w) in enumerate(SIZES):
        image_id = f"ISIC_{k:07d}"
        rgb, mask = _lesion(rng, h, w)
        sp = _superpixels(rng, h, w)
        n = int(sp.max()) + 1
        Image.fromarray(rgb).save(dirs["train"] / f"{image_id}.jpg", quality=92)
        if k == 3:  # one image in the 16-bit grayscale label encoding
            (dirs["train"] / f"{image_id}_superpixels.png").write_bytes(_png(sp.astype(np.uint16)))
        else:
            (dirs["train"] / f"{image_id}_superpixels.png").write_bytes(encode_superpixels_rgb(sp))
        (dirs["masks"] / f"{image_id}_segmentation.png").write_bytes(_png(mask * 255))
        # a "model" whose masks are the truth grown or shrunk a little
        pred = np.roll(mask, rng.integers(-12, 12, 2), axis=(0, 1))
        (dirs["predictions"] / f"{image_id}_segmentation.png").write_bytes(_png(pred * 255))
        inside = np.bincount(sp.ravel(), weights=mask.ravel(), minlength=n) / np.bincount(sp.ravel(), minlength=n)
        truth = {}
        for j, feature in enumerate(FEATURES):
            p = (0.55 - 0.12 * j) * (inside > 0.5)
            truth[feature] = (rng.random(n) < p).astype(float)
        (dirs["part2"] / f"{image_id}_features.json").write_text(
            json.dumps({f: v.tolist() for f, v in truth.items()}))
        for rater in RATERS[1:]:
            values = {}
            for feature, t in truth.items():
                flip = rng.random(n) < 0.15
                v = np.where(flip, 1 - t, t)
                v = np.where((v > 0) & (rng.random(n) < 0.3), 0.5, v)
                values[feature] = v.tolist()
            (dirs[rater] / f"{image_id}_features.json").write_text(json.dumps(values))
        for feature, t in truth.items():
            (dirs["attributes"] / f"{image_id}_attribute_{feature}.png").write_bytes(
                _png((t[sp] > 0).astype(np.uint8) * 255))
        melanoma = float(rng.random() < 0.3)
        gt_rows.append([image_id, melanoma, float(not melanoma and rng.random() < 0.3)])
        meta_rows.append([image_id, int(rng.integers(25, 85) // 5 * 5) if k != 2 else "unknown",
                          ["female", "male"][k % 2]])
    with open(dirs["train"] / "ISIC-2017_Training_Part3_GroundTruth.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_id", "melanoma", "seborrheic_keratosis"], *gt_rows])
    with open(dirs["train"] / "ISIC-2017_Training_Data_metadata.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_id", "age_approximate", "sex"], *meta_rows])
    (dirs["train"] / "ATTRIBUTION.txt").write_text("Synthetic sample data made by archivestore's demo.\n")
    (dirs["train"] / "LICENSE.txt").write_text("CC-0\n")
    return dirs


def run_demo(store_url: str | Path = "archivestore-demo.zarr", workdir: str | Path | None = None,
             progress: bool = True, out=print) -> int:
    """Write the sample archive, ingest it into ``store_url`` and print what is there."""
    import tempfile

    from archivestore import ingest, open_store
    from archivestore.sources import ChallengeSource

    with tempfile.TemporaryDirectory() as tmp:
        files = Path(workdir) if workdir else Path(tmp) / "sample-archive"
        dirs = write_sample_archive(files)
        out(f"sample archive: {len(SIZES)} images in ISIC challenge layouts under {files}")
        store = open_store(store_url, mode="a")
        runs = [
            ("images, superpixels, masks, attributes, CSVs and ground-truth features",
             ChallengeSource([dirs["train"], dirs["masks"], dirs["attributes"], dirs["part2"]], study=STUDY)),
            *[(f"features of {r}", ChallengeSource([dirs[r]], study=STUDY, rater=r)) for r in RATERS[1:]],
            ("a model's lesion masks (rater 'model')", ChallengeSource([dirs["predictions"]], rater="model")),
        ]
        failed = 0
        for what, source in runs:
            report = ingest(store, source, progress=progress)
            out(f"ingest {what}: {report.summary()}")
            for bad in report.failed:
                out(f"  {bad}")
            failed += len(report.failed)
    info = store.info()
    out("")
    out(f"store: {Path(store_url).resolve() if '://' not in str(store_url) else store_url}")
    out(f"  images: {info['images']}  metadata fields: {info['metadata_fields']}  mask raters: "
        f"{', '.join(info['mask_raters']) or '-'}")
    for name, s in info["studies"].items():
        out(f"  study {name}: {s['images']} images x {len(s['features'])} features x "
            f"{len(s['raters'])} raters ({', '.join(s['raters'])}), up to {s['max_superpixels']} superpixels")
    first = sorted(store.image_ids())[0]
    ds = store.image(first)
    out(f"  {first}: " + ", ".join(f"{v} {tuple(ds[v].shape)} {ds[v].dtype}" for v in ds.data_vars))
    _analyses(store_url, out)
    out("")
    out("open it with plain xarray (archivestore need not be installed):")
    out("  import xarray as xr")
    out(f"  xr.open_zarr({str(store_url)!r}, group='images/{first}', consolidated=False)")
    out(f"  xr.open_zarr({str(store_url)!r}, group='metadata', consolidated=False)")
    out(f"  xr.open_zarr({str(store_url)!r}, group='studies/{STUDY}', consolidated=False)")
    out(f"  xr.open_zarr({str(store_url)!r}, group='studies/{STUDY}/overlap', consolidated=False)")
    return 1 if failed else 0


def _analyses(store_url, out) -> None:
    """Rater overlap of the demo study, and the model's masks scored against the ground truth."""
    from archivestore import open_store
    from archivestore.analysis import overlap, score, write_overlap
    from archivestore.analysis._overlap_cli import format_summary

    store = open_store(store_url, mode="a")
    result = overlap(store.study(STUDY))
    write_overlap(store, STUDY, result)
    out("")
    out(f"rater overlap in {STUDY} (written to studies/{STUDY}/overlap):")
    for line in format_summary(result.compute()).splitlines():
        out("  " + line)
    scores = score(store, truth="ground_truth", prediction="model")
    macro = scores["macro_average"].to_series()
    out("")
    out("the model's lesion masks against ground_truth (macro averages): "
        + ", ".join(f"{k} {v:.3f}" for k, v in macro.items()))
