"""DICOM series ingest wall time against pydicom decoding the same files, divided by the cores.

Writes a synthetic CT "collection" once: ``--series`` series (one patient each) of
``--slices`` axial slices of 512x512 int16, each file pydicom's shipped ``CT_small.dcm``
header (258 elements, private tags included) with Rows/Columns 512, new UIDs per series and
instance, ImagePositionPatient stepping along z, and PixelData from a smooth analytic body
phantom (soft tissue, fat, lungs, liver, aorta, spine; partial-volume edges) plus Gaussian
noise, so that it compresses like CT. The bytes depend only on the arguments. Then measures,
in the same run:

* baseline: ``pydicom.dcmread(path).pixel_array`` for every file, serially, divided by
  ``os.cpu_count()`` -- the wall time of a perfectly parallel ingest that only decodes;
* for reference, the same decoding on a pool of ``os.cpu_count()`` threads;
* contender: ``archivestore.ingest(open_store(tmp, mode="a"), [SeriesItem(...)])`` with
  default workers into a fresh local store, each item's loader reading its files from disk;
  wall time and process CPU time.

Each is the median of ``--repeat`` runs (the files stay in the page cache). Printed: the ratio
ingest / (decode / cores), the CPU split, and the store's size beside the raw pixel bytes.
``--transfer-syntax rle|j2k`` writes the files compressed (then the baseline really decodes).
``--cluster`` adds the same ingest on a dask ``LocalCluster`` of ``os.cpu_count()``
single-threaded worker processes (pydicom's parsing and the JPEG 2000 decoder hold the GIL, so
threads cannot decode in parallel; processes can). ``--profile`` adds a serial cost model: the
CPU time of each step of ingest (read, parse, pixel decode, stacking and rescale, header JSON,
sha256, Zstd, the rest of the zarr write), measured on the same files.

Run::

    .venv/bin/python benchmarks/bench_dicom_ingest.py [--series 6] [--slices 60] [--repeat 3]
        [--transfer-syntax explicit|rle|j2k] [--cluster] [--profile]

Goal (issue 9): ingest wall time at most 1.5x the decode time / cores.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.sources import SeriesItem  # noqa: E402

GOAL = 1.5
SIZE = 512
PIXEL_SPACING = 0.75  # mm
SLICE_SPACING = 2.5  # mm
INTERCEPT = -1024
TRANSFER_SYNTAXES = {"explicit": ExplicitVRLittleEndian, "rle": RLELossless, "j2k": JPEG2000Lossless}


# -- the collection -----------------------------------------------------------------------
def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=["archivestore benchmarks dicom", *map(str, parts)])


def _inside(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float,
            edge: float = 0.006) -> np.ndarray:
    """A soft ellipse indicator (1 inside, 0 outside, a partial-volume ramp ~3 pixels wide)."""
    if ru <= 0 or rv <= 0:
        return np.zeros_like(u)
    r = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return 0.5 * (1.0 + np.tanh((1.0 - r) * min(ru, rv) / edge))


@functools.lru_cache(maxsize=512)
def phantom_hu(t: float, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """A smooth axial body slice in Hounsfield units at relative height ``t`` in [0, 1].

    Air outside the body, a fat rim, soft tissue with a slow texture, two lungs in the upper
    60 % (shrinking downwards), a liver below 40 %, an enhancing aorta, a spine with cortex.
    """
    v, u = np.meshgrid(np.linspace(-1, 1, shape[0], dtype=np.float32),
                       np.linspace(-1, 1, shape[1], dtype=np.float32), indexing="ij")
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body_a, body_b = 0.82 * (1 + 0.04 * np.sin(np.pi * t)), 0.58
    body = _inside(u, v, 0.0, 0.05, body_a, body_b)
    inner = _inside(u, v, 0.0, 0.05, body_a - 0.05, body_b - 0.05)
    hu += body * 910.0  # fat, -90 HU
    hu += inner * (130.0 + 15.0 * np.cos(3 * u + 2 * t) * np.cos(2 * v))  # soft tissue ~40 HU
    lung = max(0.0, 1.0 - t / 0.6)
    for side in (-1, 1):
        mask = _inside(u, v, side * 0.33, -0.05, 0.24 * lung ** 0.5, 0.33 * lung ** 0.5)
        hu += mask * (-890.0 + 40.0 * np.sin(9 * u) * np.sin(7 * v))
    liver = max(0.0, (t - 0.4) / 0.6)
    hu += _inside(u, v, -0.3, 0.05, 0.32 * liver ** 0.5, 0.26 * liver ** 0.5) * 20.0
    hu += _inside(u, v, 0.08, 0.28, 0.05, 0.05) * 110.0  # aorta with contrast, ~150 HU
    spine = _inside(u, v, 0.0, 0.47, 0.09, 0.08)
    hu += spine * 260.0 + _inside(u, v, 0.0, 0.47, 0.07, 0.06) * -100.0 + spine * 400.0
    hu.flags.writeable = False  # cached: shared by every series
    return hu


def stored_slice(rng: np.random.Generator, t: float) -> np.ndarray:
    """Stored int16 values (HU + 1024, noise sigma 12 HU) inside the reconstruction circle, 0 outside."""
    hu = phantom_hu(t) + rng.normal(0.0, 12.0, (SIZE, SIZE)).astype(np.float32)
    v, u = np.ogrid[-1:1:SIZE * 1j, -1:1:SIZE * 1j]
    stored = np.clip(np.rint(hu) - INTERCEPT, 0, 4095).astype(np.int16)
    stored[u * u + v * v > 1.0] = 0
    return stored


@functools.cache
def _template() -> Dataset:
    path = get_testdata_file("CT_small.dcm", download=False)
    if not isinstance(path, str):
        raise FileNotFoundError("pydicom's test file CT_small.dcm is not installed")
    ds = pydicom.dcmread(path)
    ds.PixelData = b""
    ds.Rows = ds.Columns = SIZE
    ds.PixelSpacing = [PIXEL_SPACING, PIXEL_SPACING]
    ds.SliceThickness = ds.SpacingBetweenSlices = SLICE_SPACING
    ds.RescaleSlope, ds.RescaleIntercept = 1, INTERCEPT
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    return ds


def write_series(folder: Path, index: int, slices: int, name: str = "ct",
                 transfer_syntax: str = ExplicitVRLittleEndian) -> tuple[str, list[Path]]:
    """Write one axial CT series of ``slices`` files (instance order shuffled against z); its UID and paths.

    ``transfer_syntax`` other than Explicit VR Little Endian compresses the pixels with pydicom's
    encoders (RLE Lossless: pylibjpeg-rle; JPEG 2000 Lossless: pylibjpeg-openjpeg).
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = _template()
    series_uid = _uid(name, index, "series")
    origin = np.array([-SIZE / 2 * PIXEL_SPACING, -SIZE / 2 * PIXEL_SPACING - 20.0, -400.0 + 3 * index])
    order = np.random.default_rng(index).permutation(slices)  # instance numbers not in z order
    paths = []
    for k in range(slices):
        ds = copy.deepcopy(base)
        ds.PatientID = ds.PatientName = f"BENCH-{index:03d}"
        ds.StudyInstanceUID = _uid(name, index, "study")
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = _uid(name, index, "frame-of-reference")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(name, index, "instance", k)
        ds.SeriesNumber, ds.InstanceNumber = index + 1, int(order[k]) + 1
        position = origin + [0.0, 0.0, k * SLICE_SPACING]
        ds.ImagePositionPatient = [round(float(x), 4) for x in position]
        ds.SliceLocation = round(float(position[2]), 4)
        pixels = stored_slice(np.random.default_rng([index, k]), k / max(slices - 1, 1))
        ds.PixelData = pixels.astype("<i2").tobytes()
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax, pixels)
        path = folder / f"{int(order[k]) + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return series_uid, sorted(paths)


def write_collection(root: Path, series: int, slices: int,
                     transfer_syntax: str = ExplicitVRLittleEndian) -> dict[str, list[Path]]:
    """``series`` series of ``slices`` slices under ``root/<k>/``: SeriesInstanceUID -> file paths."""
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        futures = [pool.submit(write_series, root / f"{k:03d}", k, slices, "ct", transfer_syntax)
                   for k in range(series)]
        return dict(f.result() for f in futures)


# -- the two sides ------------------------------------------------------------------------
def decode(path: Path) -> np.ndarray:
    """What a pydicom user does for one file: parse it and decode its pixels."""
    return pydicom.dcmread(path).pixel_array


def load_files(paths: Sequence[Path]) -> list[tuple[str, bytes]]:
    """A SeriesItem loader: the series' files read from disk."""
    return [(p.name, p.read_bytes()) for p in paths]


def items(collection: dict[str, list[Path]]) -> list[SeriesItem]:
    return [SeriesItem(id=uid, metadata={"SeriesInstanceUID": uid, "Modality": "CT", "ImageCount": len(paths)},
                       files=functools.partial(load_files, tuple(paths)), where=str(paths[0].parent))
            for uid, paths in collection.items()]


def cpu_seconds() -> float:
    return time.process_time()


def run_ingest(collection: dict[str, list[Path]], store_path: Path, client: Any = None) -> tuple[float, float]:
    """One ingest into a fresh store: (wall s, process CPU s of this process; a cluster's workers not included)."""
    shutil.rmtree(store_path, ignore_errors=True)
    store = open_store(store_path, mode="a")
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    report = ingest(store, items(collection), client=client, progress=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    if not report.ok:
        raise RuntimeError(f"ingest failed: {report.failed}")
    return wall, cpu


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_seconds() - cpu0


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def check_roundtrip(store_path: Path, collection: dict[str, list[Path]]) -> None:
    """The stored volume of one series equals pydicom's sorted, rescaled stack (the benchmark's sanity check)."""
    uid, paths = next(iter(collection.items()))
    datasets = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
    expected = np.stack([d.pixel_array for d in datasets]).astype(np.int32) + INTERCEPT
    store = open_store(store_path)
    got = store.read_array(store.layout.series(uid), "volume")
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise AssertionError(f"stored volume of {uid} differs from the pydicom stack")


# -- where the time goes ------------------------------------------------------------------
def cost_model(collection: dict[str, list[Path]], tmp: Path) -> dict[str, float]:
    """Serial process CPU seconds of each step of ingest, over every series (see the module docstring)."""
    import numcodecs

    from archivestore._ingest._series import process_series
    from archivestore.dicom import read_series
    from archivestore.dicom._files import header_json, read_files
    from archivestore.layout import volume_chunks

    acc: dict[str, float] = defaultdict(float)

    def measure(label: str, fn: Callable[..., Any], *args: Any) -> Any:
        cpu0 = cpu_seconds()
        out = fn(*args)
        acc[label] += cpu_seconds() - cpu0
        return out

    def zstd_chunks(volume: np.ndarray) -> list[bytes]:
        codec, chunk = numcodecs.Zstd(level=3), volume_chunks(volume.shape, ("z", "y", "x"))[0]
        return [codec.encode(np.ascontiguousarray(volume[z:z + chunk])) for z in range(0, volume.shape[0], chunk)]

    store_path = tmp / "cost.zarr"
    shutil.rmtree(store_path, ignore_errors=True)
    store = open_store(store_path, mode="a")
    for item in items(collection):
        files = measure("read the files (loader)", item.files)
        named = measure("parse: dcmread of the bytes", read_files, files)
        measure("decode: pixel_array", lambda named=named: [n.dataset.pixel_array for n in named])
        measure("header_json (first instance)", header_json, named[0].dataset)
        volume = measure("read_series (parse + decode + stack + rescale + header)", read_series, files)[0].array
        measure("sha256 checksum", lambda volume=volume: hashlib.sha256(volume.data).hexdigest())
        measure("Zstd level 3 of the chunks (numcodecs)", zstd_chunks, volume)
        measure("process_series (the whole task, serial)", process_series, store, item)
    return acc


def print_cost_model(acc: dict[str, float], decode_cpu: float) -> None:
    whole = acc["process_series (the whole task, serial)"]
    read_series = acc["read_series (parse + decode + stack + rescale + header)"]
    stacking = read_series - acc["parse: dcmread of the bytes"] - acc["decode: pixel_array"] \
        - acc["header_json (first instance)"]
    write = whole - acc["read the files (loader)"] - read_series
    rest = write - acc["sha256 checksum"] - acc["Zstd level 3 of the chunks (numcodecs)"]
    rows = [(k, v) for k, v in acc.items() if k != "process_series (the whole task, serial)"]
    rows.insert(5, ("  read_series minus parse, decode, header (sort, stack, rescale)", stacking))
    rows += [("process_series (the whole task, serial)", whole),
             ("  minus the loader, minus read_series (the store write)", write),
             ("  store write minus sha256 minus Zstd (zarr machinery, file I/O)", rest)]
    print(f"\nserial cost model, process CPU s over all series (the baseline's decode CPU: {decode_cpu:.2f} s):")
    for name, value in rows:
        print(f"  {name:66s} {value:6.2f} s  ({value / decode_cpu:.2f}x baseline)")


def cluster_reference(collection: dict[str, list[Path]], store_path: Path, repeat: int, cores: int,
                      baseline: float) -> None:
    """The same ingest on a dask LocalCluster of ``cores`` single-threaded worker processes (no GIL shared)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        run_ingest(collection, store_path, client)  # warm-up: workers import pydicom, zarr, archivestore
        walls = [run_ingest(collection, store_path, client)[0] for _ in range(repeat)]
    wall = statistics.median(walls)
    print(f"(reference: ingest on a LocalCluster of {cores} single-threaded processes, median of {repeat}: "
          f"{wall:.3f} s = {wall / baseline:.2f}x baseline; runs {', '.join(f'{w:.2f}' for w in walls)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=6)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES), default="explicit",
                    help="how the files store their pixels (default: explicit, uncompressed as most CT)")
    ap.add_argument("--cluster", action="store_true",
                    help="also ingest on a dask LocalCluster of single-threaded worker processes")
    ap.add_argument("--profile", action="store_true", help="also print the serial cost model")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"machine: {c.machine()}")
    print(c.load_note())
    with c.workdir("dicom-ingest-", keep=args.keep) as tmp:
        t0 = time.perf_counter()
        collection = write_collection(tmp / "collection", args.series, args.slices,
                                      TRANSFER_SYNTAXES[args.transfer_syntax])
        paths = [p for ps in collection.values() for p in ps]
        on_disk = sum(p.stat().st_size for p in paths)
        raw = len(paths) * SIZE * SIZE * 2
        print(f"collection: {args.series} CT series x {args.slices} slices of {SIZE}x{SIZE} int16 = {len(paths)} "
              f"files ({TRANSFER_SYNTAXES[args.transfer_syntax].name}), {on_disk / 1e6:.1f} MB on disk, "
              f"{raw / 1e6:.1f} MB of pixels "
              f"(written in {time.perf_counter() - t0:.1f} s)")

        def decode_all() -> None:
            for p in paths:
                decode(p)

        decode_all()  # warm the page cache and pydicom's imports
        serial, serial_cpu = median_pair([timed_cpu(decode_all) for _ in range(args.repeat)])
        with ThreadPoolExecutor(cores) as pool:
            threaded = statistics.median(c.timed(lambda: list(pool.map(decode, paths))) for _ in range(args.repeat))
        baseline = serial / cores
        print(f"pydicom dcmread + pixel_array, serial (median of {args.repeat}): {serial:.3f} s wall, "
              f"{serial_cpu:.3f} s CPU ({serial / len(paths) * 1e3:.2f} ms per file)")
        print(f"baseline = serial decode / {cores} cores:                  {baseline:.3f} s")
        print(f"(reference: decode on {cores} threads:                     {threaded:.3f} s = "
              f"{threaded / baseline:.2f}x baseline)")

        store_path = tmp / "store.zarr"
        runs = [run_ingest(collection, store_path) for _ in range(args.repeat)]
        wall, cpu = median_pair(runs)
        check_roundtrip(store_path, collection)
        stored = open_store(store_path).disk_usage().get("series", 0)
        ratio = wall / baseline
        print(f"ingest wall time (median of {args.repeat}):                    {wall:.3f} s  (runs: "
              f"{', '.join(f'{r[0]:.2f}' for r in runs)}; {len(paths) / wall:.0f} slices/s, "
              f"{raw / wall / 1e6:.0f} MB/s of pixels)")
        print(f"ingest process CPU time:                             {cpu:.3f} s = {cpu / serial_cpu:.2f}x the "
              f"decode CPU; {cpu / wall:.2f} of {cores} cores busy")
        print(f"store size of series/: {stored / 1e6:.1f} MB = {stored / raw:.2f} of the raw pixels "
              f"({raw / stored:.2f}x compression; DICOM files {on_disk / 1e6:.1f} MB)")
        print()
        verdict = "meets" if ratio <= GOAL else "MISSES"
        print(f"ratio ingest / (decode / cores) = {ratio:.2f}x: {verdict} the goal of <= {GOAL}x")
        print(f"CPU-time ratio ingest CPU / decode CPU = {cpu / serial_cpu:.2f}x "
              f"(the wall ratio an ingest keeping every core busy would reach)")
        if args.cluster:
            cluster_reference(collection, store_path, args.repeat, cores, baseline)
        print(c.load_note())
        if args.profile:
            print_cost_model(cost_model(collection, tmp), serial_cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
