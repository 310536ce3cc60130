"""Segmentation scores against the official isic-challenge-scoring 5.6.0.

The reference results come from the package itself (``SegmentationScore`` for lesion
masks, ``task2.score`` for attribute masks, ``create_binary_confusion_matrix`` and
``metrics.binary_*`` per image), fed with 0-255 gray PNG files exactly as the challenge
reads them; the store gets the same PNGs decoded by archivestore.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from PIL import Image

from archivestore.analysis._scores import (
    METRICS,
    confusion_counts,
    metrics_from_counts,
    score,
    score_table,
    scored_image_ids,
)
from archivestore.imaging import decode_mask

isc = pytest.importorskip("isic_challenge_scoring")
from isic_challenge_scoring import metrics as isc_metrics  # noqa: E402
from isic_challenge_scoring import task2 as isc_task2  # noqa: E402
from isic_challenge_scoring.confusion import create_binary_confusion_matrix  # noqa: E402
from isic_challenge_scoring.segmentation import SegmentationScore  # noqa: E402

FEATURES = ["globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks"]


# --------------------------------------------------------------------------- a store by the layout


class LayoutStore:
    """Minimal reader of docs/layout.md with the Store methods the scores use."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)
        self.root = zarr.open_group(self.path, mode="r")

    def image_ids(self) -> list[str]:
        meta = xr.open_zarr(self.path, group="metadata", consolidated=False)
        return [str(i) for i in meta["image"].values]

    def image(self, image_id: str) -> xr.Dataset:
        try:
            node = self.root[f"images/{image_id}"]
        except KeyError:
            raise KeyError(image_id) from None
        if not node.attrs.get("_archivestore", {}).get("complete"):
            raise KeyError(image_id)
        return xr.open_zarr(self.path, group=f"images/{image_id}", consolidated=False)


def _masks_ds(mask, attribute) -> xr.Dataset:
    ds = xr.Dataset()
    if mask is not None:
        ds["mask"] = (("y", "x"), mask.astype(np.uint8))
    if attribute is not None:
        feats, arrays = zip(*attribute.items()) if attribute else ((), ())
        ds["attribute"] = (("feature", "y", "x"), np.stack(arrays).astype(np.uint8))
        ds = ds.assign_coords(feature=list(feats))
    return ds


def build_store(path: pathlib.Path, images: dict, predictions: dict, rater: str = "model") -> LayoutStore:
    """Write a layout-conformant store.

    ``images``: ``{id: (mask or None, {feature: mask} or None)}`` ground truth;
    ``predictions``: the same for ``rater`` (``masks/<rater>/<id>``).
    """
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs["archivestore"] = {"layout": 1}
    for image_id, (mask, attribute) in images.items():
        shape = (mask if mask is not None else next(iter(attribute.values()))).shape
        ds = _masks_ds(mask, attribute)
        ds["image"] = (("y", "x", "channel"), np.zeros((*shape, 3), np.uint8))
        ds = ds.assign_coords(channel=["R", "G", "B"])
        ds.attrs["_archivestore"] = {"complete": True, "shape": list(shape)}
        ds.to_zarr(str(path), group=f"images/{image_id}", mode="w", consolidated=False, zarr_format=3)
    for image_id, (mask, attribute) in predictions.items():
        _masks_ds(mask, attribute).to_zarr(
            str(path), group=f"masks/{rater}/{image_id}", mode="w", consolidated=False, zarr_format=3
        )
    meta = xr.Dataset(coords={"image": list(images)})
    meta.to_zarr(str(path), group="metadata", mode="w", consolidated=False, zarr_format=3)
    return LayoutStore(path)


# --------------------------------------------------------------------------- random masks


def _png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray, "L").save(buf, format="PNG")
    return buf.getvalue()


def _blob(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """0-255 gray mask: an ellipse of random gray levels (some at or below 128) plus noise."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    cy, cx = rng.uniform(0.2, 0.8) * shape[0], rng.uniform(0.2, 0.8) * shape[1]
    ry, rx = rng.uniform(0.1, 0.5) * shape[0], rng.uniform(0.1, 0.5) * shape[1]
    inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
    gray = np.where(inside, rng.integers(100, 256, shape), rng.integers(0, 140, shape))
    return gray.astype(np.uint8)


def _jitter(rng: np.random.Generator, gray: np.ndarray) -> np.ndarray:
    """A prediction near a truth: shifted, with flipped patches."""
    out = np.roll(gray, (rng.integers(-6, 7), rng.integers(-6, 7)), axis=(0, 1)).copy()
    flip = rng.random(gray.shape) < 0.05
    out[flip] = 255 - out[flip]
    return out


EDGE_CASES = {
    # id: (truth, prediction) as functions of shape
    "ISIC_0000900": (lambda s: np.zeros(s, np.uint8), lambda s: np.zeros(s, np.uint8)),  # both empty
    "ISIC_0000901": (lambda s: np.zeros(s, np.uint8), lambda s: np.full(s, 255, np.uint8)),  # empty truth
    "ISIC_0000902": (lambda s: np.full(s, 255, np.uint8), lambda s: np.zeros(s, np.uint8)),  # empty prediction
    "ISIC_0000903": (lambda s: np.full(s, 255, np.uint8), lambda s: np.full(s, 255, np.uint8)),  # all positive
    "ISIC_0000904": (lambda s: np.full(s, 128, np.uint8), lambda s: np.full(s, 129, np.uint8)),  # the threshold
    "ISIC_0000905": (lambda s: _first(s, 20), lambda s: _first(s, 13)),  # Jaccard exactly 13/20 = 0.65
}


def _first(shape: tuple[int, int], n: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    out.flat[:n] = 255
    return out


@pytest.fixture(scope="module")
def lesion_case(tmp_path_factory):
    """Random and edge-case 0-255 masks, as PNG dirs for the official scorer and as a store."""
    rng = np.random.default_rng(20180101)
    tmp = tmp_path_factory.mktemp("lesion")
    truth_dir, pred_dir = tmp / "truth", tmp / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    pairs = {}
    for n in range(12):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        truth = _blob(rng, shape)
        pairs[f"ISIC_{n:07d}"] = (truth, _jitter(rng, truth) if n % 3 else _blob(rng, shape))
    for image_id, (t, p) in EDGE_CASES.items():
        pairs[image_id] = (t((17, 23)), p((17, 23)))
    images, predictions = {}, {}
    for image_id, (t, p) in pairs.items():
        (truth_dir / f"{image_id}_segmentation.png").write_bytes(_png(t))
        (pred_dir / f"{image_id}_prediction.png").write_bytes(_png(p))
        images[image_id] = (decode_mask(_png(t)), None)
        predictions[image_id] = (decode_mask(_png(p)), None)
    store = build_store(tmp / "store.zarr", images, predictions)
    return store, pairs, truth_dir, pred_dir


def test_lesion_scores_match_official(lesion_case):
    store, pairs, truth_dir, pred_dir = lesion_case
    ds = score(store, truth="ground_truth", prediction="model", batch_size=5)
    assert list(ds["image"].values) == list(pairs)
    for image_id, (t, p) in pairs.items():
        cm = create_binary_confusion_matrix(t > 128, p > 128, name=image_id)
        got = ds.sel(image=image_id)
        assert [int(got[k]) for k in ("tp", "fp", "fn", "tn")] == [cm["TP"], cm["FP"], cm["FN"], cm["TN"]]
        expected = {
            "accuracy": isc_metrics.binary_accuracy(cm),
            "sensitivity": isc_metrics.binary_sensitivity(cm),
            "specificity": isc_metrics.binary_specificity(cm),
            "jaccard": isc_metrics.binary_jaccard(cm),
            "threshold_jaccard": isc_metrics.binary_threshold_jaccard(cm, threshold=0.65),
            "dice": isc_metrics.binary_dice(cm),
        }
        for name in METRICS:
            assert float(got[name]) == pytest.approx(expected[name], abs=1e-12), (image_id, name)
    official = SegmentationScore.from_dir(truth_dir, pred_dir)
    ours = ds["macro_average"].to_series()
    for name in METRICS:
        assert ours[name] == pytest.approx(official.macro_average[name], abs=1e-12), name
    assert ds.attrs["overall"] == pytest.approx(official.overall, abs=1e-12)
    # the random cases cover both sides of the 0.65 threshold
    jac = ds["jaccard"].values
    assert (jac >= 0.65).any() and ((jac < 0.65) & (jac > 0)).any()


def test_lesion_edge_cases(lesion_case):
    ds = score(lesion_case[0], image_ids=list(EDGE_CASES))
    both_empty, empty_truth, empty_pred, full, at_threshold, jaccard_065 = (ds.sel(image=i) for i in EDGE_CASES)
    assert float(both_empty["jaccard"]) == 1 and float(both_empty["dice"]) == 1
    assert float(both_empty["sensitivity"]) == 1
    assert float(empty_truth["jaccard"]) == 0 and float(empty_truth["sensitivity"]) == 1
    assert float(empty_truth["specificity"]) == 0 and float(empty_truth["accuracy"]) == 0
    assert float(empty_pred["sensitivity"]) == 0 and float(empty_pred["specificity"]) == 1
    assert float(full["specificity"]) == 1 and float(full["threshold_jaccard"]) == 1
    # 128 is outside, 129 inside: prediction everywhere, truth nowhere
    assert int(at_threshold["fp"]) == 17 * 23 and int(at_threshold["tp"]) == 0
    # threshold Jaccard keeps a Jaccard of exactly 0.65
    assert float(jaccard_065["jaccard"]) == 0.65 and float(jaccard_065["threshold_jaccard"]) == 0.65


def test_score_table(lesion_case):
    ds = score(lesion_case[0])
    frame = score_table(ds)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == list(ds["image"].values)
    assert list(frame.columns) == ["tp", "fp", "fn", "tn", *METRICS]
    assert frame.loc["ISIC_0000900", "jaccard"] == 1.0


@pytest.fixture(scope="module")
def attribute_case(tmp_path_factory):
    rng = np.random.default_rng(2018_2)
    tmp = tmp_path_factory.mktemp("attr")
    truth_dir, pred_dir = tmp / "truth", tmp / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    pairs = {}
    for n in range(6):
        shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        per = {}
        for k, feature in enumerate(FEATURES):
            if (n + k) % 4 == 0:  # empty truth features, as most are in ISIC 2018 task 2
                truth = np.zeros(shape, np.uint8)
                pred = np.zeros(shape, np.uint8) if n % 2 else _blob(rng, shape)
            else:
                truth = _blob(rng, shape)
                pred = _jitter(rng, truth) if k % 2 else _blob(rng, shape)
            per[feature] = (truth, pred)
        pairs[f"ISIC_{n + 10:07d}"] = per
    images, predictions = {}, {}
    for image_id, per in pairs.items():
        for feature, (t, p) in per.items():
            (truth_dir / f"{image_id}_attribute_{feature}.png").write_bytes(_png(t))
            (pred_dir / f"{image_id}_attribute_{feature}.png").write_bytes(_png(p))
        truth_attr = {f: decode_mask(_png(t)) for f, (t, _) in per.items()}
        # the prediction lists its features in another order: scores must follow names
        pred_attr = {f: decode_mask(_png(per[f][1])) for f in reversed(FEATURES)}
        images[image_id] = (None, truth_attr)
        predictions[image_id] = (None, pred_attr)
    store = build_store(tmp / "store.zarr", images, predictions, rater="model")
    return store, pairs, truth_dir, pred_dir


def test_attribute_scores_match_official(attribute_case):
    store, pairs, truth_dir, pred_dir = attribute_case
    ds = score(store, prediction="model", kind="attribute")
    assert list(ds["feature"].values) == FEATURES
    assert bool(ds["scored"].all())
    official = isc_task2.score(truth_dir, pred_dir)
    for feature in FEATURES:
        assert float(ds["micro_jaccard"].sel(feature=feature)) == pytest.approx(official[feature]["jaccard"], abs=1e-12)
        assert float(ds["micro_dice"].sel(feature=feature)) == pytest.approx(official[feature]["dice"], abs=1e-12)
    assert float(ds["micro_average"].sel(summary="jaccard")) == pytest.approx(official["micro_average"]["jaccard"])
    assert float(ds["micro_average"].sel(summary="dice")) == pytest.approx(official["micro_average"]["dice"])
    assert ds.attrs["overall"] == pytest.approx(official["overall"], abs=1e-12)
    # per image and feature: the official per-image definitions; macro = mean over images
    for image_id, per in pairs.items():
        for feature, (t, p) in per.items():
            cm = create_binary_confusion_matrix(t > 128, p > 128)
            got = ds.sel(image=image_id, feature=feature)
            assert float(got["jaccard"]) == pytest.approx(isc_metrics.binary_jaccard(cm), abs=1e-12)
            assert float(got["dice"]) == pytest.approx(isc_metrics.binary_dice(cm), abs=1e-12)
            assert float(got["sensitivity"]) == pytest.approx(isc_metrics.binary_sensitivity(cm), abs=1e-12)
    for feature in FEATURES:
        jac = [isc_metrics.binary_jaccard(create_binary_confusion_matrix(per[feature][0] > 128, per[feature][1] > 128)) for per in pairs.values()]
        assert float(ds["macro_average"].sel(feature=feature, metric="jaccard")) == pytest.approx(np.mean(jac), abs=1e-12)
    frame = score_table(ds)
    assert len(frame) == len(pairs) * len(FEATURES)


def test_missing_masks(tmp_path):
    rng = np.random.default_rng(1)
    m = lambda: (rng.random((8, 9)) > 0.5).astype(np.uint8)  # noqa: E731
    store = build_store(
        tmp_path / "s.zarr",
        images={"a": (m(), {"x": m(), "y": m()}), "b": (m(), None), "c": (None, {"x": m()})},
        predictions={"a": (m(), {"x": m()}), "c": (m(), {"x": m(), "y": m()}), "d": (m(), None)},
    )
    assert scored_image_ids(store, "ground_truth", "model") == ["a", "c"]
    ds = score(store)  # only "a" has both lesion masks
    assert list(ds["image"].values) == ["a"]
    with pytest.raises(KeyError, match="b"):
        score(store, image_ids=["a", "b"])
    with pytest.raises(KeyError, match="nobody"):
        score(store, prediction="nobody")
    att = score(store, kind="attribute")
    assert list(att["image"].values) == ["a", "c"]
    assert list(att["feature"].values) == ["x", "y"]
    assert att["scored"].values.tolist() == [[True, False], [True, False]]
    assert np.isnan(float(att["jaccard"].sel(image="a", feature="y")))
    assert np.isnan(float(att["micro_jaccard"].sel(feature="y")))
    # the reverse direction: the model as truth
    rev = score(store, truth="model", prediction="ground_truth")
    # (c has no ground-truth lesion mask, d is not a complete image)
    assert list(rev["image"].values) == ["a"]


def test_shape_mismatch(tmp_path):
    store = build_store(
        tmp_path / "s.zarr",
        images={"a": (np.ones((4, 5), np.uint8), None)},
        predictions={"a": (np.ones((5, 4), np.uint8), None)},
    )
    with pytest.raises(ValueError, match="a: truth has shape"):
        score(store)


def test_counts_lazy_equals_numpy():
    import dask.array as da

    rng = np.random.default_rng(3)
    t = (rng.random((3, 50, 40)) > 0.4).astype(np.uint8)
    p = (rng.random((3, 50, 40)) > 0.6).astype(np.uint8)
    eager = confusion_counts(t, p, axis=(-2, -1))
    lazy = confusion_counts(da.from_array(t, chunks=(1, 16, 16)), da.from_array(p, chunks=(1, 16, 16)), axis=(-2, -1))
    np.testing.assert_array_equal(eager, lazy.compute())
    brute = [[int(((t[f] == a) & (p[f] == b)).sum()) for a, b in ((1, 1), (0, 1), (1, 0), (0, 0))] for f in range(3)]
    np.testing.assert_array_equal(eager, brute)
    assert eager.sum(axis=-1).tolist() == [50 * 40] * 3
    m = metrics_from_counts(eager)
    assert set(m) == set(METRICS)
