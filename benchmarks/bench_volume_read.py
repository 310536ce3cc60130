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

Warm: every method in turn, ``--repeat`` rounds after one warm-up call each, median wall and
process CPU time (files in the page cache). Cold: each method once in a fresh process per
repetition (imports done before the clock starts), after evicting the files it reads from the
page cache with ``posix_fadvise(DONTNEED)``, median of ``--cold-repeat``.
``--transfer-syntax rle|j2k`` writes the DICOM files compressed (the baseline then decodes);
``--codecs`` also rewrites the stored volume under other Zarr codecs and times them.

Run::

    .venv/bin/python benchmarks/bench_volume_read.py [--slices 300] [--repeat 5] [--cold-repeat 3]
        [--transfer-syntax explicit|rle|j2k] [--codecs]

Goal (issue 9): the store read at least 10x faster than pydicom reading and stacking.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_dicom_ingest import SIZE, TRANSFER_SYNTAXES, items, write_series  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.layout import volume_chunks  # noqa: E402

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


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, process CPU s: every thread, zarr's and dask's included) of one call."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - cpu0


def build(tmp: Path, slices: int, transfer_syntax: str) -> tuple[Path, str, Path]:
    """The series' files and a store holding it: (folder, SeriesInstanceUID, store path)."""
    t0 = time.perf_counter()
    folder = tmp / "series"
    uid, paths = write_series(folder, 0, slices, name="volume", transfer_syntax=TRANSFER_SYNTAXES[transfer_syntax])
    t1 = time.perf_counter()
    store_path = tmp / "store.zarr"
    report = ingest(open_store(store_path, mode="a"), items({uid: paths}), progress=False)
    if not report.ok:
        raise RuntimeError(f"ingest failed: {report.failed}")
    raw = slices * SIZE * SIZE * 2
    on_disk = sum(p.stat().st_size for p in paths)
    stored = open_store(store_path).disk_usage().get("series", 0)
    print(f"volume: {slices} slices of {SIZE}x{SIZE} int16 ({raw / 1e6:.1f} MB), DICOM files "
          f"({TRANSFER_SYNTAXES[transfer_syntax].name}) {on_disk / 1e6:.1f} MB (written in {t1 - t0:.1f} s), "
          f"store series/ {stored / 1e6:.1f} MB (ingested in {time.perf_counter() - t1:.1f} s)")
    return folder, uid, store_path


def warm_times(folder: Path, store_path: Path, uid: str, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Every method in turn, ``repeat`` rounds, after a warm-up call that also checks the arrays agree."""
    reference = pydicom_stack(folder)
    for name in METHODS:
        got = call(name, folder, store_path, uid)
        if got.shape != reference.shape or not np.array_equal(got, reference):
            raise AssertionError(f"{name} differs from the pydicom stack")
    del reference, got
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in [BASELINE, *METHODS]}
    for _ in range(repeat):
        for name in times:
            times[name].append(timed_cpu(functools.partial(call, name, folder, store_path, uid)))
    return times


def print_table(warm: dict[str, list[tuple[float, float]]], colds: dict[str, list[float]]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    base = [med([w for w, _ in warm[BASELINE]]), med([k for _, k in warm[BASELINE]]), med(colds[BASELINE])]
    print(f"{'method':17s} {'warm wall':>11s} {'ratio':>6s} {'warm CPU':>11s} {'ratio':>6s} {'cold wall':>11s} "
          f"{'ratio':>6s}   code")
    for name in warm:
        row = [med([w for w, _ in warm[name]]), med([k for _, k in warm[name]]), med(colds[name])]
        cells = " ".join(f"{c.fmt_s(v)} {b / v:5.1f}x" for v, b in zip(row, base, strict=True))
        code = "pydicom.dcmread each file, sort, np.stack, rescale" if name == BASELINE else METHODS[name][0]
        print(f"{name:17s} {cells}   {code}")


def codec_comparison(store_path: Path, uid: str, repeat: int) -> None:
    """The stored volume rewritten with plain zarr under other codecs: size, write and read cost."""
    import shutil

    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    store = open_store(store_path)
    volume = store.read_array(store.layout.series(uid), "volume")
    codecs = {"Zstd 3 (the layout's)": ZstdCodec(level=3), "Zstd 1": ZstdCodec(level=1),
              "Blosc zstd 1 + shuffle": BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
              "Blosc zstd 3 + shuffle": BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
              "Blosc lz4 5 + shuffle": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")}
    path = store_path.parent / "codecs.zarr"
    print(f"\ncodecs on this volume (plain zarr, chunks {volume_chunks(volume.shape, ('z', 'y', 'x'))}, "
          f"median of {repeat}; CPU = process CPU, every thread):")
    print(f"  {'codec':24s} {'size':>7s} {'write wall':>11s} {'write CPU':>11s} {'read wall':>11s} {'read CPU':>11s}")
    for name, codec in codecs.items():
        def write(codec: Any = codec) -> None:
            arr = zarr.create_array(path, shape=volume.shape, dtype=volume.dtype, compressors=(codec,),
                                    chunks=volume_chunks(volume.shape, ("z", "y", "x")), overwrite=True,
                                    config={"write_empty_chunks": True})
            arr[...] = volume

        writes = [timed_cpu(write) for _ in range(repeat)]
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        arr = zarr.open_array(path, mode="r")
        if not np.array_equal(arr[...], volume):
            raise AssertionError(f"{name} did not round-trip")
        reads = [timed_cpu(functools.partial(arr.__getitem__, Ellipsis)) for _ in range(repeat)]
        cells = [statistics.median(x[i] for x in runs) for runs in (writes, reads) for i in (0, 1)]
        print(f"  {name:24s} {size / volume.nbytes:6.3f}  " + " ".join(c.fmt_s(v) for v in cells))
    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5, help="warm rounds (median)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="fresh processes per method (0: no cold reads)")
    ap.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES), default="explicit",
                    help="how the files store their pixels (default: explicit, uncompressed as most CT)")
    ap.add_argument("--codecs", action="store_true", help="also compare codecs on the stored volume")
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
        folder, uid, store_path = build(tmp, args.slices, args.transfer_syntax)
        warm = warm_times(folder, store_path, uid, args.repeat)
        colds: dict[str, list[float]] = {name: [] for name in warm}
        imports: list[float] = []
        for _ in range(args.cold_repeat):
            for name in warm:
                seconds, imported = cold(name, folder, store_path, uid)
                colds[name].append(seconds)
                imports += [imported] if name != BASELINE else []
        print(f"\nwarm: median of {args.repeat} rounds (CPU: process CPU time, every thread); cold: a fresh "
              f"process, files evicted from the page cache, imports done before the clock, median of "
              f"{args.cold_repeat}; ratio = pydicom's time / the method's")
        print_table(warm, colds)
        base = statistics.median(w for w, _ in warm[BASELINE])
        print(f"(warm pydicom: {args.slices * SIZE * SIZE * 2 / base / 1e6:.0f} MB/s, "
              f"{base / args.slices * 1e3:.2f} ms per slice)")
        if imports:
            print(f"(not in the cold figures: the store methods' first-use imports, median "
                  f"{statistics.median(imports):.2f} s per process: zarr, dask, distributed, xarray's backends)")
        for name in METHODS:
            ratio = base / statistics.median(w for w, _ in warm[name])
            verdict = "meets" if ratio >= GOAL else "MISSES"
            print(f"ratio pydicom / {name} (warm wall) = {ratio:.1f}x: {verdict} the goal of >= {GOAL:g}x")
        print(c.load_note())
        if args.codecs:
            codec_comparison(store_path, uid, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
