"""Compact superpixel maps and per-superpixel statistics."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from fakes import V1_FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from archivestore.analysis import SuperpixelMap, superpixel_map, superpixel_stats
from archivestore.imaging import decode_superpixels

FIXTURES = V1_FIXTURES
REAL = FIXTURES / "ISIC_0000000_superpixels.png"


def check_against_brute_force(index: np.ndarray, smap: SuperpixelMap) -> None:
    flat = index.ravel().astype(np.int64)
    n = int(flat.max()) + 1
    assert smap.n == n and smap.shape == index.shape
    assert smap.offsets[0] == 0 and smap.offsets[-1] == index.size
    # isicarchive's map lists each superpixel's pixels in ascending order: a stable sort
    np.testing.assert_array_equal(smap.pixel_index, np.argsort(flat, kind="stable"))
    np.testing.assert_array_equal(smap.area, np.bincount(flat, minlength=n))
    for k in {0, n - 1, n // 2}:
        np.testing.assert_array_equal(smap.pixels(k), np.flatnonzero(flat == k))
    yy, xx = np.indices(index.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(flat, weights=yy.ravel(), minlength=n) / smap.area
        cx = np.bincount(flat, weights=xx.ravel(), minlength=n) / smap.area
    np.testing.assert_allclose(smap.centroid, np.stack([cy, cx], axis=-1), rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(smap.label_image(), index)


@pytest.fixture(scope="module")
def real_index():
    if not REAL.exists():
        pytest.skip(f"real ISIC fixtures not present at {FIXTURES}")
    return decode_superpixels(REAL.read_bytes())


def test_real_superpixel_image(real_index):
    smap = superpixel_map(real_index)
    assert real_index.shape == (480, 640)
    assert smap.n == 996
    assert (smap.area > 0).all()
    check_against_brute_force(real_index, smap)
    # compact: 4 bytes a pixel against isicarchive's dense (n, largest + 1) int32 array
    dense = 4 * smap.n * (int(smap.area.max()) + 1)
    assert smap.pixel_index.nbytes == 4 * real_index.size < dense


def test_real_mask_statistics(real_index):
    smap = superpixel_map(real_index)
    yy, xx = np.indices(real_index.shape)
    mask = ((yy - 240) ** 2 / 150**2 + (xx - 300) ** 2 / 200**2 < 1).astype(np.uint8)
    inside = np.bincount(real_index[mask > 0], minlength=smap.n)
    np.testing.assert_array_equal(smap.mask_area(mask), inside)
    np.testing.assert_allclose(smap.fraction_in(mask), inside / smap.area)
    np.testing.assert_allclose(smap.lesion_share(mask), inside / mask.sum())
    assert smap.lesion_share(mask).sum() == pytest.approx(1.0)
    # isicarchive's superpixels_in_mask: mean of the mask over each superpixel's pixels
    k = int(np.argmax(inside > 0))
    assert smap.fraction_in(mask)[k] == pytest.approx(mask.ravel()[smap.pixels(k)].mean())
    assert np.isnan(smap.lesion_share(np.zeros_like(mask))).all()


def test_paint(real_index):
    smap = superpixel_map(real_index)
    rng = np.random.default_rng(0)
    values = rng.random((2, smap.n))
    painted = smap.paint(values)
    assert painted.shape == (2, 480, 640)
    np.testing.assert_array_equal(painted[1], values[1][real_index])
    out = np.empty((480, 640), dtype=np.float32)
    smap.paint(values[0], out=out)
    np.testing.assert_array_equal(out, values[0][real_index].astype(np.float32))
    with pytest.raises(ValueError):
        smap.paint(values[0][:-1])


def test_absent_labels_and_large_labels():
    index = np.array([[0, 0, 5], [5, 70000, 70000]], dtype=np.uint32)
    smap = superpixel_map(index)
    assert smap.n == 70001
    assert smap.area[1] == 0 and np.isnan(smap.centroid[1]).all()
    assert np.isnan(smap.fraction_in(np.ones((2, 3)))[1])
    np.testing.assert_array_equal(smap.pixels(5), [2, 3])
    np.testing.assert_array_equal(smap.coords(70000)[1], [1, 2])
    check_against_brute_force(index, smap)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        superpixel_map(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="integer"):
        superpixel_map(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="negative"):
        superpixel_map(np.array([[0, -1]]))
    with pytest.raises(IndexError):
        superpixel_map(np.zeros((2, 2), dtype=np.uint16)).pixels(1)
    with pytest.raises(ValueError, match="shape"):
        superpixel_map(np.zeros((2, 2), dtype=np.uint16)).mask_area(np.zeros((2, 3)))


@settings(max_examples=60, deadline=None)
@given(
    index=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.int32, np.int64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.integers(0, 30),
    ),
    blocky=st.booleans(),
)
def test_random_index_images(index, blocky):
    if blocky:  # long runs, like real superpixels, as well as pixel noise
        index = np.repeat(index, 7, axis=1)
    smap = superpixel_map(index)
    check_against_brute_force(index, smap)
    mask = (index % 3 == 0).astype(np.uint8)
    np.testing.assert_array_equal(smap.mask_area(mask), np.bincount(index[mask > 0].astype(np.int64), minlength=smap.n))


def test_superpixel_stats_over_a_store(tmp_path):
    from archivestore.cli import run_demo

    path = tmp_path / "demo.zarr"
    assert run_demo(path, progress=False, out=lambda *a: None) == 0
    from archivestore import open_store

    store = open_store(path)
    study = store.study(store.studies()[0])
    stats = superpixel_stats(store, study, images_per_task=4)
    assert stats["superpixel_area"].chunks[0] == (4, 2)
    stats = stats.compute()
    # the same numbers as the ingest recorded in the study
    n_sp = study.sizes["superpixel"]
    for name in ("superpixel_area", "superpixel_mask_area", "has_mask"):
        got = stats[name]
        if "superpixel" in got.dims:
            got = got.isel(superpixel=slice(0, n_sp))
        np.testing.assert_array_equal(got.values, study[name].values, err_msg=name)
    # and the same as a map of each image
    for image_id in stats["image"].values[:2]:
        ds = store.image(str(image_id))
        smap = superpixel_map(ds["superpixels"].values)
        row = stats.sel(image=image_id).isel(superpixel=slice(0, smap.n))
        np.testing.assert_allclose(row["superpixel_centroid"].values, smap.centroid)
        np.testing.assert_allclose(row["superpixel_fraction"].values, smap.fraction_in(ds["mask"].values))
        np.testing.assert_allclose(row["superpixel_lesion_share"].values, smap.lesion_share(ds["mask"].values))
        assert int(stats["n_superpixels"].sel(image=image_id)) == smap.n
    # every image by default, opened from a path
    everything = superpixel_stats(str(path))
    assert list(everything["image"].values) == store.image_ids()
    assert isinstance(everything["superpixel_area"].data, da.Array)  # lazy until computed
    assert isinstance(everything, xr.Dataset)
