"""Ingest wall time against the pure decode time of the same files divided by the cores.

Writes ``--n`` photo-like images (smooth skin and an irregular dark lesion, soft
illumination and sensor noise, JPEG quality 92) of mixed sizes, 1024x768 to 3000x2000,
with RGB-encoded superpixel PNGs (~1000 superpixels) and lesion masks, in the ISIC 2017
challenge layout (``ISIC-2017_Training_Data/``, ``ISIC-2017_Training_Part1_GroundTruth/``
and a ground-truth CSV), then measures:

* baseline: reading and decoding every file serially (``decode_image`` +
  ``decode_superpixels`` + ``decode_mask``), divided by ``os.cpu_count()`` — the wall
  time a perfectly parallel ingest that only decodes would need;
* for reference, the same decoding on a thread pool of ``os.cpu_count()`` threads;
* contender: ``ingest(open_store(tmp, mode="a"), ChallengeSource([dirs]), progress=False)``
  into a fresh store, wall time (median of ``--repeat``), and the process CPU time it used.

Printed: ratio = ingest wall time / baseline. With ``--profile`` it runs one more ingest
with every worker thread under cProfile (thread CPU time) and prints where the CPU goes,
by ingest stage and by function.

Run::

    .venv/bin/python benchmarks/bench_ingest.py [--quick] [--n 48] [--repeat 3] [--profile]

Goal (foundation issue): ingest wall time at most 1.5x the decode time / cores.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import resource
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

import archivestore._ingest._item as item_mod  # noqa: E402  (what one worker task calls)
import archivestore._ingest._loop as loop_mod  # noqa: E402
import archivestore.store._groups as groups_mod  # noqa: E402
from archivestore import ingest, open_store  # noqa: E402
from archivestore.imaging import decode_image, decode_mask, decode_superpixels, encode_superpixels_rgb  # noqa: E402
from archivestore.sources import ChallengeSource  # noqa: E402
from archivestore.testing.sample import jpeg, lesion_image, png, voronoi_superpixels  # noqa: E402

GOAL = 1.5
TRAIN = "ISIC-2017_Training_Data"
MASKS = "ISIC-2017_Training_Part1_GroundTruth"
MIXED = [(768, 1024), (768, 1024), (1536, 2048), (2000, 3000)]  # (rows, cols), cycled
SP_PER_IMAGE = 1000


def _write_one(args) -> int:
    k, h, w, root = args
    rng = np.random.default_rng(1000 + k)
    image_id = f"ISIC_{k:07d}"
    rgb, mask = lesion_image(rng, h, w)
    step = max(8, int(round((h * w / SP_PER_IMAGE) ** 0.5)))
    sp = voronoi_superpixels(rng, h, w, step)
    root = Path(root)
    (root / TRAIN / f"{image_id}.jpg").write_bytes(jpeg(rgb))
    (root / TRAIN / f"{image_id}_superpixels.png").write_bytes(encode_superpixels_rgb(sp))
    (root / MASKS / f"{image_id}_segmentation.png").write_bytes(png(mask * 255))
    return h * w


def write_archive(root: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    dirs = [root / TRAIN, root / MASKS]
    for d in dirs:
        d.mkdir(parents=True)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_one, [(k, h, w, str(root)) for k, (h, w) in enumerate(sizes)]))
    with open(root / TRAIN / "ISIC-2017_Training_Part3_GroundTruth.csv", "w", newline="") as fh:
        rows = [["image_id", "melanoma", "seborrheic_keratosis"]]
        rows += [[f"ISIC_{k:07d}", float(k % 3 == 0), float(k % 5 == 0)] for k in range(len(sizes))]
        csv.writer(fh).writerows(rows)
    return dirs


def decode_all(files: list[tuple[Path, object]]) -> None:
    for path, decoder in files:
        decoder(path.read_bytes())


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_ingest(dirs: list[Path], store_path: Path):
    if store_path.exists():
        import shutil
        shutil.rmtree(store_path)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    report = ingest(open_store(store_path, mode="a"), ChallengeSource(dirs), progress=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    assert report.ok and report.failed == [], report.failed
    return wall, cpu, report


# -- profiling ---------------------------------------------------------------------------
STAGES = {  # decoders looked up in archivestore._ingest._item's namespace, writers on GroupWriter
    "decode_image": "decode image (JPEG)",
    "decode_superpixels": "decode superpixels (PNG)",
    "decode_mask": "decode mask (PNG)",
    "put_array": "put_array (create + write + checksum)",
    "put_coord": "put_coord (channel)",
    "finish": "write _archivestore attr",
}
_WRITER_STAGES = ("put_array", "put_coord", "finish")


def _owner(name: str) -> object:
    return groups_mod.GroupWriter if name in _WRITER_STAGES else item_mod


def profile_ingest(dirs: list[Path], store_path: Path, top: int) -> None:
    """One ingest with per-thread cProfile (thread CPU time) and per-stage timers."""
    lock = threading.Lock()
    stage_cpu: dict[str, float] = defaultdict(float)
    stage_wall: dict[str, float] = defaultdict(float)
    profiles: list[cProfile.Profile] = []
    originals = {name: getattr(_owner(name), name) for name in STAGES}
    original_process = loop_mod.process_item
    original_checksum = groups_mod.checksum
    originals_inner = {"checksum": original_checksum}

    def timed_stage(name, fn):
        def wrapper(*a, **kw):
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                with lock:
                    stage_cpu[name] += time.thread_time() - c0
                    stage_wall[name] += time.perf_counter() - w0
        return wrapper

    def process(store, item):
        prof = cProfile.Profile(time.thread_time)
        w0 = time.perf_counter()
        prof.enable()
        try:
            return original_process(store, item)
        finally:
            prof.disable()
            with lock:
                profiles.append(prof)
                stage_wall["_process (whole item)"] += time.perf_counter() - w0

    main_prof = cProfile.Profile(time.thread_time)
    try:
        for name in STAGES:
            setattr(_owner(name), name, timed_stage(name, originals[name]))
        groups_mod.checksum = timed_stage("checksum", original_checksum)
        loop_mod.process_item = process
        main_prof.enable()
        wall, cpu, _ = run_ingest(dirs, store_path)
        main_prof.disable()
    finally:
        for name, fn in originals.items():
            setattr(_owner(name), name, fn)
        groups_mod.checksum = originals_inner["checksum"]
        loop_mod.process_item = original_process
    print()
    print(f"profiled ingest: wall {wall:.2f} s, process CPU {cpu:.2f} s "
          f"({cpu / wall:.2f} of {os.cpu_count()} cores busy; profiling adds overhead)")
    print("worker-thread time by stage (CPU = thread CPU time, wall = summed over threads):")
    print(f"  {'stage':42s} {'CPU s':>8s} {'wall s':>8s}")
    for name in [*STAGES, "checksum", "_process (whole item)"]:
        label = STAGES.get(name, name if name != "checksum" else "  of which sha256 checksum")
        print(f"  {label:42s} {stage_cpu.get(name, float('nan')):8.2f} {stage_wall.get(name, 0.0):8.2f}")
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    worker_cpu = stats.total_tt
    main_cpu = pstats.Stats(main_prof).total_tt
    print(f"process CPU {cpu:.2f} s = ingest worker threads {worker_cpu:.2f} s + main thread {main_cpu:.2f} s "
          f"+ other threads {cpu - worker_cpu - main_cpu:.2f} s (zarr's event loop and the thread pool "
          f"it runs codecs and file I/O in: compression, chunk assembly, writes)")
    buf = io.StringIO()
    stats.stream = buf
    stats.sort_stats("tottime").print_stats(top)
    print(f"\nworker threads, top {top} functions by own CPU time (all items):")
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))
    buf = io.StringIO()
    mstats = pstats.Stats(main_prof, stream=buf)
    mstats.sort_stats("cumulative").print_stats(12)
    print("\nmain thread (listing, metadata flush, waiting), top cumulative CPU:")
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))


def cost_model(files: list[tuple[Path, object]], tmp: Path) -> None:
    """Serial CPU cost of each step ingest takes per file, on the same files."""
    import hashlib

    import numcodecs
    import zarr
    import zarr.storage

    from archivestore.layout import TILE
    from archivestore.store import GroupWriter

    dims = {decode_image: ("image", ("y", "x", "channel")), decode_superpixels: ("superpixels", ("y", "x")),
            decode_mask: ("mask", ("y", "x"))}
    root = zarr.open_group(zarr.storage.LocalStore(tmp / "cost.zarr"), mode="w", zarr_format=3)
    acc: dict[str, float] = defaultdict(float)
    nbytes = 0
    sizes: dict[tuple[str, int], int] = defaultdict(int)
    groups: dict[str, zarr.Group] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for path, decoder in files:
        name, d = dims[decoder]
        t = time.process_time()
        arr = decoder(path.read_bytes())
        acc["decode"] += time.process_time() - t
        nbytes += arr.nbytes
        t = time.process_time()
        hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()
        acc["sha256 checksum"] += time.process_time() - t
        tiles = [np.ascontiguousarray(arr[y:y + TILE, x:x + TILE])
                 for y in range(0, arr.shape[0], TILE) for x in range(0, arr.shape[1], TILE)]
        for level in (3, 1):
            codec = numcodecs.Zstd(level=level)
            t = time.process_time()
            for tile in tiles:
                sizes[(name, level)] += len(codec.encode(tile))
            acc[f"zstd level {level} of the 1024^2 tiles"] += time.process_time() - t
        sizes[(name, 0)] += arr.nbytes
        image_id = path.name.split("_")[0] + "_" + path.name.split("_")[1].split(".")[0]
        group = groups.get(image_id)
        t = time.process_time()
        if group is None:
            group = groups[image_id] = root.create_group(image_id)
            GroupWriter(group, fresh=True).put_coord("channel", ["R", "G", "B"])
        GroupWriter(group, fresh=True).put_array(name, arr, d)
        acc["put_array (zarr create+write, incl. zstd 3 + sha256)"] += time.process_time() - t
    total_cpu, total_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"\nserial cost model: decode each file, then what ingest does with the array "
          f"({nbytes / 1e6:.0f} MB of arrays), process CPU seconds:")
    for k, v in acc.items():
        print(f"  {k:55s} {v:7.2f} s  ({v / acc['decode']:.2f}x decode)")
    zarr_rest = acc["put_array (zarr create+write, incl. zstd 3 + sha256)"] - acc["zstd level 3 of the 1024^2 tiles"] \
        - acc["sha256 checksum"]
    print(f"  {'put_array minus zstd minus sha256 (zarr machinery, I/O)':55s} {zarr_rest:7.2f} s  "
          f"({zarr_rest / acc['decode']:.2f}x decode)")
    print(f"  (serial decode + put_array: {total_cpu:.2f} s CPU, {total_wall:.2f} s wall)")
    print("  compressed size, zstd level 3 / level 1 (raw MB):")
    for name in ("image", "superpixels", "mask"):
        raw = sizes[(name, 0)]
        print(f"    {name:12s} {sizes[(name, 3)] / 1e6:7.1f} / {sizes[(name, 1)] / 1e6:7.1f} MB  "
              f"({raw / 1e6:.1f} MB raw)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 images of 1024x768, one ingest")
    ap.add_argument("--n", type=int, default=48, help="number of images (default 48)")
    ap.add_argument("--sizes", choices=["mixed", "1024x768"], default="mixed")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also profile one ingest")
    ap.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args(argv)
    n, repeat, sizes = (8, 1, "1024x768") if args.quick else (args.n, args.repeat, args.sizes)
    shapes = [MIXED[k % len(MIXED)] if sizes == "mixed" else (768, 1024) for k in range(n)]
    cores = os.cpu_count() or 1
    print(f"machine: {c.machine()}")
    print(c.load_note())
    with c.workdir("ingest-", keep=args.keep) as tmp:
        t0 = time.perf_counter()
        dirs = write_archive(tmp / "archive", shapes)
        mpx = sum(h * w for h, w in shapes) / 1e6
        nbytes = sum(p.stat().st_size for d in dirs for p in d.iterdir())
        print(f"archive: {n} images ({sizes}, {mpx:.1f} megapixels), superpixels + masks, "
              f"{nbytes / 1e6:.1f} MB on disk (made in {time.perf_counter() - t0:.1f} s)")
        files = []
        for k in range(n):
            image_id = f"ISIC_{k:07d}"
            files += [(dirs[0] / f"{image_id}.jpg", decode_image),
                      (dirs[0] / f"{image_id}_superpixels.png", decode_superpixels),
                      (dirs[1] / f"{image_id}_segmentation.png", decode_mask)]
        decode_all(files)  # warm the page cache
        serial = c.median_time(lambda: decode_all(files), repeat)
        t = time.process_time()
        decode_all(files)
        serial_cpu = time.process_time() - t
        by_kind = {}
        for kind, decoder in (("image", decode_image), ("superpixels", decode_superpixels), ("mask", decode_mask)):
            by_kind[kind] = c.timed(lambda d=decoder: decode_all([f for f in files if f[1] is d]))
        with ThreadPoolExecutor(cores) as pool:
            def threaded():
                list(pool.map(lambda f: f[1](f[0].read_bytes()), files))
            threaded_t = c.median_time(threaded, repeat)
        baseline = serial / cores
        print(f"serial decode of all {len(files)} files: {serial:.3f} s wall, {serial_cpu:.3f} s CPU  ("
              + ", ".join(f"{k} {v:.2f} s" for k, v in by_kind.items()) + ")")
        print(f"baseline = serial decode / {cores} cores:       {baseline:.3f} s")
        print(f"(reference: decode on {cores} threads:          {threaded_t:.3f} s = "
              f"{threaded_t / baseline:.2f}x baseline)")

        store_path = tmp / "store.zarr"
        runs = [run_ingest(dirs, store_path) for _ in range(repeat)]
        walls = sorted(r[0] for r in runs)
        wall = walls[len(walls) // 2]
        cpu = sorted(r[1] for r in runs)[len(runs) // 2]
        ratio = wall / baseline
        print(f"ingest wall time (median of {repeat}):        {wall:.3f} s  "
              f"(runs: {', '.join(f'{w:.2f}' for w in walls)}; {n / wall:.1f} images/s, {mpx / wall:.1f} Mpx/s)")
        print(f"ingest process CPU time:                  {cpu:.3f} s = {cpu / serial_cpu:.2f}x the serial "
              f"decode CPU; {cpu / wall:.2f} of {cores} cores busy")
        print()
        verdict = "meets" if ratio <= GOAL else "MISSES"
        print(f"ratio ingest / (decode / cores) = {ratio:.2f}x: {verdict} the goal of <= {GOAL}x")
        print(f"CPU-time ratio ingest CPU / decode CPU = {cpu / serial_cpu:.2f}x "
              f"(the wall ratio an ingest using every core all the time would reach)")
        print(c.load_note())
        if args.profile:
            cost_model(files, tmp)
            profile_ingest(dirs, store_path, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
