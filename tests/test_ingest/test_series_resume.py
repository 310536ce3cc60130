"""DICOM series from a TCIA stand-in: kill -9 mid-ingest and rerun (each series once, nothing half-written
complete), and a dask.distributed LocalCluster (worker processes) writing the same store as threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from archivestore import ingest, open_store

dicom = pytest.importorskip("archivestore.testing.dicom")
from archivestore.sources import Tcia, TciaSource  # noqa: E402
from archivestore.testing.nbia import NbiaServer  # noqa: E402

COLLECTION = "TCIA-RESUME"


@pytest.fixture(scope="module")
def collection():
    return [dicom.ct_series(24, seed=f"resume-{k}") for k in range(12)]


@pytest.fixture
def server(collection):
    with NbiaServer() as server:
        server.uids = [server.add_series(files, collection=COLLECTION, PatientID=f"P-{k % 3}")
                       for k, files in enumerate(collection)]
        yield server


def _complete(store_url: str, uids: list[str]) -> int:
    """How many of the series' groups are complete (their state, not the table)."""
    try:
        store = open_store(store_url)
    except FileNotFoundError:
        return 0
    return sum(bool((store.group_state(store.layout.series(uid)) or {}).get("complete")) for uid in uids)


def test_kill_and_rerun(server, collection, tmp_path):
    store_url = str(tmp_path / "s.zarr")
    cmd = [sys.executable, "-m", "archivestore", "ingest", "tcia", "--collection", COLLECTION, "--base-url",
           server.url, "--store", store_url, "--no-progress", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _complete(store_url, server.uids) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _complete(store_url, server.uids)
    assert 0 < done_before < len(collection), "the ingest was not interrupted half-way"
    store = open_store(store_url)
    for uid in store.series_ids():  # whatever the table lists is complete
        assert store.volume(uid)["volume"].shape[0] == 24

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(collection) - done_before} ingested, {done_before} already complete, 0 failed" in rerun.stdout
    store = open_store(store_url)
    assert sorted(store.series_ids()) == sorted(server.uids)  # each exactly once
    from archivestore.dicom import read_series

    for files, uid in list(zip(collection, server.uids, strict=True))[::5]:
        np.testing.assert_array_equal(store.volume(uid)["volume"].values, read_series(files)[0].array)


def test_local_cluster_writes_what_threads_write(server, tmp_path):
    distributed = pytest.importorskip("distributed")
    source = TciaSource(Tcia(server.url, progress=False, retries=2), collection=COLLECTION, patient="P-1")
    threads = open_store(tmp_path / "threads.zarr", mode="a")
    assert ingest(threads, source, progress=False).ok
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        cluster_store = open_store(tmp_path / "cluster.zarr", mode="a")
        report = ingest(cluster_store, source, client=client, progress=False)
    assert report.ok and len(report.ingested) == 4
    assert sorted(cluster_store.series_ids()) == sorted(threads.series_ids())
    for uid in threads.series_ids():
        a, b = threads.volume(uid), cluster_store.volume(uid)
        np.testing.assert_array_equal(a["volume"].values, b["volume"].values)
        assert a.attrs["affine"] == b.attrs["affine"]
