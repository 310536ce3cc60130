"""The real answers recorded from the archives (``../shared/fixtures/real/``), for the replay tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from archivestore.testing.isic_v1 import FIXTURES

REAL = FIXTURES / "real"
"""Recordings of the real servers (read in place, never copied into the project)."""


@pytest.fixture(scope="session")
def real() -> Path:
    """``../shared/fixtures/real``; the replay tests are skipped in a checkout without it."""
    if not (REAL / "README.md").is_file():
        pytest.skip(f"the real archives' recordings are not at {REAL} (a checkout without ../shared)")
    return REAL
