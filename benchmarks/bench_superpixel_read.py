"""Reading a superpixel index from the store against decoding its PNG.

Makes RGB-encoded superpixel PNGs (jittered-grid Voronoi cells, ``archivestore.testing.sample``
``voronoi_superpixels``, encoded with ``archivestore.imaging.encode_superpixels_rgb``) at ISIC's
large and common sizes, 6000x4000 (step 100 px, ~2400 superpixels) and 1022x767
(step 28 px, ~1000 superpixels, like the real ISIC_0000000), ingests each with its
image into a store with the real ingest, then times, median of ``--repeat`` runs:

* baseline: read the PNG file and ``archivestore.imaging.decode_superpixels`` it;
* ``store.image(id)["superpixels"].values``, cold (a fresh ``open_store`` each run)
  and warm (the store opened once);
* raw zarr ``images/<id>/superpixels`` read, cold (fresh ``zarr.open_array``) and
  warm (the array object kept);
* for comparison, ``xr.open_zarr(..., chunks=None)`` (no dask) on the open store.

"Cold" means fresh objects, not a dropped OS page cache: the files are local and hot.
The methods run in turn within each repeat (so load changes fall on all alike).
Printed: each median wall time and the speed-up (baseline time / contender time), and
the same for process CPU time (all threads), which other processes' load disturbs less.

Run::

    .venv/bin/python benchmarks/bench_superpixel_read.py [--quick] [--repeat 7]

Goals (issue 11), each size against its own: the store read at least 5x faster than decoding
the PNG at 1 MP (1022x767), at least 15x at 24 MP (6000x4000).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
import zarr.storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.imaging import decode_superpixels, encode_superpixels_rgb, superpixel_dtype  # noqa: E402
from archivestore.sources import Item  # noqa: E402
from archivestore.testing.sample import jpeg, voronoi_superpixels  # noqa: E402

SIZES = [  # (label, rows, cols, step, goal: the speed-up over the PNG decode this size must reach)
    ("6000x4000", 4000, 6000, 100, 15.0),
    ("1022x767", 767, 1022, 28, 5.0),
]
GOALS = {label: goal for label, *_rest, goal in SIZES}


def floor() -> None:
    """What one read costs at least at 1022x767: zarr's round trip, and decoding with each codec."""
    from numcodecs import Blosc, Zstd

    sp = voronoi_superpixels(np.random.default_rng(2016), 767, 1022, 24)
    sp = sp.astype(superpixel_dtype(int(sp.max())))  # the dtype the store keeps (uint16 here)

    def best(fn, n=40):
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    tiny = zarr.create_array(zarr.storage.MemoryStore(), shape=(4, 4), dtype=sp.dtype, chunks=(4, 4))
    tiny[...] = 1
    print(f"zarr read of a 4x4 array: {best(lambda: tiny[...]):.2f} ms")
    for name, codec in (("Zstd 1", Zstd(1)), ("Blosc LZ4, no shuffle", Blosc("lz4", 5, Blosc.NOSHUFFLE)),
                        ("Blosc blosclz, shuffle", Blosc("blosclz", 5, Blosc.SHUFFLE))):
        data = codec.encode(sp)
        print(f"{name}: {len(data) / 1e3:.0f} kB, decode {best(lambda c=codec, d=data: c.decode(d)):.2f} ms")
    png = encode_superpixels_rgb(sp)
    print(f"PNG decode: {best(lambda: decode_superpixels(png)):.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--floor", action="store_true", help="only the floor of a 1 MP read: zarr's round trip, codecs")
    args = ap.parse_args(argv)
    if args.floor:
        floor()
        return 0
    repeat = 3 if args.quick else args.repeat
    print(f"machine: {c.machine()}")
    print(c.load_note())
    print(f"median of {repeat} runs (after one warm-up run); speed-up = PNG decode time / store read time")
    cold_speed: dict[str, float] = {}
    read_speed: dict[str, float] = {}
    rng = np.random.default_rng(2016)
    with c.workdir("superpixel-read-", keep=args.keep) as tmp:
        store_path = tmp / "store.zarr"
        items, pngs = [], {}
        for k, (label, h, w, step, _goal) in enumerate(SIZES):
            image_id = f"ISIC_{k:07d}"
            sp = voronoi_superpixels(rng, h, w, step)
            data = encode_superpixels_rgb(sp)
            pngs[image_id] = tmp / f"{image_id}_superpixels.png"
            pngs[image_id].write_bytes(data)
            image = jpeg(np.full((h, w, 3), 180, np.uint8))
            items.append(Item(id=image_id, metadata={"isic_id": image_id}, image=lambda b=image: b,
                              superpixels=lambda p=pngs[image_id]: p.read_bytes()))
            print(f"{label}: {int(sp.max()) + 1} superpixels, PNG {len(data) / 1e6:.2f} MB")
        report = ingest(open_store(store_path, mode="a"), items, progress=False)
        assert report.ok, report.failed

        print()
        print(f"{'image':10s} {'how':48s} {'wall':>11s} {'speed-up':>9s} {'CPU':>11s} {'CPU ratio':>9s}")
        for k, (label, *_size) in enumerate(SIZES):
            image_id = f"ISIC_{k:07d}"
            png_path = pngs[image_id]
            expect = decode_superpixels(png_path.read_bytes())
            key = f"images/{image_id}/superpixels"

            def baseline():
                return decode_superpixels(png_path.read_bytes())

            def store_cold():
                return open_store(store_path).image(image_id)["superpixels"].values

            warm_store = open_store(store_path)

            def store_warm():
                return warm_store.image(image_id)["superpixels"].values

            def read_cold():
                return open_store(store_path).read(image_id, "superpixels")

            def read_warm():
                return warm_store.read(image_id, "superpixels")

            def zarr_cold():
                return zarr.open_array(zarr.storage.LocalStore(store_path, read_only=True), path=key,
                                       mode="r", zarr_format=3)[...]

            warm_arr = zarr.open_array(zarr.storage.LocalStore(store_path, read_only=True), path=key,
                                       mode="r", zarr_format=3)

            def zarr_warm():
                return warm_arr[...]

            def xr_nodask():
                return xr.open_zarr(warm_store.zstore, group=f"images/{image_id}", consolidated=False,
                                    chunks=None)["superpixels"].values

            methods = [
                ("baseline: read PNG + decode_superpixels", baseline),
                ("store.image(id)['superpixels'].values cold", store_cold),
                ("store.image(id)['superpixels'].values warm", store_warm),
                ("store.read(id, 'superpixels') cold", read_cold),
                ("store.read(id, 'superpixels') warm", read_warm),
                ("zarr images/<id>/superpixels[...] cold", zarr_cold),
                ("zarr images/<id>/superpixels[...] warm", zarr_warm),
                ("(xr.open_zarr(..., chunks=None), no dask, warm)", xr_nodask),
            ]
            for _, fn in methods:
                got = fn()  # also the warm-up
                assert got.dtype == expect.dtype and np.array_equal(got, expect), fn.__name__
            # methods run in turn within each repeat, so a change in the machine's load
            # during the run falls on all of them alike
            samples = {name: [] for name, _ in methods}
            cpu = {name: [] for name, _ in methods}
            for _ in range(repeat):
                for name, fn in methods:
                    t0 = time.process_time()
                    samples[name].append(c.timed(fn))
                    cpu[name].append(time.process_time() - t0)
            base = float(np.median(samples[methods[0][0]]))
            base_cpu = float(np.median(cpu[methods[0][0]]))
            for name, fn in methods:
                t = float(np.median(samples[name]))
                t_cpu = float(np.median(cpu[name]))
                speed = base / t
                if fn is store_cold:
                    cold_speed[label] = speed
                if fn is read_cold:
                    read_speed[label] = speed
                print(f"{label:10s} {name:48s} {c.fmt_s(t)} {speed:8.1f}x {c.fmt_s(t_cpu)} {base_cpu / t_cpu:8.1f}x")
    print()
    for label, speed in cold_speed.items():
        verdict = "meets" if speed >= GOALS[label] else "MISSES"
        print(f"{label}: store.image(id)['superpixels'].values (cold) is {speed:.1f}x the speed of the PNG "
              f"decode: {verdict} its goal of >= {GOALS[label]:.0f}x")
    for label, speed in read_speed.items():
        verdict = "meets" if speed >= GOALS[label] else "MISSES"
        print(f"{label}: store.read(id, 'superpixels') (cold: fresh open_store) is {speed:.1f}x the speed of the "
              f"PNG decode: {verdict} its goal of >= {GOALS[label]:.0f}x")
    print(c.load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
