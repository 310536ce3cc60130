"""IDC source: the real packaged index queried offline; series fetched from a local S3 bucket laid out like IDC's."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from archivestore.errors import BadItem, InvalidInputError, NotFoundError
from archivestore.sources import IdcIndex, IdcSource, SeriesItem
from archivestore.sources import item_from_origin as any_item_from_origin
from archivestore.sources.idc import EXTRA_HINT, collection_id, item_from_origin
from archivestore.testing.idc import INDEX_SCHEMA, crdc_uuid, idc_series_row, populate_idc_bucket, write_idc_index
from archivestore.testing.sources import SourceTests

pytest.importorskip("duckdb")
pydicom = pytest.importorskip("pydicom")
dicom = pytest.importorskip("archivestore.testing.dicom")


def of_patient(files: list[tuple[str, bytes]], patient: str) -> list[tuple[str, bytes]]:
    """The series with another PatientID."""
    out = []
    for name, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PatientID = patient
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append((name, buffer.getvalue()))
    return out


def sop_uid(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def uid_of(files: list[tuple[str, bytes]]) -> str:
    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)


# ---------------------------------------------------------------- the real packaged index, offline


@pytest.fixture(scope="module")
def packaged() -> IdcIndex:
    pytest.importorskip("idc_index_data")
    return IdcIndex()


def test_packaged_index_schema_is_the_one_the_test_bucket_writes(packaged):
    described = packaged.sql("DESCRIBE SELECT * FROM index")
    assert list(zip(described["column_name"], described["column_type"], strict=True)) == list(INDEX_SCHEMA)


def test_sql_and_filters_agree_on_the_packaged_index(packaged):
    counted = packaged.sql("SELECT Modality, count(*) AS n FROM index WHERE collection_id = ? GROUP BY Modality",
                           ["nsclc_radiomics"])
    expected = dict(zip(counted["Modality"], counted["n"], strict=True))
    rows = packaged.series(collection="NSCLC-Radiomics", modality=["ct", "SEG"])
    assert len(rows) == expected["CT"] + expected["SEG"] > 0
    assert set(rows["Modality"]) == {"CT", "SEG"} and set(rows["collection_id"]) == {"nsclc_radiomics"}
    patient = rows["PatientID"].iloc[0]
    one = packaged.series(collection="nsclc_radiomics", patient=patient)
    assert set(one["PatientID"]) == {patient} and len(one) >= len(rows[rows["PatientID"] == patient])
    study = one["StudyInstanceUID"].iloc[0]
    assert set(packaged.series(study=study)["StudyInstanceUID"]) == {study}
    uid = one["SeriesInstanceUID"].iloc[-1]
    assert packaged.series(series=[uid])["SeriesInstanceUID"].tolist() == [uid]
    by_sql = packaged.series(sql=f"SELECT SeriesInstanceUID FROM index WHERE PatientID = '{patient}';")
    assert set(by_sql["SeriesInstanceUID"]) == set(one["SeriesInstanceUID"])


def test_every_portal_collection_name_maps_to_its_id(packaged):
    names = packaged.sql("SELECT collection_name, collection_id FROM collections_index")
    assert len(names) > 100
    assert {collection_id(n): i for n, i in zip(names["collection_name"], names["collection_id"], strict=True)} == \
        dict(zip(names["collection_id"], names["collection_id"], strict=True))
    assert set(names["collection_id"]) <= set(packaged.collections())


def test_misspelt_ids_get_one_line_with_the_closest(packaged):
    with pytest.raises(NotFoundError) as caught:
        packaged.series(collection="NSCLC-Radiomic")
    message = str(caught.value)
    assert "\n" not in message and "'NSCLC-Radiomic'" in message
    assert message.split("closest: ")[1].split(", ")[0] == "nsclc_radiomics"
    assert isinstance(caught.value, KeyError)
    with pytest.raises(NotFoundError, match=r"no patient 'LUNG1-1' in collection nsclc_radiomics; closest: LUNG1-001"):
        packaged.series(collection="nsclc_radiomics", patient="LUNG1-1")
    real = packaged.sql("SELECT SeriesInstanceUID FROM index WHERE collection_id = 'lidc_idri' LIMIT 1").iloc[0, 0]
    with pytest.raises(NotFoundError, match=rf"no series '{real[:-1]}' in the IDC index; closest: {real}"):
        packaged.series(series=real[:-1])
    with pytest.raises(NotFoundError, match="no modality 'CTT'.*closest: CT"):
        packaged.series(collection="lidc_idri", modality="CTT")


def test_bad_sql_is_invalid_input_with_duckdbs_message(packaged):
    with pytest.raises(InvalidInputError, match="syntax error"):
        packaged.sql("SELEC SeriesInstanceUID FROM index")
    with pytest.raises(InvalidInputError, match="SeriesInstanceUID column"):
        packaged.series(sql="SELECT PatientID FROM index")


def test_index_pickles_as_its_path(packaged):
    again = pickle.loads(pickle.dumps(packaged))
    assert again.path == packaged.path and again.columns == packaged.columns


# ---------------------------------------------------------------- a local bucket laid out like idc-open-data


@pytest.fixture(scope="module")
def series_files() -> list[list[tuple[str, bytes]]]:
    """Three CT series of two patients and a SEG of the first (C's builders over pydicom's shipped files)."""
    first = of_patient(dicom.ct_series(3, seed="idc-a"), "PAT-1")
    seg = dicom.segmentation(first, dicom.blob_masks((3, 128, 128), segments=1), seed="idc-seg")
    return [first, of_patient(dicom.ct_series(2, seed="idc-b"), "PAT-1"),
            of_patient(dicom.ct_series(4, seed="idc-c"), "PAT-2"), seg]


@pytest.fixture
def bucket(s3_env) -> tuple[object, str]:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True), f"idc-open-data-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def idc(bucket, series_files, tmp_path, s3_env) -> dict:
    """The series in a fresh bucket, the index parquet, and the row of each series by its uid."""
    fs, name = bucket
    rows = populate_idc_bucket(fs, series_files, tmp_path / "index.parquet", bucket=name, collection_id="test_ct")
    return {"fs": fs, "bucket": name, "rows": {r["SeriesInstanceUID"]: r for r in rows},
            "index": tmp_path / "index.parquet", "options": {"endpoint_url": s3_env}}


def test_series_come_with_exactly_their_files(idc, series_files):
    source = IdcSource(idc["index"], collection="Test-CT", source_options=idc["options"])
    items = list(source)
    assert len(source) == len(items) == 4 and all(isinstance(i, SeriesItem) for i in items)
    assert {i.id for i in items} == {uid_of(f) for f in series_files}
    by_uid = {uid_of(f): f for f in series_files}
    for item in items:
        expected = sorted((f"{crdc_uuid(sop_uid(data))}.dcm", data) for _, data in by_uid[item.id])
        assert item.files() == expected
        row = idc["rows"][item.id]
        assert {k: v for k, v in item.metadata.items() if k != "viewer_url"} == row
        assert item.metadata["instanceCount"] == len(expected)
        assert item.metadata["viewer_url"].endswith(f"&initialSeriesInstanceUID={item.id}")
        assert item.where == f"s3://{idc['bucket']}/{row['crdc_series_uuid']}/" == item.origin["url"]
        assert item.origin["source"] == "idc" and item.origin["series"] == item.id
    assert source.problems == []


def test_filters_and_sql_select_from_a_custom_index(idc, series_files):
    def ids(**selection: object) -> set[str]:
        return {i.id for i in IdcSource(idc["index"], source_options=idc["options"], **selection)}

    first, second, third, seg = (uid_of(f) for f in series_files)
    assert ids(patient="PAT-1") == {first, second, seg}
    assert ids(patient=["PAT-1", "PAT-2"], modality="seg") == {seg}
    assert ids(collection="test_ct", modality=["CT"]) == {first, second, third}
    assert ids(sql="SELECT SeriesInstanceUID FROM index WHERE instanceCount = 4 -- the longest") == {third}
    assert ids(series=[second, third]) == {second, third}
    with pytest.raises(NotFoundError, match="no modality 'MR' in the IDC index; closest: "):
        IdcSource(idc["index"], collection="test_ct", modality=["CT", "MR"])
    with pytest.raises(NotFoundError, match="no collection 'test_c' in the IDC index; closest: test_ct"):
        IdcSource(idc["index"], collection="test_c")
    with pytest.raises(NotFoundError, match="no patient 'PAT-3' in collection test_ct; closest: PAT-1, PAT-2"):
        IdcSource(idc["index"], collection="test_ct", patient="PAT-3")
    with pytest.raises(InvalidInputError, match="choose series"):
        IdcSource(idc["index"], modality="CT")


def test_a_missing_object_fails_only_its_series(idc, series_files):
    fs, name = idc["fs"], idc["bucket"]
    whole, broken, gone, _ = (idc["rows"][uid_of(f)] for f in series_files)
    fs.rm(sorted(fs.find(f"{name}/{broken['crdc_series_uuid']}/"))[0])
    fs.rm(f"{name}/{gone['crdc_series_uuid']}/", recursive=True)
    loaded, failed = {}, {}
    for item in IdcSource(idc["index"], modality="CT", patient=["PAT-1", "PAT-2"], source_options=idc["options"]):
        try:
            loaded[item.id] = item.files()
        except BadItem as exc:
            failed[exc.item_id] = str(exc)
    assert list(loaded) == [whole["SeriesInstanceUID"]] and len(loaded[whole["SeriesInstanceUID"]]) == 3
    assert set(failed) == {broken["SeriesInstanceUID"], gone["SeriesInstanceUID"]}
    assert failed[broken["SeriesInstanceUID"]].startswith(broken["SeriesInstanceUID"] + ": s3://")
    assert "1 .dcm objects, the index says 2 instances" in failed[broken["SeriesInstanceUID"]]
    assert "no .dcm objects" in failed[gone["SeriesInstanceUID"]]


def test_items_are_listed_before_the_bucket_has_them(bucket, series_files, tmp_path, s3_env):
    fs, name = bucket
    rows = [idc_series_row(files, collection_id="test_ct", bucket=name) for files in series_files]
    write_idc_index(rows, tmp_path / "index.parquet")
    source = IdcSource(tmp_path / "index.parquet", collection="test_ct", source_options={"endpoint_url": s3_env},
                       progress=True)
    items = list(pickle.loads(pickle.dumps(source)))  # listed and pickled before the bucket exists
    assert sorted(i.id for i in items) == sorted(r["SeriesInstanceUID"] for r in rows)
    populate_idc_bucket(fs, series_files, bucket=name)
    item = pickle.loads(pickle.dumps(next(i for i in items if i.id == uid_of(series_files[0]))))
    assert [data for _, data in item.files()] == [data for _, data in sorted(
        (crdc_uuid(sop_uid(d)), d) for _, d in series_files[0])]


def test_fetched_again_from_the_origin_without_secrets(idc, series_files, s3_env):
    options = {"endpoint_url": s3_env, "anon": False, "key": "testing", "secret": "testing",
               "client_kwargs": {"region_name": "us-east-1", "aws_session_token": "abc"}}
    item = next(iter(IdcSource(idc["index"], series=uid_of(series_files[0]), source_options=options)))
    assert item.origin["source_options"] == {"endpoint_url": s3_env, "anon": False,
                                             "client_kwargs": {"region_name": "us-east-1"}}
    again = any_item_from_origin(item.id, item.origin, item.metadata)
    assert isinstance(again, SeriesItem) and again.files() == item.files()
    assert item_from_origin(item.id, item.origin, item.metadata).where == item.where


class TestIdcSourceKit(SourceTests):
    """The shared source checks over the local bucket."""

    @pytest.fixture
    def source(self, idc) -> IdcSource:
        return IdcSource(idc["index"], collection="test_ct", source_options=idc["options"])

    @pytest.fixture
    def bad_item_id(self, series_files) -> str:
        return uid_of(series_files[1])

    @pytest.fixture
    def bad_source(self, idc, bad_item_id) -> IdcSource:
        fs, name = idc["fs"], idc["bucket"]
        fs.rm(sorted(fs.find(f"{name}/{idc['rows'][bad_item_id]['crdc_series_uuid']}/"))[0])
        return IdcSource(idc["index"], collection="test_ct", source_options=idc["options"])

    @pytest.fixture
    def byte_reads(self, monkeypatch) -> Callable[[], int]:
        """Objects read from the bucket (s3fs's ``_cat_file``, which the series loader uses)."""
        import s3fs

        reads: list[str] = []
        original = s3fs.S3FileSystem._cat_file

        async def counting(fs: object, path: str, *args: object, **kwargs: object) -> bytes:
            reads.append(path)
            return await original(fs, path, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", counting)
        s3fs.S3FileSystem.clear_instance_cache()  # instances bind their sync methods when made
        return lambda: len(reads)


def test_sources_import_without_the_idc_extra(tmp_path):
    blocked = "import sys\nfor m in ('duckdb', 's3fs', 'idc_index_data'): sys.modules[m] = None\n"
    code = blocked + ("import archivestore.sources as s\n"
                      "try:\n    s.IdcIndex()\nexcept ModuleNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert EXTRA_HINT in out and "idc_index_data" in out


def test_an_index_without_the_columns_is_refused(tmp_path):
    import duckdb

    path = tmp_path / "other.parquet"
    duckdb.sql("SELECT 1 AS x").write_parquet(str(path))
    with pytest.raises(InvalidInputError, match="not an IDC index: no column collection_id"):
        IdcIndex(path).sql("SELECT * FROM index")
    with pytest.raises(NotFoundError, match="no IDC index parquet"):
        IdcIndex(Path(tmp_path / "absent.parquet"))
