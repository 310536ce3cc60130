"""The metadata table: every leaf of every real record round-trips value-exact."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from archivestore.store import _metadata
from archivestore.store._metadata import flatten, variable_name
from archivestore.store._metadata_read import read_frame, read_records


def _table(url, batches):
    """Append ``batches`` to a metadata table at ``url``; open it again with plain xarray."""
    root = zarr.open_group(url, mode="w", zarr_format=3)
    group = root.create_group("metadata")
    for batch in batches:
        _metadata.append_rows(group, batch)
    return xr.open_zarr(url, group="metadata", consolidated=False)


def _same(a, b) -> bool:
    return a == b and type(a) is type(b)


def test_all_real_v1_records_round_trip(isic_fixtures, tmp_path):
    # every leaf of every record, on a local store: the encoding does not depend on the store kind,
    # test_types_missing_null_and_promotion runs the round trip on each kind
    records = json.loads(gzip.open(isic_fixtures / "isic-v1" / "images_v1.json.gz").read())
    assert len(records) == 23906
    by_name = {r["name"]: r for r in records.values()}
    items = list(by_name.items())
    ds = _table(str(tmp_path / "t.zarr"), [dict(items[i:i + 6000]) for i in range(0, len(items), 6000)])
    assert ds.sizes["image"] == len(by_name)
    back = read_records(ds)
    n_leaves = 0
    for name, record in by_name.items():
        want, got = flatten(record), flatten(back[name])
        assert want.keys() == got.keys(), name
        for path, value in want.items():
            assert _same(value, got[path]), (name, path, value, got[path])
        n_leaves += len(want)
    assert n_leaves > 23906 * 20
    # a key with "/" and spaces keeps its exact path
    var = ds[variable_name(("meta", "unstructured", "clinical diagnosis/impression"))]
    assert var.attrs["path"] == ["meta", "unstructured", "clinical diagnosis/impression"]
    frame = read_frame(ds)
    # read with zarr alone (what Store.metadata_frame/metadata_records do): the same as through xarray
    group = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")["metadata"]
    assert read_records(group) == back
    pd.testing.assert_frame_equal(read_frame(group), frame)
    assert frame.loc["ISIC_0000000", "meta.clinical.age_approx"] == 55
    assert frame["meta.clinical.melanocytic"].dtype == "boolean"
    assert pd.isna(frame.loc["ISIC_0000000", "meta.clinical.diagnosis_confirm_type"])


def test_types_missing_null_and_promotion(store_url):
    ds = _table(store_url, [
        {"a": {"n": 1, "s": "x", "b": True, "l": [1, 2], "e": {}, "z": None, "f": 1.5}},
        {"b": {"n": None, "s": "", "b": False, "k.ey/": 3}},
        {"c": {"n": 2.5, "s": 7, "l": "now a string", "big": 2**60}},
    ])
    back = read_records(ds)
    assert back["a"] == {"n": 1.0, "s": "x", "b": True, "l": [1, 2], "e": {}, "z": None, "f": 1.5}
    assert back["b"] == {"n": None, "s": "", "b": False, "k.ey/": 3}
    assert back["c"] == {"n": 2.5, "s": 7, "l": "now a string", "big": 2**60}
    group = zarr.open_group(store_url, mode="r")["metadata"]  # zarr alone, as Store reads it
    assert read_records(group) == back
    pd.testing.assert_frame_equal(read_frame(group), read_frame(ds))
    assert ds["s"].attrs["value_type"] == "json"
    assert ds["n"].attrs["value_type"] == "float"
    assert np.isnan(ds["n"].values[1])           # null → NaN
    assert ds["_xk_2Eey_2F"].attrs["path"] == ["k.ey/"]  # layout 3: only A-Z a-z 0-9 - _ . in node names
    state = ds["field_state"].sel(image="b").values
    fields = list(ds["field"].values)
    assert state[fields.index("n")] == _metadata.NULL
    assert state[fields.index("f")] == _metadata.ABSENT


def test_record_keys_named_like_the_coordinates(tmp_path):
    # an IDR plate image's record has "field" (and could have "image", "field_state"): they are
    # variables of their own, never a coordinate and never a "field%" node
    record = {"field": 2, "image": "x.tif", "field_state": "ok", "well": {"field": 1}}
    ds = _table(str(tmp_path / "t.zarr"), [{"a": record}, {"b": {"field": 0}}])
    assert {"_xfield", "_ximage", "_xfield_5Fstate", "well.field"} <= set(ds.data_vars)
    assert ds["_xfield"].attrs["path"] == ["field"] and list(ds["_xfield"].values) == [2, 0]
    assert list(ds["field"].values) == ["_xfield", "_ximage", "_xfield_5Fstate", "well.field"]
    assert list(ds["image"].values) == ["a", "b"]
    assert read_records(ds) == {"a": record, "b": {"field": 0}}
    assert read_frame(ds).loc["a", "field"] == 2
    for name in ds.variables:
        assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in str(name)), name


def test_reappending_same_ids_adds_nothing(tmp_path):
    root = zarr.open_group(tmp_path / "t.zarr", mode="w", zarr_format=3)
    group = root.create_group("metadata")
    assert _metadata.append_rows(group, {"a": {"x": 1}, "b": {"x": 2}}) == 2
    assert _metadata.append_rows(group, {"a": {"x": 1}, "c": {"y": "q"}}) == 1
    assert _metadata.table_ids(group) == ["a", "b", "c"]


def test_repair_cuts_an_interrupted_append(tmp_path):
    root = zarr.open_group(tmp_path / "t.zarr", mode="w", zarr_format=3)
    group = root.create_group("metadata")
    _metadata.append_rows(group, {"a": {"x": 1}})
    group["x"].resize((5,))            # as if a later append died before the image coordinate
    group["field_state"].resize((5, 1))
    with pytest.raises(ValueError):
        xr.open_zarr(tmp_path / "t.zarr", group="metadata", consolidated=False)
    _metadata.repair(group)
    ds = xr.open_zarr(tmp_path / "t.zarr", group="metadata", consolidated=False)
    assert ds.sizes["image"] == 1


def test_rows_dropped_by_repair_do_not_come_back(tmp_path):
    root = zarr.open_group(tmp_path / "t.zarr", mode="w", zarr_format=3)
    group = root.create_group("metadata")
    _metadata.append_rows(group, {"a": {"x": 1}})
    group["x"].resize((5,))                 # an append that wrote its values and died
    group["x"][1:5] = 7.0
    group["field_state"].resize((5, 1))
    group["field_state"][1:5, 0] = _metadata.PRESENT
    _metadata.repair(group)
    _metadata.append_rows(group, {"b": {"y": "new"}, "c": {"y": "other"}})
    ds = xr.open_zarr(tmp_path / "t.zarr", group="metadata", consolidated=False)
    assert np.isnan(ds["x"].values[1:]).all()
    assert read_records(ds) == {"a": {"x": 1}, "b": {"y": "new"}, "c": {"y": "other"}}


def test_an_empty_store_has_empty_tables(tmp_path):
    from archivestore import open_store

    store = open_store(tmp_path / "empty.zarr", mode="a")
    for table in ("images", "series"):
        assert store.metadata_frame(table).empty and store.metadata_records(table) == {}
    assert store.segmentations_of("1.2.3") == [] and store.series_ids() == []
