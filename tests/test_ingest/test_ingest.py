"""Challenge files on disk → store → plain xarray: bit-exact, resumable, bad items reported."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from archivestore import ingest, open_store
from archivestore.imaging import decode_superpixels, encode_superpixels_rgb
from archivestore.sources import ChallengeSource
from archivestore.testing.sample import FEATURES, STUDY


def _full_store(url, dirs):
    store = open_store(url, mode="a")
    src = ChallengeSource([dirs["train"], dirs["masks"], dirs["attributes"], dirs["part2"]], study=STUDY)
    report = ingest(store, src, workers=2, progress=False)
    assert report.ok, report.failed
    for rater in ("rater_a", "rater_b"):
        assert ingest(store, ChallengeSource([dirs[rater]], study=STUDY, rater=rater), progress=False).ok
    assert ingest(store, ChallengeSource([dirs["predictions"]], rater="model"), progress=False).ok
    return store


@pytest.fixture(scope="module")
def full_store(sample_dirs, module_store_url):
    """The whole sample archive ingested once per store kind; the tests below only read it."""
    return _full_store(module_store_url, sample_dirs)


def test_round_trip_bit_exact(sample_dirs, full_store):
    store = full_store
    ids = sorted(p.stem for p in sample_dirs["train"].glob("ISIC_???????.jpg"))
    assert sorted(store.image_ids()) == ids
    study = store.study(STUDY).load()
    assert list(study["rater"].values) == ["ground_truth", "rater_a", "rater_b"]
    assert list(study["feature"].values) == FEATURES
    for image_id in ids:
        ds = store.image(image_id)
        want = np.asarray(Image.open(sample_dirs["train"] / f"{image_id}.jpg").convert("RGB"))
        np.testing.assert_array_equal(ds["image"].values, want)
        assert ds["image"].dims == ("y", "x", "channel")
        sp = decode_superpixels((sample_dirs["train"] / f"{image_id}_superpixels.png").read_bytes())
        np.testing.assert_array_equal(ds["superpixels"].values, sp)
        mask = np.asarray(Image.open(sample_dirs["masks"] / f"{image_id}_segmentation.png"))
        np.testing.assert_array_equal(ds["mask"].values, (mask > 0).astype(np.uint8))
        for f in FEATURES:
            att = np.asarray(Image.open(sample_dirs["attributes"] / f"{image_id}_attribute_{f}.png"))
            np.testing.assert_array_equal(ds["attribute"].sel(feature=f).values, (att > 0).astype(np.uint8))
        pred = np.asarray(Image.open(sample_dirs["predictions"] / f"{image_id}_segmentation.png"))
        np.testing.assert_array_equal(store.mask(image_id, "model").values, (pred > 0).astype(np.uint8))
        # study rows equal the JSON files, areas equal a brute-force count
        row = study.sel(image=image_id)
        n = int(sp.max()) + 1
        for rater, folder in (("ground_truth", "part2"), ("rater_a", "rater_a"), ("rater_b", "rater_b")):
            values = json.loads((sample_dirs[folder] / f"{image_id}_features.json").read_text())
            for f in FEATURES:
                got = row["annotation"].sel(feature=f, rater=rater).values
                np.testing.assert_array_equal(got[:n], np.float32(values[f]))
                assert np.isnan(got[n:]).all()
        area = row["superpixel_area"].values
        assert all(area[k] == (sp == k).sum() for k in range(0, n, 37))
        assert area[:n].sum() == sp.size and not area[n:].any()
        assert row["superpixel_mask_area"].values.sum() == ds["mask"].values.sum()
        inside = np.bincount(sp[ds["mask"].values > 0], minlength=n)  # per superpixel, brute force
        np.testing.assert_array_equal(row["superpixel_mask_area"].values[:n], inside)
        assert ds.attrs["isic_id"] == image_id
    frame = store.metadata_frame()
    assert set(frame.columns) >= {"isic_id", "ground_truth.melanoma", "clinical.age_approximate", "clinical.sex"}
    assert frame.loc["ISIC_0000002", "clinical.age_approximate"] == "unknown"


def test_plain_xarray_opens_every_group(full_store, module_store_url):
    url = module_store_url
    ds = xr.open_zarr(url, group="images/ISIC_0000000", consolidated=False)
    assert set(ds.data_vars) == {"image", "superpixels", "mask", "attribute"}
    assert list(ds["channel"].values) == ["R", "G", "B"]
    meta = xr.open_zarr(url, group="metadata", consolidated=False)
    assert meta.sizes["image"] == 6
    study = xr.open_zarr(url, group=f"studies/{STUDY}", consolidated=False)
    assert study["annotation"].dims == ("image", "feature", "rater", "superpixel")
    assert xr.open_zarr(url, group="masks/model/ISIC_0000000", consolidated=False)["mask"].dims == ("y", "x")


def test_both_superpixel_encodings_decode_the_same(isic_fixtures):
    data = (isic_fixtures / "isic-v1" / "ISIC_0000000_superpixels.png").read_bytes()
    sp = decode_superpixels(data)
    assert sp.shape == (480, 640)
    assert len(np.unique(sp)) == 996 and sp.max() == 995
    buf = io.BytesIO()
    Image.fromarray(sp.astype(np.uint16)).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_superpixels(buf.getvalue()), sp)
    np.testing.assert_array_equal(decode_superpixels(encode_superpixels_rgb(sp)), sp)


def test_bad_items_are_reported_and_the_rest_ingested(sample_dirs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(sample_dirs["train"], bad)
    for p in sample_dirs["masks"].iterdir():
        shutil.copy(p, bad)
    for p in sample_dirs["part2"].iterdir():
        shutil.copy(p, bad)
    (bad / "ISIC_0000000.jpg").write_bytes(b"not a jpeg at all")
    (bad / "ISIC_0000001_superpixels.png").write_bytes(encode_superpixels_rgb(np.zeros((10, 10), np.uint32)))
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(bad / "ISIC_0000002_segmentation.png")
    feats = json.loads((bad / "ISIC_0000003_features.json").read_text())
    feats["streaks"] = feats["streaks"][:-1]
    (bad / "ISIC_0000003_features.json").write_text(json.dumps(feats))
    shutil.copy(bad / "ISIC_0000004.jpg", bad / "ISIC\x070000009.jpg")  # a control character: no usable id
    store = open_store(tmp_path / "s.zarr", mode="a")
    report = ingest(store, ChallengeSource([bad], study="s"), progress=False)
    reasons = {b.item_id: b.reason for b in report.failed}
    assert set(reasons) == {"ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC\x070000009"}
    assert "cannot decode" in reasons["ISIC_0000000"]
    assert "superpixels is 10x10" in reasons["ISIC_0000001"]
    assert "mask is 5x5" in reasons["ISIC_0000002"]
    assert "streaks" in reasons["ISIC_0000003"] and "superpixels" in reasons["ISIC_0000003"]
    assert "unusable id" in reasons["ISIC\x070000009"]
    assert not report.ok
    # the good ones are in; the image with bad features is stored, its annotations are not
    assert sorted(store.image_ids()) == ["ISIC_0000003", "ISIC_0000004", "ISIC_0000005"]
    assert "ISIC_0000003" not in list(store.study("s")["image"].values)
    with pytest.raises(KeyError):
        store.image("ISIC_0000000")


def test_interrupted_image_is_not_complete_and_rerun_finishes_it(sample_dirs, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    half = store.item_group("ISIC_0000000", replace=False, attributes={"isic_id": "ISIC_0000000"})
    half.put_array("image", np.zeros((4, 4, 3), np.uint8), ("y", "x", "channel"))  # died here
    with pytest.raises(KeyError):
        store.image("ISIC_0000000")
    assert "ISIC_0000000" not in store and store.info()["images"] == 0
    report = ingest(store, ChallengeSource([sample_dirs["train"]]), progress=False)
    assert report.ok and len(report.ingested) == 6
    assert store.image("ISIC_0000000")["image"].shape == (480, 640, 3)
    again = ingest(store, ChallengeSource([sample_dirs["train"]]), progress=False)
    assert again.ingested == [] and len(again.skipped) == 6
    assert len(store.image_ids()) == 6


def test_masks_in_a_later_run_are_added_to_complete_images(sample_dirs, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    assert ingest(store, ChallengeSource([sample_dirs["train"]]), progress=False).ok
    assert "mask" not in store.image("ISIC_0000000")
    report = ingest(store, ChallengeSource([sample_dirs["masks"]]), progress=False)
    assert report.ok and len(report.ingested) == 6
    assert store.image("ISIC_0000000")["mask"].shape == (480, 640)
    assert len(store.image_ids()) == 6


def test_rerun_fetches_no_stored_annotation_again(sample_dirs, tmp_path):
    store = _full_store(str(tmp_path / "s.zarr"), sample_dirs)
    before = store.study(STUDY).load()
    fetched = []
    source = ChallengeSource([sample_dirs["rater_a"]], study=STUDY, rater="rater_a")
    for item in source:
        for ann in item.annotations:
            load = ann.values
            ann.values = lambda load=load: fetched.append(1) or load()
    report = ingest(store, source, progress=False)
    assert report.ok and report.ingested == [] and len(report.skipped) == 6 and fetched == []
    assert before.identical(store.study(STUDY).load())
    assert store.study(STUDY)["annotated"].all()


def test_features_of_an_image_not_in_the_store(sample_dirs, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    report = ingest(store, ChallengeSource([sample_dirs["rater_a"]], study="s", rater="rater_a"), progress=False)
    assert len(report.failed) == 6
    assert all("ingest the image itself first" in b.reason for b in report.failed)


def test_read_gives_the_arrays_as_numpy(full_store):
    store = full_store
    ds = store.image("ISIC_0000002").load()
    for name in ("image", "superpixels", "mask", "attribute"):
        np.testing.assert_array_equal(store.read("ISIC_0000002", name), ds[name].values)
    np.testing.assert_array_equal(store.read("ISIC_0000002", "mask", rater="model"),
                                  store.mask("ISIC_0000002", "model").values)
    with pytest.raises(KeyError):
        store.read("ISIC_0000002", "nothing")
    with pytest.raises(KeyError):
        store.read("ISIC_7777777", "image")
