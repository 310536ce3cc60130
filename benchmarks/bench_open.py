"""Opening one image in a large store against a 10-image store: time and store requests.

Builds, with the real ingest (``archivestore.ingest`` over in-memory items, many worker
threads), a 10-image store and an ``--n``-image store (default 100,000) of tiny 16x16
PNG images with ISIC-like nested metadata records, then for each store:

* counts the store requests (get / exists / list) of opening one image, through a
  ``archivestore.testing.store.CountingStore`` around the local store, for
  ``store.image(id).load()`` and for plain
  ``xr.open_zarr(store, group="images/<id>", consolidated=False).load()``;
* times, median over ``--repeat`` random image ids, ``store.image(id).load()`` on a
  store opened once, and ``xr.open_zarr(path, group=..., consolidated=False).load()``
  from the path (a fresh zarr store object each time).

Printed: ratio = large-store time / 10-image-store time, and both request counts.
The ingest of the large store is timed per batch of 10,000 (ms per image), so whether
ingest slows down as the store grows shows too. ``--store PATH`` keeps the large store
at PATH and reuses it on the next run when it already holds ``--n`` images.

Run::

    .venv/bin/python benchmarks/bench_open.py [--quick] [--n 100000] [--workers 16] [--store PATH]

Goal (foundation issue): opening one image in a 100,000-image store at most 1.2x the
time in a 10-image store, with the same number of store requests.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
import zarr.storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.sources import Item  # noqa: E402
from archivestore.store import Store  # noqa: E402
from archivestore.testing.sample import png  # noqa: E402
from archivestore.testing.store import CountingStore  # noqa: E402

GOAL = 1.2
SMALL = 10
BATCH = 10_000
DIAGNOSES = ["nevus", "melanoma", "seborrheic keratosis", "basal cell carcinoma"]


def _items(start: int, stop: int, data: bytes) -> list[Item]:
    items = []
    for k in range(start, stop):
        image_id = f"ISIC_{k:07d}"
        record = {
            "isic_id": image_id,
            "copyright_license": "CC-BY",
            "attribution": "Synthetic",
            "metadata": {
                "clinical": {"age_approx": 20 + k % 70, "sex": ("female", "male")[k % 2],
                             "diagnosis": DIAGNOSES[k % 4], "benign_malignant": ("benign", "malignant")[k % 5 == 0]},
                "acquisition": {"image_type": "dermoscopic", "pixels_x": 16, "pixels_y": 16},
            },
        }
        items.append(Item(id=image_id, metadata=record, image=lambda: data, where=f"bench:{image_id}"))
    return items


def build(path: Path, n: int, workers: int, verbose: bool) -> float:
    """Ingest n tiny images (resuming if ``path`` holds some); return seconds per image."""
    data = png(np.full((16, 16, 3), 120, np.uint8))
    store = open_store(path, mode="a")
    have = len(store)
    if have >= n:
        return float("nan")
    total_t = 0.0
    for start in range(have, n, BATCH):
        stop = min(n, start + BATCH)
        t0 = time.perf_counter()
        report = ingest(store, _items(start, stop, data), workers=workers, progress=False)
        dt = time.perf_counter() - t0
        total_t += dt
        assert report.ok, report.failed[:3]
        if verbose:
            per_image = dt / (stop - start) * 1e3
            print(f"  ingested images {start:,}..{stop - 1:,}: {dt:.1f} s, {per_image:.2f} ms per image",
                  flush=True)
    return total_t / (n - have)


def counting_store(path: Path) -> tuple[CountingStore, Store]:
    counting = CountingStore(zarr.storage.LocalStore(path, read_only=True))
    return counting, Store(str(path), counting, zarr.open_group(counting, mode="r", zarr_format=3))


def requests(path: Path, image_id: str) -> dict[str, dict]:
    out = {}
    counting, store = counting_store(path)
    counting.reset()
    store.image(image_id).load()
    out["store.image(id).load()"] = dict(counting.counts)
    counting = CountingStore(zarr.storage.LocalStore(path, read_only=True))
    xr.open_zarr(counting, group=f"images/{image_id}", consolidated=False).load()
    out["xr.open_zarr(...).load()"] = dict(counting.counts)
    return out


def timings(stores: dict[str, tuple[Path, list[str]]], repeat: int,
            rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Median seconds per store and method; the stores are timed alternately, so a change
    in the machine's load during the run falls on both alike."""
    opened = {label: open_store(path) for label, (path, _) in stores.items()}
    methods = {
        "store.image(id).load()": lambda label, i: opened[label].image(i).load(),
        "xr.open_zarr(...).load()": lambda label, i: xr.open_zarr(
            str(stores[label][0]), group=f"images/{i}", consolidated=False).load(),
    }
    out: dict[str, dict[str, list[float]]] = {label: {m: [] for m in methods} for label in stores}
    for label, (_, ids) in stores.items():  # warm-up
        for fn in methods.values():
            fn(label, ids[0])
    for _ in range(repeat):
        for how, fn in methods.items():
            for label, (_, ids) in stores.items():
                image_id = ids[int(rng.integers(0, len(ids)))]
                t0 = time.perf_counter()
                fn(label, image_id)
                out[label][how].append(time.perf_counter() - t0)
    return {label: {how: float(np.median(v)) for how, v in d.items()} for label, d in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 1,000-image large store, 20 repeats")
    ap.add_argument("--n", type=int, default=100_000, help="images in the large store (default 100,000)")
    ap.add_argument("--workers", type=int, default=16, help="ingest worker threads")
    ap.add_argument("--repeat", type=int, default=100, help="random ids timed per store")
    ap.add_argument("--store", type=Path, help="keep the large store here (reused if it has --n images)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args(argv)
    n, repeat = (1000, 20) if args.quick else (args.n, args.repeat)
    warnings.simplefilter("ignore", category=RuntimeWarning)
    print(f"machine: {c.machine()}")
    print(c.load_note())
    rng = np.random.default_rng(7)
    with c.workdir("open-", keep=args.keep) as tmp:
        small = tmp / "small.zarr"
        big = args.store or tmp / "big.zarr"
        build(small, SMALL, args.workers, verbose=False)
        print(f"building the {n:,}-image store at {big} with {args.workers} ingest workers ...", flush=True)
        t0 = time.perf_counter()
        per_image = build(big, n, args.workers, verbose=True)
        if np.isnan(per_image):
            print(f"  reused: it already holds {len(open_store(big)):,} images")
        else:
            print(f"  built in {time.perf_counter() - t0:.0f} s: {per_image * 1e3:.2f} ms per image "
                  f"(100,000 images would take ~{per_image * 1e5 / 60:.0f} min)")
        n_big = len(open_store(big))
        stores = {f"{SMALL} images": (small, [f"ISIC_{k:07d}" for k in range(SMALL)]),
                  f"{n_big:,} images": (big, [f"ISIC_{k:07d}" for k in range(n_big)])}

        print()
        print("store requests to open and load one image:")
        reqs = {}
        for label, (path, ids) in stores.items():
            reqs[label] = requests(path, ids[-1])
            for how, counts in reqs[label].items():
                print(f"  {label:16s} {how:26s} {sum(counts.values()):3d}  {counts}")

        print()
        print(f"time to open and load one image (median over {repeat} random ids, stores timed alternately):")
        times = timings(stores, repeat, rng)
        small_l, big_l = list(stores)
        worst = 0.0
        for how in times[small_l]:
            a, b = times[small_l][how], times[big_l][how]
            ratio = b / a
            worst = max(worst, ratio)
            ra, rb = sum(reqs[small_l][how].values()), sum(reqs[big_l][how].values())
            print(f"  {how:26s} {small_l}: {c.fmt_s(a)}  {big_l}: {c.fmt_s(b)}  ratio {ratio:.2f}x  "
                  f"requests {ra} vs {rb}")
        same = all(reqs[small_l][h] == reqs[big_l][h] for h in reqs[small_l])
        print()
        verdict = "meets" if worst <= GOAL and same else "MISSES"
        print(f"worst ratio {big_l} / {small_l} = {worst:.2f}x, same requests: {same}: "
              f"{verdict} the goal of <= {GOAL}x")
        print(c.load_note())
        if args.store is None:
            shutil.rmtree(big, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
