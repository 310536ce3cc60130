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
                     "--rendered", "--no-progress", "--retries", "1"])
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


def test_ingest_idr_never_guesses_where_pixels_come_from_nor_downgrades_them(tmp_path, capsys):
    rng = np.random.default_rng(8)
    with OmeroWebServer() as server:
        project = server.add_project("idr0062-blin-nuclearsegmentation/experimentA")
        dataset = server.add_dataset("d", project=project)
        images = [server.add_image(rng.integers(0, 4000, (1, 1, 1, 8, 10), dtype=np.uint16), dataset=dataset)
                  for _ in range(2)]
        store_path = tmp_path / "idr.zarr"
        base = ["ingest", "idr", "--dataset", str(dataset), "--base-url", server.url, "--store", str(store_path),
                "--no-progress", "--retries", "0"]
        assert main(base) == 2  # neither --zarr-url nor --rendered
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--zarr-url idr" in err and "--rendered" in err
        assert not store_path.exists()
        template = str(tmp_path / "zarr" / "{study}" / "{image_id}.zarr")
        assert main([*base, "--zarr-url", template]) == 1  # no OME-Zarr there: FAILED lines, nothing rendered
        err = capsys.readouterr().err
        for image in images:
            where = tmp_path / "zarr" / "idr0062A" / f"{image}.zarr"
            assert f"FAILED {image}: " in err and f"no OME-Zarr at {where}" in err
        assert not server.requests_to("webgateway/render_image")
        assert main([*base, "--zarr-url", template, "--rendered"]) == 0  # asked for: rendered planes, marked
    store = open_store(str(store_path))
    assert sorted(store.image_ids()) == sorted(str(i) for i in images)
    assert store.image(str(images[0]))["image"].attrs["rendered"] is True
