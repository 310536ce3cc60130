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


# -- IDR: OMERO.web's rendered planes with requests, or the OME-Zarr with ome-zarr-py ---------------------
RENDER_THREADS = 8
"""The render recipe's thread pool (archivestore's ingest downloads on 8 workers)."""


def idr_session(spec: dict[str, Any]) -> Any:
    """A requests session with IDR's anonymous login (``/webclient/?experimenter=-1`` sets ``sessionid``)."""
    import requests

    session = requests.Session()
    session.get(spec["url"] + "webclient/?experimenter=-1", timeout=60).raise_for_status()
    return session


def idr_api(session: Any, url: str) -> list[dict[str, Any]]:
    """Every record of an ``api/v0`` listing, page by page."""
    records: list[dict[str, Any]] = []
    while True:
        page = session.get(url, params={"offset": len(records), "limit": 500}, timeout=60)
        page.raise_for_status()
        body = page.json()
        records += body["data"]
        if not body["data"] or len(records) >= body["meta"]["totalCount"]:
            return records


def idr_fields(session: Any, spec: dict[str, Any]) -> list[tuple[int, int, str, str, int]]:
    """``(plate id, image id, row, column, field)`` of every field of every plate of the screen."""
    api = spec["url"] + "api/v0/m/"
    fields = []
    for plate in idr_api(session, f"{api}screens/{spec['screen']}/plates/"):
        for well in idr_api(session, f"{api}plates/{plate['@id']}/wells/"):
            for k, sample in enumerate(well.get("WellSamples", [])):
                fields.append((plate["@id"], sample["Image"]["@id"], chr(ord("A") + well["Row"]),
                               str(well["Column"] + 1), k))
    return fields


def idr_render_download(spec: dict[str, Any]) -> None:
    """The per-plane recipe: ``imgData`` per image, then ``render_image`` of every z of every channel as 8-bit
    greyscale JPEG over the channel's window, decoded with Pillow, on 8 threads; one ``.npy`` (c, z, y, x)
    uint8 per image, what the user keeps for the next analysis."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    session = idr_session(spec)
    images = [image for _, image, *_ in idr_fields(session, spec)]

    def plane(image: int, z: int, c: int, window: dict[str, float]) -> np.ndarray:
        query = f"c={c + 1}|{window['start']:g}:{window['end']:g}$FFFFFF&m=g"
        answer = session.get(f"{spec['url']}webgateway/render_image/{image}/{z}/0/?{query}", timeout=60)
        answer.raise_for_status()
        with Image.open(io.BytesIO(answer.content)) as picture:
            return np.asarray(picture.convert("L"))

    with ThreadPoolExecutor(RENDER_THREADS) as pool:
        datas = list(pool.map(lambda i: session.get(f"{spec['url']}webclient/imgData/{i}/", timeout=60).json(),
                              images))
        for image, data in zip(images, datas, strict=True):
            size = data["size"]
            jobs = [(image, z, c, data["channels"][c]["window"]) for c in range(size["c"]) for z in range(size["z"])]
            planes = list(pool.map(lambda job: plane(*job), jobs))
            np.save(out / f"{image}.npy", np.stack(planes).reshape(size["c"], size["z"], *planes[0].shape))


def idr_render_load(spec: dict[str, Any]) -> dict[str, Any]:
    total, count = 0, 0
    for path in sorted(Path(spec["out"]).glob("*.npy")):
        total += int(np.load(path).sum(dtype=np.uint64))
        count += 1
    return {"checksum": [total, count]}


def idr_omezarr_download(spec: dict[str, Any]) -> None:
    """Nothing is downloaded: ome-zarr-py reads the remote OME-Zarr where it is (the load below)."""
    Path(spec["out"]).mkdir(parents=True, exist_ok=True)


def idr_omezarr_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Every field as ome-zarr-py's user reads it: the screen's plates from OMERO.web's API, each plate's
    OME-Zarr from IDR's URL rule (``<study>/<plate id>.zarr``), its wells and fields from the plate's NGFF
    metadata, then per field ``Reader(parse_url(url))`` and the full resolution's dask array ``.compute()``."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    session = idr_session(spec)
    plates = idr_api(session, f"{spec['url']}api/v0/m/screens/{spec['screen']}/plates/")
    total, count = 0, 0
    for plate in plates:
        plate_url = spec["zarr_url"].format(study=spec["study"], image_id=plate["@id"])
        location = parse_url(plate_url)
        assert location is not None, plate_url
        for well in location.root_attrs["plate"]["wells"]:
            well_location = parse_url(f"{plate_url}/{well['path']}")
            assert well_location is not None
            for field in well_location.root_attrs["well"]["images"]:
                node = next(iter(Reader(parse_url(f"{plate_url}/{well['path']}/{field['path']}"))()))
                pixels = np.asarray(node.data[0].compute())
                total += int(pixels.sum(dtype=np.uint64))
                count += 1
    return {"checksum": [total, count]}


JOBS = {"isic": (isic_download, isic_load), "tcia": (tcia_download, tcia_load), "idc": (idc_download, idc_load),
        "idr-render": (idr_render_download, idr_render_load), "idr-omezarr": (idr_omezarr_download, idr_omezarr_load)}


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
