"""``verify --repair`` appends lost rows through the same locked append as ingest, which first
trims what a cut-short append left behind (the defect: it appended without that step, so a
repaired row could pick up a stale value of the interrupted append)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from archivestore import ingest, open_store
from archivestore.sources import ChallengeSource
from archivestore.store import _metadata
from archivestore.verify import verify


def test_repair_after_an_interrupted_append_leaves_no_stale_row(sample_dirs, tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    assert ingest(store, ChallengeSource([sample_dirs["train"]]), progress=False).ok
    ids = store.image_ids()
    expected = store.metadata_records()
    table = store.root["metadata"]

    # the last two rows were never appended (a crash before the table batch) ...
    table["image"].resize((4,))
    _metadata.repair(table)
    # ... and a later append was cut short after its values but before the image coordinate
    _metadata.append_rows(table, {"ghost": {"extra": 7, "clinical": {"sex": "ghost"}}})
    table["image"].resize((4,))
    assert store.image_ids() == ids[:4]

    report = verify(store, repair=True, progress=False)
    assert sorted(p.image_id for p in report.problems) == sorted(ids[4:])
    assert {p.kind for p in report.problems} == {"unlisted"}
    assert report.ok and sorted(report.repaired) == sorted(ids[4:])

    records = store.metadata_records()
    assert sorted(records) == sorted(ids) and "ghost" not in records
    for image_id in ids:
        assert records[image_id] == expected[image_id]  # no "extra" picked up from the cut-short append
    # plain xarray (no field_state) sees no stale value either
    plain = xr.open_zarr(store.url, group="metadata", consolidated=False)
    if "extra" in plain:
        assert np.isnan(plain["extra"].values).all()
    assert verify(store, progress=False).ok
