"""``ingest idc`` states the bytes it will fetch, and refuses more than a local store's free space unless --yes."""

from __future__ import annotations

import shutil
import uuid
from collections import namedtuple

import pytest

from archivestore import open_store
from archivestore.cli import main

dicom = pytest.importorskip("archivestore.testing.dicom")
pytest.importorskip("duckdb")

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def bucket(tmp_path, s3_env):
    import s3fs

    from archivestore.testing.idc import populate_idc_bucket

    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    name = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    series = [dicom.ct_series(2, seed="size-a"), dicom.ct_series(3, seed="size-b")]
    rows = populate_idc_bucket(fs, series, tmp_path / "index.parquet", bucket=name, collection_id="size_test")
    return {"index": str(tmp_path / "index.parquet"), "endpoint": s3_env, "rows": rows}


def run(bucket, store, *extra):
    return main(["ingest", "idc", "--collection", "size_test", "--index", bucket["index"], "--store", store,
                 "--source-option", f"endpoint_url={bucket['endpoint']}", "--no-progress", *extra])


def test_states_the_bytes_and_refuses_a_full_disk_unless_yes(bucket, tmp_path, monkeypatch, capsys):
    total = sum(round(r["series_size_MB"] * 1e6) for r in bucket["rows"])
    store = str(tmp_path / "new" / "idc.zarr")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    assert run(bucket, store) == 2
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == f"ingest idc: 2 series, {total / 1e3:.2f} kB to fetch"
    assert out.err.count("\n") == 1 and "more than the 1.00 kB free" in out.err and "--yes" in out.err
    assert not (tmp_path / "new").exists()  # nothing was written
    assert run(bucket, store, "--yes") == 0
    assert len(open_store(store).series_ids()) == 2
    capsys.readouterr()
    monkeypatch.undo()
    assert run(bucket, store) == 0  # a rerun: nothing left to fetch
    assert capsys.readouterr().out.splitlines()[0] == "ingest idc: 0 series, 0 B to fetch (2 already in the store)"


def test_a_remote_store_is_not_checked(bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9, 0))
    assert run(bucket, "memory://size-remote/store.zarr") == 0
    assert "2 series" in capsys.readouterr().out
