"""Segmentation overlap across raters: exact against brute-force voxel counting, matching, NaN rules, dask paths."""

from __future__ import annotations

import itertools
import pickle
import uuid
from dataclasses import dataclass, field

import dask
import dask.array as da
import fsspec
import numpy as np
import pytest
import xarray as xr

from archivestore.analysis import (
    _segmentation_counts,
    segmentation_overlap,
    segmentation_overlap_summary,
    write_segmentation_overlap,
)
from archivestore.errors import InvalidInputError
from archivestore.layout import LAYOUT

LIVER, TUMOR, LESION = "10200004:SCT", "108369006:SCT", "52988006:SCT"
SHAPE = (12, 20, 24)


def blob(rng: np.random.Generator, shape: tuple[int, int, int] = SHAPE, *, fractional: bool = False) -> np.ndarray:
    """A random ellipsoid: uint8 0/1, or float32 k/255 fading out at its rim (fractional)."""
    grid = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = rng.uniform(0.2, 0.8, 3) * np.array(shape)
    radius = rng.uniform(0.15, 0.4, 3) * np.array(shape)
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius, strict=True)))
    if fractional:
        return (np.round(np.clip(1.5 - d, 0, 1) * 255) / 255).astype(np.float32)
    return (d < 1).astype(np.uint8)


@dataclass
class Seg:
    """One segmentation as the test knows it: its planes by the key the module should match them on."""

    rater: str
    planes: dict[str, np.ndarray]
    codes: list[str] | None = None
    labels: list[str] | None = None
    numbers: list[int] | None = None
    uid: str = field(default_factory=lambda: f"2.25.{uuid.uuid4().int}")

    def dataset(self, spacing: tuple[float, float, float], source: str) -> xr.Dataset:
        """The ``segmentations/<uid>`` group of the layout contract (labels in the given key order)."""
        labels = np.stack(list(self.planes.values()))
        n = len(self.planes)
        fractional = labels.dtype == np.float32
        dz, dy, dx = spacing
        return xr.Dataset(
            {"labels": (("segment", "z", "y", "x"), labels)},
            coords={
                "segment": np.array(self.numbers or list(range(1, n + 1))),
                "segment_label": ("segment", np.array(self.labels or [f"segment {i}" for i in range(n)], dtype=object)),
                "segment_code": ("segment", np.array(self.codes or [""] * n, dtype=object)),
                "z": np.arange(labels.shape[1]) * dz + 10.0,
                "y": np.arange(labels.shape[2]) * dy,
                "x": np.arange(labels.shape[3]) * dx,
                "sop_instance_uid": ("z", np.array([f"1.2.{k}" for k in range(labels.shape[1])], dtype=object)),
            },
            attrs={"source_series": source, "rater": self.rater, "spacing": list(spacing),
                   "segmentation_type": "FRACTIONAL" if fractional else "BINARY", "series_instance_uid": self.uid},
        )


def scenario(seed: int = 0) -> tuple[dict[str, list[xr.Dataset]], dict[str, list[Seg]], dict[str, float]]:
    """Series of several kinds; returns the groups, the truth per series, and each series' ml per voxel."""
    rng = np.random.default_rng(seed)
    empty = np.zeros(SHAPE, np.uint8)
    truth = {
        # matched by code across different SegmentNumbers; carol is fractional and lacks the tumour
        "1.2.840.1": [
            Seg("alice", {LIVER: blob(rng), TUMOR: blob(rng)}, codes=[LIVER, TUMOR], labels=["Liver", "Tumour"]),
            Seg("bob", {TUMOR: blob(rng), LIVER: blob(rng)}, codes=[TUMOR, LIVER], labels=["tumor", "liver"],
                numbers=[3, 7]),
            Seg("carol", {LIVER: blob(rng, fractional=True)}, codes=[LIVER], labels=["Liver"]),
        ],
        # two SEGs by "alice": kept apart; one repeats a code, so the series is matched by label
        "1.2.840.2": [
            Seg("alice", {"Lesion 1": blob(rng), "Lesion 2": blob(rng, fractional=True)}, codes=[LESION, LESION],
                labels=["Lesion 1", "Lesion 2"]),
            Seg("alice", {"Lesion 1": blob(rng), "Lesion 3": empty}, codes=[LESION, TUMOR],
                labels=["Lesion 1", "Lesion 3"]),
        ],
        # one SEG only: not compared
        "1.2.840.3": [Seg("alice", {LIVER: blob(rng)}, codes=[LIVER], labels=["Liver"])],
        # no codes, labels missing in one: matched by SegmentNumber; segment 2 empty for both (Dice NaN),
        # segment 3 empty for one (Dice 0)
        "1.2.840.4": [
            Seg("bob", {"#1": blob(rng), "#2": empty, "#3": blob(rng)}, labels=["a", "b", "c"]),
            Seg("dave", {"#1": blob(rng, fractional=True), "#2": empty, "#3": empty}, labels=["a", "", "c"]),
        ],
    }
    spacing = {"1.2.840.1": (2.5, 0.7, 0.7), "1.2.840.2": (1.0, 1.0, 1.0), "1.2.840.3": (3.0, 1.0, 1.0),
               "1.2.840.4": (5.0, 0.976, 0.976)}
    groups = {s: [seg.dataset(spacing[s], s) for seg in segs] for s, segs in truth.items()}
    ml = {s: float(np.prod(spacing[s])) / 1000 for s in truth}
    return groups, truth, ml


def rater_names(segs: list[Seg]) -> list[str]:
    names = [s.rater for s in segs]
    return [f"{s.rater} [{s.uid}]" if names.count(s.rater) > 1 else s.rater for s in segs]


def brute_force(truth: dict[str, list[Seg]], ml: dict[str, float], ds: xr.Dataset,
                threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Pair by pair, segment by segment, with np.logical_and sums, on the result's coordinates."""
    shape = (ds.sizes["series"], ds.sizes["segment"], ds.sizes["rater"], ds.sizes["rater"])
    out = {"dice": np.full(shape, np.nan), "jaccard": np.full(shape, np.nan), "volume_ml": np.full(shape[:3], np.nan)}
    segments, raters = list(ds["segment"].values), list(ds["rater"].values)
    for s, series in enumerate(ds["series"].values):
        segs = truth[series]
        for seg, name in zip(segs, rater_names(segs), strict=True):
            for key, plane in seg.planes.items():
                voxels = (plane.astype(np.float64) >= threshold).sum()  # compared exactly, not in float32
                out["volume_ml"][s, segments.index(key), raters.index(name)] = voxels * ml[series]
        for (a, name_a), (b, name_b) in itertools.permutations(zip(segs, rater_names(segs), strict=True), 2):
            for key in set(a.planes) & set(b.planes):
                x, y = (p.planes[key].astype(np.float64) >= threshold for p in (a, b))
                inter, union = np.logical_and(x, y).sum(), np.logical_or(x, y).sum()
                where = (s, segments.index(key), raters.index(name_a), raters.index(name_b))
                if x.sum() + y.sum():
                    out["dice"][where] = 2 * inter / (x.sum() + y.sum())
                    out["jaccard"][where] = inter / union
    return out


def assert_matches(ds: xr.Dataset, expected: dict[str, np.ndarray]) -> None:
    for name, values in expected.items():
        got = ds[name].values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(values), err_msg=name)
        np.testing.assert_allclose(got, values, rtol=0, atol=1e-9, err_msg=name)


def test_equals_brute_force_and_labels_everything() -> None:
    groups, truth, ml = scenario()
    ds = segmentation_overlap(groups)
    assert isinstance(ds["dice"].data, da.Array)  # lazy until computed
    computed = ds.compute()
    assert_matches(computed, brute_force(truth, ml, computed))
    assert list(computed["series"].values) == ["1.2.840.1", "1.2.840.2", "1.2.840.4"]
    assert list(computed["matched_by"].values) == ["segment_code", "segment_label", "segment"]
    assert list(computed["segment"].values) == [LIVER, TUMOR, "Lesion 1", "Lesion 2", "Lesion 3", "#1", "#2", "#3"]
    assert list(computed["segment_label"].values)[:3] == ["Liver", "Tumour", "Lesion 1"]
    uids = [seg.uid for seg in truth["1.2.840.2"]]
    assert list(computed["rater"].values) == ["alice", "bob", "carol", f"alice [{uids[0]}]", f"alice [{uids[1]}]",
                                              "dave"]
    assert list(computed["other"].values) == list(computed["rater"].values)
    assert computed["segmentation"].sel(series="1.2.840.2", rater=f"alice [{uids[1]}]").item() == uids[1]
    assert computed["segmentation"].sel(series="1.2.840.2", rater="bob").item() == ""
    assert computed["voxel_ml"].values == pytest.approx([ml[s] for s in computed["series"].values], rel=1e-12)
    assert computed.attrs["threshold"] == 0.5


def test_nan_rules_and_symmetry() -> None:
    groups, truth, ml = scenario(1)
    ds = segmentation_overlap(groups).compute()
    for name in ("dice", "jaccard"):
        values = ds[name].values
        np.testing.assert_array_equal(values, np.swapaxes(values, 2, 3))  # NaN in the same places too
        assert np.isnan(np.diagonal(values, axis1=2, axis2=3)).all()  # rater == other
    liver = ds.sel(series="1.2.840.1")
    assert np.isnan(liver["dice"].sel(segment=TUMOR, rater="carol")).all()  # carol has no tumour
    assert np.isnan(liver["volume_ml"].sel(segment=TUMOR, rater="carol"))
    assert liver["dice"].sel(segment=LIVER, rater="alice", other="carol") > 0
    numbered = ds.sel(series="1.2.840.4")
    assert np.isnan(numbered["dice"].sel(segment="#2", rater="bob", other="dave"))  # both empty
    assert numbered["dice"].sel(segment="#3", rater="bob", other="dave") == 0  # one empty
    assert numbered["jaccard"].sel(segment="#3", rater="bob", other="dave") == 0
    assert numbered["volume_ml"].sel(segment="#2", rater="dave") == 0
    assert np.isnan(ds["dice"].sel(series="1.2.840.4", rater="alice")).all()  # not a rater of this series


def test_volume_in_ml() -> None:
    plane = np.zeros(SHAPE, np.uint8)
    plane[2:5, 3:9, 4:14] = 1  # 180 voxels
    seg = Seg("r1", {LIVER: plane}, codes=[LIVER], labels=["Liver"])
    other = Seg("r2", {LIVER: plane[::-1].copy()}, codes=[LIVER], labels=["Liver"])
    groups = {"s": [seg.dataset((2.0, 0.5, 0.8), "s"), other.dataset((2.0, 0.5, 0.8), "s")]}
    ds = segmentation_overlap(groups).compute()
    assert ds["volume_ml"].sel(series="s", segment=LIVER, rater="r1") == pytest.approx(180 * 0.8 / 1000, rel=1e-12)
    # the spacing attribute missing: the coordinates' steps give the same volume
    del groups["s"][0].attrs["spacing"]
    again = segmentation_overlap(groups).compute()
    assert again["volume_ml"].values == pytest.approx(ds["volume_ml"].values, rel=1e-12)


# the last: just above a stored fractional value that float32 rounding would let pass
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.9, 1.0, 1.5, -1.0, 128 / 255,
                                       float(np.float32(128 / 255)) + 1e-12])
def test_threshold_is_honoured(threshold: float) -> None:
    groups, truth, ml = scenario(2)
    ds = segmentation_overlap(groups, threshold=threshold).compute()
    assert_matches(ds, brute_force(truth, ml, ds, threshold=threshold))
    assert ds.attrs["threshold"] == threshold


@pytest.mark.parametrize("piece", [1000, 5760, 1 << 17])  # several pieces with a ragged last one; exact; one
def test_counted_piece_by_piece(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    monkeypatch.setattr(_segmentation_counts, "_PIECE", piece)
    groups, truth, ml = scenario(10)
    ds = segmentation_overlap(groups).compute(scheduler="synchronous")
    assert_matches(ds, brute_force(truth, ml, ds))


@pytest.mark.parametrize("threshold", [0.5, 1.0, 1.5, 2.0, -0.5])
def test_any_stored_values_and_dtypes(threshold: float) -> None:
    """Exact for labels outside the contract too: uint8 above 1, bool, signed integers, float64."""
    rng = np.random.default_rng(11)
    planes = {
        "uint8": rng.choice(np.array([0, 1, 2, 255], np.uint8), size=SHAPE),
        "bool": rng.random(SHAPE) < 0.4,
        "int16": rng.integers(-3, 4, size=SHAPE).astype(np.int16),
        "float64": rng.random(SHAPE) * 2 - 0.25,
    }
    truth = {"s": [Seg(name, {LIVER: plane}, codes=[LIVER], labels=["Liver"]) for name, plane in planes.items()]}
    ml = {"s": 1e-3}
    ds = segmentation_overlap({"s": [seg.dataset((1.0, 1.0, 1.0), "s") for seg in truth["s"]]}, threshold=threshold)
    computed = ds.compute()
    assert_matches(computed, brute_force(truth, ml, computed, threshold=threshold))


def test_graph_pickles_as_a_cluster_needs() -> None:
    groups, truth, ml = scenario(12)
    ds = pickle.loads(pickle.dumps(segmentation_overlap(groups)))
    computed = ds.compute(scheduler="synchronous")
    assert_matches(computed, brute_force(truth, ml, computed))


def test_threshold_changes_fractional_masks_only() -> None:
    groups, _, _ = scenario(3)
    low, high = (segmentation_overlap(groups, threshold=t).compute() for t in (0.1, 0.9))
    carol = {"series": "1.2.840.1", "segment": LIVER, "rater": "carol"}
    assert low["volume_ml"].sel(carol) > high["volume_ml"].sel(carol)
    alice = {**carol, "rater": "alice"}
    assert low["volume_ml"].sel(alice) == high["volume_ml"].sel(alice)  # binary 0/1


def test_dask_backed_store_chunks_and_schedulers(tmp_path: object) -> None:
    """From zarr groups chunked like the store's (1 segment, a few slices), with several z-chunks."""
    groups, truth, ml = scenario(4)
    url = f"memory://segoverlap-{uuid.uuid4().hex}/store.zarr"
    lazy: dict[str, list[xr.Dataset]] = {}
    try:
        for series, segs in groups.items():
            for seg in segs:
                group = f"segmentations/{seg.attrs['series_instance_uid']}"
                seg.to_zarr(url, group=group, zarr_format=3, consolidated=False,
                            encoding={"labels": {"chunks": (1, 5, 20, 24)}})
                lazy.setdefault(series, []).append(xr.open_zarr(url, group=group, consolidated=False))
        assert lazy["1.2.840.1"][0]["labels"].data.numblocks == (2, 3, 1, 1)
        ds = segmentation_overlap(lazy)
        threads = ds.compute(scheduler="threads")
        synchronous = ds.compute(scheduler="synchronous")
        for name in ("dice", "jaccard", "volume_ml"):
            np.testing.assert_array_equal(threads[name].values, synchronous[name].values)
        assert_matches(threads, brute_force(truth, ml, threads))
        xr.testing.assert_identical(threads, segmentation_overlap(groups).compute())
    finally:
        fsspec.filesystem("memory").rm(url.removeprefix("memory://").split("/")[0], recursive=True)


def test_series_are_read_only_when_computed_and_apart() -> None:
    groups, truth, ml = scenario(5)
    seg = groups["1.2.840.2"][0]

    def fail(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("read")

    labels = da.from_array(seg["labels"].values, chunks=(1, 6, 20, 24)).map_blocks(fail, dtype=np.uint8)
    seg["labels"] = seg["labels"].copy(data=labels)
    ds = segmentation_overlap(groups)  # builds the graph only
    with pytest.raises(RuntimeError, match="read"):
        ds.compute(scheduler="synchronous")
    with dask.config.set(scheduler="synchronous"):  # one series' result reads that series alone
        first = ds.sel(series=["1.2.840.1"]).compute()
    expected = brute_force(truth, ml, ds)
    np.testing.assert_allclose(first["dice"].values, expected["dice"][:1], rtol=0, atol=1e-9)


def test_write_round_trip(store_url: str) -> None:
    groups, _, _ = scenario(6)
    ds = segmentation_overlap(groups)
    expected = ds.compute()
    path = write_segmentation_overlap(store_url, ds)
    assert path == LAYOUT.SEGMENTATION_OVERLAP == "segmentation_overlap"
    back = xr.open_zarr(store_url, group=path, consolidated=False).compute()
    for name in ("dice", "jaccard", "volume_ml"):
        np.testing.assert_array_equal(back[name].values, expected[name].values)
    for name in ("series", "segment", "segment_label", "rater", "other", "matched_by", "segmentation"):
        assert back[name].values.tolist() == expected[name].values.tolist()
    assert back.attrs["threshold"] == 0.5 and back["dice"].attrs["definition"].startswith("2 |A and B|")
    write_segmentation_overlap(store_url, segmentation_overlap(groups, threshold=0.9))  # replaces the group
    assert xr.open_zarr(store_url, group=path, consolidated=False).attrs["threshold"] == 0.9


def test_summary_matches_numpy() -> None:
    groups, _, _ = scenario(7)
    ds = segmentation_overlap(groups).compute()
    summary = segmentation_overlap_summary(ds)
    assert list(summary["segment"].values) == list(ds["segment"].values)
    for key in ds["segment"].values:
        dice = ds["dice"].sel(segment=key).values.ravel()
        dice = dice[~np.isnan(dice)]
        row = summary.sel(segment=key)
        assert row["dice_count"] == dice.size
        if dice.size:
            assert row["dice_median"] == pytest.approx(np.median(dice), abs=1e-12)
            assert row["dice_std"] == pytest.approx(np.std(dice), abs=1e-12)
        else:
            assert np.isnan(row["dice_median"]) and np.isnan(row["dice_std"])
    assert summary["series_count"].sel(segment=LIVER) == 1
    assert summary["series_count"].sel(segment="Lesion 2") == 0  # only one rater has it
    assert summary["dice_count"].sel(segment=TUMOR) == 2  # alice-bob both ways
    assert summary["segment_label"].sel(segment=LIVER) == "Liver"


def test_no_series_to_compare() -> None:
    groups, _, _ = scenario(8)
    ds = segmentation_overlap({"1.2.840.3": groups["1.2.840.3"], "none": []}).compute()
    assert ds.sizes == {"series": 0, "segment": 0, "rater": 0, "other": 0}
    assert segmentation_overlap_summary(ds).sizes == {"segment": 0}


def test_bad_inputs() -> None:
    groups, _, _ = scenario(9)
    pair = groups["1.2.840.1"][:2]
    with pytest.raises(InvalidInputError, match="threshold"):
        segmentation_overlap(groups, threshold=float("nan"))
    with pytest.raises(InvalidInputError, match="different grids"):
        segmentation_overlap({"s": [pair[0], pair[1].isel(z=slice(1, None))]})
    with pytest.raises(InvalidInputError, match="different z coordinates"):
        segmentation_overlap({"s": [pair[0], pair[1].assign_coords(z=pair[1]["z"] + 1)]})
    with pytest.raises(InvalidInputError, match="different source series"):
        segmentation_overlap({"s": [pair[0], pair[1].assign_attrs(source_series="9.9")]})
    with pytest.raises(InvalidInputError, match="twice"):
        segmentation_overlap({"s": [pair[0], pair[0]]})
    with pytest.raises(InvalidInputError, match="without 'labels'"):
        segmentation_overlap({"s": [pair[0], pair[1].drop_vars("labels")]})
