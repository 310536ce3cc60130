"""Shared fixtures: the embedded sample archive, the real recorded ISIC data, store URLs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def isic_fixtures() -> Path:
    """``../shared/fixtures`` (real recorded ISIC data); skipped outside this workplace."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real ISIC fixtures not found at {FIXTURES} (a checkout without ../shared)")
    return FIXTURES


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory) -> dict[str, Path]:
    """The demo's sample archive in ISIC challenge layouts, written once per session."""
    from archivestore.demo import write_sample_archive

    return write_sample_archive(tmp_path_factory.mktemp("sample-archive"))


@pytest.fixture(params=["local", "memory"])
def store_url(request, tmp_path) -> str:
    """A fresh store location: a local directory and an fsspec ``memory://`` URL."""
    if request.param == "local":
        return str(tmp_path / "store.zarr")
    return f"memory://archivestore-test-{uuid.uuid4().hex}/store.zarr"
