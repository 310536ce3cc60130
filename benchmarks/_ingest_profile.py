"""Where ingest's CPU goes: a per-thread profile of one ingest and a serial cost model per step.

Used by ``bench_ingest.py --profile``; nothing here is part of archivestore.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import pstats
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numcodecs
import numpy as np
import zarr
import zarr.storage

import archivestore._ingest._item as item_mod  # what one worker task calls
import archivestore._ingest._loop as loop_mod
import archivestore.store._groups as groups_mod
from archivestore.imaging import decode_image, decode_mask, decode_superpixels
from archivestore.layout import ZSTD_LEVEL, ZSTD_LEVELS, compressors, tile_chunks
from archivestore.store import GroupWriter

STAGES = {  # decoders looked up in archivestore._ingest._item's namespace, writers on GroupWriter
    "decode_image": "decode image (JPEG)",
    "decode_superpixels": "decode superpixels (PNG)",
    "decode_mask": "decode mask (PNG)",
    "put_array": "put_array (queue + sha256)",
    "put_coord": "put_coord (channel)",
    "finish": "finish (compress + write arrays, group doc)",
    "_study_rows": "study rows (areas, feature values)",
}
_WRITER_STAGES = ("put_array", "put_coord", "finish")


def _owner(name: str) -> object:
    return groups_mod.GroupWriter if name in _WRITER_STAGES else item_mod


def profile_ingest(run_ingest: Callable[[], tuple[float, float, object]], top: int) -> None:
    """One ingest with per-thread cProfile (thread CPU time) and per-stage timers."""
    lock = threading.Lock()
    stage_cpu: dict[str, float] = defaultdict(float)
    stage_wall: dict[str, float] = defaultdict(float)
    profiles: list[cProfile.Profile] = []
    originals = {name: getattr(_owner(name), name) for name in STAGES}
    original_process = loop_mod.process_item
    original_checksum = groups_mod.checksum

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
        wall, cpu, _ = run_ingest()
        main_prof.disable()
    finally:
        for name, fn in originals.items():
            setattr(_owner(name), name, fn)
        groups_mod.checksum = original_checksum
        loop_mod.process_item = original_process
    print()
    print(f"profiled ingest: wall {wall:.2f} s, process CPU {cpu:.2f} s "
          f"({cpu / wall:.2f} of {os.cpu_count()} cores busy; profiling adds overhead)")
    print("worker-thread time by stage (CPU = thread CPU time, wall = summed over threads):")
    print(f"  {'stage':46s} {'CPU s':>8s} {'wall s':>8s}")
    for name in [*STAGES, "checksum", "_process (whole item)"]:
        label = STAGES.get(name, name if name != "checksum" else "  of which sha256 checksum")
        print(f"  {label:46s} {stage_cpu.get(name, float('nan')):8.2f} {stage_wall.get(name, 0.0):8.2f}")
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    worker_cpu = stats.total_tt
    main_cpu = pstats.Stats(main_prof).total_tt
    print(f"process CPU {cpu:.2f} s = ingest worker threads {worker_cpu:.2f} s + main thread {main_cpu:.2f} s "
          f"+ other threads {cpu - worker_cpu - main_cpu:.2f} s (zarr's event loop and the thread pool "
          f"it runs codecs and file I/O in: compression, chunk assembly, writes)")
    _print_stats(stats, "tottime", top, f"worker threads, top {top} functions by own CPU time (all items)")
    _print_stats(pstats.Stats(main_prof), "cumulative", 15,
                 "main thread (listing, table and study appends, waiting), top cumulative CPU")


def _print_stats(stats: pstats.Stats, order: str, top: int, title: str) -> None:
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats(order).print_stats(top)
    print(f"\n{title}:")
    print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))


_KINDS = {decode_image: ("image", ("y", "x", "channel")), decode_superpixels: ("superpixels", ("y", "x")),
          decode_mask: ("mask", ("y", "x"))}


def cost_model(files: list[tuple[Path, object]], tmp: Path) -> None:
    """Serial CPU cost of each step ingest takes per file, on the same files."""
    zstore = zarr.storage.LocalStore(tmp / "cost.zarr")
    acc: dict[str, float] = defaultdict(float)
    sizes: dict[tuple[str, str], int] = defaultdict(int)
    nbytes = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k, (path, decoder) in enumerate(files):
        if decoder not in _KINDS:
            continue
        name, dims = _KINDS[decoder]
        t = time.process_time()
        arr = decoder(path.read_bytes())
        acc["decode"] += time.process_time() - t
        nbytes += arr.nbytes
        t = time.process_time()
        hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()
        acc["sha256 checksum"] += time.process_time() - t
        shape = tile_chunks(arr.shape, dims)
        tiles = [np.ascontiguousarray(arr[y:y + shape[0], x:x + shape[1]])
                 for y in range(0, arr.shape[0], shape[0]) for x in range(0, arr.shape[1], shape[1])]
        for label, level in (("layout", ZSTD_LEVELS[name]), ("zstd 3", ZSTD_LEVEL)):
            codec = numcodecs.Zstd(level=level)
            t = time.process_time()
            sizes[(name, label)] += sum(len(codec.encode(tile)) for tile in tiles)
            acc[f"compress tiles ({label})"] += time.process_time() - t
        sizes[(name, "raw")] += arr.nbytes
        writer = GroupWriter(zstore, f"g{k}", arrays={})
        t = time.process_time()
        writer.put_array(name, arr, dims, codecs=compressors(name))
        writer.finish({"complete": True})
        acc["put_array + finish (zarr write, incl. compress + sha256)"] += time.process_time() - t
    total_cpu, total_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"\nserial cost model: decode each file, then what ingest does with the array "
          f"({nbytes / 1e6:.0f} MB of arrays), process CPU seconds:")
    for key, v in acc.items():
        print(f"  {key:58s} {v:7.2f} s  ({v / acc['decode']:.2f}x decode)")
    rest = acc["put_array + finish (zarr write, incl. compress + sha256)"] - acc["compress tiles (layout)"] \
        - acc["sha256 checksum"]
    print(f"  {'zarr write minus compress minus sha256 (machinery, I/O)':58s} {rest:7.2f} s  "
          f"({rest / acc['decode']:.2f}x decode)")
    print(f"  (serial decode + write: {total_cpu:.2f} s CPU, {total_wall:.2f} s wall)")
    print("  compressed MB, the layout's codec / zstd 3 (raw MB):")
    for name in ("image", "superpixels", "mask"):
        print(f"    {name:12s} {sizes[(name, 'layout')] / 1e6:7.2f} / {sizes[(name, 'zstd 3')] / 1e6:7.2f} MB  "
              f"({sizes[(name, 'raw')] / 1e6:.1f} MB raw; zstd level {ZSTD_LEVELS[name]})")

