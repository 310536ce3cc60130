"""``export ome-zarr`` of a slide: the stored DICOM pyramid as an OME-Zarr 0.5 multiscale (c, y, x) in
micrometres, read back pixel-exact with ome-zarr-py's Reader; associated images beside."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

pytest.importorskip("ome_zarr")
pytest.importorskip("wsidicom")

from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Reader  # noqa: E402

import archivestore  # noqa: E402
from archivestore.cli import main  # noqa: E402
from archivestore.ome import validate_ome_zarr  # noqa: E402
from archivestore.sources import SeriesItem  # noqa: E402
from archivestore.testing.slides import sm_series, synthetic_slide  # noqa: E402


@pytest.fixture(scope="module")
def slide_store(tmp_path_factory):
    from archivestore._ingest._series import process_series

    files = sm_series(synthetic_slide(seed="ome"), codec="jpeg", sparse_levels=(1,), absent_tiles=((0, 1),))
    uid = str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)
    store = archivestore.open_store(str(tmp_path_factory.mktemp("ome") / "s.zarr"), mode="a")
    process_series(store, SeriesItem(id=uid, metadata={"Modality": "SM"}, files=lambda: files, where="mem",
                                     origin={}))
    return store, uid


def test_a_slide_exports_as_its_own_pyramid(slide_store, tmp_path, capsys):
    store, uid = slide_store
    out = tmp_path / "ome"
    assert main(["export", "ome-zarr", store.url, str(out), "--slide", uid]) == 0
    urls = capsys.readouterr().out.split()
    assert [u.rsplit("/", 1)[-1] for u in urls] == [f"{uid}.zarr", f"{uid}_label.zarr", f"{uid}_overview.zarr"]
    model = validate_ome_zarr(urls[0])
    multiscale = model.ome_attributes.multiscales[0]
    assert [a.name for a in multiscale.axes] == ["c", "y", "x"] and multiscale.axes[1].unit == "micrometer"
    scales = [list(d.coordinateTransformations[0].scale) for d in multiscale.datasets]
    assert scales == [[1.0, 0.25, 0.25], [1.0, 0.5, 0.5], [1.0, 1.0, 1.0]]
    node = list(Reader(parse_url(urls[0]))())[0]
    assert node.metadata["name"] == uid and len(node.data) == 3
    for level, data in enumerate(node.data):   # the store's pixels, every level, absent tiles white
        np.testing.assert_array_equal(data.compute(), store.slide(uid, level).values.transpose(2, 0, 1))
    label = list(Reader(parse_url(urls[1]))())[0]
    np.testing.assert_array_equal(label.data[0].compute(), store.slide(uid, "label").values.transpose(2, 0, 1))


def test_everything_includes_the_slides(slide_store, tmp_path):
    from archivestore.ome import export_ome_zarr

    store, uid = slide_store
    written = export_ome_zarr(store, tmp_path / "all")
    assert sorted(u.rsplit("/", 1)[-1] for u in written) == sorted(
        [f"{uid}.zarr", f"{uid}_label.zarr", f"{uid}_overview.zarr"])
