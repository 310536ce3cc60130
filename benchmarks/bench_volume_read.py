"""Reading a 512x512x300 CT volume from the store against pydicom reading and stacking its files.

Writes one axial CT series of ``--slices`` 512x512 int16 files (the synthetic phantom of
``bench_dicom_ingest.py``: CT_small's header, smooth body phantom plus noise), ingests it with
``archivestore.ingest``, keeps both on disk, and times four ways from a path to the
``(z, y, x)`` array in Hounsfield units (each checked equal to the others):

* baseline, what users write today: list the folder, ``pydicom.dcmread`` every file, sort by
  ImagePositionPatient along the slice normal, stack ``pixel_array``, add RescaleIntercept
  (times RescaleSlope; integer arithmetic in the stored dtype, the cheapest exact way for this data);
* ``open_store(path).volume(uid)["volume"].values`` (xarray + dask, the documented way);
* ``open_store(path)`` then ``store.read_array(store.layout.series(uid), "volume")`` (numpy, no dask);
* ``xr.open_zarr(path, group="series/<uid>", consolidated=False)["volume"].values`` (plain xarray).

Warm: every method in turn, ``--repeat`` rounds after one warm-up call each, median (files in
the page cache). Cold: each method once in a fresh process per repetition (imports done before
the clock starts), after evicting the files it reads from the page cache with
``posix_fadvise(DONTNEED)``, median of ``--cold-repeat``.

Run::

    .venv/bin/python benchmarks/bench_volume_read.py [--slices 300] [--repeat 3] [--cold-repeat 3]

Goal (issue 9): the store read at least 10x faster than pydicom reading and stacking.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_dicom_ingest import SIZE, items, write_series  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402

GOAL = 10.0
BASELINE = "pydicom"


def pydicom_stack(folder: Path) -> np.ndarray:
    """The reference: read every file of the folder, sort along the slice normal, stack, rescale."""
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    cosines = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)))
    volume = np.stack([ds.pixel_array for ds in datasets])
    for k, ds in enumerate(datasets):
        slope, intercept = ds.RescaleSlope, ds.RescaleIntercept
        if slope != 1:
            volume[k] *= volume.dtype.type(slope)
        volume[k] += volume.dtype.type(intercept)
    return volume


def store_volume(store_path: Path, uid: str) -> np.ndarray:
    return open_store(store_path).volume(uid)["volume"].values


def store_read_array(store_path: Path, uid: str) -> np.ndarray:
    store = open_store(store_path)
    return store.read_array(store.layout.series(uid), "volume")


def plain_xarray(store_path: Path, uid: str) -> np.ndarray:
    group = open_store(store_path).layout.series(uid)  # "series/<uid>": the layout names the group
    return xr.open_zarr(store_path, group=group, consolidated=False)["volume"].values


METHODS: dict[str, tuple[str, Callable[[Path, str], np.ndarray]]] = {
    "store.volume": ('open_store(path).volume(uid)["volume"].values', store_volume),
    "store.read_array": ('store.read_array(store.layout.series(uid), "volume")', store_read_array),
    "xr.open_zarr": ('xr.open_zarr(path, group=..., consolidated=False)["volume"].values', plain_xarray),
}


def call(method: str, folder: Path, store_path: Path, uid: str) -> np.ndarray:
    if method == BASELINE:
        return pydicom_stack(folder)
    return METHODS[method][1](store_path, uid)


def evict(root: Path) -> None:
    """Drop the files under ``root`` from the page cache (written back first, so the kernel can drop them)."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def first_use_imports() -> None:
    """What the store methods import on first use: archivestore's lazy names, zarr, dask, xarray's
    backends, and ``distributed`` (dask's ``get_scheduler`` imports it at the first compute when installed)."""
    import dask.array  # noqa: F401
    import zarr  # noqa: F401

    import archivestore.store  # noqa: F401

    xr.backends.list_engines()
    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401


def child(method: str, folder: Path, store_path: Path, uid: str) -> None:
    """One cold read in this fresh process: imports first, evict what the method reads, time one call."""
    t0 = time.perf_counter()
    if method != BASELINE:
        first_use_imports()
    imports = time.perf_counter() - t0
    evict(folder if method == BASELINE else store_path)
    t0 = time.perf_counter()
    call(method, folder, store_path, uid)
    print(json.dumps({"seconds": time.perf_counter() - t0, "imports": imports}))


def cold(method: str, folder: Path, store_path: Path, uid: str) -> tuple[float, float]:
    """(first call s, first-use imports s) in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--child", method, "--folder", str(folder),
                          "--store", str(store_path), "--uid", uid], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["imports"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="warm rounds (median)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="fresh processes per method (0: no cold reads)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--uid", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.folder, args.store, args.uid)
        return 0
    print(f"machine: {c.machine()}")
    print(c.load_note())
    with c.workdir("volume-read-", keep=args.keep) as tmp:
        t0 = time.perf_counter()
        folder = tmp / "series"
        uid, paths = write_series(folder, 0, args.slices, name="volume")
        t1 = time.perf_counter()
        store_path = tmp / "store.zarr"
        report = ingest(open_store(store_path, mode="a"), items({uid: paths}), progress=False)
        if not report.ok:
            raise RuntimeError(f"ingest failed: {report.failed}")
        raw = args.slices * SIZE * SIZE * 2
        on_disk = sum(p.stat().st_size for p in paths)
        stored = open_store(store_path).disk_usage().get("series", 0)
        print(f"volume: {args.slices} slices of {SIZE}x{SIZE} int16 ({raw / 1e6:.1f} MB), DICOM files "
              f"{on_disk / 1e6:.1f} MB (written in {t1 - t0:.1f} s), store series/ {stored / 1e6:.1f} MB "
              f"(ingested in {time.perf_counter() - t1:.1f} s)")

        names = [BASELINE, *METHODS]
        reference = pydicom_stack(folder)
        for name in METHODS:  # warm-up, and every way gives the same array
            got = call(name, folder, store_path, uid)
            if got.shape != reference.shape or not np.array_equal(got, reference):
                raise AssertionError(f"{name} differs from the pydicom stack")
        warm: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                warm[name].append(c.timed(lambda name=name: call(name, folder, store_path, uid)))
        colds: dict[str, list[float]] = {name: [] for name in names}
        imports: list[float] = []
        for _ in range(args.cold_repeat):
            for name in names:
                seconds, imported = cold(name, folder, store_path, uid)
                colds[name].append(seconds)
                imports += [imported] if name != BASELINE else []

        base_warm = statistics.median(warm[BASELINE])
        base_cold = statistics.median(colds[BASELINE]) if args.cold_repeat else float("nan")
        print(f"\nwarm: median of {args.repeat} rounds; cold: fresh process, files evicted from the page cache, "
              f"imports done before the clock, median of {args.cold_repeat}")
        print(f"{'method':20s} {'warm':>10s} {'ratio':>7s} {'cold':>10s} {'ratio':>7s}   code")
        for name in names:
            w = statistics.median(warm[name])
            k = statistics.median(colds[name]) if args.cold_repeat else float("nan")
            code = "pydicom.dcmread each file, sort, np.stack, rescale" if name == BASELINE else METHODS[name][0]
            print(f"{name:20s} {c.fmt_s(w)} {base_warm / w:6.1f}x {c.fmt_s(k)} {base_cold / k:6.1f}x   {code}")
        print(f"(warm pydicom: {raw / base_warm / 1e6:.0f} MB/s, {base_warm / args.slices * 1e3:.2f} ms per slice)")
        if imports:
            print(f"(not in the cold figures: the store methods' first-use imports, median "
                  f"{statistics.median(imports):.2f} s per process: zarr, dask, distributed, xarray's backends)")
        for name in METHODS:
            ratio = base_warm / statistics.median(warm[name])
            verdict = "meets" if ratio >= GOAL else "MISSES"
            print(f"ratio pydicom / {name} (warm) = {ratio:.1f}x: {verdict} the goal of >= {GOAL:g}x")
        print(c.load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
