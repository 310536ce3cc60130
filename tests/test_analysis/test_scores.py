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
from isic_challenge_scoring import metrics as isc_metrics
from isic_challenge_scoring import task2 as isc_task2
from isic_challenge_scoring.confusion import create_binary_confusion_matrix
from isic_challenge_scoring.segmentation import SegmentationScore
from PIL import Image

from archivestore import ingest, open_store
from archivestore.analysis._scores import (
    METRICS,
    confusion_counts,
    metrics_from_counts,
    score,
    score_table,
    scored_image_ids,
)
from archivestore.sources import Item

FEATURES = ["globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks"]


# --------------------------------------------------------------------------- stores


def _rgb_png(shape: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((*shape, 3), np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _loader(data: bytes):
    return lambda: data


def build_store(path: pathlib.Path, images: dict, predictions: dict, rater: str = "model"):
    """Ingest a store: ground truth and one other rater's masks.

    ``images``: ``{id: (mask PNG or None, {feature: PNG} or None, shape)}``;
    ``predictions``: ``{id: (mask PNG or None, {feature: PNG} or None)}`` of ``rater``.
    """
    store = open_store(path, mode="a")
    truth = [
        Item(id=i, metadata={"name": i}, image=_loader(_rgb_png(shape)),
             mask=_loader(mask) if mask is not None else None,
             attributes={f: _loader(b) for f, b in (attr or {}).items()})
        for i, (mask, attr, shape) in images.items()
    ]
    report = ingest(store, truth, workers=2, progress=False)
    assert report.ok, report.failed
    preds = [
        Item(id=i, metadata={"name": i}, rater=rater,
             mask=_loader(mask) if mask is not None else None,
             attributes={f: _loader(b) for f, b in (attr or {}).items()})
        for i, (mask, attr) in predictions.items()
    ]
    report = ingest(store, preds, workers=2, progress=False)
    assert report.ok, report.failed
    return open_store(path, mode="r")


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
        images[image_id] = (_png(t), None, t.shape)
        predictions[image_id] = (_png(p), None)
    store = build_store(tmp / "store.zarr", images, predictions)
    return store, pairs, truth_dir, pred_dir


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside isic-challenge-scoring, with pandas 3
def test_lesion_scores_match_official(lesion_case):
    store, pairs, truth_dir, pred_dir = lesion_case
    ds = score(store, truth="ground_truth", prediction="model", batch_size=5)
    assert sorted(ds["image"].values) == sorted(pairs)  # in ingest order
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
        shape = next(iter(per.values()))[0].shape
        images[image_id] = (None, {f: _png(t) for f, (t, _) in per.items()}, shape)
        predictions[image_id] = (None, {f: _png(p) for f, (_, p) in per.items()})
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
        jac = [
            isc_metrics.binary_jaccard(create_binary_confusion_matrix(per[feature][0] > 128, per[feature][1] > 128))
            for per in pairs.values()
        ]
        macro = float(ds["macro_average"].sel(feature=feature, metric="jaccard"))
        assert macro == pytest.approx(np.mean(jac), abs=1e-12)
    frame = score_table(ds)
    assert len(frame) == len(pairs) * len(FEATURES)


def test_missing_masks(tmp_path):
    rng = np.random.default_rng(1)
    shape = (8, 9)
    m = lambda: _png(np.where(rng.random(shape) > 0.5, 255, 0).astype(np.uint8))  # noqa: E731
    store = build_store(
        tmp_path / "s.zarr",
        images={"a": (m(), {"x": m(), "y": m()}, shape), "b": (m(), None, shape), "c": (None, {"x": m()}, shape)},
        predictions={"a": (m(), {"x": m()}), "c": (m(), {"x": m(), "y": m()})},
    )
    assert sorted(scored_image_ids(store, "ground_truth", "model")) == ["a", "c"]
    ds = score(store)  # only "a" has both lesion masks
    assert list(ds["image"].values) == ["a"]
    with pytest.raises(KeyError, match="b"):
        score(store, image_ids=["a", "b"])
    with pytest.raises(KeyError, match="nobody"):
        score(store, prediction="nobody")
    att = score(store, kind="attribute")
    assert sorted(att["image"].values) == ["a", "c"]
    assert sorted(att["feature"].values) == ["x", "y"]
    assert att["scored"].sel(image=["a", "c"], feature=["x", "y"]).values.tolist() == [[True, False], [True, False]]
    assert np.isnan(float(att["jaccard"].sel(image="a", feature="y")))
    assert np.isnan(float(att["micro_jaccard"].sel(feature="y")))
    assert not np.isnan(float(att["micro_jaccard"].sel(feature="x")))
    # the reverse direction, the model as truth: c has no ground-truth lesion mask
    rev = score(store, truth="model", prediction="ground_truth")
    assert list(rev["image"].values) == ["a"]
    np.testing.assert_array_equal(rev[["tp", "fp", "fn", "tn"]].to_array().values.ravel(),
                                  ds[["tp", "fn", "fp", "tn"]].to_array().values.ravel())


def test_shape_mismatch(tmp_path):
    path = tmp_path / "s.zarr"
    build_store(path, images={"a": (_png(np.full((4, 5), 255, np.uint8)), None, (4, 5))}, predictions={})
    # a mask group of another shape, written by hand (ingest itself refuses such masks)
    xr.Dataset({"mask": (("y", "x"), np.ones((5, 4), np.uint8))}, attrs={"_archivestore": {"complete": True}}).to_zarr(
        path, group="masks/model/a", mode="w", consolidated=False, zarr_format=3
    )
    with pytest.raises(ValueError, match="a: truth has shape"):
        score(open_store(path), prediction="model")


def test_attribute_features_matched_by_name(tmp_path):
    """A prediction group listing its features in another order is scored feature by feature."""
    rng = np.random.default_rng(5)
    shape = (12, 10)
    truth = {f: np.where(rng.random(shape) > 0.5, 255, 0).astype(np.uint8) for f in ("x", "y")}
    pred = {f: np.where(rng.random(shape) > 0.5, 1, 0).astype(np.uint8) for f in ("x", "y")}
    path = tmp_path / "s.zarr"
    build_store(path, images={"a": (None, {f: _png(v) for f, v in truth.items()}, shape)}, predictions={})
    xr.Dataset(
        {"attribute": (("feature", "y", "x"), np.stack([pred["y"], pred["x"]]))},
        coords={"feature": np.array(["y", "x"], dtype=object)},
        attrs={"_archivestore": {"complete": True}},
    ).to_zarr(path, group="masks/model/a", mode="w", consolidated=False, zarr_format=3)
    ds = score(open_store(path), kind="attribute")
    for f in ("x", "y"):
        cm = create_binary_confusion_matrix(truth[f] > 128, pred[f] > 0)
        got = ds.sel(image="a", feature=f)
        assert [int(got[k]) for k in ("tp", "fp", "fn", "tn")] == [cm["TP"], cm["FP"], cm["FN"], cm["TN"]]


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


def _parser():
    import argparse

    from archivestore.cli._analysis import add_score_command

    parser = argparse.ArgumentParser(prog="archivestore")
    add_score_command(parser.add_subparsers(dest="command"))
    return parser


def test_score_command(lesion_case, attribute_case, tmp_path, capsys):
    store = lesion_case[0]
    out = tmp_path / "scores.csv"
    argv = ["score", store.url, "--truth", "ground_truth", "--prediction", "model", "--out", str(out)]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "Macro averaged metrics" in printed and "threshold_jaccard" in printed
    scores = score(store)
    expected = score_table(scores)
    frame = pd.read_csv(out, index_col="image")
    assert list(frame.index) == list(expected.index)
    np.testing.assert_allclose(frame[list(METRICS)].to_numpy(), expected[list(METRICS)].to_numpy())
    macro = float(scores["macro_average"].sel(metric="dice"))
    assert f"{macro:.4f}"[:5] in printed

    args = _parser().parse_args(["score", attribute_case[0].url, "--prediction", "model", "--attribute"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "Micro average over all features" in printed and "pigment_network" in printed

    args = _parser().parse_args(["score", store.url, "--prediction", "nobody"])
    assert args.func(args) == 2
    assert "nobody" in capsys.readouterr().err
    # attribute masks requested where there are none: nothing to score
    args = _parser().parse_args(["score", store.url, "--prediction", "model", "--attribute"])
    assert args.func(args) == 1
