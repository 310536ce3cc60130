"""Real IDR answers replayed through the IDR client, from the OMERO.web stand-in on 127.0.0.1.

``idr/webclient_imgData_122770.json`` is raw JSON, served as recorded.
``idr/webclient_api_plates_screen102_printed.txt`` is a **printed listing** (``Plate: {id}, Name: {name},
Children: {childCount}`` per entry of the answer's ``plates``), turned back into that answer here.
``idr/ome-ngff-samples_table_2026-05.csv`` is IDR's own catalogue of its OME-Zarr (a CSV file, read as is).
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from archivestore.sources import Idr
from archivestore.sources.idr import IDR_S3_ENDPOINT, IDR_STORAGE_OPTIONS, IDR_ZARR_URL
from archivestore.sources.idr._items import ImageLoader, ZarrUrls, shown_url
from archivestore.sources.idr._omero_pixels import rendered_image
from archivestore.testing.httpserver import Answer, Request, json_answer
from archivestore.testing.omero import OmeroWebServer

IMG_DATA = "idr/webclient_imgData_122770.json"
PLATES = "idr/webclient_api_plates_screen102_printed.txt"
CATALOGUE = "idr/ome-ngff-samples_table_2026-05.csv"


@pytest.fixture
def recorded_image(real):
    """A stand-in serving the real imgData of image 122770 for an image of the same size (3 x 520 x 696)."""
    info = json.loads((real / IMG_DATA).read_text())
    size = info["size"]
    with OmeroWebServer() as server:
        pixels = np.random.default_rng(0).integers(250, 4096, (1, size["c"], 1, size["height"], size["width"]),
                                                   dtype=np.uint16)
        image = server.add_image(pixels, dataset=server.add_dataset("d", project=server.add_project("p")))
        route = server.route

        def answer(request: Request) -> Answer:
            if request.path == f"/webclient/imgData/{image}/":
                return json_answer(info)  # as recorded
            return route(request)

        server.route = answer
        yield server, image, info


def test_the_real_imgdata_gives_channels_windows_and_no_z_scale(recorded_image):
    server, image, info = recorded_image
    idr = Idr(server.url, backoff_factor=0.0)
    assert idr.image_data(image) == info
    rendered = rendered_image(idr, image)
    assert rendered.axes == ("channel", "y", "x") and rendered.data.shape == (3, 520, 696)
    assert [c["label"] for c in rendered.channels] == ["DAPI", "FITC-FilterWheel", "TRITC-FilterWheel"]
    assert rendered.attrs["rendered"]["windows"][:2] == [[250.0, 4095.0], [694.0, 4095.0]]
    assert rendered.units == {"y": "micrometer", "x": "micrometer"} and "z" not in rendered.coords  # z: null
    assert rendered.coords["x"][1] == pytest.approx(1.25195005)
    sent = {q["c"] for _, q, _ in server.requests_to(f"webgateway/render_image/{image}/")}
    assert sent == {"1|250:4095$FFFFFF", "2|694:4095$FFFFFF", f"3|{_window(info, 2)}$FFFFFF"}


def _window(info: dict, channel: int) -> str:
    window = info["channels"][channel]["window"]
    return ":".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in (window["min"], window["max"]))


def test_a_plate_field_is_size_checked_against_the_real_imgdata(recorded_image, tmp_path):
    ome = pytest.importorskip("archivestore.testing.ome")
    server, image, _ = recorded_image
    url = str(tmp_path / "field.zarr")
    ome.write_ome_image(url, version="0.4", axes="cyx", shape=(3, 500, 700), labels=())
    loader = ImageLoader(Idr(server.url, backoff_factor=0.0), image, url, None)  # no size: a field of a plate
    from archivestore.errors import BadItem

    with pytest.raises(BadItem, match=f"is 700x500 pixels, IDR says image {image} is 696x520"):
        loader()


def test_the_real_plate_list_of_a_screen(real):
    """A printed listing, turned back into the ``plates`` answer it was printed from."""
    printed = re.findall(r"Plate: (\d+), Name: (\S+), Children: (\d+)", (real / PLATES).read_text())
    plates = [{"id": int(i), "name": name, "childCount": int(n)} for i, name, n in printed]
    assert len(plates) == 12
    with OmeroWebServer() as server:
        route = server.route

        def answer(request: Request) -> Answer:
            if request.path == "/webclient/api/plates/" and request.query.get("id") == "102":
                page, limit = int(request.query.get("page", 1)), int(request.query.get("limit", 200))
                return json_answer({"plates": plates[(page - 1) * limit:page * limit]})
            return route(request)

        server.route = answer
        listed = Idr(server.url, backoff_factor=0.0, page_size=5).screen_plates(102)  # three pages
    assert [(p["id"], p["name"], p["childCount"]) for p in listed] == [
        (p["id"], p["name"], p["childCount"]) for p in plates]


def test_idr_catalogue_paths_follow_the_study_rule_on_the_client_host(real):
    """Every NGFF 0.4 image and plate of IDR's catalogue named by its id is where IDR_ZARR_URL + IDR_STORAGE_OPTIONS
    point (2 of 23 are collections named otherwise, ``idr0079_images.zarr`` and a nested ``.ome.zarr``: no id rule
    reaches them, and the test counts them)."""
    rows = list(csv.DictReader((real / CATALOGUE).open()))
    v04 = [r for r in rows if r["OME-NGFF version"] == "0.4"]
    assert v04
    hosts = {r["File Path"].split("/idr/zarr/")[0] for r in rows if "/idr/zarr/" in r["File Path"]}
    assert hosts == {IDR_S3_ENDPOINT} == {IDR_STORAGE_OPTIONS["endpoint_url"]}
    urls = ZarrUrls(IDR_ZARR_URL)
    other = []
    for row in v04:
        path = row["File Path"].rstrip("/")
        match = re.fullmatch(r".*/zarr/v0\.4/(idr\d{4}[A-Z]?)/(\d+)\.zarr", path)
        if not match:
            other.append(path)
            continue
        study, object_id = match[1], int(match[2])
        assert not row["Study"].startswith("idr") or row["Study"] == study[:7]  # the accession is the catalogue's
        screen_or_experiment = f"{study[:7]}-from-the-catalogue/{'screen' if row['Wells'] else 'experiment'}{study[7:]}"
        name = screen_or_experiment if len(study) == 8 else study
        built = urls.field_url(object_id, ("A", "1", 0), name).rsplit("/A/1/0", 1)[0] if row["Wells"] else \
            urls.image_url(object_id, name)
        assert shown_url(built, IDR_STORAGE_OPTIONS) == path
    assert len(v04) - len(other) == 21 and all(not p.split("/")[-1].split(".")[0].isdigit() for p in other)


ANNOTATIONS = "idr/webclient_api_annotations_map_image122770_printed.txt"

KEYS = ("Cell Line", "Gene Identifier URL", "Gene Identifier", "Gene Symbol", "Analysis Gene Annotation Build",
        "Gene Annotation Comments", "Organism", "Phenotype Term Accession URL", "Phenotype Term Accession",
        "Phenotype Term Name", "Phenotype Annotation Level", "Phenotype", "siRNA Identifier",
        "siRNA Pool Identifier", "siRNA Catalog Number", "Sense Sequence", "Channels", "Overall Hit Gene Consensus",
        "Has Phenotype")
"""The keys of the printed pairs, read off the recording: it prints ``key value`` with one space, and keys hold
spaces, so a line is split at the longest of these that starts it."""


def test_the_real_map_annotations_of_an_image_keep_every_repeated_key(real):
    """A printed listing of one image's pairs; how they were grouped into annotations is not printed, so they
    are served here as one annotation."""
    pairs = []
    for line in (real / ANNOTATIONS).read_text().splitlines():
        key = max((k for k in KEYS if line.startswith(k + " ")), key=len)
        pairs.append([key, line[len(key) + 1:]])
    assert len(pairs) == 68
    with OmeroWebServer() as server:
        image = server.add_image(np.zeros((1, 1, 1, 2, 2), np.uint16),
                                 dataset=server.add_dataset("d", project=server.add_project("p")))
        server.annotate("image", image, [tuple(p) for p in pairs], ns="openmicroscopy.org/mapr/gene")
        idr = Idr(server.url, backoff_factor=0.0)
        table = idr.annotations("image", image)
        from archivestore.sources.idr._omero import map_values

        values = map_values(idr.map_annotations("image", [image])[image])
    assert table[["key", "value"]].values.tolist() == pairs  # every pair, in order
    phenotypes = [v for k, v in pairs if k == "Phenotype"]
    assert len(phenotypes) == 14 and values["Phenotype"] == phenotypes  # a repeated key keeps all its values
    assert values["Gene Symbol"] == "ECT2" and values["Cell Line"] == "HeLa"
