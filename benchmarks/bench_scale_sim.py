"""Archive scale, simulated: the submitting process, writers against a slow or throttling bucket, shared leases.

Four simulations of what ``benchmarks/scale.md`` projects would saturate first:

``cluster``
    The submitting process's own CPU per image: ``ingest(..., client=...)`` of ``--items`` tiny
    images with a dask scheduler and two workers (``--threads`` in all) in their own processes. With
    ``--latency`` the submitting process's own requests (the table appends) are delayed as on a bucket
    while the workers write to local disk: does the ingest loop stall during an append?

``writers``
    One ingest with ``--workers`` writer threads (a stand-in for a 100-worker cluster) into a store
    on local disk behind :class:`LatencyStore`, which delays every request by ``--latency`` seconds.
    The items are small ISIC-like images (image, superpixels, mask, a 30-field record), so requests
    and the submitting process are what is measured. Printed: images/s, what the writers alone could
    do (by latency, and by one CPU's worth of Python), and the time inside ``Store.append_tables``.

``throttle``
    ``--workers`` writer threads into the local S3 server (moto) behind :class:`ThrottlingProxy`, which
    answers ``503 SlowDown`` beyond ``--put-rate`` writes/s and ``--get-rate`` reads/s, as a bucket's
    prefix does. Printed: images in and failed, requests passed and refused. ``--retry-mode`` sets
    botocore's retry mode (default: the store's own settings).

``submitters``
    ``--submitters`` processes each ingest their own ``--items`` tiny images into one store on local
    disk, appending every ``--table-batch`` images: the ``tables`` lease is all they share. Printed per
    process: appends and waits for the lease; and how busy the lease was.

Run::

    .venv/bin/python benchmarks/bench_scale_sim.py cluster [--items 2000] [--threads 100] [--latency 0]
        [--table-batch 4096]
    .venv/bin/python benchmarks/bench_scale_sim.py writers [--workers 100] [--latency 0.03] [--items 8192]
        [--table-batch 4096]
    .venv/bin/python benchmarks/bench_scale_sim.py throttle [--workers 32] [--items 600] [--put-rate 60]
        [--get-rate 100] [--retry-mode legacy|standard|adaptive] [--max-attempts 10]
    .venv/bin/python benchmarks/bench_scale_sim.py submitters [--submitters 8] [--items 400] [--table-batch 16]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing as mp
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_scale import isic_record  # noqa: E402
from bench_scale_stores import LatencyStore, ThrottlingProxy  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore._ingest._item import process_item  # noqa: E402
from archivestore.imaging import encode_superpixels_rgb  # noqa: E402
from archivestore.sources import Item  # noqa: E402
from archivestore.store import Store, _lock  # noqa: E402
from archivestore.testing.sample import png  # noqa: E402

_PARTS: dict[str, bytes] = {}


def _part(name: str) -> bytes:
    """The encoded files of every tiny image (64x64: the same bytes each time, made once)."""
    if not _PARTS:
        rng = np.random.default_rng(0)
        _PARTS["image"] = png(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        _PARTS["superpixels"] = encode_superpixels_rgb(np.arange(64 * 64).reshape(64, 64) // 64)
        _PARTS["mask"] = png((rng.random((64, 64)) > 0.5).astype(np.uint8) * 255)
    return _PARTS[name]


def tiny_items(start: int, n: int) -> list[Item]:
    return [Item(id=f"ISIC_{k:07d}", metadata=isic_record(k), image=functools.partial(_part, "image"),
                 superpixels=functools.partial(_part, "superpixels"), mask=functools.partial(_part, "mask"))
            for k in range(start, start + n)]


def latency_store(path: Path, latency: float) -> Store:
    opened = open_store(path, mode="a")
    slow = LatencyStore(opened.zstore, latency)
    return Store(str(path), slow, zarr.open_group(slow, mode="r+", zarr_format=3), mode="a", layout=opened.layout)


class Timed:
    """Wraps ``Store.append_tables`` of one store object: calls and seconds spent in them."""

    def __init__(self, store: Store) -> None:
        self.inner = store.append_tables
        self.calls = 0
        self.seconds = 0.0
        store.append_tables = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        t0 = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0


def writers(args: argparse.Namespace) -> None:
    print(f"{args.workers} writer threads, {args.latency * 1e3:.0f} ms per request, {args.items} images of 64x64 "
          f"(+ superpixels, mask, 30-field record), table_batch {args.table_batch}")
    with c.workdir("sim-") as tmp:
        store = latency_store(tmp / "one.zarr", args.latency)
        assert ingest(store, tiny_items(0, 1), workers=1, progress=False).ok  # tables created
        cpu0 = time.process_time()
        one = [c.timed(lambda item=item: process_item(store, item)) for item in tiny_items(1, 9)]
        single, item_cpu = statistics.median(one), (time.process_time() - cpu0) / len(one)
        print(f"one image on one writer (process_item, the worker's task): {single * 1e3:.0f} ms, "
              f"{item_cpu * 1e3:.1f} ms CPU")
        store = latency_store(tmp / "many.zarr", args.latency)
        assert ingest(store, tiny_items(0, 1), workers=1, progress=False).ok
        timed = Timed(store)
        cpu0, t0 = time.process_time(), time.perf_counter()
        report = ingest(store, tiny_items(1, args.items), workers=args.workers, progress=False,
                        table_batch=args.table_batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert report.ok, report.failed[:3]
        rows = len(open_store(tmp / "many.zarr").metadata_frame())
        assert rows == args.items + 1, rows
        ideal = min(args.workers / single, 1 / item_cpu)
        print(f"ingest: {wall:.1f} s = {args.items / wall:.0f} images/s; the writers alone: "
              f"{args.workers / single:.0f}/s "
              f"by latency, {1 / item_cpu:.0f}/s by one CPU's worth of Python; ratio to the lower "
              f"{args.items / wall / ideal:.2f}; process CPU {cpu:.1f} s = {cpu / wall:.2f} CPUs busy")
        print(f"inside append_tables (whichever thread calls it): {timed.calls} calls, {timed.seconds:.1f} s "
              f"({timed.seconds / wall:.0%} of the wall time); {rows} rows in the table")


@contextlib.contextmanager
def separate_cluster(threads: int) -> Iterator[str]:
    """A dask scheduler and two workers of ``threads // 2`` threads, each its own process (as on a real cluster,
    where the scheduler's CPU is not the submitting process's); yields the scheduler's address."""
    bin_dir = Path(sys.executable).parent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stderr=subprocess.DEVNULL)]
    time.sleep(3)
    procs += [subprocess.Popen([bin_dir / "dask", "worker", address, "--nthreads", str(threads // 2),
                                "--no-dashboard", "--no-nanny"], stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def cluster(args: argparse.Namespace) -> None:
    """The submitting process's own CPU per image, with the scheduler and the workers in other processes."""
    from distributed import Client

    print(f"{args.items} images of 64x64; a dask scheduler and 2 workers x {args.threads // 2} threads in their "
          f"own processes ({2 * args.threads} pending tasks); one store on local disk; the submitting process's "
          f"requests (the table appends) delayed {args.latency * 1e3:.0f} ms; table_batch {args.table_batch}")
    with c.workdir("sim-") as tmp, separate_cluster(args.threads) as address, Client(address) as client:
        client.wait_for_workers(2, timeout=60)
        path = tmp / "cluster.zarr"
        assert ingest(open_store(path, mode="a"), tiny_items(10**6, 1), progress=False).ok
        store = latency_store(path, args.latency) if args.latency else open_store(path, mode="a")
        cpu0, t0 = time.process_time(), time.perf_counter()
        report = ingest(store, tiny_items(0, args.items), client=client, progress=args.progress,
                        table_batch=args.table_batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert report.ok, report.failed[:3]
    print(f"ingest: {wall:.1f} s = {args.items / wall:.0f} images/s; submitting process CPU {cpu:.1f} s = "
          f"{cpu / args.items * 1e3:.2f} ms per image (ceiling of one submitter: {args.items / cpu:.0f} images/s)")


def throttle(args: argparse.Namespace) -> None:
    """Ingest into a bucket whose request rate is capped: does every image get in, at what rate."""
    import os

    import s3fs
    from bench_cluster import s3_server

    server = s3_server()
    proxy = ThrottlingProxy(os.environ["AWS_ENDPOINT_URL"], args.put_rate, args.get_rate)
    os.environ["AWS_ENDPOINT_URL"] = proxy.url
    s3fs.S3FileSystem.clear_instance_cache()
    print(f"{args.workers} writer threads, {args.items} images of 64x64 into the local S3 server behind a proxy "
          f"that answers 503 SlowDown beyond {args.put_rate:.0f} writes/s and {args.get_rate:.0f} reads/s; "
          f"botocore retries: {args.retry_mode or 'default'}{f' x {args.max_attempts}' if args.retry_mode else ''}")
    try:
        name = f"throttle-{time.time_ns()}"
        proxy.rates = {"write": 1e9, "read": 1e9}
        s3fs.S3FileSystem().mkdir(name)
        options = {"config_kwargs": {"retries": {"mode": args.retry_mode, "max_attempts": args.max_attempts}}} \
            if args.retry_mode else None
        store = open_store(f"s3://{name}/t.zarr", mode="a", storage_options=options)
        assert ingest(store, tiny_items(10**6, 1), progress=False).ok
        proxy.rates = {"write": args.put_rate, "read": args.get_rate}
        proxy.tokens = dict(proxy.rates)
        proxy.passed.clear()
        t0 = time.perf_counter()
        report = ingest(store, tiny_items(0, args.items), workers=args.workers, progress=False)
        wall = time.perf_counter() - t0
        proxy.rates = {"write": 1e9, "read": 1e9}
        rows = len(open_store(f"s3://{name}/t.zarr").metadata_frame())
    finally:
        proxy.close()
        server.stop()
    sent = sum(proxy.passed.values()) + sum(proxy.throttled.values())
    print(f"ingest: {wall:.1f} s = {args.items / wall:.1f} images/s; {len(report.ingested)} ingested, "
          f"{len(report.failed)} failed ({'; '.join(str(f) for f in report.failed[:2])}); {rows} rows")
    print(f"requests: {dict(proxy.passed)} passed = {proxy.passed['write'] / wall:.0f} writes/s, "
          f"{dict(proxy.throttled)} answered SlowDown ({sum(proxy.throttled.values()) / max(sent, 1):.0%} of {sent})")


def _submitter(args: tuple[str, int, int, int]) -> dict[str, Any]:
    """One submitting process: ingest its own images, timing every wait for the ``tables`` lease and every hold."""
    path, k, items, table_batch = args
    waits: list[float] = []
    holds: list[tuple[float, float]] = []  # (taken, given back), time.time()
    inner, release = _lock.acquire, _lock.Lease.release

    def acquire(zstore: Any, name: str, **kw: Any) -> Any:
        t0 = time.perf_counter()
        lease = inner(zstore, name, **kw)
        if name == "tables":
            waits.append(time.perf_counter() - t0)
            lease.taken = time.time()
        return lease

    def give_back(lease: Any) -> None:
        release(lease)
        if hasattr(lease, "taken"):
            holds.append((lease.taken, time.time()))

    import archivestore.store._writing as writing

    writing.acquire = acquire  # type: ignore[assignment]
    _lock.Lease.release = give_back  # type: ignore[method-assign]
    store = open_store(path, mode="a")
    t0 = time.perf_counter()
    report = ingest(store, tiny_items(k * items, items), workers=2, progress=False, table_batch=table_batch,
                    batch_size=table_batch)
    return {"wall": time.perf_counter() - t0, "appends": len(waits), "wait": sum(waits),
            "max_wait": max(waits, default=0.0), "failed": len(report.failed), "holds": holds}


def submitters(args: argparse.Namespace) -> None:
    print(f"{args.submitters} processes x {args.items} images of 64x64, metadata appended every "
          f"{args.table_batch} images, one store on local disk")
    with c.workdir("sim-") as tmp:
        path = str(tmp / "shared.zarr")
        assert ingest(open_store(path, mode="a"), tiny_items(10**6, 1), progress=False).ok
        t0 = time.perf_counter()
        with mp.get_context("spawn").Pool(args.submitters) as pool:
            t_start = time.time()
            results = pool.map(_submitter, [(path, k, args.items, args.table_batch) for k in range(args.submitters)])
            t_end = time.time()
        wall = time.perf_counter() - t0
        rows = len(open_store(path).metadata_frame())
    holds = sorted(h for r in results for h in r["holds"])
    for k, r in enumerate(results):
        print(f"  submitter {k}: {r['wall']:.1f} s, {r['appends']:.0f} appends, waited {r['wait']:.1f} s "
              f"for the lease (longest {r['max_wait']:.2f} s), {r['failed']:.0f} failed")
    held = sum(b - a for a, b in holds)
    gaps = [b[0] - a[1] for a, b in zip(holds, holds[1:], strict=False)]
    waiting_gaps = [g for g in gaps if g > 0]
    print(f"lease held {held:.1f} s of {t_end - t_start:.1f} s ({held / (t_end - t_start):.0%}), "
          f"{len(holds)} holds of {statistics.median(b - a for a, b in holds):.2f} s median; "
          f"idle between holds: median {statistics.median(waiting_gaps) if waiting_gaps else 0:.2f} s, "
          f"longest {max(waiting_gaps, default=0):.2f} s")
    total = args.submitters * args.items
    print(f"all: {wall:.1f} s, {total / wall:.0f} images/s; {rows} rows (expected {total + 1}); "
          f"mean wait per append {statistics.mean(r['wait'] / max(r['appends'], 1) for r in results):.2f} s")
    assert rows == total + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("writers")
    w.add_argument("--workers", type=int, default=100)
    w.add_argument("--latency", type=float, default=0.03)
    w.add_argument("--items", type=int, default=8192)
    w.add_argument("--table-batch", type=int, default=4096)
    d = sub.add_parser("cluster")
    d.add_argument("--items", type=int, default=2000)
    d.add_argument("--threads", type=int, default=100)
    d.add_argument("--progress", action="store_true")
    d.add_argument("--latency", type=float, default=0.0, help="delay of the submitting process's requests")
    d.add_argument("--table-batch", type=int, default=4096)
    t = sub.add_parser("throttle")
    t.add_argument("--workers", type=int, default=32)
    t.add_argument("--items", type=int, default=600)
    t.add_argument("--put-rate", type=float, default=60.0)
    t.add_argument("--get-rate", type=float, default=100.0)
    t.add_argument("--retry-mode", choices=["legacy", "standard", "adaptive"], help="botocore's retry mode")
    t.add_argument("--max-attempts", type=int, default=10, help="botocore's attempts per request (with --retry-mode)")
    s = sub.add_parser("submitters")
    s.add_argument("--submitters", type=int, default=8)
    s.add_argument("--items", type=int, default=400)
    s.add_argument("--table-batch", type=int, default=16)
    args = ap.parse_args()
    print(c.machine())
    {"writers": writers, "cluster": cluster, "throttle": throttle, "submitters": submitters}[args.what](args)
    print(c.load_note())


if __name__ == "__main__":
    main()
