"""Shared fixtures: the embedded sample archive, the real recorded ISIC data, store locations.

Every round-trip test takes its store from ``store_url`` (a fresh store per test) or
``module_store_url`` (one store per module, built once and read by several tests), both
parametrised over :data:`STORE_KINDS`: a local directory, fsspec ``memory://``, and a
bucket on a local S3 server (moto on 127.0.0.1), as xarray's backend suite runs each
round trip on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fakes.s3 import local_s3_server, new_bucket, point_s3fs_at

from archivestore.testing.isic_v1 import FIXTURES

STORE_KINDS = ["local", "memory", "s3"]

pytest_plugins = ["strict_skips", "pytester"]  # with CI=true a skip for a missing dependency fails


@pytest.fixture(scope="session")
def isic_fixtures() -> Path:
    """``../shared/fixtures`` (real recorded ISIC data); skipped outside this workplace."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real ISIC fixtures not found at {FIXTURES} (a checkout without ../shared)")
    return FIXTURES


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's sample archive in ISIC challenge layouts, written once per session."""
    from archivestore.testing.sample import write_sample_archive

    return write_sample_archive(tmp_path_factory.mktemp("sample-archive"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A local S3 server (moto) on 127.0.0.1 with an OS-chosen port; yields its endpoint URL."""
    with local_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point s3fs at the local server through the usual AWS environment variables."""
    import s3fs

    point_s3fs_at(s3_server, monkeypatch)
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the local S3 server."""
    return new_bucket()


def _drop_memory(url: str) -> None:
    root = url.removeprefix("memory://").split("/")[0]
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store location: a local directory, fsspec ``memory://``, and a bucket on local S3."""
    if request.param == "local":
        yield str(tmp_path / "store.zarr")
    elif request.param == "memory":
        url = f"memory://archivestore-test-{uuid.uuid4().hex}/store.zarr"
        yield url
        _drop_memory(url)
    else:
        yield f"s3://{request.getfixturevalue('s3_bucket')}/store.zarr"


@pytest.fixture(scope="module", params=STORE_KINDS)
def module_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``store_url``, for one store per module that several tests read (they must not change it)."""
    if request.param == "local":
        yield str(tmp_path_factory.mktemp("store") / "store.zarr")
    elif request.param == "memory":
        url = f"memory://archivestore-test-{uuid.uuid4().hex}/store.zarr"
        yield url
        _drop_memory(url)
    else:
        import s3fs

        with pytest.MonkeyPatch.context() as mp:
            point_s3fs_at(request.getfixturevalue("s3_server"), mp)
            yield f"s3://{new_bucket()}/store.zarr"
        s3fs.S3FileSystem.clear_instance_cache()
