"""TCIA source: NBIA REST v4 queries, checked zip downloads and the series source, against a local stand-in."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable

import pytest
import requests

import archivestore
from archivestore.errors import APIError, BadItem, InvalidInputError, NotFoundError
from archivestore.sources import SeriesItem, Tcia, TciaSource
from archivestore.sources import item_from_origin as any_item_from_origin
from archivestore.sources._safezip import UnsafeZipError, ZipLimits, check_zip
from archivestore.sources.tcia._nbia import typed
from archivestore.testing.faults import Faults
from archivestore.testing.nbia import (
    LICENSE_TEXT,
    NbiaServer,
    absolute_zip,
    symlink_zip,
    traversal_zip,
    zip_bomb,
    zip_of,
)
from archivestore.testing.sources import SourceTests

pydicom = pytest.importorskip("pydicom")
dicom = pytest.importorskip("archivestore.testing.dicom")

COLLECTION = "TCIA-TEST"


@pytest.fixture(scope="module")
def files() -> dict[str, list[tuple[str, bytes]]]:
    """Three small CT series (pydicom's CT_small.dcm copied along z)."""
    return {"a": dicom.ct_series(3, seed="tcia-a"), "b": dicom.ct_series(2, seed="tcia-b"),
            "c": dicom.ct_series(2, seed="tcia-c")}


def serve(server: NbiaServer, files: dict[str, list[tuple[str, bytes]]]) -> dict[str, str]:
    """Series a (patient P-1, CT), b (patient 0007, MR of the chest, another study) in TCIA-TEST; c in OTHER."""
    return {
        "a": server.add_series(files["a"], collection=COLLECTION, PatientID="P-1"),
        "b": server.add_series(files["b"], collection=COLLECTION, PatientID="0007", Modality="MR",
                               BodyPartExamined="CHEST", StudyInstanceUID="1.2.3.4.5", ManufacturerModelName="Model X"),
        "c": server.add_series(files["c"], collection="OTHER", PatientID="P-9"),
    }


@pytest.fixture
def server(files):
    with NbiaServer() as server:
        server.uids = serve(server, files)
        yield server


def client(server: NbiaServer, tmp_path=None, **options) -> Tcia:
    options = {"progress": False, "backoff_factor": 0.0, "retries": 3, **options}
    return Tcia(server.url, tmp_dir=tmp_path, **options)


@pytest.fixture
def tcia(server, tmp_path) -> Tcia:
    return client(server, tmp_path)


# ------------------------------------------------------------------------------------------ queries
def test_value_queries(tcia):
    assert tcia.collections()["Collection"].tolist() == ["OTHER", COLLECTION]
    assert tcia.modalities(COLLECTION)["Modality"].tolist() == ["CT", "MR"]
    assert tcia.modalities(COLLECTION, body_part="CHEST")["Modality"].tolist() == ["MR"]
    assert tcia.body_parts(COLLECTION)["BodyPartExamined"].tolist() == ["CHEST"]
    assert tcia.manufacturers("OTHER", modality="CT")["Manufacturer"].tolist() == ["GE MEDICAL SYSTEMS"]


def test_series_numbers_become_numbers_and_uids_stay_strings(server, tcia, files):
    raw = requests.get(server.url + "getSeries", params={"Collection": COLLECTION}, timeout=10).json()
    assert {type(r["ImageCount"]) for r in raw} == {int}  # what NBIA v4 sends (older answers: strings)
    table = tcia.series(COLLECTION).set_index("SeriesInstanceUID")
    a, b = server.uids["a"], server.uids["b"]
    assert table.loc[a, "ImageCount"] == 3 and table.loc[b, "ImageCount"] == 2
    assert table.loc[a, "FileSize"] == sum(len(data) for _, data in files["a"])
    assert table["ImageCount"].dtype.kind == "i" and table["SeriesNumber"].dtype.kind == "i"
    assert table.loc[b, "PatientID"] == "0007"  # an id of digits is not a number
    assert table.loc[b, "StudyInstanceUID"] == "1.2.3.4.5"
    assert table.loc[b, "StudyDate"] == raw[0]["StudyDate"]  # dates kept as sent


@pytest.mark.parametrize(("filters", "expected"), [
    ({"modality": "MR"}, {"b"}),
    ({"body_part": "CHEST"}, {"b"}),
    ({"patient": "0007"}, {"b"}),
    ({"PatientID": "0007"}, {"b"}),
    ({"PatientId": "0007"}, {"b"}),
    ({"study": "1.2.3.4.5"}, {"b"}),
    ({"manufacturer_model": "Model X"}, {"b"}),
    ({"Manufacturer": "GE MEDICAL SYSTEMS"}, {"a", "b"}),
    ({"modality": "CT"}, {"a"}),
    ({"modality": "PT"}, set()),
])
def test_series_filters(server, tcia, filters, expected):
    table = tcia.series(COLLECTION, **filters)
    assert set(table.get("SeriesInstanceUID", [])) == {server.uids[k] for k in expected}
    sent = server.requests_to("getSeries")[-1][1]
    assert "PatientId" not in sent and sent["Collection"] == COLLECTION


def test_series_by_uid_and_empty_answer(server, tcia):
    assert tcia.series(series=server.uids["c"])["Collection"].tolist() == ["OTHER"]
    empty = tcia.series(COLLECTION, modality="PT")
    assert empty.empty  # NBIA answers no results with an empty body


def test_patients_spell_patient_id_like_every_other_answer(server, tcia):
    raw = requests.get(server.url + "getPatient", params={"Collection": COLLECTION}, timeout=10).json()
    assert "PatientId" in raw[0]
    patients = tcia.patients(COLLECTION)
    assert "PatientId" not in patients.columns
    assert sorted(patients["PatientID"]) == ["0007", "P-1"]


def test_studies_take_both_patient_spellings(tcia):
    by = [tcia.studies(COLLECTION, patient="0007"), tcia.studies(COLLECTION, PatientID="0007"),
          tcia.studies(COLLECTION, PatientId="0007")]
    assert [t["StudyInstanceUID"].tolist() for t in by] == [["1.2.3.4.5"]] * 3
    assert by[0]["SeriesCount"].tolist() == [1]


def test_unknown_filter_is_refused(tcia):
    with pytest.raises(InvalidInputError, match="getPatient takes no filter 'Modality'"):
        tcia.query("getPatient", Modality="CT")


def test_series_size_and_instances(server, tcia, files):
    uid = server.uids["a"]
    size = tcia.series_size(uid)
    assert size["TotalSizeInBytes"].tolist() == [sum(len(data) for _, data in files["a"])]
    assert size["ObjectCount"].tolist() == [3]
    expected = {str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID) for _, data in files["a"]}
    assert set(tcia.sop_instance_uids(uid)["SOPInstanceUID"]) == expected


def test_series_metadata_is_posted_and_read_from_csv(server, tcia):
    a, b = server.uids["a"], server.uids["b"]
    table = tcia.series_metadata([a, b, "1.2.3.not.there"], chunk=2).set_index("SeriesInstanceUID")
    posts = [entry for entry in server.requests_to("getSeriesMetadata")]
    assert len(posts) == 2  # two chunks
    assert set(table.index) == {a, b}
    assert table.loc[a, "ImageCount"] == 3 and table["ImageCount"].dtype.kind == "i"
    assert table.loc[b, "PatientID"] == "0007"  # read as text, not as the number 7
    assert table.loc[b, "BodyPartExamined"] == "CHEST"
    assert tcia.series_metadata(["1.2.3.not.there"]).empty


def test_series_metadata_maps_the_older_spaced_headers(files, tmp_path):
    with NbiaServer(legacy_csv=True) as server:
        uids = serve(server, files)
        table = client(server, tmp_path).series_metadata([uids["a"], uids["b"]])
    assert {"Series ID", "Number of images"}.isdisjoint(table.columns)
    table = table.set_index("SeriesInstanceUID")
    assert set(table.index) == {uids["a"], uids["b"]}
    assert table.loc[uids["b"], "PatientID"] == "0007" and table.loc[uids["b"], "StudyInstanceUID"] == "1.2.3.4.5"
    assert table.loc[uids["a"], "ImageCount"] == 3 and table["ImageCount"].dtype.kind == "i"
    assert table.loc[uids["a"], "FileSize"] == sum(len(data) for _, data in files["a"])
    assert table.loc[uids["a"], "CollectionURI"].startswith("https://doi.org/")


def test_csv_headers_today_and_older():
    from archivestore.sources.tcia._nbia import csv_field

    assert [csv_field(h) for h in ("Series ID", "Subject ID", "Study UID", "Number of images", "File Size (Bytes)",
                                   "Collection URI", "SeriesInstanceUID", "Manufacturer Model Name")] == [
        "SeriesInstanceUID", "PatientID", "StudyInstanceUID", "ImageCount", "FileSize", "CollectionURI",
        "SeriesInstanceUID", "ManufacturerModelName"]


def test_an_unknown_query_parameter_is_a_400_as_nbia_answers(server):
    answer = requests.get(server.url + "getSeries", params={"Colection": COLLECTION}, timeout=10)
    assert answer.status_code == 400


def test_typing_rules():
    record = typed({"ImageCount": "133", "FileSize": "1.5", "SeriesNumber": "", "ObjectCount": "n/a",
                    "SeriesInstanceUID": "1.2.840.10008", "PatientId": "0001"})
    assert record == {"ImageCount": 133, "FileSize": 1.5, "SeriesNumber": None, "ObjectCount": "n/a",
                      "SeriesInstanceUID": "1.2.840.10008", "PatientID": "0001"}


def test_errors_name_the_url(tcia):
    with pytest.raises(APIError, match="404"):
        tcia.query("getNothing")


# ---------------------------------------------------------------------------------------- downloads
def test_download_returns_the_dicom_files_without_the_license(server, tcia, files, tmp_path):
    got = tcia.download(server.uids["a"])
    assert sorted(got) == sorted(files["a"])
    with zipfile.ZipFile(io.BytesIO(zip_of(files["a"]))) as served:
        assert served.read("LICENSE") == LICENSE_TEXT  # it was there, and skipped
    assert list(tmp_path.iterdir()) == []  # the temporary zip is gone


@pytest.mark.parametrize("kind", ["429", "500", "reset", "truncate"])
def test_download_retries_http_faults(files, tmp_path, kind):
    faults = Faults(rate=1.0, kinds=(kind,), max_per_path=2, retry_after="0")
    with NbiaServer(faults) as server:
        uid = serve(server, files)["a"]
        got = client(server, tmp_path).download(uid)
    assert sorted(got) == sorted(files["a"])
    assert faults.counts[kind] == 2 and len(server.requests_to("getImage")) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated_zip", "corrupt_zip"])
def test_download_retries_broken_zips(files, tmp_path, kind):
    zip_faults = Faults(rate=1.0, kinds=(kind,), max_per_path=2)
    with NbiaServer(zip_faults=zip_faults) as server:
        uid = serve(server, files)["a"]
        got = client(server, tmp_path).download(uid)
    assert sorted(got) == sorted(files["a"])
    assert zip_faults.counts[kind] == 2 and len(server.requests_to("getImage")) == 3


def test_a_short_zip_once_is_fetched_again_and_stored_complete(files, tmp_path):
    zip_faults = Faults(rate=1.0, kinds=("short_zip",), max_per_path=1)
    with NbiaServer(zip_faults=zip_faults) as server:
        uid = serve(server, files)["a"]
        item = next(i for i in TciaSource(client(server, tmp_path), series=uid))
        got = item.files()
    assert sorted(got) == sorted(files["a"]) and zip_faults.counts["short_zip"] == 1
    assert len(server.requests_to("getImage")) == 2


def test_a_zip_that_stays_short_is_a_failure_saying_n_of_m_and_nothing_is_stored(files, tmp_path):
    from archivestore.store import open_store

    zip_faults = Faults(rate=1.0, kinds=("short_zip",), max_per_path=100)
    with NbiaServer(zip_faults=zip_faults) as server:
        uids = serve(server, files)
        store = open_store(str(tmp_path / "s.zarr"), mode="a")
        report = archivestore.ingest(store, TciaSource(client(server, tmp_path, retries=2), COLLECTION),
                                     progress=False)
        assert len(server.requests_to("getImage")) == 2 * 3  # each series: the first try and two more
    assert sorted(bad.item_id for bad in report.failed) == sorted([uids["a"], uids["b"]])
    by = {bad.item_id: bad for bad in report.failed}
    assert "2 of 3 files" in by[uids["a"]].reason and "1 of 2 files" in by[uids["b"]].reason
    assert report.ingested == [] and store.series_ids() == []


@pytest.mark.parametrize(("kind", "reason"), [
    ("500", "HTTP 500"),
    ("reset", "gave up after retries"),
    ("truncated_zip", "truncated or corrupt zip"),
    ("corrupt_zip", "truncated or corrupt zip"),
])
def test_persistent_failure_is_a_bad_item_naming_the_series(server, files, tmp_path, kind, reason):
    tcia = client(server, tmp_path, retries=2)
    item = next(i for i in TciaSource(tcia, COLLECTION) if i.id == server.uids["a"])
    faults = Faults(rate=1.0, kinds=(kind,), max_per_path=100)
    if kind.endswith("_zip"):
        server.zip_faults = faults
    else:
        server.faults = faults  # from now on: the listing above went through
    with pytest.raises(BadItem, match=reason) as caught:
        item.files()
    assert caught.value.item_id == server.uids["a"] and "getImage?SeriesInstanceUID=" in caught.value.where
    assert len(server.requests_to("getImage")) == 3  # the first try and two more
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("build", "reason"), [
    (traversal_zip, "entry path with '..'"),
    (absolute_zip, "absolute entry path"),
    (symlink_zip, "symbolic link entry"),
    (lambda files: zip_bomb(), "expands 1029 times"),
])
def test_hostile_zips_are_refused_before_anything_is_read(server, tcia, files, tmp_path, monkeypatch, build, reason):
    uid = server.uids["a"]
    server.zips[uid] = build(files["a"])
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    item = next(i for i in TciaSource(tcia, COLLECTION) if i.id == uid)
    with pytest.raises(BadItem, match=reason) as caught:
        item.files()
    assert caught.value.item_id == uid
    assert opened == []  # no entry was read
    assert len(server.requests_to("getImage")) == 1  # a refused zip is not fetched again
    assert list(tmp_path.iterdir()) == []


def test_total_size_cap(server, files, tmp_path):
    tcia = client(server, tmp_path, limits=ZipLimits(max_total_size=1000))
    with pytest.raises(UnsafeZipError, match="more than 1000 bytes once uncompressed"):
        tcia.download(server.uids["a"])


def test_a_zip_without_dicom_files(server, tcia):
    server.zips[server.uids["a"]] = zip_of([("README.txt", b"not an image")])
    with pytest.raises(APIError, match="holds no DICOM file"):
        tcia.download(server.uids["a"])


def _zip_with(name: str, **fields) -> zipfile.ZipFile:
    """A zip of one entry whose central directory record says ``fields`` (e.g. ``flag_bits``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, b"data")
    archive = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    for key, value in fields.items():
        setattr(archive.infolist()[0], key, value)
    return archive


@pytest.mark.parametrize(("name", "fields", "reason"), [
    ("C:/Windows/x.dcm", {}, "drive letter"),
    ("\\server\\x.dcm", {}, "absolute"),
    ("a\\..\\..\\x.dcm", {}, "'..'"),
    ("x\n.dcm", {}, "control character"),
    ("fifo.dcm", {"create_system": 3, "external_attr": 0o010644 << 16}, "special file"),
    ("secret.dcm", {"flag_bits": 0x1}, "encrypted"),
])
def test_check_zip_refuses(name, fields, reason):
    with pytest.raises(UnsafeZipError, match=reason), _zip_with(name, **fields) as archive:
        check_zip(archive)


def test_check_zip_accepts_plain_entries():
    with _zip_with("dir/1-01.dcm", create_system=3, external_attr=0o100644 << 16) as archive:
        assert [i.filename for i in check_zip(archive)] == ["dir/1-01.dcm"]


# ------------------------------------------------------------------------------------------- source
def test_source_lists_without_downloading(server, tcia):
    items = list(TciaSource(tcia, COLLECTION))
    assert {i.id for i in items} == {server.uids["a"], server.uids["b"]}
    assert server.requests_to("getImage") == []
    item = next(i for i in items if i.id == server.uids["b"])
    assert isinstance(item, SeriesItem)
    assert item.metadata["ImageCount"] == 2 and item.metadata["PatientID"] == "0007"
    assert item.where == tcia.image_url(item.id)
    assert item.origin == {"source": "tcia", "base_url": server.url, "series": item.id}


def test_source_filters_and_series_lists(server, tcia):
    assert [i.id for i in TciaSource(tcia, COLLECTION, modality="MR")] == [server.uids["b"]]
    assert [i.id for i in TciaSource(tcia, patient="P-9")] == [server.uids["c"]]
    source = TciaSource(tcia, series=[server.uids["c"], "1.2.3.not.there", server.uids["a"]])
    assert [i.id for i in source] == [server.uids["c"], server.uids["a"]]
    assert [(p.item_id, "no such series" in p.reason) for p in source.problems] == [("1.2.3.not.there", True)]
    narrowed = TciaSource(tcia, COLLECTION, series=[server.uids["c"]])
    assert list(narrowed) == [] and "with the given filters" in narrowed.problems[0].reason


def test_wrong_collection_is_a_clear_error(server, tcia):
    with pytest.raises(NotFoundError, match="no collection 'TCIA-TSET'.*closest: TCIA-TEST"):
        list(TciaSource(tcia, "TCIA-TSET"))
    with pytest.raises(NotFoundError, match="no collection"):
        list(TciaSource(tcia, "NOPE", series=[server.uids["a"]]))
    assert {i.id for i in TciaSource(tcia, "tcia-test")} == {server.uids["a"], server.uids["b"]}  # any case


def test_source_needs_a_filter(tcia):
    with pytest.raises(InvalidInputError, match="collection, patient, study or series"):
        TciaSource(tcia, modality="CT")


def test_source_and_items_pickle(server, tcia, files):
    source = pickle.loads(pickle.dumps(TciaSource(tcia, COLLECTION)))
    item = next(i for i in source if i.id == server.uids["a"])
    again = pickle.loads(pickle.dumps(item))
    assert again.files.tcia.base_url == server.url
    assert sorted(again.files()) == sorted(files["a"])


def test_item_from_origin(server, files):
    origin = {"source": "tcia", "base_url": server.url, "series": server.uids["a"]}
    item = any_item_from_origin(server.uids["a"], origin, {"ImageCount": 3})
    assert isinstance(item, SeriesItem) and item.id == server.uids["a"] and item.origin == origin
    assert sorted(item.files()) == sorted(files["a"])


def test_a_filter_given_twice_must_agree(tcia):
    assert len(tcia.series(COLLECTION, patient="0007", PatientId="0007")) == 1
    with pytest.raises(InvalidInputError, match="PatientID given twice"):
        tcia.series(COLLECTION, patient="0007", PatientId="P-1")


class TestTciaSourceKit(SourceTests):
    """The shared source checks over the local NBIA stand-in."""

    @pytest.fixture
    def source(self, tcia) -> TciaSource:
        return TciaSource(tcia, COLLECTION)

    @pytest.fixture
    def bad_item_id(self, server) -> str:
        return server.uids["b"]

    @pytest.fixture
    def bad_source(self, server, tcia, files, bad_item_id) -> TciaSource:
        server.zips[bad_item_id] = traversal_zip(files["b"])
        return TciaSource(tcia, COLLECTION)

    @pytest.fixture
    def byte_reads(self, server) -> Callable[[], int]:
        return lambda: len(server.requests_to("getImage"))
