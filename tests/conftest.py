"""Shared fixtures: the embedded sample archive, the real recorded ISIC data, store URLs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from archivestore.testing.isic_v1 import FIXTURES


@pytest.fixture(scope="session")
def isic_fixtures() -> Path:
    """``../shared/fixtures`` (real recorded ISIC data); skipped outside this workplace."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real ISIC fixtures not found at {FIXTURES} (a checkout without ../shared)")
    return FIXTURES


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory) -> dict[str, Path]:
    """The demo's sample archive in ISIC challenge layouts, written once per session."""
    from archivestore.testing.sample import write_sample_archive

    return write_sample_archive(tmp_path_factory.mktemp("sample-archive"))


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto) on 127.0.0.1 with an OS-chosen port; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point s3fs at the local server through the usual AWS environment variables."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A fresh, empty bucket on the local S3 server."""
    import s3fs

    name = f"archivestore-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return name


@pytest.fixture(params=["local", "memory", "s3"])
def store_url(request, tmp_path) -> str:
    """A fresh store location: a local directory, fsspec ``memory://``, and a bucket on local S3."""
    if request.param == "local":
        return str(tmp_path / "store.zarr")
    if request.param == "memory":
        return f"memory://archivestore-test-{uuid.uuid4().hex}/store.zarr"
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/store.zarr"
