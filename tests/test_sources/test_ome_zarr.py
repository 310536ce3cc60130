"""OME-Zarr import: images written by ome-zarr-py itself (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3, labels, HCS
plates) read back equal, from a directory, a local S3 bucket and an HTTP server; bad inputs name themselves."""

from __future__ import annotations

import pickle
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ome_zarr")
pytest.importorskip("ome_zarr_models")

import zarr.storage  # noqa: E402
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Reader  # noqa: E402

from archivestore import ingest, open_store  # noqa: E402
from archivestore.errors import InvalidInputError  # noqa: E402
from archivestore.sources import ArrayItem, PlateItem  # noqa: E402
from archivestore.sources.ome_zarr import (  # noqa: E402
    OmeZarrSource,
    item_from_origin,
    read_ome_zarr,
    read_ome_zarr_image,
)
from archivestore.testing.httpserver import Answer, FakeServer, Request  # noqa: E402
from archivestore.testing.ome import (  # noqa: E402
    OmeImageFixture,
    OmePlateFixture,
    break_ome_zarr,
    open_group,
    write_ome_fixtures,
    write_ome_image,
)
from archivestore.testing.sources import SourceTests  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")

AXIS = {"t": "t", "c": "channel", "z": "z", "y": "y", "x": "x"}


@pytest.fixture(scope="module")
def local_fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The standard fixtures (:func:`write_ome_fixtures`) in a directory, plus an image with a corrupt chunk."""
    root = tmp_path_factory.mktemp("ome")
    fx: dict[str, Any] = write_ome_fixtures(root)
    fx["broken"] = write_ome_image(root / "broken.zarr", version="0.4", name="broken")
    break_ome_zarr(fx["broken"].url, "corrupt-chunk")
    return fx


@pytest.fixture(scope="module", params=["local", "s3"])
def ome(request: pytest.FixtureRequest, local_fx: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The standard fixtures in a directory, and in a bucket on the local S3 server read with explicit options."""
    if request.param == "local":
        yield {"fx": local_fx, "options": None}
        return
    from fakes.s3 import point_s3fs_at

    endpoint = request.getfixturevalue("s3_server")
    with pytest.MonkeyPatch.context() as mp:
        point_s3fs_at(endpoint, mp)
        import s3fs

        bucket = f"ome-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem().mkdir(bucket)
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        yield {"fx": write_ome_fixtures(f"s3://{bucket}", storage_options=options), "options": options}


def _expected(fixture: OmeImageFixture) -> tuple[tuple[str, ...], np.ndarray]:
    axes = tuple(AXIS[a] for a in fixture.axes)
    return axes, fixture.data


@pytest.mark.parametrize("key", ["v04", "v05", "plain"])
def test_import_equals_what_ome_zarr_py_wrote(ome: dict[str, Any], key: str) -> None:
    fixture = ome["fx"][key]
    image = read_ome_zarr(fixture.url, storage_options=ome["options"])
    axes, data = _expected(fixture)
    assert image.axes == axes and image.data.dtype == data.dtype
    np.testing.assert_array_equal(image.data, data)
    assert image.attrs["version"] == fixture.version and image.attrs["level"] == 0
    for a, n in zip(fixture.axes, data.shape, strict=True):
        if a != "c":
            np.testing.assert_allclose(image.coords[AXIS[a]], np.arange(n) * fixture.scale[a])
            assert image.units[AXIS[a]] == fixture.units[a]
    assert image.channels == fixture.channels
    assert sorted(image.labels) == sorted(fixture.labels)
    for name, values in fixture.labels.items():
        assert image.labels[name].dtype == values.dtype
        np.testing.assert_array_equal(image.labels[name], values)


def test_every_level_equals_ome_zarr_pys_reader(local_fx: dict[str, Any]) -> None:
    fixture = local_fx["v05"]
    nodes = list(Reader(parse_url(fixture.url))())
    image_node = nodes[0]
    label_nodes = {str(n.metadata.get("name")): n for n in nodes[1:] if n.data}
    for level in range(fixture.levels):
        image = read_ome_zarr(fixture.url, level=level, lazy=True)
        np.testing.assert_array_equal(image.data.compute(), image_node.data[level].compute())
        for name, node in label_nodes.items():
            np.testing.assert_array_equal(image.labels[name].compute(), node.data[level].compute())
        np.testing.assert_allclose(image.coords["x"][:2], image_node.metadata["coordinateTransformations"][level][1]
                                   ["translation"][-1] + np.arange(2) * 0.1625 * 2 ** level)


def test_plate_fields_and_the_source(ome: dict[str, Any]) -> None:
    options = ome["options"]
    plates: list[OmePlateFixture] = [ome["fx"]["plate"], ome["fx"]["plate_v04"]]
    urls = [ome["fx"]["v04"].url, *(p.url for p in plates)]
    source = OmeZarrSource(urls, storage_options=options)
    items = list(source)
    assert source.problems == []
    by_id = {i.id: i for i in items if isinstance(i, ArrayItem)}
    grids = {i.id: i for i in items if isinstance(i, PlateItem)}
    assert set(grids) == {"plate1", "plate2"} and "cells-v04" in by_id
    for plate in plates:
        grid = grids[plate.name]
        assert (grid.rows, grid.columns, grid.fields) == (plate.rows, plate.columns, plate.field_count)
        assert set(grid.images) == set(plate.fields) and ("B", "3", 0) not in grid.images
        for (row, column, field), fixture in plate.fields.items():
            image_id = grid.images[(row, column, field)]
            assert image_id == f"{plate.name}_{row}{column}_{field}"
            item = by_id[image_id]
            assert {k: item.metadata[k] for k in ("plate", "well", "row", "column", "field")} == {
                "plate": plate.name, "well": f"{row}{column}", "row": row, "column": column, "field": field}
            np.testing.assert_array_equal(item.load().data, fixture.data)
        field = read_ome_zarr_image(plate.url, "A/2/1", storage_options=options)
        np.testing.assert_array_equal(field.data, plate.fields[("A", "2", 1)].data)
    with pytest.raises(InvalidInputError, match="an HCS plate, not an image"):
        read_ome_zarr(plates[0].url, storage_options=options)


def test_source_items_carry_the_ngff_metadata_and_no_secret(ome: dict[str, Any]) -> None:
    fx, options = ome["fx"], ome["options"]
    source = OmeZarrSource([fx["v05"].url, fx["plain"].url], level=1, storage_options=options)
    v05, plain = list(source)
    assert (v05.id, plain.id) == ("cells-v05", "plain")  # ome-zarr-py's placeholder name 'image' names nothing
    assert v05.metadata["url"] == fx["v05"].url and v05.metadata["ngff"]["version"] == "0.5"
    assert v05.metadata["ngff"]["multiscales"][0]["name"] == "cells-v05"
    assert v05.origin is not None and v05.origin["level"] == 1
    text = repr([v05.metadata, v05.origin, plain.metadata, plain.origin])
    assert "secret" not in text and "'testing'" not in text
    assert v05.load().data.shape == (2, 3, 4, 28, 20)  # level 1: y and x halved
    again = item_from_origin(v05.id, v05.origin, v05.metadata)
    if options is not None:  # the origin keeps no credentials: they come from the environment again
        assert "key" not in again.origin["storage_options"] and "secret" not in again.origin["storage_options"]
    np.testing.assert_array_equal(again.load().data, v05.load().data)
    assert [i.id for i in pickle.loads(pickle.dumps(source))] == ["cells-v05", "plain"]


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(("how", "message"), [
    ("not-ome", r"a Zarr v[23] group but not OME-Zarr"),
    ("missing-array", r"multiscales dataset 's1' points at a missing array"),
    ("unknown-version", r"NGFF version '0\.7' is not supported; archivestore reads 0\.4 \(Zarr v2\) and 0\.5"),
    ("corrupt-chunk", r"cannot read array 's0'"),
])
def test_bad_inputs_name_the_url_and_the_problem(tmp_path: Path, version: str, how: str, message: str) -> None:
    url = str(tmp_path / f"bad-{how}.zarr")
    write_ome_image(url, version=version)
    break_ome_zarr(url, how)
    with pytest.raises(InvalidInputError, match=message) as caught:
        read_ome_zarr(url)
    assert str(caught.value).startswith(f"{url}: ")
    source = OmeZarrSource([url])
    items = list(source)
    if how == "corrupt-chunk":  # listing reads metadata only: the pixels fail when loaded
        assert [i.id for i in items] == [f"bad-{how}"] and source.problems == []
    else:
        assert items == [] and [(p.item_id, p.where) for p in source.problems] == [(f"bad-{how}", url)]
        assert re.search(message, source.problems[0].reason)


def test_other_bad_locations(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nothing\.zarr: no Zarr group there"):
        read_ome_zarr(tmp_path / "nothing.zarr")
    url = str(tmp_path / "image.zarr")
    write_ome_image(url, version="0.5", levels=2)
    with pytest.raises(InvalidInputError, match=r"no resolution level 2; the image has levels 0 to 1"):
        read_ome_zarr(url, level=2)
    with pytest.raises(InvalidInputError, match=r"a Zarr array, not an OME-Zarr group"):
        read_ome_zarr(f"{url}/s0")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_flawed_omero_block_is_reported_not_fatal(tmp_path: Path, version: str) -> None:
    fixture = write_ome_image(tmp_path / "x.zarr", version=version)
    group = open_group(fixture.url, mode="r+")
    attrs = group.attrs.asdict()
    ngff = dict(attrs["ome"]) if version == "0.5" else dict(attrs)
    ngff["omero"] = {"channels": [{"label": "DAPI"}, {"label": "GFP", "color": "00FF00"}]}  # no windows
    group.attrs.update({"ome": ngff} if version == "0.5" else ngff)
    image = read_ome_zarr(fixture.url)
    np.testing.assert_array_equal(image.data, fixture.data)
    assert [c["label"] for c in image.channels] == ["DAPI", "GFP"]
    assert image.attrs["warnings"] == ["invalid omero metadata: channels.0.color: Field required"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_bioformats2raw_container_is_read_as_its_first_series(tmp_path: Path, version: str) -> None:
    from ome_zarr_models.v04.bioformats2raw import BioFormats2RawAttrs as V04
    from ome_zarr_models.v05.bioformats2raw import BioFormats2RawAttrs as V05

    root = tmp_path / "converted.zarr"
    series = write_ome_image(root / "0", version=version, name="image")
    group = open_group(root, mode="a", zarr_format=2 if version == "0.4" else 3)
    model = V04.model_validate({"bioformats2raw.layout": 3}) if version == "0.4" else \
        V05.model_validate({"bioformats2raw.layout": 3, "version": "0.5"})
    attrs = model.model_dump(by_alias=True, exclude_none=True)
    group.attrs.update(attrs if version == "0.4" else {"ome": attrs})
    image = read_ome_zarr(root)
    np.testing.assert_array_equal(image.data, series.data)
    assert [item.id for item in OmeZarrSource([root])] == ["converted"]  # the container names it


def test_duplicate_ids_are_problems_and_secrets_stay_out_of_them(tmp_path: Path) -> None:
    a = write_ome_image(tmp_path / "a" / "same.zarr", name="same")
    b = write_ome_image(tmp_path / "b" / "other.zarr", name="same")
    source = OmeZarrSource([a.url, b.url, "s3://user:hunter2@nowhere/x.zarr"],
                           storage_options={"secret": "hunter2"})
    assert [i.id for i in source] == ["same"]
    assert [p.item_id for p in source.problems] == ["same", "x"]
    assert "already used by" in source.problems[0].reason
    assert "hunter2" not in repr(source.problems)


class _Files(FakeServer):
    """Serves a directory over HTTP (what an OME-Zarr on a web server looks like)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def route(self, request: Request) -> Answer:
        path = (self.root / request.path.lstrip("/")).resolve()
        if self.root not in path.parents or not path.is_file():
            return Answer(404, b"not found", "text/plain")
        return Answer(200, path.read_bytes(), "application/octet-stream")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_reads_over_http(tmp_path: Path, version: str) -> None:
    fixture = write_ome_image(tmp_path / "cells.zarr", version=version, name="cells")
    with _Files(tmp_path.resolve()) as server:
        image = read_ome_zarr(f"{server.url}/cells.zarr")
    np.testing.assert_array_equal(image.data, fixture.data)
    np.testing.assert_array_equal(image.labels["nuclei"], fixture.labels["nuclei"])


# ---------------------------------------------------------------- into the store


def test_ingest_images_and_a_plate(tmp_path: Path) -> None:
    fx = write_ome_fixtures(tmp_path / "ome")
    store = open_store(tmp_path / "store.zarr", mode="a")
    report = ingest(store, OmeZarrSource([fx["v05"].url, fx["plate"].url]), progress=False)
    assert report.ok, report.failed
    ds = store.image("cells-v05")
    v05 = fx["v05"]
    assert isinstance(v05, OmeImageFixture)
    assert ds["image"].dims == ("t", "channel", "z", "y", "x")
    np.testing.assert_array_equal(ds["image"].values, v05.data)
    np.testing.assert_array_equal(ds["nuclei"].values, v05.labels["nuclei"])
    assert list(ds["channel"].values) == ["DAPI", "GFP", "mCherry"] and ds["z"].attrs["units"] == "micrometer"
    grid = store.plate("plate1")["image_id"]
    assert str(grid.sel(row="B", column="2", field=1).values) == "plate1_B2_1"
    assert str(grid.sel(row="B", column="3", field=0).values) == ""
    assert store.metadata_frame().loc["plate1_A3_1", "well"] == "A3"


class TestOmeZarrSourceKit(SourceTests):
    """The shared source checks over OME-Zarr images in a directory (one with a corrupt chunk when bad)."""

    @pytest.fixture
    def source(self, local_fx: dict[str, Any]) -> OmeZarrSource:
        return OmeZarrSource([local_fx[k].url for k in ("v04", "v05", "plain", "plate")])

    @pytest.fixture
    def bad_source(self, local_fx: dict[str, Any]) -> OmeZarrSource:
        return OmeZarrSource([local_fx[k].url for k in ("v04", "broken", "plate")])

    @pytest.fixture
    def bad_item_id(self) -> str:
        return "broken"

    @pytest.fixture
    def byte_reads(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
        """Chunks read from the directory (zarr's LocalStore gets of keys that are not metadata)."""
        reads: list[str] = []
        original = zarr.storage.LocalStore.get

        async def counting(store: Any, key: str, *args: Any, **kwargs: Any) -> Any:
            if key.rsplit("/", 1)[-1] not in ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"):
                reads.append(key)
            return await original(store, key, *args, **kwargs)

        monkeypatch.setattr(zarr.storage.LocalStore, "get", counting)
        return lambda: len(reads)

    def stored_ids(self, store: Any) -> set[str]:
        return set(store.image_ids()) | set(store.plates())
