"""Study groups: the layout's chunks for new studies, older chunks kept when appending, repair, overlap."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from archivestore.analysis import overlap
from archivestore.layout import STUDY_CHUNKS
from archivestore.store import StudyRow, _studies
from archivestore.store._studies import append_study, repair_study

OLD_CHUNKS = {"image": 16, "feature": 8, "rater": 8, "superpixel": 2048}
"""The chunks studies were created with before issue 11."""


def _rows(seed: int, images: range, raters: list[str], features: list[str], n_sp: int = 40) -> list[StudyRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in images:
        n = n_sp + i % 7
        area = rng.integers(1, 50, n).astype(np.uint32)
        mask_area = (area * rng.random(n)).astype(np.uint32) if i % 3 else None
        for rater in raters:
            values = {f: rng.choice(np.float32([0, 0.5, 1, np.nan]), n) for f in features}
            rows.append(StudyRow(f"ISIC_{i:07d}", rater, values, area, mask_area))
    return rows


def _batches() -> list[list[StudyRow]]:
    """Appends as ingest makes them: ground truth first, then more images, a new rater, a new feature."""
    return [
        _rows(1, range(0, 20), ["ground_truth"], ["globules", "streaks"]),
        _rows(2, range(20, 70), ["ground_truth"], ["globules", "streaks"], n_sp=1500),
        _rows(3, range(0, 70), ["rater a", "rater b"], ["globules", "streaks", "milia_like_cysts"]),
    ]


def _study(path, chunks: dict[str, int] | None, monkeypatch: pytest.MonkeyPatch) -> zarr.Group:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    batches = _batches()
    if chunks is not None:  # the first append creates the arrays with these chunks
        with monkeypatch.context() as m:
            data = {k: (dims, dtype, fill, tuple(chunks.get(d, c) for d, c in zip(dims, old, strict=True)))
                    for k, (dims, dtype, fill, old) in _studies._DATA.items()}
            m.setattr(_studies, "_DATA", data)
            append_study(group, batches.pop(0))
    for batch in batches:
        append_study(group, batch)
    return group


def test_new_study_has_the_layout_chunks(tmp_path, monkeypatch):
    group = _study(tmp_path / "new.zarr", None, monkeypatch)
    dims = ("image", "feature", "rater", "superpixel")
    assert group["annotation"].chunks == tuple(STUDY_CHUNKS[d] for d in dims)
    assert group["superpixel_area"].chunks == (STUDY_CHUNKS["image"], STUDY_CHUNKS["superpixel"])


def test_older_chunks_are_kept_and_read_the_same(tmp_path, monkeypatch):
    old = _study(tmp_path / "old.zarr", OLD_CHUNKS, monkeypatch)
    _study(tmp_path / "new.zarr", None, monkeypatch)
    assert old["annotation"].chunks == (16, 8, 8, 2048)
    assert old["superpixel_area"].chunks == (16, 2048)
    a = xr.open_zarr(str(tmp_path / "old.zarr"), consolidated=False)
    b = xr.open_zarr(str(tmp_path / "new.zarr"), consolidated=False)
    assert a.sizes == b.sizes == {"image": 70, "feature": 3, "rater": 3, "superpixel": 1506}
    xr.testing.assert_identical(a.load(), b.load())
    # values where they were written, NaN padding elsewhere
    ann = b["annotation"].values
    assert np.isnan(ann[:20, :, :, 46:]).all() and not np.isnan(ann[:20, :2, 0, :40]).all()
    assert np.isnan(ann[:, 2, 0]).all()  # ground truth never gave the third feature
    xr.testing.assert_identical(overlap(a).compute(), overlap(b.load()))


def test_repair_cuts_an_interrupted_append_back(tmp_path, monkeypatch):
    group = _study(tmp_path / "s.zarr", None, monkeypatch)
    before = xr.open_zarr(str(tmp_path / "s.zarr"), consolidated=False).load()
    group["annotation"].resize((75, 3, 4, 1506))  # data grown, coordinates not yet written
    group["superpixel_area"].resize((75, 1506))
    repair_study(group)
    assert group["annotation"].shape == (70, 3, 3, 1506) and group["superpixel_area"].shape == (70, 1506)
    xr.testing.assert_identical(xr.open_zarr(str(tmp_path / "s.zarr"), consolidated=False).load(), before)


def test_read_study_gives_the_rows_of_the_last_complete_append(tmp_path, monkeypatch):
    group = _study(tmp_path / "s.zarr", None, monkeypatch)
    expected = xr.open_zarr(str(tmp_path / "s.zarr"), consolidated=False).load()
    group["annotation"].resize((75, 3, 4, 1506))  # an append under way: data grown, coordinates not yet
    group["annotation"][70:] = 1.0
    study = _studies.read_study(group)
    assert study.annotation.shape == (70, 3, 3, 1506) and study.image == list(expected["image"].values)
    blocks = [study.annotation[lo:lo + study.annotation.block] for lo in range(0, 70, study.annotation.block)]
    np.testing.assert_array_equal(np.concatenate(blocks), expected["annotation"].values)
    np.testing.assert_array_equal(study.superpixel_area, expected["superpixel_area"].values)
    assert _studies.read_study(group, max_bytes=1000) is None
