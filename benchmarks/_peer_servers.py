"""The stand-ins that ``bench_peers.py`` runs both sides against, each in a process of its own.

Run as ``python benchmarks/_peer_servers.py KIND DATA --latency SECONDS``: it serves ``KIND``
(``isic``, ``tcia``, ``idc``, ``idr``) from ``DATA`` (written by ``bench_peers.py``), prints one JSON line
(``{"url": ...}``, for IDC also ``"index"``, for IDR also ``"zarr_url"`` and ``"screen"``) and serves
until its standard input closes. A process
of its own keeps the servers' Python work (routing, zipping, moto's S3 emulation) out of both
measured sides' processes. Every request waits ``--latency`` seconds before it is answered
(``FakeServer.latency``; for IDC a forwarding proxy in front of moto adds it), as the real archive
across a network would. Not part of archivestore.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.faulty_proxy import FaultyProxy  # noqa: E402

from archivestore.testing.httpserver import Answer, FakeServer, Request  # noqa: E402
from archivestore.testing.isic_v1 import Record  # noqa: E402
from archivestore.testing.isic_v2 import V2Server, synthetic_v2_records  # noqa: E402
from archivestore.testing.sample import jpeg, lesion_image  # noqa: E402

ISIC_DEV_PORT = 8000
"""isic-cli's ``--dev`` talks to ``http://127.0.0.1:8000`` and nowhere else."""


def isic_jpeg(name: str, shape: tuple[int, int]) -> bytes:
    """The dermoscopy-like photograph of ``bench_ingest.py`` and ``bench_codecs.py`` (``lesion_image``:
    skin, an irregular lesion, lighting, sensor noise) as JPEG quality 92, drawn from ``name``."""
    rgb, _ = lesion_image(np.random.default_rng(zlib.crc32(name.encode())), *shape)
    return jpeg(rgb)


class BenchIsic(V2Server):
    """The ISIC v2 stand-in on isic-cli's dev port, serving JPEG photographs of ``_shape``, made once each."""

    port = ISIC_DEV_PORT

    @functools.cache  # noqa: B019 - one server per process
    def _jpeg(self, name: str, h: int, w: int) -> bytes:
        return isic_jpeg(name, (h, w))

    def _file(self, record: Record, kind: str) -> bytes:
        h, w = record["_shape"]
        if kind != "full":
            h, w = max(1, h // 4), max(1, w // 4)
        return self._jpeg(record["isic_id"] + kind, h, w)


def isic_records(n: int, shape: tuple[int, int]) -> list[Record]:
    """``n`` synthetic v2 records whose images are ``shape`` (rows, columns)."""
    records = synthetic_v2_records(n)
    for r in records:
        r["_shape"] = list(shape)
        r["metadata"]["acquisition"].update(pixels_x=shape[1], pixels_y=shape[0])
    return records


def serve_isic(data: Path, latency: float) -> tuple[Any, dict[str, Any]]:
    spec = json.loads((data / "isic.json").read_text())
    try:
        server = BenchIsic(isic_records(spec["records"], tuple(spec["shape"])))
    except OSError as exc:
        raise SystemExit(f"cannot bind 127.0.0.1:{ISIC_DEV_PORT} (isic-cli --dev needs it): {exc}") from exc
    server.latency = latency
    for record in server.records:  # every file made before anything is timed
        server._file(record, "full")
        server._file(record, "thumbnail_256")
    return server.start(), {"url": server.url}


def _series_files(data: Path) -> list[list[tuple[str, bytes]]]:
    return [[(p.name, p.read_bytes()) for p in sorted(d.glob("*.dcm"))] for d in sorted(data.iterdir()) if d.is_dir()]


def serve_tcia(data: Path, latency: float) -> tuple[Any, dict[str, Any]]:
    from archivestore.testing.nbia import NbiaServer, zip_of

    server = NbiaServer()
    server.latency = latency
    for files in _series_files(data / "series"):
        uid = server.add_series(files, collection="BENCH-CT")
        server.zips[uid] = zip_of(files)  # zipped once, not per request
    return server.start(), {"url": server.url}


def serve_idc(data: Path, latency: float) -> tuple[Any, dict[str, Any]]:
    import s3fs
    from moto.server import ThreadedMotoServer

    from archivestore.testing.idc import populate_idc_bucket

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint)
    series = _series_files(data / "series") + _series_files(data / "segs")
    index = data / "idc_index.parquet"
    populate_idc_bucket(fs, series, index, collection_id="bench_ct")
    proxy = FaultyProxy(endpoint, share=0.0, delay=latency)
    proxy.__enter__()
    return proxy, {"url": proxy.url, "index": str(index)}


# -- IDR: OMERO.web and the plate's NGFF 0.4 OME-Zarr ------------------------------------------------
IDR_SCREEN = "idr0001-bench-screen/screenA"
"""The screen's name: study ``idr0001A`` (``archivestore.sources.idr.study_folder``)."""
IDR_ROWS, IDR_COLUMNS = ("A", "B"), ("1", "2", "3", "4", "5")
IDR_ZARR = "idr/zarr/v0.4"
"""The path of the OME-Zarr tree on the static server, as IDR's bucket lays it out (``<study>/<plate id>.zarr``)."""


def idr_pixels(rng: np.random.Generator, shape: tuple[int, int, int, int]) -> np.ndarray:
    """One (c, z, y, x) uint16 image like a widefield stack of cells: blurred blobs (nuclei, spots) over a
    dim background, each channel its own, with shot noise (Poisson) and read noise (Gaussian, sigma 4)."""
    channels, planes, height, width = shape
    out = np.empty(shape, np.uint16)
    axes = [np.arange(n, dtype=np.float32) for n in (planes, height, width)]
    for c in range(channels):
        field = np.full((planes, height, width), 90.0 + 30 * c, np.float32)
        for _ in range(max(4, height * width // 2000)):
            centre = rng.uniform((0, 0, 0), (planes, height, width))
            sigma = (rng.uniform(1.5, 3.5), *([rng.uniform(3.0, 9.0)] * 2))
            amplitude = rng.uniform(400, 3000) / (1 + c)
            box = [slice(max(0, int(m - 3 * s)), int(m + 3 * s) + 1) for m, s in zip(centre, sigma, strict=True)]
            g = [np.exp(-((a[b] - m) ** 2) / (2 * s * s)) for a, b, m, s in zip(axes, box, centre, sigma, strict=True)]
            field[tuple(box)] += amplitude * g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
        noisy = rng.poisson(field).astype(np.float32) + rng.normal(0, 4, field.shape).astype(np.float32)
        out[c] = np.clip(np.rint(noisy), 0, 65535)
    return out


def write_idr(data: Path | str, images: int, size: int) -> None:
    """``images`` fields (3 channels x 20 planes x ``size``^2 uint16) as ``pixels.npy`` (n, c, z, y, x), and the same
    pixels as an NGFF 0.4 HCS plate written by ome-zarr-py at ``plate.zarr`` (one field per well, wells row by row
    in :data:`IDR_ROWS` x :data:`IDR_COLUMNS`, chunks of one plane as IDR's, one extra resolution level)."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    from archivestore.testing.ome import open_group

    data = Path(data)
    wells = [(r, c) for r in IDR_ROWS for c in IDR_COLUMNS][:images]
    if len(wells) < images:
        raise SystemExit(f"the IDR plate holds {len(IDR_ROWS) * len(IDR_COLUMNS)} images, not {images}")
    rng = np.random.default_rng(21)
    pixels = np.stack([idr_pixels(rng, (3, 20, size, size)) for _ in wells])
    np.save(data / "pixels.npy", pixels)
    fmt = FormatV04()
    plate = open_group(data / "plate.zarr", mode="w", zarr_format=2)
    write_plate_metadata(plate, list(IDR_ROWS), list(IDR_COLUMNS), [f"{r}/{c}" for r, c in wells], fmt=fmt,
                         field_count=1, name="bench-plate")
    channels = [{"label": name, "color": color, "active": True,
                 "window": {"min": 0.0, "max": 65535.0, "start": float(pixels[:, k].min()),
                            "end": float(pixels[:, k].max())}}
                for k, (name, color) in enumerate([("DAPI", "0000FF"), ("GFP", "00FF00"), ("mCherry", "FF0000")])]
    for k, (row, column) in enumerate(wells):
        well = plate.require_group(row).require_group(column)
        write_well_metadata(well, [{"path": "0", "acquisition": 0}], fmt=fmt)
        write_image(pixels[k], well.require_group("0"), fmt=fmt, axes="czyx", scale_factors=(2,),
                    scale={"c": 1.0, "z": 0.5, "y": 0.1625, "x": 0.1625},
                    storage_options=[{"chunks": (1, 1, size, size)}, {"chunks": (1, 1, size // 2, size // 2)}],
                    name=f"bench-plate_{row}{column}_0", omero={"channels": channels})


class StaticFiles(FakeServer):
    """Files under ``prefix`` from a dict of relative paths (a bucket on an anonymous S3 endpoint, read over HTTP):
    GET answers the file, 404 a missing key as S3 does; HEAD (fsspec's HTTP filesystem asks it first) answers
    the headers alone. Every request waits :attr:`latency`."""

    def __init__(self, prefix: str, files: dict[str, bytes]) -> None:
        super().__init__()
        self.prefix = "/" + prefix.strip("/") + "/"
        self.files = files
        base = self.httpd.RequestHandlerClass
        server = self

        class Handler(base):  # type: ignore[misc,valid-type]
            def do_HEAD(self) -> None:  # noqa: N802
                request = Request(self)
                if server.latency:
                    time.sleep(server.latency)
                server._record(request)
                answer = server.route(request)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()

        self.httpd.RequestHandlerClass = Handler

    def route(self, request: Request) -> Answer:
        key = request.path[len(self.prefix):] if request.path.startswith(self.prefix) else None
        body = self.files.get(key or "")
        if body is None:
            return Answer(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Answer(200, body, "application/octet-stream")


def serve_idr(data: Path, latency: float) -> tuple[Any, dict[str, Any]]:
    """The OMERO.web stand-in with a screen of one plate, one field per well (``pixels.npy``), and its
    OME-Zarr (``plate.zarr``) under ``/idr/zarr/v0.4/idr0001A/<plate id>.zarr`` on a static server."""
    from archivestore.sources.idr import study_folder
    from archivestore.testing.omero import OmeroWebServer

    pixels = np.load(data / "pixels.npy")
    omero = OmeroWebServer()
    screen = omero.add_screen(IDR_SCREEN)
    plate = omero.add_plate("bench-plate", screen=screen, rows=len(IDR_ROWS), columns=len(IDR_COLUMNS))
    for k, image in enumerate(pixels):
        omero.add_well(plate, k // len(IDR_COLUMNS), k % len(IDR_COLUMNS), [image[None]],
                       pixel_size=(0.1625, 0.1625, 0.5))
    omero.latency = latency
    folder = study_folder(IDR_SCREEN)
    assert folder is not None
    root = data / "plate.zarr"
    files = {f"{folder[0]}/{plate}.zarr/{p.relative_to(root).as_posix()}": p.read_bytes()
             for p in sorted(root.rglob("*")) if p.is_file()}
    static = StaticFiles(IDR_ZARR, files)
    static.latency = latency
    omero.start()
    static.start()
    return (omero, static), {"url": omero.url, "zarr_url": static.url + "{study}/{image_id}.zarr", "screen": screen,
                              "study": folder[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["isic", "tcia", "idc", "idr"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    _server, info = {"isic": serve_isic, "tcia": serve_tcia, "idc": serve_idc,
                     "idr": serve_idr}[args.kind](args.data, args.latency)
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # serve until the parent closes the pipe


if __name__ == "__main__":
    main()
