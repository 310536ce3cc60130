"""Where ingest tasks run: a client made from a scheduler address is closed at the end; a given one is not."""

from __future__ import annotations

import pytest

from archivestore import ingest, open_store
from archivestore.sources import ChallengeSource

distributed = pytest.importorskip("distributed")


def _open_clients() -> set:
    return {c for c in distributed.Client._instances if c.status not in ("closed", "closing")}


def test_ingest_closes_the_client_it_made_and_keeps_the_callers(sample_dirs, tmp_path):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        before = _open_clients()
        store = open_store(tmp_path / "a.zarr", mode="a")
        report = ingest(store, ChallengeSource([sample_dirs["train"]]), client=cluster.scheduler_address,
                        progress=False)
        assert report.ok and len(report.ingested) == 6
        assert _open_clients() == before  # the client made from the address is closed

        with distributed.Client(cluster) as client:
            store = open_store(tmp_path / "b.zarr", mode="a")
            assert ingest(store, ChallengeSource([sample_dirs["train"]]), client=client, progress=False).ok
            assert client.status == "running"  # the caller's client stays the caller's


def test_ingest_uses_the_given_client_even_when_it_is_not_the_default(sample_dirs, tmp_path):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            store = open_store(tmp_path / "c.zarr", mode="a")
            report = ingest(store, ChallengeSource([sample_dirs["train"]]), client=client, progress=False)
            assert report.ok and len(report.ingested) == 6
