"""The stand-ins that ``bench_peers.py`` runs both sides against, each in a process of its own.

Run as ``python benchmarks/_peer_servers.py KIND DATA --latency SECONDS``: it serves ``KIND``
(``isic``, ``tcia``, ``idc``) from ``DATA`` (written by ``bench_peers.py``), prints one JSON line
(``{"url": ...}``, for IDC also ``"index"``) and serves until its standard input closes. A process
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
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.faulty_proxy import FaultyProxy  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["isic", "tcia", "idc"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    _server, info = {"isic": serve_isic, "tcia": serve_tcia, "idc": serve_idc}[args.kind](args.data, args.latency)
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # serve until the parent closes the pipe


if __name__ == "__main__":
    main()
