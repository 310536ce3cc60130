"""``archivestore ingest idr`` against the OMERO.web stand-in: a screen's plate, its well annotations, the grid."""

from __future__ import annotations

import numpy as np

from archivestore import open_store
from archivestore.cli import main
from archivestore.testing.omero import OmeroWebServer


def test_ingest_idr_plate_with_rendered_planes(tmp_path, capsys):
    rng = np.random.default_rng(7)
    with OmeroWebServer() as server:
        screen = server.add_screen("idr0099-test-screen/screenA")
        plate = server.add_plate("plate 1", screen, rows=2, columns=3)
        wells = {}
        for row, column in ((0, 0), (1, 2)):
            fields = [rng.integers(0, 4000, (1, 2, 1, 12, 14), dtype=np.uint16) for _ in range(2)]
            wells[(row, column)] = server.add_well(plate, row, column, fields)
        server.annotate("well", wells[(1, 2)], [("Gene Symbol", "CDK1"), ("Gene Symbol", "cdk1")])
        store_path = str(tmp_path / "idr.zarr")
        code = main(["ingest", "idr", "--screen", str(screen), "--base-url", server.url, "--store", store_path,
                     "--no-progress", "--retries", "1"])
        out = capsys.readouterr()
        assert code == 0, out.err
    store = open_store(store_path)
    assert len(store.image_ids()) == 4 and store.plates()
    grid = store.plate(store.plates()[0])["image_id"]
    assert grid.dims == ("row", "column", "field") and int((grid.values != "").sum()) == 4
    frame = store.metadata_frame()
    annotated = frame[frame["well"] == "B3"]
    assert len(annotated) == 2
    records = store.metadata_records()
    assert records[annotated.index[0]]["map"]["Gene Symbol"] == ["CDK1", "cdk1"]
    image = store.image(annotated.index[0])["image"]
    assert image.attrs["rendered"] is True and image.dtype == np.uint8  # never mistaken for raw values
