"""Viewer and instance URLs equal idc-index's (``IDCClient.get_viewer_URL`` / ``get_instance_file_URL``).

The expected URLs below are recorded from idc-index's code (``idc_index/index.py``, the f-strings of
``get_viewer_URL`` and the suffix rule of ``get_instance_file_URL``) for real UIDs of the index that
idc-index-data 25.0.5 ships: LUNG1-001 of NSCLC-Radiomics (CT, SEG, SR, RTSTRUCT in one study), an
SM series of bonemarrowwsi_pediatricleukemia, and an ANN series in a study that also holds SM.
"""

from __future__ import annotations

import pandas as pd
import pytest

from archivestore.cli import main
from archivestore.errors import NotFoundError

pytest.importorskip("duckdb")

BASE = "https://viewer.imaging.datacommons.cancer.gov"
LUNG1_STUDY = "1.3.6.1.4.1.32722.99.99.239341353911714368772597187099978969331"
LUNG1_CT = "1.3.6.1.4.1.32722.99.99.298991776521342375010861296712563382046"
SM_STUDY = "1.2.826.0.1.3680043.8.498.32796004339808195676349160117240960750"
SM_SERIES = "1.2.826.0.1.3680043.8.498.11363257719279170754597091350157050426"
RECORDED = {
    (LUNG1_CT, None): f"{BASE}/v3/viewer/?StudyInstanceUIDs={LUNG1_STUDY}&initialSeriesInstanceUID={LUNG1_CT}",
    (LUNG1_STUDY, None): f"{BASE}/v3/viewer/?StudyInstanceUIDs={LUNG1_STUDY}",
    (LUNG1_CT, "ohif_v2"): f"{BASE}/viewer/{LUNG1_STUDY}?SeriesInstanceUID={LUNG1_CT}",
    (LUNG1_STUDY, "ohif_v2"): f"{BASE}/viewer/{LUNG1_STUDY}",
    (LUNG1_CT, "slim"): f"{BASE}/slim/studies/{LUNG1_STUDY}/series/{LUNG1_CT}",
    (SM_SERIES, None): f"{BASE}/slim/studies/{SM_STUDY}/series/{SM_SERIES}",
    (SM_STUDY, None): f"{BASE}/slim/studies/{SM_STUDY}",
    (SM_SERIES, "ohif_v3"): f"{BASE}/v3/viewer/?StudyInstanceUIDs={SM_STUDY}&initialSeriesInstanceUID={SM_SERIES}",
}


@pytest.fixture(scope="module")
def packaged():
    pytest.importorskip("idc_index_data")
    from archivestore.sources.idc import IdcIndex

    return IdcIndex()


@pytest.mark.parametrize(("uid", "viewer"), list(RECORDED))
def test_viewer_urls_equal_idc_index(packaged, uid, viewer):
    from archivestore.sources.idc._urls import viewer_urls

    table = viewer_urls(packaged, [uid], viewer=viewer)
    assert table["viewer_url"].tolist() == [RECORDED[uid, viewer]]


def test_a_non_sm_series_of_a_study_with_sm_opens_in_slim(packaged):
    from archivestore.sources.idc._urls import viewer_urls

    row = packaged.sql("SELECT StudyInstanceUID, SeriesInstanceUID FROM index WHERE Modality = 'ANN' AND "
                       "StudyInstanceUID IN (SELECT StudyInstanceUID FROM index WHERE Modality = 'SM') "
                       "ORDER BY SeriesInstanceUID LIMIT 1").iloc[0]
    url = viewer_urls(packaged, [row.SeriesInstanceUID])["viewer_url"][0]
    assert url == f"{BASE}/slim/studies/{row.StudyInstanceUID}/series/{row.SeriesInstanceUID}"


def test_cli_viewer_url_lines_and_the_series_table(packaged, tmp_path, capsys):
    assert main(["idc", "viewer-url", LUNG1_CT, SM_STUDY]) == 0
    assert capsys.readouterr().out.splitlines() == [RECORDED[LUNG1_CT, None], RECORDED[SM_STUDY, None]]
    path = tmp_path / "series.csv"
    assert main(["idc", "series", "--series", LUNG1_CT, SM_SERIES, "--csv", str(path)]) == 0
    table = pd.read_csv(path, dtype=str).set_index("SeriesInstanceUID")
    assert table.loc[LUNG1_CT, "viewer_url"] == RECORDED[LUNG1_CT, None]
    assert table.loc[SM_SERIES, "viewer_url"] == RECORDED[SM_SERIES, None]
    assert main(["idc", "viewer-url", LUNG1_CT + "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no series or study '{LUNG1_CT}9'" in err


def test_unknown_uid_is_not_found(packaged):
    from archivestore.sources.idc._urls import viewer_urls

    with pytest.raises(NotFoundError, match="no series or study 'nope'"):
        viewer_urls(packaged, ["nope"])


def test_instance_urls_match_the_bucket_layout_and_gcs_names(tmp_path, s3_env, capsys):
    import uuid

    import s3fs

    dicom = pytest.importorskip("archivestore.testing.dicom")
    from archivestore.testing.idc import populate_idc_bucket
    from archivestore.testing.idc_instances import write_instance_index

    series = [dicom.ct_series(2, seed="url-a"), dicom.ct_series(3, seed="url-b")]
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    bucket = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    populate_idc_bucket(fs, series, tmp_path / "index.parquet", bucket=bucket)
    instances = write_instance_index(series, tmp_path / "instances.parquet")
    sops = instances["SOPInstanceUID"].tolist()
    assert main(["idc", "instance-url", *sops[::-1], "--index", str(tmp_path / "index.parquet"),
                 "--instance-index", str(tmp_path / "instances.parquet")]) == 0
    urls = capsys.readouterr().out.splitlines()
    assert len(urls) == 5
    for url in urls:  # every URL is an object of the bucket, and each instance's own
        assert fs.exists(url)
    import io

    import pydicom

    assert [str(pydicom.dcmread(io.BytesIO(fs.cat(u)), stop_before_pixels=True).SOPInstanceUID)
            for u in urls] == sops[::-1]
    from archivestore.sources.idc._urls import instance_url

    assert instance_url("s3://idc-open-data-two/abc/*", "u1", gcs=True) == "s3://idc-open-idc1/abc/u1.dcm"
    assert instance_url("s3://idc-open-data-cr/abc/*", "u1", gcs=True) == "s3://idc-open-cr/abc/u1.dcm"
    assert instance_url("s3://idc-open-data/abc/*", "u1", gcs=True) == "s3://idc-open-data/abc/u1.dcm"
    assert main(["idc", "instance-url", "1.2.3", "--index", str(tmp_path / "index.parquet"),
                 "--instance-index", str(tmp_path / "instances.parquet")]) == 2
    assert "no instance '1.2.3' in the instance index" in capsys.readouterr().err


def test_packaged_series_aws_url_is_bucket_and_uuid(packaged):
    """instance_urls builds series_aws_url from aws_bucket and crdc_series_uuid: the same on the real index."""
    n = packaged.count("SELECT * FROM index WHERE series_aws_url != 's3://' || aws_bucket || '/' || "
                       "crdc_series_uuid || '/*'")
    assert n == 0
