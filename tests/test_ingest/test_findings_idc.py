"""SR findings end to end: TID 1500 reports of three observers from a local IDC-like bucket -> ``findings/<uid>``
(plain xarray) -> ``store.findings()`` -> ``overlap --findings`` (Fleiss' kappa equal to statsmodels')."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pydicom
import pytest
import xarray as xr

from archivestore import open_store
from archivestore.cli import main

dicom = pytest.importorskip("archivestore.testing.dicom")
pytest.importorskip("duckdb")
inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
from archivestore.dicom import read_findings  # noqa: E402
from archivestore.testing import sr  # noqa: E402


def uid_of(files) -> str:
    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def series():
    ct = dicom.ct_series(3, seed="sr-idc")
    ratings = sr.observer_ratings(nodules=10, readers=3, seed=7)
    reports = [sr.measurement_report(ct, said, observer=f"Reader^{'ABC'[k]}", seed=f"sr-idc-{k}")
               for k, said in enumerate(ratings)]
    return {"ct": ct, "reports": reports, "ratings": ratings}


def test_ingest_idc_reports_then_findings_agreement(series, tmp_path, s3_env, capsys):
    import s3fs

    from archivestore.testing.idc import populate_idc_bucket

    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    bucket = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    index = tmp_path / "index.parquet"
    populate_idc_bucket(fs, [*series["reports"], series["ct"]], index, bucket=bucket, collection_id="test_sr")
    store_path = str(tmp_path / "sr.zarr")
    code = main(["ingest", "idc", "--collection", "test_sr", "--index", str(index), "--store", store_path,
                 "--source-option", f"endpoint_url={s3_env}", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err

    store = open_store(store_path)
    frame = store.findings()
    assert len(frame) == 3 * 10 * 4 and set(frame["observer"]) == {"Reader^A", "Reader^B", "Reader^C"}
    ct = uid_of(series["ct"])
    assert set(frame["source_series"]) == {ct}
    first = series["reports"][0]
    expected = read_findings(first).rows
    mine = frame[frame["series"] == uid_of(first)].reset_index(drop=True)
    for k, row in enumerate(expected):
        for name, value in row.items():
            if name == "value" and np.isnan(value):
                assert np.isnan(mine.loc[k, name])
            else:
                assert mine.loc[k, name] == value, name
    plain = xr.open_zarr(store_path, group=store.layout.findings(uid_of(first)), consolidated=False)
    assert plain.sizes["row"] == 40 and plain.attrs["observer"] == "Reader^A"
    table = store.metadata_frame("series")
    assert table.loc[uid_of(first), "store.kind"] == "findings"
    assert len(store.segmentations_of(ct)) == 0

    assert main(["verify", store_path]) == 0  # findings groups are checked like every other group
    capsys.readouterr()
    assert main(["overlap", store_path, "--findings"]) == 0
    printed = capsys.readouterr().out
    assert "1 series x 3 observers; findings matched by tracking_uid" in printed and "fleiss" in printed
    result = open_store(store_path).open_dataset("findings_agreement").load()
    for concept, name in ((sr.MALIGNANCY, "malignancy"), (sr.SUBTLETY, "subtlety")):
        ratings = np.array([[said[name] for said in reader] for reader in series["ratings"]]).T
        counts, _ = inter_rater.aggregate_raters(ratings)
        code = f"{concept.value}:{concept.scheme_designator}"
        assert float(result["kappa"].sel(concept=code)) == pytest.approx(inter_rater.fleiss_kappa(counts), abs=1e-12)
    diameters = np.array([[said["diameter"] for said in reader] for reader in series["ratings"]])
    got = float(result["sd_mean"].sel(measurement="81827009:SCT [mm]"))
    assert got == pytest.approx(diameters.std(axis=0, ddof=1).mean())


def test_a_report_that_is_not_tid1500_fails_alone(series, tmp_path):
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(io.BytesIO(series["reports"][0][0][1]))
    ds.ContentTemplateSequence[0].TemplateIdentifier = "2000"
    del ds.ContentSequence
    ds.SeriesInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    from archivestore.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not a TID 1500 measurement report"):
        read_findings([("bad.dcm", buffer.getvalue())])
