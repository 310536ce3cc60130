"""Options for the peer benchmarks: the stand-ins' fixed port and added latency (off by default), and the
CLI's default workers for downloading sources."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from archivestore import open_store
from archivestore.cli import main
from archivestore.cli._ingest import NETWORK_WORKERS
from archivestore.testing.isic_v2 import V2Server, synthetic_v2_records


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_defaults_are_any_port_and_no_latency() -> None:
    with V2Server(synthetic_v2_records(1)) as server:
        assert server.latency == 0.0
        assert server.httpd.server_address[1] != 0


def test_a_subclass_binds_its_port_and_delays_every_request() -> None:
    port = _free_port()

    class Fixed(V2Server):
        pass

    Fixed.port = port
    with Fixed(synthetic_v2_records(2)) as server:
        server.latency = 0.05
        assert server.origin == f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        answer = requests.get(server.url + "images/", timeout=10)
        assert time.monotonic() - t0 >= 0.05  # time.sleep waits at least that long
        assert answer.status_code == 200 and len(answer.json()["results"]) == 2


def test_license_files_as_isic_cli_fetches_them() -> None:
    with V2Server(synthetic_v2_records(1)) as server:
        answer = requests.get(server.url + "zip-download/license-file/CC-BY/", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "text/plain"
        assert answer.text.startswith("CC-BY")


@pytest.mark.parametrize(("extra", "expected"), [([], NETWORK_WORKERS), (["--workers", "3"], 3)])
def test_downloading_ingests_default_to_more_workers_than_cpus(tmp_path, monkeypatch, extra, expected) -> None:
    """Each item waits on the archive first: the CLI's downloading sources run NETWORK_WORKERS at once."""
    import archivestore._ingest

    seen = {}
    real = archivestore._ingest.ingest

    def spy(store, source, **kw):
        seen.update(kw)
        return real(store, source, **kw)

    monkeypatch.setattr(archivestore._ingest, "ingest", spy)  # what the CLI imports when it runs
    with V2Server(synthetic_v2_records(3)) as server:
        code = main(["ingest", "isic", "--store", str(tmp_path / "s.zarr"), "--base-url", server.url,
                     "--no-progress", *extra])
    assert code == 0
    assert seen["workers"] == expected
    assert len(open_store(str(tmp_path / "s.zarr")).image_ids()) == 3
