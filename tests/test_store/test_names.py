"""Names from archives (studies, raters, image ids) with ``/``, ``%``, ``.``, ``..``, spaces, ``:``, ``&``
and Unicode: escaped into one node each, kept in the group's attributes, and taken back as given
by every command and method (the defect: a study named ``... / Agreement`` became nested groups)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from archivestore import ingest, open_store
from archivestore.analysis import overlap, score, write_heatmaps, write_overlap
from archivestore.cli import main
from archivestore.layout import STATE_KEY, escape_name, unescape_name
from archivestore.select import select
from archivestore.sources import ChallengeSource

STUDY = "Hidden Study: Globules & Network / Agreement"
RATER = " rater/../ünï 100% . "
MODEL = "model/v2: Ω"
IDS = {
    "ISIC_0000000": "../ISIC 0000000",
    "ISIC_0000001": "..",
    "ISIC_0000002": "%2F already/escaped?",
    "ISIC_0000003": " lead & trail ",
    "ISIC_0000004": "ü:ñ/ç.",
    "ISIC_0000005": ".",
}


def _renamed(source: ChallengeSource, *, rater: str | None = None) -> list:
    items = []
    for item in source:
        anns = [dataclasses.replace(a, study=STUDY, rater=rater or a.rater) for a in item.annotations]
        items.append(dataclasses.replace(item, id=IDS[item.id], annotations=anns,
                                         metadata={**item.metadata, "isic_id": IDS[item.id]}))
    return items


@pytest.fixture
def named_store(sample_dirs, store_url):
    store = open_store(store_url, mode="a")
    dirs = [sample_dirs["train"], sample_dirs["masks"], sample_dirs["part2"]]
    assert ingest(store, _renamed(ChallengeSource(dirs, study="x")), progress=False).ok
    other = ChallengeSource([sample_dirs["rater_a"]], study="x", rater="rater_a")
    assert ingest(store, _renamed(other, rater=RATER), progress=False).ok
    preds = ChallengeSource([sample_dirs["predictions"]], rater=MODEL)
    assert ingest(store, [dataclasses.replace(i, id=IDS[i.id]) for i in preds], progress=False).ok
    return store


def test_escape_round_trips_and_yields_one_node():
    for name in [STUDY, RATER, MODEL, *IDS.values(), "__reserved", "~tilde", "a" * 40]:
        node = escape_name(name)
        assert unescape_name(node) == name
        assert "/" not in node and node.strip(".") and not node.startswith("__")
        assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in node)


def test_weird_names_through_ingest_and_reads(named_store):
    store = named_store
    assert sorted(store.image_ids()) == sorted(IDS.values())
    assert store.studies() == [STUDY]
    assert store.mask_raters() == [MODEL]
    for image_id in IDS.values():
        ds = store.image(image_id)
        assert ds["image"].ndim == 3 and "mask" in ds
        assert store.read(image_id, "mask", rater=MODEL).shape == ds["mask"].shape
        assert store.image_state(image_id)["name"] == image_id
    # one node per name: no nested groups, the original kept in the attributes
    root = zarr.open_group(store.zstore, mode="r")
    assert [n for n, _ in root["studies"].groups()] == [escape_name(STUDY)]
    assert dict(root["studies"][escape_name(STUDY)].attrs)[STATE_KEY]["name"] == STUDY
    assert dict(root["masks"][escape_name(MODEL)].attrs)[STATE_KEY]["name"] == MODEL
    assert sorted(n for n, _ in root["images"].groups()) == sorted(escape_name(i) for i in IDS.values())
    study = store.study(STUDY)
    assert sorted(map(str, study["rater"].values)) == sorted(["ground_truth", RATER])
    info = store.info()
    assert info["studies"][STUDY]["raters"] == ["ground_truth", RATER]


def test_plain_xarray_opens_escaped_groups(named_store):
    store = named_store
    image_id = IDS["ISIC_0000000"]
    ds = xr.open_zarr(store.zstore, group=f"images/{escape_name(image_id)}", consolidated=False)
    np.testing.assert_array_equal(ds["image"].values, store.read(image_id))
    st = xr.open_zarr(store.zstore, group=f"studies/{escape_name(STUDY)}", consolidated=False)
    assert set(map(str, st["image"].values)) == set(IDS.values())


def test_weird_names_through_analyses(named_store, tmp_path):
    store = named_store
    result = overlap(store.study(STUDY))
    group = write_overlap(store, STUDY, result)
    assert group == f"studies/{escape_name(STUDY)}/overlap"
    written = store.open_dataset(group)
    assert set(map(str, written["rater"].values)) == {"ground_truth", RATER}
    assert np.isfinite(written["dice"].values).any()
    scores = score(store, truth="ground_truth", prediction=MODEL)
    assert sorted(map(str, scores["image"].values)) == sorted(IDS.values())
    out = tmp_path / "heat"
    files = write_heatmaps(store, STUDY, "pigment_network", out)
    assert len(files) == len(IDS)
    for f in files:  # every file inside out_dir, none above it
        assert Path(f).resolve().parent == out.resolve()
    sel = select(store, f"isic_id == '{IDS['ISIC_0000004']}'")
    assert sel.ids == [IDS["ISIC_0000004"]]


@pytest.mark.parametrize("store_url", ["local"], indirect=True)  # the other stores share its code path
def test_weird_names_on_the_command_line(named_store, capsys, tmp_path):
    url = named_store.url
    assert "://" not in url
    assert main(["info", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["studies"]) == [STUDY]
    assert main(["overlap", url, "--study", STUDY]) == 0
    assert STUDY in capsys.readouterr().out
    assert main(["score", url, "--prediction", MODEL]) == 0
    assert main(["heatmap", url, "--study", STUDY, "--feature", "streaks", "--out", str(tmp_path / "h")]) == 0
    assert main(["select", url, f"isic_id == '{IDS['ISIC_0000001']}'"]) == 0
    assert IDS["ISIC_0000001"] in capsys.readouterr().out


def test_layout_1_stores_keep_their_names(sample_dirs, tmp_path):
    path = tmp_path / "old.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3, attributes={"archivestore": {"layout": 1}})
    store = open_store(path, mode="a")
    assert store.layout.version == 1
    report = ingest(store, ChallengeSource([sample_dirs["train"], sample_dirs["part2"]], study="ISIC Study 1"),
                    progress=False)
    assert report.ok
    root = zarr.open_group(str(path), mode="r")
    assert [n for n, _ in root["studies"].groups()] == ["ISIC Study 1"]  # as layout 1 named it
    reopened = open_store(path)
    assert reopened.studies() == ["ISIC Study 1"] and reopened.study("ISIC Study 1").sizes["image"] == 6
    # a name layout 1 cannot hold is a per-item error, not a nested group
    bad = ChallengeSource([sample_dirs["rater_a"]], study="a / b", rater="rater_a")
    report = ingest(store, list(bad), progress=False)
    assert not report.ok and all("layout-1" in f.reason for f in report.failed)
    assert [n for n, _ in root["studies"].groups()] == ["ISIC Study 1"]
