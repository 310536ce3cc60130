"""IDR source: OMERO.web queries, map annotations, plate grids, rendered planes and OME-Zarr pixels (stand-ins)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import requests

from archivestore.errors import APIError, BadItem, InvalidInputError, NotFoundError
from archivestore.sources import ArrayItem, Idr, IdrSource, PlateItem
from archivestore.sources import item_from_origin as any_item_from_origin
from archivestore.sources.idr._items import ZarrUrls, study_folder
from archivestore.sources.idr._omero import map_values
from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, Request
from archivestore.testing.omero import OmeroWebServer
from archivestore.testing.sources import SourceTests

PROJECT = "idr0062-blin-nuclearsegmentation/experimentA"
SCREEN = "idr0001-graml-sysgro/screenA"


def pixels(seed: int, shape: tuple[int, ...] = (1, 2, 3, 16, 20), dtype: type = np.uint16) -> np.ndarray:
    """Random raw values (t, c, z, y, x) spanning most of a 12-bit range."""
    return np.random.default_rng(seed).integers(0, 4000, shape, endpoint=True).astype(dtype)


def build(server: OmeroWebServer) -> dict[str, object]:
    """A project (two datasets, five images: one with null pixel sizes, one with repeated keys) and a screen
    (two plates of 2 x 3 wells, two fields, one empty well; gene annotations on wells)."""
    ids: dict[str, object] = {"project": server.add_project(PROJECT, "nuclei")}
    ids["datasets"] = [server.add_dataset("Dataset B", project=ids["project"]),
                       server.add_dataset("Dataset A", project=ids["project"])]
    ids["images"] = [server.add_image(pixels(k), dataset=ids["datasets"][k % 2], name=f"img{k}.tif",
                                      pixel_size=(None, None, None) if k == 4 else (0.25, 0.25, 1.5))
                     for k in range(5)]
    server.annotate("image", ids["images"][0], [("Gene Symbol", "CDC20"), ("Gene Symbol", "CDC21"),
                                                ("Cell Line", "HeLa")])
    server.annotate("image", ids["images"][0], [("Cell Line", "HeLa"), ("Organism", "Homo sapiens")],
                    ns="openmicroscopy.org/mapr/organism")
    ids["screen"] = server.add_screen(SCREEN)
    ids["plates"], ids["wells"], ids["plate_images"] = [], {}, {}
    for p in range(2):
        plate = server.add_plate(f"plate{p}", screen=ids["screen"], rows=2, columns=3)
        ids["plates"].append(plate)
        for row in range(2):
            for column in range(3):
                if (row, column) == (1, 2):
                    continue  # an empty well
                fields = [pixels(100 * p + 10 * row + column + f, (1, 2, 1, 8, 12)) for f in range(2)]
                well = server.add_well(plate, row, column, fields, pixel_size=(0.5, 0.5, None))
                ids["wells"][(plate, row, column)] = well
                for f, image in enumerate(server.wells[well].images):
                    ids["plate_images"][(plate, "AB"[row], str(column + 1), f)] = image
                server.annotate("well", well, [("Gene Symbol", f"GENE{row}{column}"),
                                               ("siRNA Identifier", f"s{p}{row}{column}")])
    first = ids["plate_images"][(ids["plates"][0], "A", "1", 0)]
    server.annotate("image", first, [("Gene Symbol", "GENE00"), ("Phenotype", "mitotic")])
    server.annotate("plate", ids["plates"][0], [("Plate Layout", "96")])
    return ids


@pytest.fixture
def server():
    with OmeroWebServer(max_limit=2) as server:
        server.ids = build(server)
        yield server


def client(server: OmeroWebServer, **options) -> Idr:
    return Idr(server.url, **{"backoff_factor": 0.0, "retries": 4, "workers": 4, **options})


@pytest.fixture
def idr(server) -> Idr:
    return client(server)


# ---------------------------------------------------------------------------------------- session
def test_the_session_is_opened_first_and_again_after_a_403(server, idr):
    assert requests.get(server.url + "api/v0/m/projects/", timeout=10).status_code == 403  # no session, no data
    assert idr.projects()["id"].tolist() == [server.ids["project"]]
    assert server.log[1][0] == "/webclient/" and server.log[1][1] == {"experimenter": "-1"}
    server.expire_sessions()
    assert idr.screens()["id"].tolist() == [server.ids["screen"]]
    assert server.session_opens == 2


def test_an_object_that_stays_forbidden_is_an_error_naming_it(server, idr):
    with pytest.raises(APIError, match="99999") as info:
        idr.image_data(99999)
    assert info.value.status == 403 and "not visible to the public user" in str(info.value)


# ---------------------------------------------------------------------------------------- queries
def test_listings_page_up_to_the_total(server, idr):
    dataset = server.ids["datasets"][0]
    table = idr.images(dataset)
    assert sorted(table["id"]) == sorted(server.ids["images"][0::2])  # three images, pages of two
    offsets = [q["offset"] for path, q, _ in server.log if path == f"/api/v0/m/datasets/{dataset}/images/"]
    assert offsets == ["0", "2"]


def test_a_listing_that_overstates_its_total_still_ends(server, idr, monkeypatch):
    listing = server._listing

    def lying(kind, query):
        answer = listing(kind, query)
        body = __import__("json").loads(answer.body)
        body["meta"]["totalCount"] = 10_000
        return Answer(200, __import__("json").dumps(body).encode())

    monkeypatch.setattr(server, "_listing", lying)
    assert len(idr.projects()) == 1  # an empty page ends it


def test_queries_as_tables(server, idr):
    ids = server.ids
    projects = idr.projects()
    assert projects.loc[0, "Name"] == PROJECT and projects.loc[0, "study"] == "idr0062A"
    assert not any(c.startswith(("omero:details", "url:")) for c in projects.columns)
    assert idr.datasets(ids["project"])["Name"].tolist() == ["Dataset A", "Dataset B"]
    images = idr.images(ids["datasets"][1]).set_index("id")
    assert images.loc[ids["images"][1], "Pixels.SizeX"] == 20 and images.loc[ids["images"][1], "Pixels.SizeZ"] == 3
    assert images.loc[ids["images"][1], "Pixels.Type.value"] == "uint16"
    assert idr.screens().loc[0, "study"] == "idr0001A"
    plates = idr.plates(ids["screen"])
    assert plates["Name"].tolist() == ["plate0", "plate1"] and plates["Rows"].tolist() == [2, 2]
    wells = idr.wells(ids["plates"][0])
    assert len(wells) == 5 * 2 and set(wells["well"]) == {"A1", "A2", "A3", "B1", "B2"}
    first = wells[(wells["well"] == "A2") & (wells["field"] == 1)].iloc[0]
    assert first["image_id"] == ids["plate_images"][(ids["plates"][0], "A", "2", 1)]
    on_plate = idr.images(plate=ids["plates"][1]).set_index("id")
    image = ids["plate_images"][(ids["plates"][1], "B", "2", 0)]
    assert on_plate.loc[image, ["well", "row", "column", "field"]].tolist() == ["B2", "B", "2", 0]
    with pytest.raises(InvalidInputError):
        idr.images()


def test_annotations_keep_repeated_keys(server, idr):
    table = idr.annotations("image", server.ids["images"][0])
    genes = table[table["key"] == "Gene Symbol"]["value"].tolist()
    assert genes == ["CDC20", "CDC21"] and len(table) == 5
    assert idr.annotations("image", server.ids["images"][1]).empty
    with pytest.raises(InvalidInputError, match="experiment"):
        idr.annotations("experiment", 1)


def test_many_objects_annotations_in_one_request(server, idr):
    wells = list(server.ids["wells"].values())
    found = idr.map_annotations("well", wells)
    assert all(len(found[w]) == 1 for w in wells)
    assert len(server.requests_to("webclient/api/annotations/")) == 1


def test_map_values_rule():
    image = {"values": [["Gene Symbol", "A"], ["Gene Symbol", "B"], ["Cell Line", "HeLa"]]}
    well = {"values": [["Gene Symbol", "A"], ["siRNA", "s1"]]}
    assert map_values([image, well]) == {"Gene Symbol": ["A", "B"], "Cell Line": "HeLa", "siRNA": "s1"}
    assert map_values([{"values": [["k", "v"], ["k", "v"]]}]) == {"k": ["v", "v"]}  # within one: every pair


# ---------------------------------------------------------------------------------------- the source
def test_project_images_carry_their_record_annotations_and_context(server, idr):
    items = list(IdrSource(idr, rendered=True, project=server.ids["project"]))
    assert sorted(int(i.id) for i in items) == sorted(server.ids["images"])
    by_id = {int(i.id): i for i in items}
    first = by_id[server.ids["images"][0]].metadata
    assert first["map"] == {"Gene Symbol": ["CDC20", "CDC21"], "Cell Line": "HeLa", "Organism": "Homo sapiens"}
    assert first["study"] == "idr0062A" and first["project"] == {"id": server.ids["project"], "name": PROJECT}
    assert first["dataset"]["name"] == "Dataset B" and first["Pixels"]["SizeC"] == 2
    assert "map" not in by_id[server.ids["images"][1]].metadata
    assert not any("omero:details" in str(i.metadata) for i in items)


def test_plate_images_carry_their_wells_annotations_and_the_grid_is_right(server, idr):
    ids = server.ids
    items = list(IdrSource(idr, rendered=True, screen=ids["screen"]))
    plates = [i for i in items if isinstance(i, PlateItem)]
    images = {int(i.id): i for i in items if isinstance(i, ArrayItem)}
    assert [p.id for p in plates] == [str(p) for p in ids["plates"]]
    assert len(images) == len(ids["plate_images"]) == 2 * 5 * 2
    plate = plates[0]
    assert (plate.rows, plate.columns, plate.fields) == (["A", "B"], ["1", "2", "3"], 2)
    expected = {(r, c, f): str(i) for (p, r, c, f), i in ids["plate_images"].items() if p == ids["plates"][0]}
    assert plate.images == expected and ("B", "3", 0) not in plate.images
    assert plate.metadata["map"] == {"Plate Layout": "96"} and plate.metadata["study"] == "idr0001A"
    first = images[ids["plate_images"][(ids["plates"][0], "A", "1", 0)]].metadata
    assert first["map"] == {"Gene Symbol": "GENE00", "Phenotype": "mitotic", "siRNA Identifier": "s000"}
    other = images[ids["plate_images"][(ids["plates"][1], "B", "2", 1)]].metadata
    assert {k: other[k] for k in ("plate", "well", "row", "column", "field", "study")} == {
        "plate": str(ids["plates"][1]), "well": "B2", "row": "B", "column": "2", "field": 1, "study": "idr0001A"}
    assert other["map"] == {"Gene Symbol": "GENE11", "siRNA Identifier": "s111"}
    assert other["well_id"] == ids["wells"][(ids["plates"][1], 1, 1)] and "Pixels" not in other


def test_images_by_id_find_their_context_and_a_missing_one_is_a_problem(server, idr):
    ids = server.ids
    in_well = ids["plate_images"][(ids["plates"][1], "A", "3", 1)]
    source = IdrSource(idr, rendered=True, images=[ids["images"][2], in_well, 424242])
    items = {int(i.id): i for i in source}
    assert set(items) == {ids["images"][2], in_well}
    assert items[ids["images"][2]].metadata["project"]["id"] == ids["project"]
    well = items[in_well].metadata
    assert (well["plate"], well["well"], well["field"], well["study"]) == (str(ids["plates"][1]), "A3", 1, "idr0001A")
    assert well["map"]["Gene Symbol"] == "GENE02"
    assert [p.item_id for p in source.problems] == ["424242"] and "no such image" in source.problems[0].reason


def test_a_container_that_does_not_exist_is_not_found(idr):
    with pytest.raises(NotFoundError, match="project 777"):
        list(IdrSource(idr, rendered=True, project=777))
    with pytest.raises(InvalidInputError):
        IdrSource(idr, rendered=True)
    with pytest.raises(InvalidInputError):
        IdrSource(idr, rendered=True, images=["abc"])
    with pytest.raises(InvalidInputError, match="give zarr_url .* or rendered=True"):
        IdrSource(idr, images=[1])  # where the pixels come from is never guessed


def test_listing_reads_no_pixels_and_everything_pickles(server, idr):
    source = IdrSource(idr, rendered=True, project=server.ids["project"], screen=server.ids["screen"])
    items = list(pickle.loads(pickle.dumps(source)))
    assert not server.requests_to("webgateway/render_image") and not server.requests_to("webclient/imgData")
    again = pickle.loads(pickle.dumps(items[0]))
    assert again.load().data.shape == items[0].load().data.shape


# ---------------------------------------------------------------------------------------- pixels
def test_rendered_planes_are_marked_and_follow_the_linear_window(server, idr):
    image_id = server.ids["images"][1]
    item = next(i for i in IdrSource(idr, rendered=True, images=[image_id]))
    image = item.load()
    raw = server.images[image_id].pixels[0]  # (c, z, y, x)
    assert image.rendered and image.axes == ("channel", "z", "y", "x") and image.data.dtype == np.uint8
    low, high = raw.min(axis=(1, 2, 3)), raw.max(axis=(1, 2, 3))
    expected = np.rint((raw - low[:, None, None, None]) / (high - low)[:, None, None, None] * 255)
    assert np.abs(image.data.astype(int) - expected).max() <= 6  # JPEG at quality 100
    assert np.abs(image.data.astype(int) - expected).mean() < 1.5
    assert image.attrs["rendered"]["windows"] == [[float(lo), float(hi)] for lo, hi in zip(low, high, strict=True)]
    assert [c["label"] for c in image.channels] == ["DAPI", "GFP"] and image.channels[1]["color"] == "00FF00"
    np.testing.assert_allclose(image.coords["x"], np.arange(20) * 0.25)
    assert image.coords["z"][-1] == 3.0 and image.units == {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
    renders = server.requests_to("webgateway/render_image")
    assert len(renders) == 2 * 3 and {q["m"] for _, q, _ in renders} == {"g"}


def test_null_pixel_sizes_give_no_coordinates(server, idr):
    image = next(iter(IdrSource(idr, rendered=True, images=[server.ids["images"][4]]))).load()
    assert image.coords == {} and image.units == {}


def test_thumbnails_are_rendered_rgb(server, idr):
    image = next(iter(IdrSource(idr, images=[server.ids["images"][0]], thumbnails=True))).load()
    assert image.rendered and image.axes == ("channel", "y", "x") and image.data.shape[0] == 3
    assert max(image.data.shape[1:]) == 96 and image.attrs["rendered"]["kind"] == "thumbnail"


def test_an_image_without_an_ome_zarr_is_a_bad_item_never_rendered_planes(server, idr, tmp_path):
    image_id = server.ids["images"][0]
    source = IdrSource(idr, images=[image_id], zarr_url=str(tmp_path / "{study}" / "{image_id}.zarr"))
    with pytest.raises(BadItem) as caught:
        next(iter(source)).load()
    assert caught.value.item_id == str(image_id)
    assert caught.value.reason.startswith(f"no OME-Zarr at {tmp_path / 'idr0062A' / f'{image_id}.zarr'} ")
    assert not server.requests_to("webgateway/render_image")  # nothing rendered behind the user's back


def test_a_plane_that_does_not_decode_is_a_bad_item_naming_the_image(server, idr, monkeypatch):
    image_id = server.ids["images"][3]
    route = server.route

    def broken(request: Request) -> Answer:
        if request.path.startswith(f"/webgateway/render_image/{image_id}/"):
            return Answer(200, b"not a jpeg", "image/jpeg")
        return route(request)

    monkeypatch.setattr(server, "route", broken)
    item = next(iter(IdrSource(idr, rendered=True, images=[image_id])))
    with pytest.raises(BadItem, match=f"^{image_id}: .*cannot decode"):
        item.load()


def test_origins_load_the_image_again(server, idr):
    item = next(iter(IdrSource(idr, rendered=True, images=[server.ids["images"][2]])))
    again = any_item_from_origin(item.id, item.origin, item.metadata)
    assert isinstance(again, ArrayItem) and again.origin == item.origin
    np.testing.assert_array_equal(again.load().data, item.load().data)


# ---------------------------------------------------------------------------------------- IDR's OME-Zarr naming
@pytest.mark.parametrize(("name", "expected"), [
    ("idr0001-graml-sysgro/screenA", ("idr0001A", "idr0001")),
    ("idr0062-blin-nuclearsegmentation/experimentA", ("idr0062A", "idr0062")),
    ("idr0072-schormann-subcellref/screenB", ("idr0072B", "idr0072")),
    ("idr0128-lindner-tmprss/screenE", ("idr0128E", "idr0128")),
    ("idr0083-lamers-sarscov2", ("idr0083", "idr0083")),
    ("my own project", None),
])
def test_study_folders(name, expected):
    assert study_folder(name) == expected


def test_url_templates():
    urls = ZarrUrls("s3://idr/zarr/v0.4/{study}/{image_id}.zarr")
    assert urls.image_url(6001240, PROJECT) == "s3://idr/zarr/v0.4/idr0062A/6001240.zarr"
    assert urls.field_url(2551, ("F", "6", 0), SCREEN) == "s3://idr/zarr/v0.4/idr0001A/2551.zarr/F/6/0"
    assert urls.image_url(1, "not an IDR name") is None
    assert ZarrUrls("/data/{image_id}.zarr").image_url(7, None) == "/data/7.zarr"
    for bad in ("s3://idr/{study}.zarr", "s3://idr/{nope}/{image_id}.zarr", "s3://idr/{image_id.zarr"):
        with pytest.raises(InvalidInputError):
            ZarrUrls(bad)


# ---------------------------------------------------------------------------------------- faults
def test_a_server_failing_a_fifth_of_requests_loses_and_duplicates_nothing(server):
    faults = Faults(rate=0.2, seed=3, max_per_path=2, retry_after="0")
    with OmeroWebServer(faults, max_limit=2) as flaky:
        build(flaky)
        idr = client(flaky, retries=4)
        source = IdrSource(idr, rendered=True, project=server.ids["project"], screen=server.ids["screen"])
        items = list(source)
        loaded = {i.id: i.load().data for i in items if isinstance(i, ArrayItem) and i.id in
                  {str(x) for x in server.ids["images"]}}
    clean = list(IdrSource(client(server), rendered=True, project=server.ids["project"], screen=server.ids["screen"]))
    assert faults.total > 0 and source.problems == []
    assert [(type(i).__name__, i.id, i.metadata) for i in items] == [
        (type(i).__name__, i.id, i.metadata) for i in clean]
    assert sorted(loaded) == sorted(str(x) for x in server.ids["images"])


def test_ingest_twice_through_faults_stores_each_image_once(server, tmp_path):
    from archivestore import ingest, open_store

    faults = Faults(rate=0.2, seed=5, max_per_path=2, retry_after="0")
    store = open_store(f"memory://idr-{tmp_path.name}/store.zarr", mode="a")
    with OmeroWebServer(faults, max_limit=2) as flaky:
        build(flaky)
        for _ in range(2):
            source = IdrSource(client(flaky), rendered=True, project=server.ids["project"], screen=server.ids["screen"])
            report = ingest(store, source, progress=False, workers=2)
            assert not report.failed, report.failed
    images = {str(i) for i in server.ids["images"]} | {str(i) for i in server.ids["plate_images"].values()}
    assert set(store.image_ids()) == images and len(store.image_ids()) == len(images)
    assert sorted(store.plates()) == sorted(str(p) for p in server.ids["plates"])
    grid = store.plate(str(server.ids["plates"][0]))["image_id"]
    assert grid.sel(row="B", column="2", field=1).values == str(
        server.ids["plate_images"][(server.ids["plates"][0], "B", "2", 1)])
    assert grid.sel(row="B", column="3", field=0).values == ""
    stored = store.image(str(server.ids["images"][0]))
    assert stored["image"].attrs["rendered"] is True and stored["image"].dims == ("channel", "z", "y", "x")
    records = store.metadata_records()
    first = records[str(server.ids["images"][0])]
    assert first["map"]["Gene Symbol"] == ["CDC20", "CDC21"] and first["map"]["Cell Line"] == "HeLa"
    well = records[str(server.ids["plate_images"][(server.ids["plates"][1], "A", "2", 0)])]
    assert (well["well"], well["field"], well["map"]["siRNA Identifier"]) == ("A2", 0, "s101")


# ---------------------------------------------------------------------------------------- OME-Zarr on S3
@pytest.fixture(scope="module")
def published(s3_server, tmp_path_factory):
    """A stand-in whose project images and plate are also published as NGFF 0.4 on a local S3 bucket, IDR's way.

    Written once for the module; tests that add to it add their own project.
    """
    import s3fs
    from fakes.s3 import new_bucket, point_s3fs_at

    ome = pytest.importorskip("archivestore.testing.ome")
    tmp_path = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as patch, OmeroWebServer() as server:
        point_s3fs_at(s3_server, patch)
        root = f"s3://{new_bucket()}/zarr/v0.4"
        options = {"endpoint_url": s3_server}
        project = server.add_project(PROJECT)
        dataset = server.add_dataset("Dataset 1", project=project)
        fixtures = {}
        for k, shape in enumerate([(2, 3, 32, 24), (3, 2, 20, 28)]):
            data = ome.write_ome_image(tmp_path / f"scratch{k}.zarr", version="0.4", shape=shape, seed=k).data
            image = server.add_image(data[None], dataset=dataset, pixel_size=(0.1625, 0.1625, 0.5))
            fixtures[image] = ome.write_ome_image(f"{root}/idr0062A/{image}.zarr", version="0.4", shape=shape,
                                                  seed=k, storage_options=options)
        unpublished = server.add_image(pixels(9), dataset=dataset)
        screen = server.add_screen(SCREEN)
        plate = server.add_plate("plate1", screen=screen, rows=2, columns=3)
        layout = ome.write_ome_plate(f"{root}/idr0001A/{plate}.zarr", version="0.4", storage_options=options)
        fields = {}
        for (row, column) in {(r, c) for r, c, _ in layout.fields}:
            arrays = [layout.fields[(row, column, f)].data[None, :, None] for f in range(layout.field_count)]
            well = server.add_well(plate, "AB".index(row), int(column) - 1, arrays)
            fields.update({server.wells[well].images[f]: layout.fields[(row, column, f)] for f in range(len(arrays))})
        server.ids = {"project": project, "screen": screen, "plate": plate, "unpublished": unpublished}
        yield server, fixtures, fields, f"{root}/{{study}}/{{image_id}}.zarr", options
    s3fs.S3FileSystem.clear_instance_cache()


def test_published_images_are_read_raw_and_pixel_exact(published):
    server, fixtures, fields, template, options = published
    source = IdrSource(client(server), project=server.ids["project"], screen=server.ids["screen"],
                       zarr_url=template, storage_options=options)
    items = {i.id: i for i in source if isinstance(i, ArrayItem)}
    for image_id, fixture in {**fixtures, **fields}.items():
        image = items[str(image_id)].load()
        assert not image.rendered and image.data.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(image.data), fixture.data)
    first = items[str(next(iter(fixtures)))].load()
    assert first.axes == ("channel", "z", "y", "x") and "nuclei" in first.labels
    np.testing.assert_array_equal(np.asarray(first.labels["nuclei"]), next(iter(fixtures.values())).labels["nuclei"])
    with pytest.raises(BadItem, match="no OME-Zarr at http://127.0.0.1:[0-9]+/.*/idr0062A/"):
        items[str(server.ids["unpublished"])].load()
    assert not server.requests_to("webgateway/render_image/")


def test_published_images_ingest_pixel_exact(published, tmp_path):
    from archivestore import ingest, open_store

    server, fixtures, fields, template, options = published
    store = open_store(f"memory://idr-zarr-{tmp_path.name}/store.zarr", mode="a")
    source = IdrSource(client(server), project=server.ids["project"], screen=server.ids["screen"],
                       zarr_url=template, storage_options=options)
    report = ingest(store, source, progress=False, workers=2)
    assert [(bad.item_id, bad.reason.split(" at ")[0]) for bad in report.failed] == [
        (str(server.ids["unpublished"]), "no OME-Zarr")]  # a FAILED line; the others go in
    for image_id, fixture in {**fixtures, **fields}.items():
        np.testing.assert_array_equal(store.read(str(image_id)), fixture.data)
        assert store.image(str(image_id))["image"].attrs["rendered"] is False
    assert str(server.ids["unpublished"]) not in store.image_ids()


def test_a_rendered_source_ignores_the_ome_zarr(published):
    server, fixtures, _, template, options = published
    image_id = next(iter(fixtures))
    source = IdrSource(client(server), images=[image_id], zarr_url=template, storage_options=options, rendered=True)
    assert next(iter(source)).load().rendered


def test_an_ome_zarr_of_another_size_is_a_bad_item(published):
    ome = pytest.importorskip("archivestore.testing.ome")
    server, _, _, template, options = published
    dataset = server.add_dataset("other", project=server.add_project("idr0099-someone-else/experimentB"))
    image_id = server.add_image(pixels(11), dataset=dataset)  # 20 x 16 at IDR; its "publication" is 24 x 32
    ome.write_ome_image(template.format(study="idr0099B", image_id=image_id), version="0.4", shape=(2, 3, 32, 24),
                        storage_options=options)
    item = next(iter(IdrSource(client(server), images=[image_id], zarr_url=template, storage_options=options)))
    with pytest.raises(BadItem, match=f"^{image_id}: http://127.0.0.1:.*is 24x32 pixels, IDR says image {image_id} "
                                      "is 20x16"):
        item.load()


def test_a_plate_field_of_another_size_is_a_bad_item(published):
    """The wells listing carries no Pixels: a field's size comes from imgData, and is checked as any image's."""
    ome = pytest.importorskip("archivestore.testing.ome")
    server, _, _, template, options = published
    screen = server.add_screen("idr0097-other-sizes/screenD")
    plate = server.add_plate("p", screen=screen, rows=1, columns=1)
    server.add_well(plate, 0, 0, [pixels(13, (1, 2, 1, 8, 12))])  # 12 x 8 at IDR
    ome.write_ome_plate(template.format(study="idr0097D", image_id=plate), version="0.4", rows=("A",),
                        columns=("1",), wells=[("A", "1")], fields=1, shape=(2, 32, 40), storage_options=options)
    items = list(IdrSource(client(server), plate=plate, zarr_url=template, storage_options=options))
    field = next(i for i in items if isinstance(i, ArrayItem))
    assert "Pixels" not in field.metadata  # as the real wells listing
    with pytest.raises(BadItem, match="is 40x32 pixels, IDR says image .* is 12x8"):
        field.load()


def test_map_annotations_past_one_page_are_all_found_once(server):
    """The real order is not unique: an offset walk past a page skips or repeats; a full page is split instead."""
    images = server.ids["images"]
    for k, image in enumerate(images):
        for n in range(3):
            server.annotate("image", image, [("Set", f"s{k}-{n}")], ns="openmicroscopy.org/x")
    expected = {i: sorted(a.id for a in server.annotations if a.kind == "image" and a.parent == i) for i in images}
    assert sum(map(len, expected.values())) == 17 and max(map(len, expected.values())) == 5
    found = client(server, annotation_page=6).map_annotations("image", images)
    assert {i: sorted(a["id"] for a in found[i]) for i in images} == expected


def test_every_plate_grid_is_asked_trimmed(server):
    screen = server.add_screen("idr0096-odd-plate/screenA")
    plate = server.add_plate("odd", screen=screen, rows=3, columns=5)  # a server-default grid pads to 4 x 6
    server.add_well(plate, 2, 4, [pixels(14, (1, 1, 1, 4, 4))])
    idr = client(server)
    assert idr.wells(plate)["well"].tolist() == ["C5"]
    layout = idr.plate_layout(plate)
    assert (layout.rows, layout.columns) == (["A", "B", "C"], ["1", "2", "3", "4", "5"])
    grids = server.requests_to(f"webgateway/plate/{plate}/")
    assert grids and all(query.get("layout") == "trim" for _, query, _ in grids)


def closed_port() -> str:
    """An endpoint on 127.0.0.1 nobody listens on: connection refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_image_not_migrated_is_found_on_the_fallback_host(published):
    """IDR moved its OME-Zarr to a new host with the same keys; some images are only on the old one.

    The new host is a proxy in front of the local S3 server that has no such key for that image; the
    old host is the S3 server itself.
    """
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import unquote

    from fakes.faulty_proxy import FaultyProxy

    ome = pytest.importorskip("archivestore.testing.ome")
    server, _, _, template, options = published
    image_id = server.add_image(pixels(12, (1, 2, 3, 16, 20)), dataset=server.add_dataset(
        "old", project=server.add_project("idr0098-old-host/experimentC")))
    url = template.format(study="idr0098C", image_id=image_id)
    written = ome.write_ome_image(url, version="0.4", shape=(2, 3, 16, 20), storage_options=options)

    class NotMigrated(FaultyProxy):
        def forward(self, handler: BaseHTTPRequestHandler) -> None:
            if f"/{image_id}.zarr" in unquote(handler.path):
                body = b"<Error><Code>NoSuchKey</Code><Message>not migrated</Message></Error>"
                handler.send_response(404)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(b"" if handler.command == "HEAD" else body)
                return
            super().forward(handler)

    with NotMigrated(options["endpoint_url"], share=0.0) as new_host:
        with pytest.raises(BadItem, match=f"no OME-Zarr at {new_host.url}/"):  # the proxy hides it
            next(iter(IdrSource(client(server), images=[image_id], zarr_url=template,
                                storage_options={"endpoint_url": new_host.url}))).load()
        source = IdrSource(client(server), images=[image_id], zarr_url=template,
                           storage_options={"endpoint_url": new_host.url}, fallback_storage_options=[options])
        item = next(iter(source))
        image = item.load()
        np.testing.assert_array_equal(np.asarray(image.data), written.data)
        assert not image.rendered and image.attrs["ome_zarr"]["url"].startswith(options["endpoint_url"])
        assert item.origin["fallback_options"] == [options]
        again = any_item_from_origin(item.id, item.origin, {}).load()
        np.testing.assert_array_equal(np.asarray(again.data), written.data)


def test_a_fallback_host_that_is_gone_counts_as_not_having_the_image(published):
    server, _, _, template, options = published
    dead = closed_port()
    source = IdrSource(client(server), images=[server.ids["unpublished"]], zarr_url=template,
                       storage_options=options, fallback_storage_options=[{"endpoint_url": dead}])
    with pytest.raises(BadItem) as caught:
        next(iter(source)).load()
    reason = caught.value.reason
    assert reason.startswith(f"no OME-Zarr at {options['endpoint_url']}/") and f"{dead}/" in reason
    assert "unreachable: connection refused" in reason


def test_an_unreachable_zarr_host_is_an_unreachable_error_naming_it(server, idr):
    from archivestore.errors import UnreachableError

    dead = closed_port()
    image_id = server.ids["images"][0]
    source = IdrSource(idr, images=[image_id], zarr_url="s3://idr/zarr/v0.4/{study}/{image_id}.zarr",
                       storage_options={"anon": True, "endpoint_url": dead})
    with pytest.raises(UnreachableError) as caught:
        next(iter(source)).load()
    assert caught.value.item == str(image_id) and caught.value.url.startswith(f"{dead}/idr/zarr/v0.4/idr0062A/")
    assert caught.value.reason == "connection refused"


def test_idr_own_zarr_is_on_the_new_host_and_the_old_one_is_the_fallback():
    from archivestore.sources.idr import (
        IDR_FALLBACK_STORAGE_OPTIONS,
        IDR_OLD_S3_ENDPOINT,
        IDR_S3_ENDPOINT,
        IDR_STORAGE_OPTIONS,
    )

    assert IDR_S3_ENDPOINT == IDR_STORAGE_OPTIONS["endpoint_url"] == "https://livingobjects.ebi.ac.uk"
    assert [o["endpoint_url"] for o in IDR_FALLBACK_STORAGE_OPTIONS] == [IDR_OLD_S3_ENDPOINT]
    assert IDR_OLD_S3_ENDPOINT == "https://uk1s3.embassy.ebi.ac.uk"


# ---------------------------------------------------------------------------------------- the kit
class TestIdrSourceKit(SourceTests):
    @pytest.fixture
    def source(self, server):
        return IdrSource(client(server), rendered=True, project=server.ids["project"])

    @pytest.fixture
    def bad_source(self, server, monkeypatch):
        route = server.route
        broken = server.ids["images"][3]

        def answer(request: Request) -> Answer:
            if request.path.startswith(f"/webgateway/render_image/{broken}/"):
                return Answer(200, b"\xff\xd8 truncated jpeg", "image/jpeg")
            return route(request)

        monkeypatch.setattr(server, "route", answer)
        return IdrSource(client(server), rendered=True, project=server.ids["project"])

    @pytest.fixture
    def bad_item_id(self, server):
        return str(server.ids["images"][3])

    @pytest.fixture
    def byte_reads(self, server):
        return lambda: len(server.requests_to("webgateway/render_image"))
