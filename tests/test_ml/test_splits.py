"""Splits: whole groups per part (checked by brute force), deterministic for a seed, kept in the store."""

from __future__ import annotations

import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from archivestore import open_store
from archivestore.cli import main
from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml import ImageDataset, assign, list_splits, make_split, read_split
from test_ml.conftest import image_ids

PATIENT = "metadata.clinical.patient_id"
LESION = "metadata.clinical.lesion_id"


def _leaks(frame: pd.DataFrame, parts: dict[str, str], fields: list[str]) -> list[str]:
    """Brute force: every value of every field whose items sit in more than one part."""
    out = []
    for name in fields:
        for value, rows in frame.groupby(name).groups.items():
            if len({parts[i] for i in rows if i in parts}) > 1:
                out.append(f"{name}={value}")
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12) | st.none(), st.integers(0, 20), st.sampled_from("ab")),
                min_size=1, max_size=60),
       st.integers(0, 3), st.booleans())
def test_no_group_straddles_parts(rows, seed, stratified):
    frame = pd.DataFrame({"patient": [p if p is None else f"P{p}" for p, _, _ in rows],
                          "lesion": [f"L{le}" for _, le, _ in rows], "label": [c for _, _, c in rows]},
                         index=[f"i{k}" for k in range(len(rows))])
    by = ["patient", "lesion"]
    result = assign(frame, by, [0.6, 0.2, 0.2], seed=seed, stratify="label" if stratified else None)
    assert not _leaks(frame, result.part, by)
    assert set(result.part) | set(result.unplaced) == set(frame.index)  # every item placed or reported
    assert result.unplaced == {}  # lesion is never missing here
    again = assign(frame, by, [0.6, 0.2, 0.2], seed=seed, stratify="label" if stratified else None)
    assert again.part == result.part


def test_items_without_the_field_are_reported_and_groups_kept_whole():
    frame = pd.DataFrame({"patient": ["a", "a", None, "b", "c", "c", "d", "e"]}, index=list("01234567"))
    result = assign(frame, ["patient"], [0.5, 0.5], seed=1)
    assert result.unplaced == {"2": "no value of patient"} and "2" not in result.part
    assert result.part["0"] == result.part["1"] and result.part["4"] == result.part["5"]
    assert sorted(result.part.values()).count("train") == 4  # 7 placed items, shares 3.5 / 3.5, whole groups


def test_stratified_parts_hold_each_class_and_mixed_groups_are_reported():
    frame = pd.DataFrame({"patient": [f"p{k}" for k in range(40)] + ["mix", "mix"],
                          "label": ["x"] * 20 + ["y"] * 20 + ["x", "y"]}, index=[str(k) for k in range(42)])
    result = assign(frame, ["patient"], [0.5, 0.5], seed=0, stratify="label")
    for label in "xy":
        parts = [result.part[i] for i in frame.index[frame["label"] == label] if not i.startswith("4")]
        assert parts.count("train") == parts.count("test") == 10 or abs(parts.count("train") - 10) <= 1
    assert list(result.mixed) == ["patient=mix"] and "placed whole" in result.mixed["patient=mix"]
    assert result.part["40"] == result.part["41"]


def test_bad_arguments():
    frame = pd.DataFrame({"patient": ["a"]}, index=["0"])
    with pytest.raises(InvalidInputError, match="fractions"):
        assign(frame, ["patient"], [0.5, 0.6])
    with pytest.raises(InvalidInputError, match="part name"):
        assign(frame, ["patient"], [0.5, 0.5], parts=["a", "a"])
    with pytest.raises(NotFoundError, match="nope"):
        assign(frame, ["nope"], [0.5, 0.5])


def test_split_in_the_store(writable_store):
    store = open_store(writable_store, mode="a")
    report = make_split(store, [PATIENT, LESION], (0.5, 0.25, 0.25), seed=3, name="v1")
    assert report.unplaced == {} and sum(report.items.values()) == len(image_ids())
    table = read_split(store, "v1")
    assert list(table.index) == image_ids() and set(table["split"]) == {"train", "validation", "test"}
    frame = store.metadata_frame()
    assert not _leaks(frame, dict(table["split"]), [PATIENT, LESION])
    assert table.loc["ISIC_0000002", "split"] == table.loc["ISIC_0000003", "split"]  # one lesion, two patients
    assert table.attrs["split"]["seed"] == 3 and "make_split" in table.attrs["split"]["command"]
    ds = xr.open_zarr(writable_store, group="splits/v1", consolidated=False)  # plain xarray opens it
    assert list(ds["split"].values) == list(table["split"])
    with pytest.raises(InvalidInputError, match="exists"):
        make_split(store, PATIENT, (0.5, 0.5), name="v1")
    again = make_split(store, [PATIENT, LESION], (0.5, 0.25, 0.25), seed=3, name="v1 again/ü")
    assert list(read_split(store, "v1 again/ü")["split"]) == list(table["split"])  # deterministic
    assert list_splits(store) == ["v1", "v1 again/ü"] and again.path == "splits/_xv1_20again_2F_C3_BC"  # layout 3
    test_ids = ImageDataset(writable_store, split=("v1", "test")).ids
    assert test_ids == [i for i in image_ids() if table.loc[i, "split"] == "test"] and test_ids
    with pytest.raises(InvalidInputError, match="no part 'tset'"):
        ImageDataset(writable_store, split=("v1", "tset"))
    with pytest.raises(NotFoundError, match="splits: v1"):
        ImageDataset(writable_store, split=("v2", "test"))


def test_split_command(writable_store, capsys):
    code = main(["split", writable_store, "--by", PATIENT, "--fractions", "0.5", "0.5", "--seed", "7",
                 "--name", "by-patient", "--where", "metadata.clinical.age_approx >= 31"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "split 'by-patient'" in out and "2 left out" in out
    assert "LEFT OUT ISIC_0000005: no value of metadata.clinical.patient_id" in err
    table = read_split(open_store(writable_store), "by-patient")
    assert "ISIC_0000000" not in table.index and table.loc["ISIC_0000005", "split"] == ""
    assert table.attrs["split"]["command"].startswith(f"archivestore split {writable_store} --by {PATIENT}")
    assert main(["split", writable_store, "--show", "by-patient"]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0] == "item,split,group,note" and "ISIC_0000005,,," in shown
    assert main(["split", writable_store, "--by", PATIENT, "--fractions", "0.5", "0.5", "--name", "s",
                 "--strict"]) == 1
    assert main(["split", writable_store, "--by", PATIENT, "--name", "s"]) == 2  # exists: one line, no traceback
    assert "exists" in capsys.readouterr().err
    assert main(["split", writable_store, "--list"]) == 0
    assert capsys.readouterr().out.split() == ["by-patient", "s"]
