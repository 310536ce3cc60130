"""Study overlap, exact pixel Dice + Pearson correlation: rater pairs per second.

archivestore's :func:`archivestore.analysis.overlap` (area-weighted sums over
superpixels, dask-parallel, reading the study from a Zarr store on disk) against
isicarchive 0.4.11's ``imfunc.image_dice`` + ``imfunc.image_corr`` on painted
full-size maps, on the same study, measured side by side in one run.

The study: ``--images`` images, each with the real ISIC_0000000 superpixel image
from the fixtures (996 superpixels, recorded at 640x480) resized to
ISIC_0000000's real size, 1022x767 (``--size Y X`` for others; the median
archive image is ~3 megapixels),
``--features`` features and ``--raters`` raters whose annotations are lesion-like
blobs of superpixels valued 0 / 0.5 / 1 with NaN holes.

isicarchive runs in its own environment (``isicarchive_env.py``). Its maps are
painted before the clock starts (favouring it); only the two calls per ordered
rater pair are timed, on ``--sample`` pairs, and its results for those pairs are
checked against archivestore's (to 1e-9). archivestore's time is the whole
computation: opening the study in the store, reading, computing all pairs of all
images and features (both measures, plus isicarchive's superpixel Dice); a
second figure is the same computation on the study already in memory (no store
reading), to separate the algorithm from the store's chunk decoding.

Run::

    .venv/bin/python benchmarks/bench_overlap.py [--images 256] [--size 767 1022]

Goal (issue 3): at least 1000x isicarchive's rater pairs per second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isicarchive_env import ensure_env, run_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "isic-v1" / "ISIC_0000000_superpixels.png"

ISICARCHIVE = r"""
import json, sys, time, warnings
import numpy as np
from isicarchive import imfunc

args = json.load(sys.stdin)
data = np.load(args["path"])
index = data["index"].astype(np.int32)
ann = data["annotation"].astype(np.float64)
pairs = data["pairs"]
warnings.simplefilter("ignore")
# paint every map once (not timed): NaN superpixels count as 0
painted = {}
for i, f, a, b in pairs:
    for r in (a, b):
        if (i, f, r) not in painted:
            painted[i, f, r] = np.nan_to_num(ann[i, f, r])[index]
dice, corr = [], []
t0 = time.perf_counter()
for i, f, a, b in pairs:
    x, y = painted[i, f, a], painted[i, f, b]
    dice.append(float(imfunc.image_dice(x, y)))
    corr.append(float(imfunc.image_corr(x, y)))
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "dice": dice, "corr": corr}))
"""


def make_index(size: tuple[int, int] | None) -> np.ndarray:
    """The fixture's superpixel image, resized (nearest neighbour) to ``size`` (rows, columns)."""
    from archivestore.imaging import decode_superpixels

    index = decode_superpixels(FIXTURE.read_bytes())
    if size and tuple(size) != index.shape:
        ys = (np.arange(size[0]) * index.shape[0]) // size[0]
        xs = (np.arange(size[1]) * index.shape[1]) // size[1]
        index = np.ascontiguousarray(index[ys[:, None], xs[None, :]])
    return index


def make_study(index: np.ndarray, n_img: int, n_feat: int, n_rat: int, seed: int = 0) -> xr.Dataset:
    """Blob-like annotations on the superpixels of ``index`` (the same image for every row)."""
    from archivestore.analysis import superpixel_map

    rng = np.random.default_rng(seed)
    smap = superpixel_map(index)
    n_sp = smap.n
    centroid = smap.centroid / np.array(index.shape)
    ann = np.full((n_img, n_feat, n_rat, n_sp), np.nan, dtype=np.float32)
    for i in range(n_img):
        for f in range(n_feat):
            centre = rng.random(2)
            radius = rng.uniform(0.1, 0.3)
            for r in range(n_rat):
                if rng.random() < 0.05:
                    continue  # this rater did not annotate the feature
                c = centre + rng.normal(0, 0.05, 2)
                d = np.hypot(*(centroid - c).T) / (radius * rng.uniform(0.7, 1.3))
                v = np.where(d < 0.6, 1.0, np.where(d < 1.0, 0.5, 0.0))
                v[rng.random(n_sp) < 0.02] = np.nan
                ann[i, f, r] = v
    area = np.broadcast_to(smap.area.astype(np.uint32), (n_img, n_sp))
    return xr.Dataset(
        {
            "annotation": (("image", "feature", "rater", "superpixel"), ann),
            "superpixel_area": (("image", "superpixel"), np.array(area)),
            "superpixel_mask_area": (("image", "superpixel"), np.zeros((n_img, n_sp), np.uint32)),
            "has_mask": (("image",), np.zeros(n_img, bool)),
        },
        coords={
            "image": np.array([f"ISIC_{i:07d}" for i in range(n_img)], dtype=object),
            "feature": np.array([f"feature_{f}" for f in range(n_feat)], dtype=object),
            "rater": np.array([f"rater_{r}" for r in range(n_rat)], dtype=object),
        },
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--raters", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=2, default=(767, 1022), metavar=("Y", "X"),
                        help="image size (default 767 1022: ISIC_0000000's real size in its metadata; "
                        "the fixture's recorded superpixel image is 480 640)")
    parser.add_argument("--sample", type=int, default=300, help="rater pairs timed for isicarchive")
    parser.add_argument("--repeat", type=int, default=3, help="archivestore runs (best is kept)")
    parser.add_argument("--scheduler", default="threads",
                        help="dask scheduler for archivestore (threads, processes, sync)")
    args = parser.parse_args(argv)

    import dask

    from archivestore.analysis import overlap

    python = ensure_env()
    index = make_index(args.size)
    study = make_study(index, args.images, args.features, args.raters)
    n_pairs = args.images * args.features * args.raters * (args.raters - 1)
    print(f"study: {args.images} images of {index.shape[0]}x{index.shape[1]} pixels, "
          f"{int(index.max()) + 1} superpixels, "
          f"{args.features} features, {args.raters} raters: {n_pairs} ordered rater pairs")

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        study.to_zarr(store, group="studies/bench", zarr_format=3, consolidated=False,
                      encoding={"annotation": {"chunks": (16, 8, 8, 2048)},
                                "superpixel_area": {"chunks": (16, 2048)},
                                "superpixel_mask_area": {"chunks": (16, 2048)}})
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            lazy = xr.open_zarr(store, group="studies/bench", consolidated=False)
            result = overlap(lazy, summary=False)
            with dask.config.set(scheduler=args.scheduler):
                result = result.compute()
            times.append(time.perf_counter() - t0)
        ours_rate = n_pairs / min(times)
        memory = []
        in_memory = study.chunk({"image": 16})
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with dask.config.set(scheduler=args.scheduler):
                overlap(in_memory, summary=False).compute()
            memory.append(time.perf_counter() - t0)
        memory_rate = n_pairs / min(memory)

        # isicarchive on a sample of ordered pairs where both raters annotated
        rng = np.random.default_rng(1)
        dice = result["dice"].values
        ok = np.argwhere(~np.isnan(dice) & ~np.isnan(result["correlation"].values))
        pairs = ok[rng.choice(len(ok), size=min(args.sample, len(ok)), replace=False)]
        path = Path(tmp) / "study.npz"
        np.savez(path, index=index, annotation=study["annotation"].values, pairs=pairs)
        ref = run_json(ISICARCHIVE, {"path": str(path)}, python=python)
    ref_rate = len(pairs) / ref["seconds"]

    i, f, a, b = pairs.T
    err_dice = np.max(np.abs(np.array(ref["dice"]) - dice[i, f, a, b]))
    err_corr = np.max(np.abs(np.array(ref["corr"]) - result["correlation"].values[i, f, a, b]))
    print(f"isicarchive  image_dice + image_corr: {ref_rate:12.1f} pairs/s "
          f"({len(pairs)} pairs in {ref['seconds']:.3f} s, "
          "maps painted beforehand)")
    print(f"archivestore overlap ({args.scheduler}):      {ours_rate:12.1f} pairs/s "
          f"({n_pairs} pairs in {min(times):.3f} s, "
          "from the store, all three measures)")
    print(f"archivestore overlap, study in memory:  {memory_rate:12.1f} pairs/s ({min(memory):.3f} s; "
          f"{memory_rate / ref_rate:.0f}x)")
    print(f"ratio: {ours_rate / ref_rate:.0f}x (goal >= 1000x); largest difference to isicarchive: "
          f"Dice {err_dice:.1e}, correlation {err_corr:.1e}")
    if max(err_dice, err_corr) > 1e-9:
        raise SystemExit("results differ from isicarchive by more than 1e-9")


if __name__ == "__main__":
    main()
