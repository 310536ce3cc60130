"""Archive scale, measured per item: CPU seconds, bytes stored and store requests of one item of each kind.

Three kinds of item, each ingested with the real ``ingest`` into a fresh local store whose
every request goes through :class:`~archivestore.testing.store.CountingStore`:

* ``isic``: ISIC-like dermoscopy (JPEG quality 92, ~1000 RGB-encoded superpixels, lesion
  mask, a 30-field archive record), at 1024x768 and at 2000x1500 (``--isic-sizes``);
* ``ct``: axial CT series of 512x512 int16 slices (uncompressed DICOM, the body phantom of
  ``bench_dicom_ingest.py``), ``--ct-slices`` slices each;
* ``idr``: microscopy images as idr0013 (MitoCheck) screen A holds them: one channel,
  ``--idr-frames`` time points of 1024x1344 uint16 (fluorescent nuclei and camera noise),
  as :class:`~archivestore.sources.ArrayItem`.

For each it prints, per item: process CPU seconds (all threads; loaders read files from the
page cache), bytes stored, and the store requests split into the item's own (its groups and
arrays) and the shared tables' (``metadata``, ``series_metadata``, ``studies``, the
``tables`` lease), by operation. Then the cost of one metadata-table append of ``--batch``
rows as the table grows to ``--rows`` (requests and seconds per append), which the
projection uses; and the projection of the three whole archives (``bench_scale_project.py``,
explained in ``benchmarks/scale.md``).

Run::

    .venv/bin/python benchmarks/bench_scale.py [--quick] [--n 8] [--ct-slices 120] [--idr-frames 93]
        [--rows 409600] [--batch 4096]
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import bench_cluster  # noqa: E402
import bench_dicom_ingest as dicom_bench  # noqa: E402
import bench_ingest as isic_bench  # noqa: E402
from bench_scale_project import project  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.sources import ArrayImage, ArrayItem, ChallengeSource  # noqa: E402
from archivestore.store import Store  # noqa: E402
from archivestore.testing.store import CountingStore  # noqa: E402

TABLES = ("metadata", "series_metadata", "studies", "_locks/tables")
IDR_SHAPE = (1024, 1344)  # idr0013 screen A: 1344 x 1024 x 1 x 1 x 93 (XYZCT)


def counting_store(path: Path) -> tuple[Store, CountingStore]:
    """A new store at ``path`` whose requests are all counted (the store object the ingest's threads share)."""
    opened = open_store(path, mode="a")
    counting = CountingStore(opened.zstore)
    root = zarr.open_group(counting, mode="r+", zarr_format=3)
    return Store(str(path), counting, root, mode="a", layout=opened.layout), counting


def split_requests(counting: CountingStore) -> tuple[Counter[str], Counter[str]]:
    """Requests by operation: (the items' own, the shared tables')."""
    items: Counter[str] = Counter()
    tables: Counter[str] = Counter()
    for (op, key), n in counting.calls.items():
        (tables if key.startswith(TABLES) else items)[op] += n
    return items, tables


def store_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def isic_record(k: int) -> dict[str, Any]:
    """An ISIC API v2 image record with the fields the archive's records carry (30 leaves)."""
    image_id = f"ISIC_{k:07d}"
    return {
        "isic_id": image_id, "public": True, "copyright_license": ["CC-0", "CC-BY", "CC-BY-NC"][k % 3],
        "attribution": ["Anonymous", "Hospital Clinic de Barcelona", "Memorial Sloan Kettering"][k % 3],
        "files": {size: {"url": f"https://content.isic-archive.com/{image_id}/{size}.jpg", "size": 100_000 + k}
                  for size in ("full", "thumbnail_256")},
        "metadata": {
            "acquisition": {"image_type": "dermoscopic", "pixels_x": 1024, "pixels_y": 768,
                            "dermoscopic_type": ["contact polarized", "non-contact polarized", None][k % 3]},
            "clinical": {
                "age_approx": 20 + 5 * (k % 14), "sex": ["male", "female"][k % 2],
                "anatom_site_general": ["head/neck", "upper extremity", "posterior torso", None][k % 4],
                "benign_malignant": ["benign", "malignant"][int(k % 5 == 1)],
                "diagnosis_1": ["Benign", "Malignant"][int(k % 5 == 1)],
                "diagnosis_2": "Benign melanocytic proliferations", "diagnosis_3": "Nevus",
                "diagnosis_confirm_type": ["histopathology", "serial imaging showing no change"][k % 2],
                "melanocytic": k % 3 != 0, "lesion_id": f"IL_{k // 2:07d}", "patient_id": f"IP_{k // 5:07d}",
                "family_hx_mm": None if k % 7 else False, "personal_hx_mm": None if k % 11 else True,
                "fitzpatrick_skin_type": ["I", "II", "III", None][k % 4],
                "clin_size_long_diam_mm": round(3 + (k % 40) / 4, 1), "concomitant_biopsy": k % 2 == 0,
            },
        },
        "_collections": [["ISIC 2017 Challenge", "HAM10000", "BCN20000"][k % 3]],
    }


# -- the three kinds of item ----------------------------------------------------------------
def isic_items(tmp: Path, n: int, size: tuple[int, int]) -> Iterable[Any]:
    dirs = isic_bench.write_archive(tmp / f"isic-{size[0]}", [size] * n, part2=False)
    source = ChallengeSource(dirs)
    for item in source:
        item.metadata.update(isic_record(int(item.id.split("_")[1])))
        yield item


def ct_items(tmp: Path, n: int, slices: int) -> list[Any]:
    return dicom_bench.items(dicom_bench.write_collection(tmp / "ct", n, slices))


def _frames(seed: int, frames: int) -> np.ndarray:
    """A time-lapse of fluorescent nuclei: ~150 Gaussian blobs drifting, offset 100, Poisson-like noise."""
    rng = np.random.default_rng(seed)
    h, w = IDR_SHAPE
    yy, xx = np.mgrid[0:h:4, 0:w:4]  # drawn at 1/4 scale, upsampled (smooth like real optics)
    centres = rng.uniform((0, 0), (h, w), (150, 2))
    out = np.empty((frames, h, w), np.uint16)
    for t in range(frames):
        small = np.zeros(yy.shape)
        for cy, cx in centres + t * rng.normal(0, 1.5, centres.shape):
            small += 900 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 9.0**2))
        signal = np.kron(small, np.ones((4, 4)))[:h, :w] + 100
        out[t] = np.clip(signal + rng.normal(0, np.sqrt(signal)), 0, 65535).astype(np.uint16)
    return out


def _idr_load(movie: np.ndarray) -> ArrayImage:
    return ArrayImage(movie, ("t", "y", "x"), channels=[{"label": "H2B-GFP"}],
                      coords={"t": np.arange(len(movie)) * 30.0}, units={"t": "second"})


def idr_items(n: int, frames: int) -> list[ArrayItem]:
    """``n`` images; two movies made before the timing starts, used in turn (the loader costs nothing)."""
    movies = [_frames(seed, frames) for seed in range(min(n, 2))]
    return [ArrayItem(id=str(1_000_000 + k), load=functools.partial(_idr_load, movies[k % 2]),
                      metadata={"plate": f"LT{k // 384:04d}_01", "well": f"{'ABCDEFGHIJKLMNOP'[k % 16]}{k % 24 + 1}",
                                "field": 1, "map": {"Gene Symbol": f"GENE{k}", "siRNA Identifier": f"s{k:06d}",
                                                    "Phenotype": "mitotic delay" if k % 9 == 0 else None}})
            for k in range(n)]


# -- measuring ---------------------------------------------------------------------------
def _row(name: str, n: int, cpu: float, wall: float, size: int, pixels: float,
         own: Counter[str], tables: Counter[str]) -> dict[str, Any]:
    per_op = ", ".join(f"{op} {v / n:.1f}" for op, v in sorted(own.items()))
    print(f"{name:<22} {n:>3} items  CPU {cpu / n:7.3f} s/item  wall {wall / n:6.3f} s/item  "
          f"stored {size / n / 1e6:8.2f} MB/item ({size / n / max(pixels, 1):.3f} B/pixel)  "
          f"requests/item {sum(own.values()) / n:5.1f} ({per_op}); tables {sum(tables.values())} in all")
    return {"kind": name, "n": n, "cpu": cpu / n, "wall": wall / n, "bytes": size / n,
            "own": {k: v / n for k, v in own.items()}, "tables": dict(tables)}


def measure(name: str, path: Path, items: list[Any], pixels: float) -> dict[str, Any]:
    """Ingest ``items[0]`` (first-use costs, the tables' creation), then count and time the rest."""
    store, counting = counting_store(path)
    assert ingest(store, items[:1], progress=False).ok
    before = store_bytes(path)
    counting.reset()
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = ingest(store, items[1:], progress=False)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"{name}: {report.failed[:3]}")
    own, tables = split_requests(counting)
    return _row(name, len(items) - 1, cpu, wall, store_bytes(path) - before, pixels, own, tables)


class HttpCount:
    """Every HTTP request s3fs sends (retries included), by method and by (items, tables), via botocore's events."""

    def __init__(self, store: Store) -> None:
        from zarr.core.sync import sync

        fs = store.zstore.fs
        sync(fs.set_session())
        fs.s3.meta.events.register("before-send.s3", self)
        self.own: Counter[str] = Counter()
        self.tables: Counter[str] = Counter()

    def __call__(self, request: Any, **_: Any) -> None:
        from urllib.parse import unquote, urlsplit

        key = unquote(urlsplit(request.url).path).split(".zarr/", 1)[-1]
        (self.tables if key.startswith(TABLES) else self.own)[request.method] += 1


def measure_s3(name: str, url: str, items: list[Any]) -> dict[str, Any]:
    """Requests per item on the local S3 server (moto): ``items[0]`` first, then the rest counted."""
    store = open_store(url, mode="a")
    count = HttpCount(store)
    assert ingest(store, items[:1], progress=False).ok
    count.own.clear()
    count.tables.clear()
    t0 = time.perf_counter()
    report = ingest(store, items[1:], progress=False)
    if not report.ok:
        raise RuntimeError(f"{name}: {report.failed[:3]}")
    return _row(f"{name} (S3)", len(items) - 1, float("nan"), time.perf_counter() - t0, 0, 1,
                count.own, count.tables)


def table_appends(path: Path, rows: int, batch: int) -> int:
    """Append ISIC records in ``batch``-row appends until the table has ``rows`` rows; cost per append."""
    store, counting = counting_store(path)
    index = store.table_index()
    print(f"\nmetadata table appends of {batch} ISIC records ({len(isic_record(0))} top-level keys, 30 leaves):")
    print(f"{'rows before':>12} {'requests':>9} {'gets':>5} {'sets':>5} {'wall':>9}")
    for start in range(0, rows, batch):
        records = {f"ISIC_{k:07d}": isic_record(k) for k in range(start, start + batch)}
        counting.reset()
        t0 = time.perf_counter()
        store.append_tables(records, index=index)
        dt = time.perf_counter() - t0
        if start == 0 or (start // batch) % 10 == 9 or start + batch >= rows:
            print(f"{start:>12} {counting.total():>9} {counting.counts['get']:>5} {counting.counts['set']:>5} "
                  f"{c.fmt_s(dt)}")
    print(f"table on disk: {store_bytes(path / 'metadata') / 1e6:.1f} MB for {rows} rows")
    return counting.total()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small run")
    ap.add_argument("--n", type=int, default=9, help="items of each kind (the first one is not counted)")
    ap.add_argument("--isic-sizes", default="768x1024,1500x2000", help="rows x cols, comma separated")
    ap.add_argument("--ct-slices", type=int, default=120)
    ap.add_argument("--idr-frames", type=int, default=93)
    ap.add_argument("--rows", type=int, default=409_600, help="metadata rows at the end of the append run")
    ap.add_argument("--batch", type=int, default=4096, help="rows per append (ingest's table_batch)")
    ap.add_argument("--skip", default="", help="kinds to skip: isic,ct,idr,table")
    ap.add_argument("--no-s3", action="store_true", help="skip the request counts on the local S3 server")
    ap.add_argument("--submitter-ms", type=float, default=2.8,
                    help="the submitting process's CPU per item (bench_scale_sim.py cluster)")
    ap.add_argument("--s3-n", type=int, default=4, help="items of each kind on the S3 server (the first not counted)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.ct_slices, args.idr_frames, args.rows = 3, 32, 8, 16_384
    skip = set(args.skip.split(","))
    print(c.machine())
    print(c.load_note())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}\n")
    runs: list[tuple[str, Callable[[Path], list[Any]], float]] = []
    if "isic" not in skip:
        for spec in args.isic_sizes.split(","):
            h, w = (int(x) for x in spec.split("x"))
            runs.append((f"isic {w}x{h}", lambda tmp, h=h, w=w: list(isic_items(tmp, args.n, (h, w))), h * w))
    if "ct" not in skip:
        runs.append((f"ct 512x512x{args.ct_slices}", lambda tmp: ct_items(tmp, args.n, args.ct_slices),
                     512 * 512 * args.ct_slices))
    if "idr" not in skip:
        runs.append((f"idr0013 t={args.idr_frames}", lambda tmp: idr_items(args.n, args.idr_frames),
                     IDR_SHAPE[0] * IDR_SHAPE[1] * args.idr_frames))
    server = None if args.no_s3 else bench_cluster.s3_server()
    rows: dict[str, dict[str, Any]] = {}
    table_requests = 135  # a steady-state append (measured; replaced by this run's figure below)
    try:
        with c.workdir("scale-") as tmp:
            for k, (name, make, pixels) in enumerate(runs):
                items = make(tmp)
                rows[name] = measure(name, tmp / f"store{k}.zarr", items, pixels)
                if server is not None:
                    rows[name]["s3"] = measure_s3(name, f"s3://{bench_cluster.bucket()}/store{k}.zarr",
                                                  items[:args.s3_n])
            if "table" not in skip:
                table_requests = table_appends(tmp / "table.zarr", args.rows, args.batch)
    finally:
        if server is not None:
            server.stop()
    project(rows, args.submitter_ms, table_requests, args.batch, args.ct_slices)
    print(f"\n{c.load_note()}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
