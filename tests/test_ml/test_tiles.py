"""TileDataset: tiles of microscopy images and their label images equal slices of the ingested arrays."""

from __future__ import annotations

import numpy as np
import pytest

from archivestore import ingest, open_store
from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.ml import Tiled, TileDataset, register_opener
from archivestore.ml._tiles import OPENERS
from archivestore.sources import ArrayImage, ArrayItem


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 4000, size=(2, 3, 50, 70), dtype=np.uint16)  # channel, z, y, x
    nuclei = rng.integers(0, 9, size=(3, 50, 70), dtype=np.uint32)
    image = ArrayImage(data, ("channel", "z", "y", "x"), labels={"nuclei": nuclei},
                       channels=[{"label": "DAPI"}, {"label": "GFP"}])
    item = ArrayItem(id="1884807", metadata={"name": "well A1", "license": "CC-BY"}, load=lambda: image)
    url = str(tmp_path_factory.mktemp("micro") / "micro.zarr")
    report = ingest(open_store(url, mode="a"), [item], progress=False, workers=1)
    assert report.ok, report.failed
    return url, data, nuclei


def test_tiles_are_slices_with_labels(micro):
    url, data, nuclei = micro
    ds = TileDataset(url, tile=(32, 32))
    assert len(ds) == 3 * 2 * 3  # z planes x tile rows x tile columns
    seen = np.zeros_like(data)
    for k in range(len(ds)):
        item = ds[k]
        (t, z), (y0, x0), (h, w) = item["plane"], item["start"], item["valid"]
        assert t == 0 and item["image"].shape == (2, 32, 32) and item["nuclei"].shape == (32, 32)
        np.testing.assert_array_equal(item["image"][:, :h, :w], data[:, z, y0:y0 + h, x0:x0 + w])
        np.testing.assert_array_equal(item["nuclei"][:h, :w], nuclei[z, y0:y0 + h, x0:x0 + w])
        assert not item["image"][:, h:].any() and not item["image"][:, :, w:].any()  # padded edges
        seen[:, z, y0:y0 + h, x0:x0 + w] = item["image"][:, :h, :w]
    np.testing.assert_array_equal(seen, data)  # the tiles cover the image exactly
    gfp = TileDataset(url, ["1884807"], tile=(64, 64), channels=["GFP"], labels=False)[0]
    np.testing.assert_array_equal(gfp["image"][:, :50, :64], data[1:2, 0, :, :64])
    assert "nuclei" not in gfp
    with pytest.raises(NotFoundError, match="channel 'RFP'"):
        TileDataset(url, channels=["RFP"])
    with pytest.raises(NotFoundError, match="levels 0..0"):
        TileDataset(url, level=1)
    with pytest.raises(InvalidInputError, match="tile"):
        TileDataset(url, tile=(0, 3))


def test_another_kind_of_item_plugs_in(micro):
    url, data, _ = micro
    pyramid = [data[0, 0], data[0, 0, ::2, ::2]]

    def opener(store, item_id):  # e.g. a whole-slide image with its pyramid
        return Tiled(pyramid, ("y", "x")) if item_id == "1884807" else None

    register_opener(opener)
    try:
        item = TileDataset(url, ["1884807"], level=1, tile=(16, 16))[1]
        np.testing.assert_array_equal(item["image"], pyramid[1][:16, 16:32])
    finally:
        OPENERS.remove(opener)
