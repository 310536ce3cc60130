"""Study overlap: exact against brute-force pixel computations, NaN rules, dask paths."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archivestore.analysis import overlap, overlap_summary, superpixel_map, write_overlap

VALUES = np.array([0.0, 0.5, 1.0, np.nan])


def random_study(seed, n_img=5, n_feat=3, n_rat=4, shape=(9, 11), max_sp=12):
    """A random study plus the pixel-level truth it was made from.

    Returns the study Dataset (layout of ``studies/<name>``) and, per image, the
    superpixel index image and the lesion mask (None without a mask).
    """
    rng = np.random.default_rng(seed)
    n_sp = max_sp
    ann = np.full((n_img, n_feat, n_rat, n_sp), np.nan, dtype=np.float32)
    area = np.zeros((n_img, n_sp), dtype=np.uint32)
    mask_area = np.zeros((n_img, n_sp), dtype=np.uint32)
    has_mask = np.zeros(n_img, dtype=bool)
    truth = []
    for i in range(n_img):
        n = int(rng.integers(2, n_sp + 1))
        # labels 0..n-1, some possibly absent
        index = rng.integers(0, n, size=shape).astype(np.uint16)
        if rng.random() < 0.5:  # blocky superpixels, like real ones
            index = np.repeat(np.repeat(rng.integers(0, n, size=(shape[0] // 3 + 1, shape[1] // 3 + 1)), 3, 0), 3, 1)
            index = index[: shape[0], : shape[1]].astype(np.uint16)
        mask = None
        if rng.random() < 0.7:
            mask = (rng.random(shape) < rng.random()).astype(np.uint8)
            has_mask[i] = True
        counts = np.bincount(index.ravel(), minlength=n)
        area[i, :n] = counts
        if mask is not None:
            mask_area[i, :n] = np.bincount(index.ravel()[mask.ravel() > 0], minlength=n)
        for f in range(n_feat):
            for r in range(n_rat):
                kind = rng.random()
                if kind < 0.15:
                    continue  # rater gave no values
                probs = rng.dirichlet(np.ones(4))
                v = rng.choice(VALUES, size=n, p=probs)
                if kind < 0.3:
                    v = np.where(np.isnan(v), 0.0, v)
                    v[:] = v[0]  # constant map
                v[counts == 0] = np.nan  # superpixel absent in this image
                if np.isnan(v).all():
                    v[int(np.argmax(counts))] = 0.0
                ann[i, f, r, :n] = v
        truth.append((index, mask))
    study = xr.Dataset(
        {
            "annotation": (("image", "feature", "rater", "superpixel"), ann),
            "superpixel_area": (("image", "superpixel"), area),
            "superpixel_mask_area": (("image", "superpixel"), mask_area),
            "has_mask": (("image",), has_mask),
        },
        coords={  # variable-length strings, as a store keeps labels
            "image": np.array([f"ISIC_{i:07d}" for i in range(n_img)], dtype=object),
            "feature": np.array([f"feature {f}" for f in range(n_feat)], dtype=object),
            "rater": np.array([f"rater{r}" for r in range(n_rat)], dtype=object),
        },
    )
    return study, truth


def brute_force(study, truth, *, threshold=0.0, inclusive=False, within_mask=False, f_other=None):
    """Paint full-size maps and compute on pixels, pair by pair."""
    ann = study["annotation"].values.astype(np.float64)
    n_img, n_feat, n_rat, n_sp = ann.shape
    out = np.full((3, n_img, n_feat, n_feat, n_rat, n_rat), np.nan)
    for i, (index, mask) in enumerate(truth):
        smap = superpixel_map(index)
        for f1 in range(n_feat):
            for f2 in range(n_feat):
                for a in range(n_rat):
                    for b in range(n_rat):
                        va, vb = ann[i, f1, a], ann[i, f2, b]
                        if a == b or np.isnan(va).all() or np.isnan(vb).all():
                            continue
                        va, vb = np.nan_to_num(va), np.nan_to_num(vb)
                        ba = (va >= threshold) if inclusive else (va > threshold)
                        bb = (vb >= threshold) if inclusive else (vb > threshold)
                        # superpixel-set Dice, as isicarchive.imfunc.superpixel_dice
                        sa, sb = np.flatnonzero(ba), np.flatnonzero(bb)
                        if len(sa) + len(sb):
                            out[2, i, f1, f2, a, b] = 2.0 * np.intersect1d(sa, sb).size / (len(sa) + len(sb))
                        if within_mask and mask is None:
                            continue
                        pa = smap.paint(va[: smap.n])
                        pb = smap.paint(vb[: smap.n])
                        if within_mask:
                            sel = mask > 0
                            pa, pb = pa[sel], pb[sel]
                        else:
                            pa, pb = pa.ravel(), pb.ravel()
                        ma = (pa >= threshold) if inclusive else (pa > threshold)
                        mb = (pb >= threshold) if inclusive else (pb > threshold)
                        if ma.sum() + mb.sum():
                            out[0, i, f1, f2, a, b] = 2.0 * np.logical_and(ma, mb).sum() / (ma.sum() + mb.sum())
                        if pa.size and np.ptp(pa) > 0 and np.ptp(pb) > 0:
                            out[1, i, f1, f2, a, b] = np.corrcoef(pa, pb)[0, 1]
    return out


def per_feature(full):
    n_feat = full.shape[2]
    return np.stack([full[:, :, f, f] for f in range(n_feat)], axis=2)


@pytest.mark.parametrize("within_mask", [False, True])
@pytest.mark.parametrize("threshold,inclusive", [(0.0, False), (1.0, True), (0.5, True)])
def test_exact_against_painted_pixels(within_mask, threshold, inclusive):
    study, truth = random_study(1 + int(within_mask) + int(10 * threshold))
    ds = overlap(study, threshold=threshold, inclusive=inclusive, within_mask=within_mask).compute()
    ref = per_feature(brute_force(study, truth, threshold=threshold, inclusive=inclusive, within_mask=within_mask))
    for k, name in enumerate(("dice", "correlation", "superpixel_dice")):
        got = ds[name].values
        assert ds[name].dims == ("image", "feature", "rater", "other")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref[k]), err_msg=name)
        np.testing.assert_allclose(got, ref[k], rtol=0, atol=1e-9, equal_nan=True, err_msg=name)
        assert np.isfinite(got).any(), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), within_mask=st.booleans(), definite=st.booleans())
def test_exact_random_studies(seed, within_mask, definite):
    study, truth = random_study(seed, n_img=3, n_feat=2, n_rat=3, shape=(7, 8), max_sp=9)
    kw = {"threshold": 1.0, "inclusive": True} if definite else {}
    ds = overlap(study, within_mask=within_mask, cross_features=True, **kw).compute()
    ref = brute_force(study, truth, within_mask=within_mask, **kw)
    for k, name in enumerate(("dice", "correlation", "superpixel_dice")):
        np.testing.assert_allclose(ds[name].values, per_feature(ref)[k], rtol=0, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(ds[f"{name}_cross"].values, ref[k], rtol=0, atol=1e-9, equal_nan=True)


def one_image(values_a, values_b, area, mask_area=None, has_mask=True):
    ann = np.array([[[values_a, values_b]]], dtype=np.float32)
    area = np.array([area], dtype=np.uint32)
    return xr.Dataset(
        {
            "annotation": (("image", "feature", "rater", "superpixel"), ann),
            "superpixel_area": (("image", "superpixel"), area),
            "superpixel_mask_area": (
                ("image", "superpixel"),
                np.array([mask_area if mask_area is not None else np.zeros_like(area[0])], dtype=np.uint32),
            ),
            "has_mask": (("image",), [has_mask]),
        },
        coords={"image": ["I"], "feature": ["f"], "rater": ["a", "b"]},
    )


def pair(ds, name):
    return float(ds[name].sel(image="I", feature="f", rater="a", other="b"))


def test_hand_computed_values():
    # superpixels of 1, 2, 3 and 4 pixels
    ds = overlap(one_image([1, 0.5, 0, 0], [1, 0, 0, 0.5], [1, 2, 3, 4])).compute()
    # binary a = {0, 1} (3 px), b = {0, 3} (5 px), overlap 1 px
    assert pair(ds, "dice") == pytest.approx(2 * 1 / (3 + 5))
    assert pair(ds, "superpixel_dice") == pytest.approx(2 * 1 / (2 + 2))
    x = np.repeat([1, 0.5, 0, 0], [1, 2, 3, 4])
    y = np.repeat([1, 0, 0, 0.5], [1, 2, 3, 4])
    assert pair(ds, "correlation") == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    # symmetric, and NaN on the diagonal (rater == other)
    assert float(ds["dice"].sel(image="I", feature="f", rater="b", other="a")) == pair(ds, "dice")
    assert np.isnan(ds["dice"].sel(image="I", feature="f", rater="a", other="a"))
    definite = overlap(one_image([1, 0.5, 0, 0], [1, 0, 0, 0.5], [1, 2, 3, 4]), threshold=1, inclusive=True)
    assert pair(definite.compute(), "dice") == 1.0


def test_nan_rules():
    area = [2, 2, 2]
    # NaN superpixels of an annotating rater count as 0
    ds = overlap(one_image([1, np.nan, np.nan], [1, 0, 0], area)).compute()
    assert pair(ds, "dice") == 1.0 and pair(ds, "superpixel_dice") == 1.0
    assert pair(ds, "correlation") == pytest.approx(1.0, abs=1e-12)
    # a rater with no values at all: everything NaN
    ds = overlap(one_image([np.nan] * 3, [1, 0, 0], area)).compute()
    assert all(np.isnan(pair(ds, m)) for m in ("dice", "correlation", "superpixel_dice"))
    # both empty: Dice undefined; constant maps: correlation undefined
    ds = overlap(one_image([0, 0, 0], [0, 0, 0], area)).compute()
    assert all(np.isnan(pair(ds, m)) for m in ("dice", "correlation", "superpixel_dice"))
    ds = overlap(one_image([1, 1, 1], [1, 0, 0], area)).compute()
    assert pair(ds, "dice") == pytest.approx(2 * 2 / (6 + 2))
    assert np.isnan(pair(ds, "correlation"))
    # no lesion mask: pixel measures NaN within the mask, superpixel Dice still defined
    ds = overlap(one_image([1, 0, 0], [1, 1, 0], area, has_mask=False), within_mask=True).compute()
    assert np.isnan(pair(ds, "dice")) and np.isnan(pair(ds, "correlation"))
    assert pair(ds, "superpixel_dice") == pytest.approx(2 / 3)
    # within the mask, a map constant over the masked pixels has no correlation
    ds = overlap(one_image([1, 0, 0], [1, 1, 0], area, mask_area=[2, 2, 0]), within_mask=True).compute()
    assert np.isnan(pair(ds, "correlation"))
    assert pair(ds, "dice") == pytest.approx(2 * 2 / (2 + 4))


def test_nan_superpixels_count_as_zero_in_correlation():
    ds = overlap(one_image([1, np.nan, 0.5], [1, 0, 0], [1, 1, 1])).compute()
    assert pair(ds, "correlation") == pytest.approx(np.corrcoef([1, 0, 0.5], [1, 0, 0])[0, 1], abs=1e-12)


def test_summary_matches_numpy():
    study, _ = random_study(7, n_img=6, n_feat=3, n_rat=4)
    ds = overlap(study, cross_features=True).compute()
    for f in range(3):
        vals = ds["dice"].isel(feature=f).values.ravel()
        vals = vals[~np.isnan(vals)]
        assert int(ds["dice_count"][f]) == vals.size
        assert float(ds["dice_median"][f]) == pytest.approx(np.median(vals))
        assert float(ds["dice_std"][f]) == pytest.approx(np.std(vals))
        for g in range(3):
            cross = ds["superpixel_dice_cross"].isel(feature=f, other_feature=g).values.ravel()
            cross = cross[~np.isnan(cross)]
            assert float(ds["superpixel_dice_cross_median"][f, g]) == pytest.approx(np.median(cross))
    # the diagonal of the cross arrays is the per-feature result
    diag = np.stack([ds["dice_cross"].values[:, f, f] for f in range(3)], axis=1)
    np.testing.assert_array_equal(diag, ds["dice"].values)
    assert set(overlap_summary(ds[["dice"]]).data_vars) == {"dice_median", "dice_std", "dice_count"}


def test_chunked_study_and_write(store_url):
    study, truth = random_study(3, n_img=37, n_feat=5, n_rat=3)
    path = store_url
    study.to_zarr(path, group="studies/demo", zarr_format=3, consolidated=False,
                  encoding={"annotation": {"chunks": (16, 2, 2, 8)}})
    lazy = xr.open_zarr(path, group="studies/demo", consolidated=False)
    ds = overlap(lazy, images_per_task=8)
    assert ds["dice"].chunks[0] == (8, 8, 8, 8, 5)
    eager = overlap(study).compute()
    write_overlap(str(path), "demo", ds)
    back = xr.open_zarr(path, group="studies/demo/overlap", consolidated=False)
    for name in ("dice", "correlation", "superpixel_dice", "dice_median"):
        np.testing.assert_array_equal(back[name].values, eager[name].values)
    assert list(back["other"].values) == list(study["rater"].values)
    assert back.attrs["threshold"] == 0.0
    # the study group still opens with only its own variables
    again = xr.open_zarr(path, group="studies/demo", consolidated=False)
    assert set(again.data_vars) == set(study.data_vars)


@pytest.mark.parametrize("processes", [False, True])
def test_distributed_identical(processes):
    distributed = pytest.importorskip("distributed")
    study, _ = random_study(11, n_img=40, n_feat=3, n_rat=4)
    study = study.chunk({"image": 16})
    local = overlap(study, within_mask=True, cross_features=True).compute(scheduler="threads")
    network = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None, **network) as cluster:
        with distributed.Client(cluster):
            remote = overlap(study, within_mask=True, cross_features=True).compute()
    xr.testing.assert_identical(local, remote)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    from archivestore.cli import run_demo

    path = tmp_path_factory.mktemp("demo") / "demo.zarr"
    assert run_demo(path, progress=False, out=lambda *a: None) == 0
    return path


def test_cli_on_an_ingested_store(demo_store, capsys):
    from archivestore import open_store
    from archivestore.cli import main

    path = demo_store
    capsys.readouterr()
    assert main(["overlap", str(path), "--definite", "--within-mask", "--cross-features"]) == 0
    printed = capsys.readouterr().out
    store = open_store(path)
    name = store.studies()[0]
    study = store.study(name)
    written = xr.open_zarr(path, group=f"studies/{name}/overlap", consolidated=False)
    expected = overlap(study, threshold=1, inclusive=True, within_mask=True, cross_features=True).compute()
    xr.testing.assert_allclose(written.load(), expected)
    assert written.attrs["within_mask"] and written.attrs["binarised"] == "value >= 1.0"
    for feature in study["feature"].values:
        assert str(feature) in printed
    # the store's own reader still sees the study as before
    assert set(store.study(name).data_vars) == set(study.data_vars)
    assert main(["overlap", str(path), "--study", "no-such-study"]) == 2


def test_cli_with_a_distributed_scheduler(demo_store, capsys):
    distributed = pytest.importorskip("distributed")
    from archivestore import open_store
    from archivestore.cli import main

    name = open_store(demo_store).studies()[0]
    assert main(["overlap", str(demo_store), "--study", name]) == 0
    local = xr.open_zarr(demo_store, group=f"studies/{name}/overlap", consolidated=False).load()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster:
        assert main(["overlap", str(demo_store), "--study", name, "--scheduler", cluster.scheduler_address]) == 0
    remote = xr.open_zarr(demo_store, group=f"studies/{name}/overlap", consolidated=False).load()
    xr.testing.assert_identical(local, remote)
    assert "pigment_network" in capsys.readouterr().out


# -- the kernel's two paths and the two ways of running it --------------------------------------


@pytest.mark.parametrize("threshold,inclusive", [(0.0, True), (1.0, False), (-1.0, False), (0.25, False)])
def test_thresholds_off_the_grid_indicators(threshold, inclusive):
    # binary maps that are neither "> 0" nor ">= 1" (every non-NaN value, none, ...) take the float64 path
    study, truth = random_study(21, n_img=4)
    ds = overlap(study, threshold=threshold, inclusive=inclusive, within_mask=True).compute()
    ref = per_feature(brute_force(study, truth, threshold=threshold, inclusive=inclusive, within_mask=True))
    for k, name in enumerate(("dice", "correlation", "superpixel_dice")):
        np.testing.assert_allclose(ds[name].values, ref[k], rtol=0, atol=1e-9, equal_nan=True, err_msg=name)


def test_values_off_the_grid():
    # graded values other than 0 / 0.5 / 1 (ingest accepts any value in 0..1) stay exact to rounding
    study, truth = random_study(22, n_img=4)
    ann = study["annotation"].values
    rng = np.random.default_rng(0)
    ann[ann == 0.5] = rng.choice(np.float32([0.1, 0.3, 0.7]), size=int((ann == 0.5).sum()))
    ds = overlap(study, threshold=0.3).compute()
    ref = per_feature(brute_force(study, truth, threshold=0.3))
    for k, name in enumerate(("dice", "correlation", "superpixel_dice")):
        np.testing.assert_allclose(ds[name].values, ref[k], rtol=0, atol=1e-9, equal_nan=True, err_msg=name)


def test_large_images_take_the_double_precision_path():
    # 2**24 pixels or more: float32 sums would round, so the kernel switches to float64
    values_a, values_b = [1, 0.5, 0, 1], [1, 0, 0.5, 0.5]
    area = [2**23, 2**22 + 3, 2**22 + 1, 5]
    ds = overlap(one_image(values_a, values_b, area)).compute()
    x, y, w = (np.array(v, dtype=np.float64) for v in (values_a, values_b, area))
    n = w.sum()
    sxy, sx, sy = (w * x * y).sum(), (w * x).sum(), (w * y).sum()
    cov = n * sxy - sx * sy
    expected = cov / np.sqrt((n * (w * x * x).sum() - sx**2) * (n * (w * y * y).sum() - sy**2))
    assert pair(ds, "correlation") == pytest.approx(expected, abs=1e-12)
    bx, by = x > 0, y > 0
    assert pair(ds, "dice") == 2 * w[bx & by].sum() / (w[bx].sum() + w[by].sum())


@pytest.mark.parametrize("cross_features", [False, True])
def test_in_memory_and_dask_studies_agree(cross_features):
    study, _ = random_study(23, n_img=41, n_feat=3, n_rat=4)
    eager = overlap(study, within_mask=True, cross_features=cross_features, images_per_task=8)
    assert eager["dice"].chunks is None  # computed on threads, no dask
    lazy = overlap(study.chunk({"image": 16}), within_mask=True, cross_features=cross_features)
    assert lazy["dice"].chunks is not None
    xr.testing.assert_identical(eager, lazy.compute())


@pytest.mark.parametrize("options", [{}, {"within_mask": True, "cross_features": True, "threshold": 1.0,
                                          "inclusive": True}])
def test_numpy_path_writes_the_group_xarray_writes(demo_store, tmp_path, options):
    # the command line's path (read whole, numpy on threads, zarr straight) against overlap() + write_overlap()
    import shutil

    from archivestore import open_store
    from archivestore.analysis import overlap_arrays, write_overlap_arrays

    path = tmp_path / "copy.zarr"
    shutil.copytree(demo_store, path)
    store = open_store(path, mode="a")
    name = store.studies()[0]
    assert store.read_study(name, max_bytes=0) is None  # too large: read nothing, go lazy
    study = store.read_study(name)
    result = overlap_arrays(study, images_per_task=2, **options)
    group = write_overlap_arrays(store, name, result)
    numpy_path = xr.open_zarr(path, group=group, consolidated=False).load()
    write_overlap(store, name, overlap(store.study(name), **options))
    xarray_path = xr.open_zarr(path, group=group, consolidated=False).load()
    xr.testing.assert_identical(numpy_path, xarray_path)
    assert numpy_path["dice_count"].dtype == np.int64  # counts stay integers (no fill-value masking)
