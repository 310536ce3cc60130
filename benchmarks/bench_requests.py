"""Bucket requests and throughput of writing image groups: archivestore's ingest vs plain zarr.

Both sides write the same groups to a local S3 server (moto on 127.0.0.1) through a proxy
that counts every request and adds ``--latency`` seconds to each (a bucket across a
network answers a PUT in tens of milliseconds; moto in-process in about one). Each image
is 1022x767 (ISIC_0000000's size) with superpixels, a lesion mask and ``--features``
attribute masks, from the sample generator.

- baseline: plain zarr, as a user (or archivestore before issue 11) writes a group:
  ``zarr.open_group(..., mode="w")``, then ``create_array`` and a full write per array
  (zarr checks the parents and the path of each), the attributes last; decoded arrays
  are given, so only the writing is timed. Its checks of the parent groups (``zarr.json``
  of the root and of ``images``) are requests for each image too, outside the image's keys.
  It opens the bucket with the same s3fs options archivestore gives itself
  (``BUCKET_DEFAULTS``: ``max_concurrency=1``, adaptive retries), so the comparison is of
  the writing, not of s3fs's HEAD before each GET.
- archivestore: ``ingest`` of the same images (decoding included), threads.

Run::

    .venv/bin/python benchmarks/bench_requests.py [--images 24] [--latency 0.02] [--workers 8]

Goals (issue 11): at most 15 requests per image; at least 4 images/s to the local S3 server.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import _common as c  # noqa: E402
from fakes.faulty_proxy import FaultyProxy  # noqa: E402
from fakes.s3 import ENV, local_s3_server  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.imaging import encode_superpixels_rgb  # noqa: E402
from archivestore.sources import Item  # noqa: E402
from archivestore.store._store import BUCKET_DEFAULTS  # noqa: E402
from archivestore.testing.sample import jpeg, voronoi_superpixels  # noqa: E402

H, W = 767, 1022


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def make_images(n: int, features: int) -> list[dict[str, np.ndarray | bytes]]:
    rng = np.random.default_rng(11)
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[:H, :W]
        photo = np.stack([(yy // 3 + rng.integers(0, 40)) % 256, (xx // 4) % 256,
                          rng.integers(100, 200, (H, W))], axis=-1).astype(np.uint8)
        sp = voronoi_superpixels(rng, H, W, 24)
        mask = ((yy - H / 2) ** 2 + (xx - W / 2) ** 2 < (H / 3) ** 2).astype(np.uint8)
        attrs = np.stack([np.roll(mask, 40 * k, axis=1) for k in range(features)])
        out.append({"photo": photo, "sp": sp, "mask": mask, "attrs": attrs, "jpeg": jpeg(photo),
                    "sp_png": encode_superpixels_rgb(sp), "mask_png": _png(mask * 255),
                    "attr_pngs": [_png(a * 255) for a in attrs]})
    return out


def write_plain(url: str, options: dict, images: list, workers: int) -> None:
    """The baseline: one group per image with zarr's own API and defaults for everything but chunks."""
    root = zarr.open_group(zarr.storage.FsspecStore.from_url(url, storage_options=options), mode="a")
    root.require_group("images")

    def one(k: int) -> None:
        img = images[k]
        group = root.create_group(f"images/IMG_{k}", overwrite=True)
        for name, data, dims in (("image", img["photo"], ("y", "x", "channel")), ("superpixels", img["sp"], ("y", "x")),
                                 ("mask", img["mask"], ("y", "x")), ("attribute", img["attrs"], ("feature", "y", "x"))):
            arr = group.create_array(name, shape=data.shape, dtype=data.dtype, dimension_names=dims,
                                     chunks=tuple(min(n, 1024) if d in "yx" else (1 if d == "feature" else n)
                                                  for n, d in zip(data.shape, dims, strict=True)))
            arr[...] = data
        for name, labels in (("channel", ["R", "G", "B"]), ("feature", [f"f{j}" for j in range(len(img["attrs"]))])):
            coord = group.create_array(name, shape=(len(labels),), dtype=str, dimension_names=(name,))
            coord[...] = np.array(labels)
        group.attrs.update({"complete": True})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(images))))


def items_of(images: list) -> list[Item]:
    return [Item(id=f"IMG_{k}", metadata={"k": k}, image=lambda b=img["jpeg"]: b,
                 superpixels=lambda b=img["sp_png"]: b, mask=lambda b=img["mask_png"]: b,
                 attributes={f"f{j}": (lambda b=png: b) for j, png in enumerate(img["attr_pngs"])})
            for k, img in enumerate(images)]


def per_image(requests: list[tuple[str, str]], n: int) -> tuple[float, Counter]:
    """Requests whose key is under one image, per image; and the rest by method."""
    under = [r for r in requests if "/images/IMG_" in r[1] or "/_locks/images/IMG_" in r[1]]
    rest = Counter(m for m, p in requests if (m, p) not in set(under))
    return len(under) / n, rest


def measure(side: str, proxy: FaultyProxy, images: list, workers: int) -> tuple[float, float, float]:
    """Requests per image and images per second of one side."""
    url = f"s3://bench-requests/{side.replace(' ', '-')}.zarr"
    options = {"endpoint_url": proxy.url}
    store = open_store(url, mode="a", storage_options=options) if side == "archivestore" else None
    options = {**BUCKET_DEFAULTS["s3"], **options}  # what open_store gives itself: the baseline gets it too
    proxy.requests.clear()
    t0 = time.perf_counter()
    if store is None:
        write_plain(url, options, images, workers)
    else:
        report = ingest(store, items_of(images), progress=False, workers=workers)
        assert report.ok, report.failed
    rate = len(images) / (time.perf_counter() - t0)
    each, rest = per_image(list(proxy.requests), len(images))
    print(f"{side:13s} {each:5.1f} requests under each image's keys, {len(proxy.requests) / len(images):5.1f} "
          f"in all per image (the rest: {dict(rest)}), {rate:5.1f} images/s")
    return each, len(proxy.requests) / len(images), rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds added to each request")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args(argv)
    print(f"machine: {c.machine()}")
    print(c.load_note())
    print(f"s3fs options of both sides: {BUCKET_DEFAULTS['s3']} and the proxy's endpoint_url")
    images = make_images(args.images, args.features)
    os.environ.update(ENV)
    with local_s3_server() as upstream, FaultyProxy(upstream, share=0.0, delay=args.latency) as proxy:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=upstream).mkdir("bench-requests")
        results = {side: measure(side, proxy, images, args.workers) for side in ("plain zarr", "archivestore")}
    (b_req, b_all, b_rate), (a_req, a_all, a_rate) = results["plain zarr"], results["archivestore"]
    print(f"\nrequests per image: {a_req:.1f} vs {b_req:.1f} under the image's keys, {a_all:.1f} vs {b_all:.1f} in all "
          f"({b_all / a_all:.1f}x fewer; goal <= 15: {'met' if a_req <= 15 else 'MISSED'})")
    print(f"throughput with {args.latency * 1000:.0f} ms per request: {a_rate:.1f} vs {b_rate:.1f} images/s "
          f"({a_rate / b_rate:.1f}x; goal >= 4 images/s: {'met' if a_rate >= 4 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
