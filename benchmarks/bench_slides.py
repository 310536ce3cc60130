"""Slides (SM): a 2048x2048 region from the store vs wsidicom's ``read_region``; ingest vs reading every tile.

Writes one synthetic SM series (:mod:`archivestore.testing.slides`: tissue-like RGB, ``--size`` square
level 0, three levels, 256-pixel JPEG or JPEG 2000 tiles, a label and an overview) to a folder,
ingests it into a local store, and measures, in one run:

* **store bytes / DICOM bytes**: the bytes of every object under ``slides/<uid>`` against the
  DICOM files' (goal <= 1.25);
* **ingest** (``process_series``: wsidicom opens the files, every frame is written as is) against
  reading every tile of every level once with wsidicom, both ``read_encoded_tile`` (the bytes, as
  ingest reads them) and ``read_tile`` (decoded: what reading the slide costs a user); goal <= 1.5x;
* **a 2048x2048 region at level 0** (at an offset that is not on the tile grid): the store through
  ``store.slide(uid)[...]`` (xarray + dask, tiles decoded by ``archivestore_jpeg``/``_jpeg2k``; and one
  ``zarr`` read of the region's slice, no dask) vs
  ``WsiDicom.read_region``, each opened afresh per repetition (open and read timed apart, the read
  is the figure), on local disk and behind a local S3 server (moto on 127.0.0.1) with ``--latency``
  seconds added to each request by a proxy; goal >= 3x.

Run::

    .venv/bin/python benchmarks/bench_slides.py [--size 4096] [--codec jpeg|jpeg2000] [--repeat 3]
        [--latency 0.02]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import _common as c  # noqa: E402
from fakes.faulty_proxy import FaultyProxy  # noqa: E402
from fakes.s3 import ENV, local_s3_server  # noqa: E402

from archivestore import open_store  # noqa: E402
from archivestore._ingest._series import process_series  # noqa: E402
from archivestore.sources import SeriesItem  # noqa: E402
from archivestore.testing.slides import sm_series, synthetic_slide  # noqa: E402

REGION = 2048


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _median(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _wsi(files: Any, options: dict[str, Any] | None = None) -> Any:
    from wsidicom import WsiDicom

    return WsiDicom.open(files, file_options=options)


def _every_tile(folder: Path, encoded: bool) -> int:
    n = 0
    with _wsi(folder) as wsi:
        for level in wsi.levels:
            tiles = level.default_instance.image_data.tiled_size
            for y in range(tiles.height):
                for x in range(tiles.width):
                    if encoded:
                        wsi.read_encoded_tile(level.level, (x, y))
                    else:
                        wsi.read_tile(level.level, (x, y))
                    n += 1
    return n


def _regions(store_url: str, options: dict[str, Any] | None, dicom: Any, dicom_options: dict[str, Any] | None,
             uid: str, offset: int, repeat: int) -> dict[str, float]:
    """Median open and read seconds of the region for the store and for wsidicom (fresh objects each time)."""
    out: dict[str, list[float]] = {"store open": [], "store read": [], "zarr read": [], "wsidicom open": [],
                                   "wsidicom read": []}
    first: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        store = open_store(store_url, storage_options=options)
        image = store.slide(uid, 0)
        t1 = time.perf_counter()
        ours = image[offset:offset + REGION, offset:offset + REGION].values
        t2 = time.perf_counter()
        out["store open"].append(t1 - t0)
        out["store read"].append(t2 - t1)
        import zarr

        array = zarr.open_array(store.zstore, path=f"{store.layout.slide(uid)}/0/image", mode="r")
        t1 = time.perf_counter()
        direct = array[offset:offset + REGION, offset:offset + REGION]
        out["zarr read"].append(time.perf_counter() - t1)
        assert np.array_equal(direct, ours)
        t0 = time.perf_counter()
        wsi = _wsi(dicom, dicom_options)
        t1 = time.perf_counter()
        theirs = np.asarray(wsi.read_region((offset, offset), 0, (REGION, REGION)))[..., :3]
        t2 = time.perf_counter()
        wsi.close()
        out["wsidicom open"].append(t1 - t0)
        out["wsidicom read"].append(t2 - t1)
        first.setdefault("ours", ours)
        first.setdefault("theirs", theirs)
    diff = int(np.abs(first["ours"].astype(int) - first["theirs"].astype(int)).max())
    print(f"    regions agree: max |store - wsidicom| = {diff} (JPEG decoders may differ by a few levels)")
    return {k: statistics.median(v) for k, v in out.items()}


def _report(where: str, t: dict[str, float]) -> None:
    ratio = t["wsidicom read"] / t["store read"]
    print(f"  {where}: store {c.fmt_s(t['store read'])} (open {c.fmt_s(t['store open'])}; one zarr read of the "
          f"region {c.fmt_s(t['zarr read'])}, {t['wsidicom read'] / t['zarr read']:.1f}x), wsidicom "
          f"{c.fmt_s(t['wsidicom read'])} (open {c.fmt_s(t['wsidicom open'])}): {ratio:.1f}x "
          f"(goal >= 3x: {'met' if ratio >= 3 else 'MISSED'}); load {_load()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="level 0 rows and columns")
    ap.add_argument("--codec", default="jpeg", choices=("jpeg", "jpeg2000"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds added to each S3 request")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {c.machine()}")
    print(c.load_note())
    with c.workdir("slides-", keep=args.keep) as work:
        t0 = time.perf_counter()
        slide = synthetic_slide((args.size, args.size), levels=3, seed="bench")
        files = sm_series(slide, codec=args.codec)
        del slide
        dicom = work / "dicom"
        dicom.mkdir()
        for name, data in files:
            (dicom / name).write_bytes(data)
        uid = str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)
        del files
        dicom_bytes = _tree_bytes(dicom)
        print(f"slide {args.size}x{args.size} {args.codec}, 256-pixel tiles, 3 levels + label + overview: "
              f"{dicom_bytes / 1e6:.1f} MB of DICOM (made in {time.perf_counter() - t0:.0f} s)")

        def ingest_once() -> None:
            store_path = work / "store.zarr"
            if store_path.exists():
                import shutil

                shutil.rmtree(store_path)
            store = open_store(str(store_path), mode="a")
            named = [(p.name, p.read_bytes()) for p in sorted(dicom.iterdir())]
            item = SeriesItem(id=uid, metadata={"Modality": "SM"}, files=lambda: named, where=str(dicom), origin={})
            assert process_series(store, item).wrote

        t_ingest, _ = _median(ingest_once, args.repeat)
        t_encoded, n = _median(lambda: _every_tile(dicom, True), args.repeat)
        t_decoded, _ = _median(lambda: _every_tile(dicom, False), args.repeat)
        store_bytes = _tree_bytes(work / "store.zarr" / "slides")
        met = "met" if store_bytes <= 1.25 * dicom_bytes else "MISSED"
        print(f"\nstore bytes / DICOM bytes: {store_bytes / 1e6:.2f} / {dicom_bytes / 1e6:.2f} MB = "
              f"{store_bytes / dicom_bytes:.3f} (goal <= 1.25: {met})")
        print(f"ingest {c.fmt_s(t_ingest)}; wsidicom reading all {n} tiles once: encoded {c.fmt_s(t_encoded)} "
              f"({t_ingest / t_encoded:.2f}x), decoded {c.fmt_s(t_decoded)} ({t_ingest / t_decoded:.2f}x) "
              f"(goal <= 1.5x); load {_load()}")

        offset = 1000
        print(f"\n{REGION}x{REGION} region at level 0, offset ({offset}, {offset}), median of {args.repeat}:")
        _report("local disk", _regions(str(work / "store.zarr"), None, dicom, None, uid, offset, args.repeat))

        os.environ.update(ENV)
        with local_s3_server() as upstream, FaultyProxy(upstream, share=0.0, delay=args.latency) as proxy:
            import s3fs

            fs = s3fs.S3FileSystem(endpoint_url=upstream, skip_instance_cache=True)
            fs.mkdir("bench-slides")
            fs.put(str(dicom) + "/", "bench-slides/dicom/", recursive=True)
            fs.put(str(work / "store.zarr") + "/", "bench-slides/store.zarr/", recursive=True)
            options = {"endpoint_url": proxy.url}
            proxy.requests.clear()
            times = _regions("s3://bench-slides/store.zarr", options, "s3://bench-slides/dicom/", options, uid,
                             offset, args.repeat)
            _report(f"S3 + {args.latency * 1000:.0f} ms per request", times)
            print(f"    requests through the proxy: {len(proxy.requests)} for {args.repeat} x (store + wsidicom)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
