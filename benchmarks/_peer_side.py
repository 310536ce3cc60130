"""The peer side of ``bench_peers.py``: the tool a user would run, then the loading code they would write.

Runs in the peer's own environment (``benchmarks/.venv-<peer>``, see ``peers_env.py``), so it imports
nothing of archivestore: stdlib, numpy and the peer's own libraries only. Usage::

    python _peer_side.py JOB SPEC_JSON          # download, then load; prints one JSON line
    python _peer_side.py JOB SPEC_JSON --load   # load only (the second analysis)

The JSON line holds the seconds of each step and a ``checksum`` of what was loaded (the sum of
every value of every array and the count of arrays), which ``bench_peers.py`` compares with
archivestore's side: both must have loaded the same pixels.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


# -- ISIC: isic-cli, then Pillow ---------------------------------------------------------------
def isic_download(spec: dict[str, Any]) -> None:
    out = Path(spec["out"])
    home = out.parent / "home"  # no saved login or version-check state of the user's
    home.mkdir(parents=True, exist_ok=True)
    isic = Path(sys.executable).parent / "isic"
    cmd = [str(isic), "--dev", "--no-version-check", "--guest", "image", "download",
           "--search", spec["query"], "--limit", str(spec["limit"]), str(out)]
    subprocess.run(cmd, check=True, env={**os.environ, "HOME": str(home)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def isic_load(spec: dict[str, Any]) -> dict[str, Any]:
    from PIL import Image

    out = Path(spec["out"])
    with (out / "metadata.csv").open(newline="", encoding="utf8") as f:
        rows = {r["isic_id"]: r for r in csv.DictReader(f)}
    total, count = 0, 0
    for isic_id in sorted(rows):
        path = next(out.glob(f"{isic_id}.*"))
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        total += int(pixels.sum(dtype=np.uint64))
        count += 1
    return {"checksum": [total, count], "rows": len(rows)}


# -- DICOM stacking as a pydicom user writes it --------------------------------------------------
def stack_series(paths: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Slices sorted along the normal, stacked, rescaled by pydicom's modality LUT; and their SOP UIDs."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    slices = [pydicom.dcmread(p) for p in paths]
    normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient, float), (2, 3)))
    slices.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))))
    volume = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in slices])
    return volume, [str(ds.SOPInstanceUID) for ds in slices]


def _volume_sum(volume: np.ndarray) -> int:
    return int(np.rint(volume.astype(np.float64).sum()))


# -- TCIA: tcia_utils downloadSeries (it unzips), then pydicom --------------------------------------
def tcia_download(spec: dict[str, Any]) -> None:
    import logging

    from tcia_utils import nbia

    logging.getLogger().setLevel(logging.WARNING)
    # The one patch: tcia_utils builds every URL from setApiUrl(), which knows only TCIA's two hosts.
    # Pointing it at the stand-in changes the host, not the requests, the threads or the unzipping.
    nbia.setApiUrl = lambda endpoint, api_url="nbia": spec["url"]
    series = nbia.getSeries(collection=spec["collection"])
    nbia.downloadSeries(series, path=spec["out"])


def tcia_load(spec: dict[str, Any]) -> dict[str, Any]:
    total, count = 0, 0
    for folder in sorted(p for p in Path(spec["out"]).iterdir() if p.is_dir()):
        volume, _ = stack_series(sorted(folder.rglob("*.dcm")))
        total += _volume_sum(volume)
        count += 1
    return {"checksum": [total, count]}


# -- IDC: s5cmd as idc-index runs it, then pydicom + highdicom --------------------------------------
def idc_download(spec: dict[str, Any]) -> None:
    import duckdb

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = duckdb.sql(f"SELECT series_aws_url, crdc_series_uuid FROM read_parquet('{spec['index']}') "
                      f"WHERE collection_id = '{spec['collection']}'").fetchall()
    manifest = out.parent / "manifest.s5cmd"
    manifest.write_text("".join(f"cp '{url}' '{out / uuid}/'\n" for url, uuid in rows))
    s5cmd = Path(sys.executable).parent / "s5cmd"
    subprocess.run([str(s5cmd), "--no-sign-request", "--endpoint-url", spec["url"], "run", str(manifest)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def idc_load(spec: dict[str, Any]) -> dict[str, Any]:
    import highdicom as hd
    import pydicom

    series: dict[str, list[Path]] = {}
    segs: list[Path] = []
    for path in Path(spec["out"]).rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SeriesInstanceUID"])
        if ds.Modality == "SEG":
            segs.append(path)
        else:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    volumes: dict[str, tuple[np.ndarray, list[str]]] = {uid: stack_series(paths) for uid, paths in series.items()}
    total, count = sum(_volume_sum(v) for v, _ in volumes.values()), len(volumes)
    for path in segs:
        seg = hd.seg.segread(path)
        source = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
        _, sop_uids = volumes[source]
        labels = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids,
                                                   ignore_spatial_locations=True)
        total += int(labels.astype(np.int64).sum())
        count += 1
    return {"checksum": [total, count]}


JOBS = {"isic": (isic_download, isic_load), "tcia": (tcia_download, tcia_load), "idc": (idc_download, idc_load)}


def main() -> None:
    job, spec = sys.argv[1], json.loads(sys.argv[2])
    download, load = JOBS[job]
    result: dict[str, Any] = {}
    if "--load" not in sys.argv:
        t0 = time.perf_counter()
        download(spec)
        result["download_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.update(load(spec))
    result["load_s"] = time.perf_counter() - t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
