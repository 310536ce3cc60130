"""Buckets and clusters: ingest to local disk vs a local S3 server, request counts, dask overhead.

Three measurements, each a ratio against a baseline measured in the same run:

1. **Ingest throughput**, images per second, of the same challenge files into a store on local
   disk and into a bucket of a local S3 server (moto's ``ThreadedMotoServer`` on 127.0.0.1).
2. **Requests to open one image** of a 10-image store and of an ``--n``-image store on the
   S3 server, counted by a wrapper store around the bucket (goal: equal).
3. **Threaded vs distributed** on one machine: ingest and study overlap run with the local
   thread pool and on a ``distributed.LocalCluster`` (2 worker processes), wall time ratio.

Run::

    .venv/bin/python benchmarks/bench_cluster.py [--quick] [--images 24] [--n 2000]

A local S3 server is far slower per request than a real bucket is per byte, and on one
machine a cluster adds only overhead: these figures bound costs, they do not predict speed
on a real bucket or cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, workdir  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.imaging import encode_superpixels_rgb  # noqa: E402
from archivestore.sources import ChallengeSource, Item  # noqa: E402
from archivestore.store import Store  # noqa: E402
from archivestore.testing.sample import jpeg, lesion_image, png, voronoi_superpixels  # noqa: E402
from archivestore.testing.store import CountingStore  # noqa: E402


def write_files(root: Path, n: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(5)
    folder = root / "files"
    folder.mkdir()
    h, w = size
    for k in range(n):
        rgb, mask = lesion_image(rng, h, w)
        sp = voronoi_superpixels(rng, h, w, step=40)
        (folder / f"ISIC_{k:07d}.jpg").write_bytes(jpeg(rgb))
        (folder / f"ISIC_{k:07d}_superpixels.png").write_bytes(encode_superpixels_rgb(sp))
        (folder / f"ISIC_{k:07d}_segmentation.png").write_bytes(png(mask * 255))
    return folder


def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}")
    return server


def bucket() -> str:
    import s3fs

    name = f"bench-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem().mkdir(name)
    return name


def ingest_rate(url: str, folder: Path, client=None) -> tuple[float, int]:
    store = open_store(url, mode="a")
    source = ChallengeSource([folder])
    t0 = time.perf_counter()
    report = ingest(store, source, client=client, progress=False)
    dt = time.perf_counter() - t0
    assert report.ok, report.failed[:3]
    return dt, len(report.ingested)


def tiny_items(n: int, start: int = 0):
    data = png(np.full((16, 16, 3), 7, np.uint8))
    return [Item(id=f"IMG_{k:07d}", metadata={"k": k, "meta": {"clinical": {"age": k % 90}}}, image=lambda: data)
            for k in range(start, start + n)]


def open_requests(url: str, image_id: str) -> int:
    base = zarr.storage.FsspecStore.from_url(url, read_only=True)
    counting = CountingStore(base)
    store = Store(url, counting, zarr.open_group(counting, mode="r", zarr_format=3))
    counting.reset()
    store.image(image_id).load()
    return counting.total()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run")
    ap.add_argument("--images", type=int, default=24, help="challenge images for the ingest measurements")
    ap.add_argument("--n", type=int, default=2000, help="images of the large store for request counts")
    args = ap.parse_args()
    if args.quick:
        args.images, args.n = 6, 200
    print(machine())
    server = s3_server()
    try:
        with workdir("cluster-") as tmp:
            folder = write_files(tmp, args.images, (768, 1024))
            print(f"\n1. ingest of {args.images} images of 1024x768 (JPEG + superpixels + mask)")
            local_s, n = ingest_rate(str(tmp / "local.zarr"), folder)
            s3_s, _ = ingest_rate(f"s3://{bucket()}/s.zarr", folder)
            print(f"   local disk   {n / local_s:7.1f} images/s")
            print(f"   local S3     {n / s3_s:7.1f} images/s")
            print(f"   ratio S3/local throughput: {local_s / s3_s:.2f}")

            print("\n2. requests to open one image (store.image(id).load()) on the S3 server")
            small, large = f"s3://{bucket()}/small.zarr", f"s3://{bucket()}/large.zarr"
            assert ingest(open_store(small, mode="a"), tiny_items(10), progress=False, workers=8).ok
            t0 = time.perf_counter()
            assert ingest(open_store(large, mode="a"), tiny_items(args.n), progress=False, workers=16).ok
            print(f"   (built the {args.n}-image store in {time.perf_counter() - t0:.0f} s)")
            a, b = open_requests(small, "IMG_0000003"), open_requests(large, f"IMG_{args.n // 2:07d}")
            print(f"   10 images: {a} requests; {args.n} images: {b} requests; ratio {b / a:.2f} (goal 1.00)")

            print("\n3. threaded vs distributed (LocalCluster, 2 worker processes, 1 thread each) on one machine")
            from distributed import Client, LocalCluster

            from archivestore.analysis import overlap

            threaded_s, _ = ingest_rate(str(tmp / "threads.zarr"), folder)
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                dist_s, _ = ingest_rate(str(tmp / "dist.zarr"), folder, client=client)
            print(f"   ingest: threads {threaded_s:.2f} s, distributed {dist_s:.2f} s, "
                  f"ratio {dist_s / threaded_s:.2f}")
            demo = tmp / "demo.zarr"
            from archivestore.cli import run_demo  # noqa: TID251 (the demo store, as `archivestore demo` builds it)

            run_demo(demo, progress=False, out=lambda *a: None)
            study = open_store(demo).study("ISIC-2017_Part2_demo")
            t0 = time.perf_counter()
            ref = overlap(study, summary=False).compute()
            threads_o = time.perf_counter() - t0
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster):
                t0 = time.perf_counter()
                got = overlap(study, summary=False).compute()
                dist_o = time.perf_counter() - t0
            assert got.identical(ref)
            print(f"   overlap of the demo study: threads {threads_o * 1e3:.0f} ms, distributed "
                  f"{dist_o * 1e3:.0f} ms, ratio {dist_o / threads_o:.2f} (identical results)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
