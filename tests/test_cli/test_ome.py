"""``archivestore export ome-zarr`` then ``archivestore ingest ome-zarr``: store images round-trip pixel-exact."""

from __future__ import annotations

import numpy as np
import pytest

from archivestore import ingest, open_store
from archivestore.cli import main
from archivestore.sources import ChallengeSource

pytest.importorskip("ome_zarr")


def test_export_then_import_on_the_command_line(sample_dirs, tmp_path, capsys):
    store = open_store(tmp_path / "a.zarr", mode="a")
    assert ingest(store, ChallengeSource([sample_dirs["train"], sample_dirs["masks"]]), progress=False).ok
    ids = store.image_ids()[:2]
    assert main(["export", "ome-zarr", str(tmp_path / "a.zarr"), str(tmp_path / "ome"), "--image", *ids]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) == 2
    assert main(["ingest", "ome-zarr", *written, "--store", str(tmp_path / "b.zarr"), "--no-progress"]) == 0
    back = open_store(tmp_path / "b.zarr")
    assert sorted(back.image_ids()) == sorted(ids)  # the exported image's name is its id again
    for image_id in ids:
        original = store.image(image_id)
        imported = back.image(image_id)
        np.testing.assert_array_equal(imported["image"].transpose("y", "x", "channel").values,
                                      original["image"].values)
        np.testing.assert_array_equal(imported["mask"].values, original["mask"].values)
