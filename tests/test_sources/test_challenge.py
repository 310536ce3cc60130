"""ChallengeSource passes the source conformance kit (archivestore.testing.sources)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from archivestore.sources import ChallengeSource
from archivestore.testing.sources import SourceTests

KEEP = {"ISIC_0000003": "ISIC_0000003", "ISIC_0000005": "ISIC 0000005 – ü"}  # sample id -> id here
BROKEN = "ISIC 0000005 – ü"


def _subset(sample_dirs: dict[str, Path], root: Path) -> list[Path]:
    """Two sample images with all their files (one renamed to an id with spaces and Unicode)."""
    dirs = []
    for role in ("train", "masks", "part2", "attributes"):
        folder = root / role
        folder.mkdir(parents=True)
        for path in sample_dirs[role].iterdir():
            for old, new in KEEP.items():
                if path.name.startswith(old):
                    shutil.copy(path, folder / path.name.replace(old, new, 1))
        dirs.append(folder)
    return dirs


class TestChallengeSource(SourceTests):
    @pytest.fixture
    def source(self, sample_dirs: dict[str, Path], tmp_path: Path) -> ChallengeSource:
        return ChallengeSource(_subset(sample_dirs, tmp_path), study="study")

    @pytest.fixture
    def bad_source(self, sample_dirs: dict[str, Path], tmp_path: Path) -> ChallengeSource:
        dirs = _subset(sample_dirs, tmp_path)
        (dirs[0] / f"{BROKEN}.jpg").write_bytes(b"not a JPEG")
        return ChallengeSource(dirs, study="study")

    @pytest.fixture
    def bad_item_id(self) -> str:
        return BROKEN

    @pytest.fixture
    def byte_reads(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
        reads = []
        read_bytes, read_text = Path.read_bytes, Path.read_text

        def counted_bytes(path: Path) -> bytes:
            reads.append(path)
            return read_bytes(path)

        def counted_text(path: Path, *args: object, **kwargs: object) -> str:
            reads.append(path)
            return read_text(path, *args, **kwargs)

        monkeypatch.setattr(Path, "read_bytes", counted_bytes)
        monkeypatch.setattr(Path, "read_text", counted_text)
        return lambda: len(reads)
