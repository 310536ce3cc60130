"""``archivestore ingest tcia|idc`` end to end: a local NBIA v4 stand-in and a local S3 bucket laid out like IDC's."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from archivestore import open_store
from archivestore.cli import main

dicom = pytest.importorskip("archivestore.testing.dicom")
from archivestore.dicom import read_segmentation, read_series  # noqa: E402
from archivestore.testing.nbia import NbiaServer  # noqa: E402


@pytest.fixture(scope="module")
def series():
    ct = dicom.ct_series(4, seed="cli-ct")
    volume = read_series(ct)[0]
    seg_a = dicom.segmentation(ct, dicom.blob_masks(volume.array.shape, 2, seed=3), seed="cli-a", creator="Doe^Jane")
    seg_b = dicom.segmentation(ct, dicom.blob_masks(volume.array.shape, 2, seed=4), seed="cli-b", algorithm="net",
                               creator=None)
    return {"ct": ct, "seg_a": seg_a, "seg_b": seg_b, "volume": volume}


def test_ingest_tcia_then_overlap_of_segmentations(series, tmp_path, capsys):
    with NbiaServer() as server:
        uids = {name: server.add_series(series[name], collection="TCIA-CLI", PatientID="P-1",
                                        Modality="SEG" if name != "ct" else "CT")
                for name in ("seg_a", "ct", "seg_b")}
        store_path = str(tmp_path / "tcia.zarr")
        code = main(["ingest", "tcia", "--collection", "TCIA-CLI", "--base-url", server.url, "--store", store_path,
                     "--no-progress", "--retries", "1"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "3 ingested" in out.out
    store = open_store(store_path)
    np.testing.assert_array_equal(store.volume(uids["ct"])["volume"].values, series["volume"].array)
    expected = read_segmentation(series["seg_a"], series["volume"])
    np.testing.assert_array_equal(store.segmentation(uids["seg_a"])["labels"].values, expected.labels)
    assert len(store.segmentations_of(uids["ct"])) == 2
    assert main(["select", store_path, "dicom.Modality == SEG", "--table", "series", "--count"]) == 0
    assert capsys.readouterr().out.strip().endswith("2")
    # the two raters' overlap per segment, equal to counting voxels
    assert main(["overlap", store_path, "--segmentations"]) == 0
    out = capsys.readouterr().out
    assert "1 series x 2 segments x 2 raters" in out
    written = open_store(store_path).open_dataset("segmentation_overlap")
    a = store.segmentation(uids["seg_a"])
    b = store.segmentation(uids["seg_b"])
    for k in range(2):
        ma, mb = a["labels"].values[k] >= 0.5, b["labels"].values[k] >= 0.5
        dice = 2 * np.count_nonzero(ma & mb) / (np.count_nonzero(ma) + np.count_nonzero(mb))
        got = written["dice"].isel(series=0, segment=k).sel(rater=a.attrs["rater"], other=b.attrs["rater"])
        assert abs(float(got) - dice) < 1e-9


def test_ingest_idc_from_a_bucket(series, tmp_path, s3_env, capsys):
    import s3fs

    from archivestore.testing.idc import populate_idc_bucket

    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    bucket = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    index = tmp_path / "index.parquet"
    populate_idc_bucket(fs, [series["ct"], series["seg_a"]], index, bucket=bucket, collection_id="test_ct")
    store_path = str(tmp_path / "idc.zarr")
    code = main(["ingest", "idc", "--collection", "Test-CT", "--index", str(index), "--store", store_path,
                 "--source-option", f"endpoint_url={s3_env}", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    store = open_store(store_path)
    assert len(store.series_ids()) == 2
    uid = str(series["volume"].series_instance_uid)
    np.testing.assert_array_equal(store.volume(uid)["volume"].values, series["volume"].array)
    # a wrong collection: one line naming the closest, no traceback
    code = main(["ingest", "idc", "--collection", "Test-CTT", "--index", str(index), "--store", store_path])
    err = capsys.readouterr().err
    assert code == 2 and "test_ct" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
