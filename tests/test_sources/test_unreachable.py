"""An archive that cannot be reached at all: UnreachableError naming the endpoint, after a short retry.

A closed port on 127.0.0.1 answers "connection refused" at once; a plain HTTP server asked for
``https://`` fails the TLS handshake. HTTP error answers are not this (they keep their retries and
per-item handling; see test_http.py).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from archivestore.cli import main
from archivestore.errors import APIError, UnreachableError
from archivestore.sources import Idr, IsicSearchSource, IsicV2, Tcia
from archivestore.sources import item_from_origin as any_item_from_origin
from archivestore.sources._http import Client
from archivestore.sources._reach import unreachable


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def dead() -> str:
    return closed_port()


@pytest.fixture
def plain_http() -> Iterator[str]:
    """A plain HTTP server: ``https://`` to it fails the TLS handshake."""

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_kinds_of_unreachable():
    assert unreachable(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert unreachable(socket.gaierror(-2, "Name or service not known")).startswith("the name does not resolve")
    assert unreachable(ssl.SSLError(1, "wrong version number")).startswith("TLS failure")
    wrapped = OSError("outer")
    wrapped.__cause__ = ConnectionRefusedError(111, "refused")
    assert unreachable(wrapped) == "connection refused"
    for answer in (TimeoutError("read timed out"), ConnectionResetError(104, "reset by peer"), ValueError("x")):
        assert unreachable(answer) is None  # the server was there


def test_a_refused_connection_is_unreachable_naming_the_endpoint_without_secrets(dead):
    client = Client(dead + "/api/", retries=5, backoff_factor=0.0)
    with pytest.raises(UnreachableError) as caught:
        client.get("images/", {"token": "s3cr3t"}, item="ISIC_1")
    error = caught.value
    assert isinstance(error, APIError) and error.status is None and error.item == "ISIC_1"
    assert f"cannot reach {dead}: connection refused" in str(error) and "s3cr3t" not in str(error)


def test_a_tls_failure_is_unreachable(plain_http):
    with pytest.raises(UnreachableError, match=f"cannot reach https://{plain_http}: TLS failure"):
        Client(f"https://{plain_http}/", retries=1, backoff_factor=0.0).get("x")


def test_every_archive_client_raises_it(dead):
    with pytest.raises(UnreachableError, match=dead):
        Tcia(dead + "/nbia-api/services/v4/", progress=False, backoff_factor=0.0).collections()
    with pytest.raises(UnreachableError, match=dead):
        Idr(dead + "/", backoff_factor=0.0).projects()
    with pytest.raises(UnreachableError, match=dead):
        list(IsicSearchSource(IsicV2(dead + "/api/v2/", backoff_factor=0.0)))
    with pytest.raises(UnreachableError, match=dead):
        IsicV2(dead + "/api/v2/", token="tok", backoff_factor=0.0).check_token()


def test_an_item_of_an_unreachable_archive_fails_with_unreachable_not_as_its_own_fault(dead):
    series = any_item_from_origin("1.2.3", {"source": "tcia", "base_url": dead + "/v4/", "series": "1.2.3"}, {})
    with pytest.raises(UnreachableError) as caught:
        series.files()
    assert caught.value.item == "1.2.3" and dead in str(caught.value)
    image = any_item_from_origin("ISIC_1", {"source": "isic_v2", "api": dead + "/api/v2/", "isic_id": "ISIC_1"}, {})
    with pytest.raises(UnreachableError):
        image.image()


@pytest.mark.parametrize("argv", [
    ["tcia", "collections"],
    ["tcia", "series", "--collection", "X"],
    ["idr", "projects"],
])
def test_query_commands_print_one_line_and_exit_2(dead, capsys, argv):
    assert main([*argv, "--base-url", dead + "/", "--retries", "1", "--backoff", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot reach {dead}: connection refused" in err[0]


@pytest.mark.parametrize("argv", [
    ["ingest", "isic"],
    ["ingest", "tcia", "--collection", "X"],
    ["ingest", "idr", "--dataset", "1", "--rendered"],
])
def test_ingest_from_an_unreachable_archive_is_one_line(dead, tmp_path, capsys, argv):
    code = main([*argv, "--store", str(tmp_path / "s.zarr"), "--base-url", dead + "/api/", "--backoff", "0",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"cannot reach {dead}" in err[0]


def test_an_unreachable_bucket_endpoint_is_unreachable_for_an_idc_series(dead, monkeypatch):
    pytest.importorskip("s3fs")
    from archivestore.sources.idc import SeriesFiles

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    files = SeriesFiles("1.2.3", "s3://idc-open-data/uuid/", {"anon": True, "endpoint_url": dead})
    with pytest.raises(UnreachableError) as caught:
        files()
    assert caught.value.item == "1.2.3" and f"cannot reach {dead}: connection refused" in str(caught.value)
