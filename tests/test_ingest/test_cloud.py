"""Stores on a bucket (a local S3 server) and ingest on a dask.distributed cluster."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest
import xarray as xr
from fakes.faulty_proxy import FaultyProxy

from archivestore import ingest, open_store
from archivestore.analysis import overlap
from archivestore.sources import ChallengeSource
from archivestore.testing.sample import STUDY

KEEP = ("ISIC_0000000", "ISIC_0000003")  # one RGB-encoded and the 16-bit superpixel image


@pytest.fixture(scope="module")
def two_images(sample_dirs, tmp_path_factory):
    """Two images of the sample archive: a local S3 server is slow, and two show every path."""
    root = tmp_path_factory.mktemp("two")
    out = {}
    for role in ("train", "masks", "attributes", "part2"):
        out[role] = root / sample_dirs[role].name
        out[role].mkdir()
        for path in sample_dirs[role].iterdir():
            if path.name.startswith(KEEP) or path.suffix == ".csv":
                shutil.copy(path, out[role])
    return out


def _sources(dirs):
    return ChallengeSource([dirs["train"], dirs["masks"], dirs["attributes"], dirs["part2"]], study=STUDY)


def _snapshot(store) -> dict:
    """Everything a store holds, comparable between runs (order-free)."""
    out = {"records": store.metadata_records()}
    for image_id in store.image_ids():
        ds = store.image(image_id).load()
        out[image_id] = {k: v.values for k, v in ds.data_vars.items()}
    study = store.study(STUDY).load().sortby("image")
    out["study"] = {k: v.values for k, v in study.data_vars.items()}
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a["records"] == b["records"]
    assert a.keys() == b.keys()
    for key in a:
        if key != "records":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name])


def test_plain_xarray_opens_a_bucket_store(two_images, s3_bucket, s3_env):
    url = f"s3://{s3_bucket}/isic.zarr"
    assert ingest(open_store(url, mode="a"), _sources(two_images), progress=False).ok
    opts = {"endpoint_url": s3_env, "key": "testing", "secret": "testing"}
    ds = xr.open_zarr(url, group="images/ISIC_0000000", storage_options=opts, consolidated=False)
    assert ds["image"].shape == (480, 640, 3)
    meta = xr.open_zarr(url, group="metadata", storage_options=opts, consolidated=False)
    assert meta.sizes["image"] == 2


def test_anonymous_read_of_a_public_bucket(two_images, s3_env, monkeypatch):
    import s3fs

    bucket = f"public-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket, acl="public-read")
    url = f"s3://{bucket}/isic.zarr"
    assert ingest(open_store(url, mode="a"), _sources(two_images), progress=False).ok
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()
    store = open_store(url, storage_options={"anon": True})
    assert store.info()["images"] == 2
    assert store.image("ISIC_0000003")["superpixels"].dtype == np.uint16
    frame = store.metadata_frame()
    assert list(frame["clinical.sex"]) == ["female", "male"] or list(frame["clinical.sex"]) == ["male", "female"]


def test_flaky_bucket_loses_and_duplicates_nothing(two_images, s3_bucket, s3_env, monkeypatch, tmp_path):
    import s3fs

    reference = open_store(tmp_path / "ref.zarr", mode="a")
    assert ingest(reference, _sources(two_images), progress=False).ok
    with FaultyProxy(s3_env, share=0.1, seed=7) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        s3fs.S3FileSystem.clear_instance_cache()
        url = f"s3://{s3_bucket}/flaky.zarr"
        store = open_store(url, mode="a", storage_options={"config_kwargs": {"retries": {"max_attempts": 10}}})
        report = ingest(store, _sources(two_images), progress=False)
        assert report.ok, report.failed
        assert proxy.failed > 10
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    s3fs.S3FileSystem.clear_instance_cache()
    store = open_store(url)
    assert sorted(store.image_ids()) == sorted(reference.image_ids())      # each once
    _assert_same(_snapshot(store), _snapshot(reference))


def test_distributed_ingest_to_a_bucket_equals_threaded(two_images, s3_bucket, tmp_path):
    distributed = pytest.importorskip("distributed")

    threaded = open_store(tmp_path / "threaded.zarr", mode="a")
    assert ingest(threaded, _sources(two_images), progress=False).ok
    url = f"s3://{s3_bucket}/cluster.zarr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        report = ingest(open_store(url, mode="a"), _sources(two_images), client=client, progress=False)
        assert report.ok and len(report.ingested) == 2
        on_cluster = overlap(open_store(url).study(STUDY)).compute()
    _assert_same(_snapshot(open_store(url)), _snapshot(threaded))
    local = overlap(threaded.study(STUDY)).compute()
    assert on_cluster.sortby("image").identical(local.sortby("image"))
