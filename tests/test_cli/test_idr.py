"""`archivestore idr QUERY` against the local OMERO.web stand-in: tables, CSV, one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from archivestore.cli import _idr as cli_idr
from archivestore.cli import main
from archivestore.sources import idr
from archivestore.testing.omero import OmeroWebServer


@pytest.fixture(scope="module")
def server():
    with OmeroWebServer(max_limit=2) as server:
        project = server.add_project("idr0062-blin-nuclearsegmentation/experimentA")
        dataset = server.add_dataset("Dataset 1", project=project)
        images = [server.add_image(np.zeros((1, 1, 1, 6, 7), np.uint8), dataset=dataset, name=f"cell{k}.tif")
                  for k in range(3)]
        server.annotate("image", images[0], [("Gene Symbol", "CDC20"), ("Gene Symbol", "CDC21")])
        screen = server.add_screen("idr0001-graml-sysgro/screenA")
        plate = server.add_plate("plate1", screen=screen, rows=2, columns=2)
        server.add_well(plate, 1, 0, [np.zeros((1, 1, 1, 4, 4), np.uint8)] * 2)
        server.ids = {"project": project, "dataset": dataset, "images": images, "screen": screen, "plate": plate}
        yield server


def run(server: OmeroWebServer, *argv: str) -> int:
    return main(["idr", *argv, "--base-url", server.url, "--backoff", "0"])


def test_the_help_names_the_library_host():
    assert cli_idr.DEFAULT_IDR_URL == idr.DEFAULT_IDR_URL


def test_containers_as_tables(server, capsys):
    assert run(server, "projects") == 0
    out = capsys.readouterr().out
    assert "idr0062A" in out and "experimentA" in out
    assert run(server, "plates", "--screen", str(server.ids["screen"])) == 0
    assert "plate1" in capsys.readouterr().out
    assert run(server, "wells", "--plate", str(server.ids["plate"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(" B1 " in line for line in lines[1:])


def test_images_few_columns_printed_every_column_in_csv(server, tmp_path, capsys):
    assert run(server, "images", "--dataset", str(server.ids["dataset"])) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:2] == ["id", "Name"] and "Pixels.SizeX" in header and "Pixels.@id" not in header
    path = tmp_path / "images.csv"
    assert run(server, "images", "--dataset", str(server.ids["dataset"]), "--csv", str(path)) == 0
    table = pd.read_csv(path)
    assert sorted(table["id"]) == sorted(server.ids["images"]) and "Pixels.@id" in table.columns


def test_annotations_one_row_per_value(server, capsys):
    assert run(server, "annotations", "image", str(server.ids["images"][0]), "--csv", "-") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "annotation_id,ns,key,value" and [row.split(",")[-1] for row in table[1:]] == ["CDC20", "CDC21"]


def test_no_results_and_errors(server, capsys):
    assert run(server, "annotations", "image", str(server.ids["images"][1])) == 0
    assert "no results" in capsys.readouterr().err
    assert run(server, "datasets", "--project", "999", "--retries", "0") == 0  # an empty listing
    assert "no results" in capsys.readouterr().err
    assert run(server, "wells", "--plate", "999") == 2
    err = capsys.readouterr().err
    assert err.startswith("archivestore: error:") and "999" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["idr", "images", "--dataset", "1", "--plate", "2"])
