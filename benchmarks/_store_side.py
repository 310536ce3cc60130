"""archivestore's side of ``bench_peers.py``: ``archivestore ingest ...``, then reading the store.

Runs in the project's environment. Usage (as ``_peer_side.py``)::

    python _store_side.py JOB SPEC_JSON          # ingest (the CLI, in a process of its own), then load
    python _store_side.py JOB SPEC_JSON --load   # load only (the second analysis)

Prints one JSON line: the seconds of each step and the ``checksum`` of what was read (the sum of
every value of every array, and the count of arrays), to compare with the peer's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from archivestore import open_store
from archivestore.errors import NotFoundError


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "archivestore", "ingest", *args, "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ingest(job: str, spec: dict[str, Any]) -> None:
    store = spec["out"]
    if job == "isic":
        _cli("isic", "--base-url", spec["url"], "--query", spec["query"], "--limit", str(spec["limit"]),
             "--store", store)
    elif job == "tcia":
        _cli("tcia", "--base-url", spec["url"], "--collection", spec["collection"], "--store", store)
    elif job == "idc":
        _cli("idc", "--index", spec["index"], "--source-option", f"endpoint_url={spec['url']}",
             "--collection", spec["collection"], "--store", store)
    elif job == "idr":
        _cli("idr", "--screen", str(spec["screen"]), "--base-url", spec["url"], "--zarr-url", spec["zarr_url"],
             "--store", store)
    else:
        raise ValueError(job)


def _eager(method: Any, *args: Any) -> Any:
    """``method(*args, chunks=None)`` (no dask); a ``--before`` tree older than ``chunks`` gets the plain call."""
    import inspect

    if "chunks" in inspect.signature(method).parameters:
        return method(*args, chunks=None)
    return method(*args)


def load(job: str, spec: dict[str, Any]) -> dict[str, Any]:
    store = open_store(spec["out"])
    total, count = 0, 0
    if job == "isic":
        rows = store.metadata_frame()
        for image_id in store.image_ids():
            total += int(store.read(image_id, "image").sum(dtype=np.uint64))
            count += 1
        return {"checksum": [total, count], "rows": len(rows)}
    if job == "idr":  # the labelled image (xarray, no dask), or with ``"read": "read"`` the numpy array
        for image_id in store.image_ids():
            eager = spec.get("read") == "read"
            pixels = store.read(image_id) if eager else _eager(store.image, image_id)["image"].values
            total += int(pixels.sum(dtype=np.uint64))
            count += 1
        return {"checksum": [total, count]}
    if spec.get("read") == "numpy" and hasattr(store, "read_volume"):  # numpy straight from zarr
        return _read_numpy(store)
    for uid in store.series_ids():  # volumes and SEGs: the SEGs are read below, with their series
        try:
            volume = _eager(store.volume, uid)["volume"].values  # voxels in memory: no dask
        except NotFoundError:
            continue
        total += int(np.rint(volume.astype(np.float64).sum()))
        count += 1
    if job == "idc":
        for segs in _eager(store.segmentations_by_series).values():
            for seg in segs:
                total += int(seg["labels"].values.astype(np.int64).sum())
                count += 1
    return {"checksum": [total, count]}


def _read_numpy(store: Any) -> dict[str, Any]:
    """Every volume and segmentation of the series table as numpy (``read_volume``/``read_segmentation``)."""
    total, count = 0, 0
    for uid in store.series_ids():
        try:
            total += int(np.rint(store.read_volume(uid).astype(np.float64).sum()))
        except NotFoundError:  # a segmentation's row
            total += int(store.read_segmentation(uid).astype(np.int64).sum())
        count += 1
    return {"checksum": [total, count]}


def main() -> None:
    job, spec = sys.argv[1], json.loads(sys.argv[2])
    result: dict[str, Any] = {}
    if "--load" not in sys.argv:
        t0 = time.perf_counter()
        ingest(job, spec)
        result["download_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.update(load(job, spec))
    result["load_s"] = time.perf_counter() - t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
