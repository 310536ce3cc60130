"""Selection over the metadata table, checked against isicarchive's rules on the nested records."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from fakes import V1_FIXTURES, load_v1_fixtures

import archivestore
from archivestore.cli import main
from archivestore.select import Criterion, select
from archivestore.store import _metadata

_MISSING = object()


def _get(record, path):
    """isicarchive's getxattr on a nested record: ``None`` where a key is missing."""
    obj = record
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _reference(record, path, op, c):
    """isicarchive's ``selected`` for one criterion (``is`` on singletons only)."""
    val = _get(record, path)
    try:
        return {
            "==": lambda: val == c, "!=": lambda: val != c, "<": lambda: val < c, "<=": lambda: val <= c,
            ">": lambda: val > c, ">=": lambda: val >= c, "in": lambda: val in c, "not in": lambda: val not in c,
            "ni": lambda: c in val, "not ni": lambda: c not in val,
            "match": lambda: re.search(c, val) is not None, "~": lambda: re.search(c, val) is not None,
            "not match": lambda: re.search(c, val) is None, "!~": lambda: re.search(c, val) is None,
            "is": lambda: val is c, "not is": lambda: val is not c,
            "is None": lambda: val is None, "not is None": lambda: val is not None,
        }[op]()
    except Exception:
        return False


def _store_with(tmp_path, records):
    store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    _metadata.append_rows(store.root["metadata"], records)
    return archivestore.open_store(str(tmp_path / "s.zarr"))


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    if not (V1_FIXTURES / "images_v1.json.gz").exists():
        pytest.skip(f"real ISIC v1 fixtures not found at {V1_FIXTURES}")
    images, _ = load_v1_fixtures()
    chosen = sorted(images.values(), key=lambda r: r["name"])[::80]  # ~300 records across the archive
    records = {r["name"]: r for r in chosen}
    return _store_with(tmp_path_factory.mktemp("sel"), records), records


@pytest.fixture(scope="module")
def real_frame(real_store):
    """The table read once (reading it takes a while); list fields are JSON text."""
    store, records = real_store
    frame = store.metadata_frame()
    variables = store.metadata().data_vars.values()
    json_columns = {".".join(v.attrs["path"]) for v in variables if v.attrs.get("value_type") == "json"}
    assert "notes.tags" in json_columns
    return frame, json_columns, records


CRITERIA = [
    "meta.clinical.diagnosis == nevus",
    "meta.clinical.diagnosis != nevus",
    "meta.clinical.age_approx >= 60",
    "meta.clinical.age_approx < 30",
    "meta.clinical.age_approx <= 35",
    "meta.clinical.age_approx > 70",
    "meta.clinical.sex in [\"female\", \"unknown\"]",
    "meta.clinical.anatom_site_general not in [\"anterior torso\", \"posterior torso\"]",
    "notes.tags ni \"ISBI 2016: Training\"",
    "notes.tags not ni \"Challenge 2019: Training\"",
    "meta.clinical.diagnosis match ^mel",
    "meta.clinical.diagnosis ~ (nevus|lentigo)",
    "meta.clinical.diagnosis not match ^mel",
    "meta.clinical.diagnosis !~ ^n",
    "meta.clinical.melanocytic is true",
    "meta.clinical.melanocytic not is true",
    "meta.clinical.diagnosis_confirm_type is None",
    "meta.clinical.diagnosis_confirm_type not is None",
    "meta.clinical.benign_malignant is None",
    "dataset.name ni UDA",
    "meta.acquisition.pixelsX > 4000",
]


@pytest.mark.parametrize("text", CRITERIA)
def test_each_operator_matches_isicarchive_on_real_records(real_frame, text):
    frame, json_columns, records = real_frame
    crit = Criterion.parse(text)
    expected = [i for i, r in records.items() if _reference(r, crit.path, crit.op, crit.value)]
    got = select(frame, text, json_columns=json_columns).ids
    assert got == expected
    assert 0 < len(got) < len(records) or text.endswith("> 4000")


def test_refine_add_remove(real_store, real_frame):
    store, records = real_store
    frame = real_frame[0]
    everything = select(store)  # from the store itself: JSON columns found from its attributes
    assert everything.ids == list(records)
    tagged = 'notes.tags ni "ISBI 2016: Training"'
    assert everything.refine(tagged).ids == select(frame, tagged, json_columns=real_frame[1]).ids
    nevi = everything.refine("meta.clinical.diagnosis == nevus")
    old = nevi.refine("meta.clinical.age_approx >= 60")
    assert old.ids == select(frame, "meta.clinical.diagnosis == nevus", "meta.clinical.age_approx >= 60").ids
    melanoma = select(frame, "meta.clinical.diagnosis == melanoma")
    both = old.add("meta.clinical.diagnosis == melanoma")
    assert set(both.ids) == set(old.ids) | set(melanoma.ids)
    assert both.ids == [i for i in records if i in set(both.ids)]  # table order
    fewer = both.remove("meta.clinical.sex == male")
    assert set(fewer.ids) == set(both.ids) - set(select(frame, "meta.clinical.sex == male").ids)
    assert list(fewer.frame.index) == fewer.ids
    assert [str(v) for v in fewer.dataset()["image"].values] == fewer.ids
    assert fewer.ids and len(fewer) == len(fewer.ids) and fewer.ids[0] in fewer


def test_criteria_as_triples_and_parse_errors():
    frame = pd.DataFrame(
        {"a.b": pd.array([1, 2, None], dtype="Int64"), "c d.e": pd.array(["x", None, "y"], dtype="string")},
        index=pd.Index(["i1", "i2", "i3"], name="image"),
    )
    assert select(frame, ("a.b", ">", 1)).ids == ["i2"]
    assert select(frame, '"c d.e" != x').ids == ["i2", "i3"]  # missing passes !=, as in isicarchive
    assert select(frame, ("c d.e", "is None")).ids == ["i2"]
    assert select(frame, "a.b in 1,3").ids == ["i1"]
    with pytest.raises(KeyError, match="did you mean a.b"):
        select(frame, "a.c == 1")
    for bad in ["a.b", "a.b = 1", "a.b ==", "a.b is None 3", "a.b match (", '"a.b == 1']:
        with pytest.raises(ValueError):
            select(frame, bad)


def test_types_are_kept_apart():
    frame = pd.DataFrame(
        {"flag": pd.array([True, False, None], dtype="boolean"), "n": pd.array([1, 0, 1], dtype="Int64")},
        index=pd.Index(["a", "b", "c"], name="image"),
    )
    assert select(frame, "flag == true").ids == ["a"]
    assert select(frame, "n == 1").ids == ["a", "c"]
    assert select(frame, "flag == 1").ids == []  # a bool is not the number 1
    assert select(frame, "flag not is None").ids == ["a", "b"]


def test_cli_select(real_store, real_frame, capsys):
    store, records = real_store
    no_nevus, old = "meta.clinical.diagnosis != nevus", "meta.clinical.age_approx >= 80"
    male = "meta.clinical.sex == male"
    expected = select(real_frame[0], no_nevus).add(old).remove(male)
    argv = ["select", store.url, no_nevus, "--add", old, "--remove", male]
    assert main(argv) == 0
    assert capsys.readouterr().out.split() == expected.ids
    assert main(argv + ["--columns", "meta.clinical.sex,meta.clinical.age_approx"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col=0)
    assert list(table.index) == expected.ids
    assert list(table.columns) == ["meta.clinical.sex", "meta.clinical.age_approx"]
    assert main(["select", store.url, "meta.clinical.diagnosys == x"]) == 2
    assert "meta.clinical.diagnosis" in capsys.readouterr().err
