"""Microscopy images (ArrayItem) and plates (PlateItem) into the store: raw values with their axes,
physical coordinates, channel names, label images, map annotations as metadata fields, the well grid."""

from __future__ import annotations

import numpy as np
import xarray as xr

from archivestore import ingest, open_store
from archivestore.layout import escape_name
from archivestore.sources import ArrayImage, ArrayItem, PlateItem

ROWS, COLUMNS, FIELDS = ["A", "B"], ["1", "2", "3"], 2


def _image(seed: int, *, rendered: bool = False) -> ArrayImage:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 65535, (2, 3, 16, 20), dtype=np.uint16)  # channel, z, y, x
    nuclei = (rng.random((3, 16, 20)) > 0.7).astype(np.int32) * (seed + 1)
    return ArrayImage(
        data=data if not rendered else (data >> 8).astype(np.uint8), axes=("channel", "z", "y", "x"),
        coords={"z": np.arange(3) * 0.5, "y": np.arange(16) * 0.1625, "x": np.arange(20) * 0.1625},
        units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
        channels=[{"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 4000}},
                  {"label": "GFP", "color": "00FF00", "window": {"start": 10, "end": 900}}],
        labels={"nuclei": nuclei, "cell borders": nuclei[-1]}, rendered=rendered, attrs={"seed": seed})


def _items() -> tuple[list, dict[str, ArrayImage]]:
    images, items, wells = {}, [], {}
    k = 0
    for row in ROWS:
        for column in COLUMNS[:2]:  # column 3 has no images
            for fld in range(FIELDS):
                image_id = f"{1000 + k}"
                images[image_id] = _image(k, rendered=(k == 5))
                meta = {"id": int(image_id), "name": f"plate1 [{row}{column}] field {fld}",
                        "map": {"Gene Symbol": ["CDK1", "cdk1"], "siRNA Identifier": ["s2838"]},
                        "plate": "plate1", "well": f"{row}{column}", "row": row, "column": column, "field": fld}
                items.append(ArrayItem(id=image_id, metadata=meta, load=lambda i=image_id: images[i],
                                       where=f"test://image/{image_id}"))
                wells[(row, column, fld)] = image_id
                k += 1
    plate = PlateItem(id="plate1 / screen A", metadata={"name": "plate1", "screen": "screenA"}, rows=ROWS,
                      columns=COLUMNS, fields=FIELDS, images=wells, where="test://plate/1")
    return [plate, *items], images


def test_microscopy_images_and_plate_round_trip(store_url):
    store = open_store(store_url, mode="a")
    items, images = _items()
    bad = ArrayItem(id="bad", metadata={}, load=lambda: ArrayImage(np.zeros((4, 4)), axes=("x", "y")), where="t://b")
    report = ingest(store, [*items, bad], progress=False)
    assert [b.item_id for b in report.failed] == ["bad"] and "order" in report.failed[0].reason
    assert len(report.ingested) == len(items)
    for image_id, image in images.items():
        ds = store.image(image_id)
        assert ds["image"].dims == ("channel", "z", "y", "x") and ds["image"].dtype == image.data.dtype
        np.testing.assert_array_equal(ds["image"].values, image.data)
        np.testing.assert_array_equal(ds["z"].values, image.coords["z"])
        assert ds["x"].attrs["units"] == "micrometer"
        assert list(ds["channel"].values) == ["DAPI", "GFP"]
        assert ds["image"].attrs["channels"][1]["color"] == "00FF00"
        np.testing.assert_array_equal(ds["nuclei"].values, image.labels["nuclei"])
        assert ds["nuclei"].dims == ("z", "y", "x")
        # a label image named with a space: a layout-3 array name, the name kept in its attributes
        np.testing.assert_array_equal(ds["_xcell_20borders"].values, image.labels["cell borders"])
        assert ds["_xcell_20borders"].attrs["_archivestore"] == {"name": "cell borders"}
        assert ds["image"].attrs["rendered"] is image.rendered
    # map annotations and plate positions are metadata fields; repeated keys keep every value
    records = store.metadata_records()
    assert records["1000"]["map"]["Gene Symbol"] == ["CDK1", "cdk1"]
    frame = store.metadata_frame()
    assert frame.loc["1003", "well"] == "A2" and frame.loc["1003", "field"] == 1
    # the record key "field" is a variable of its own, never a "field%" beside the field coordinate (issue 18)
    table = store.metadata()
    assert "_xfield" in table and "field%" not in table and table["_xfield"].attrs["path"] == ["field"]
    assert all(set(str(n)) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
               for n in table.variables)
    # the plate grid: image ids by row, column, field; '' where a well has no image
    plate = xr.open_zarr(store.zstore, group=f"plates/{escape_name('plate1 / screen A')}", consolidated=False)
    assert plate["image_id"].dims == ("row", "column", "field")
    assert str(plate["image_id"].sel(row="B", column="2", field=1).values) == "1007"
    assert (plate["image_id"].sel(column="3").values == "").all()
    assert plate.attrs["screen"] == "screenA"
    assert store.plates() == ["plate1 / screen A"]
    assert store.plate("plate1 / screen A")["image_id"].shape == (2, 3, 2)
    again = ingest(store, items, progress=False)
    assert again.ok and again.ingested == [] and len(again.skipped) == len(items)
    assert sorted(store.image_ids()) == sorted(images)


def test_small_planes_are_stacked_along_z_in_a_chunk():
    from archivestore.layout import array_chunks

    czyx = ("channel", "z", "y", "x")
    assert array_chunks((3, 20, 256, 256), czyx) == (1, 16, 256, 256)  # a tile's pixels per chunk
    assert array_chunks((3, 20, 2048, 1500), czyx) == (1, 1, 1024, 1024)  # a tile per plane, as before
    assert array_chunks((2, 3, 700, 600), czyx) == (1, 2, 700, 600)
    assert array_chunks((1, 2, 5, 64, 48), ("t", "channel", "z", "y", "x")) == (1, 1, 5, 64, 48)
    assert array_chunks((3, 64, 48), ("channel", "y", "x")) == (1, 64, 48)
