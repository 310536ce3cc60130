"""RTSTRUCT end to end: ``ingest idc`` from a local IDC-like bucket -> ``segmentations/<uid>`` ->
``store.segmentations_of`` beside a SEG -> ``overlap --segmentations`` across RTSTRUCT and SEG raters."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import xarray as xr

from archivestore import open_store
from archivestore.cli import main

dicom = pytest.importorskip("archivestore.testing.dicom")
pytest.importorskip("duckdb")
from archivestore.dicom import RTStructWarning, read_rtstruct, read_series  # noqa: E402
from archivestore.testing import rtstruct  # noqa: E402


@pytest.fixture(scope="module")
def series():
    ct = dicom.ct_series(10, seed="rt-idc", spacing=2.5)
    volume = read_series(ct)[0]
    rt_a = rtstruct.structure_set(ct, rtstruct.observer_rois(volume.array.shape, 0), seed="rt-a",
                                  observer="Reader^A", skipped_contours=True)
    rt_b = rtstruct.structure_set(ct, rtstruct.observer_rois(volume.array.shape, 1), seed="rt-b", observer="Reader^B")
    with pytest.warns(RTStructWarning):
        a = read_rtstruct(rt_a, volume)
    seg = dicom.segmentation(ct, a.labels[:1].astype(bool), seed="rt-seg", creator="Model^Seg")
    absent = rtstruct.structure_set(dicom.ct_series(3, seed="rt-absent"), {"GTV": [(1, np.array(
        [[10.0, 10], [10, 20], [20, 20]]))]}, seed="rt-orphan")
    return {"ct": ct, "volume": volume, "rt_a": rt_a, "rt_b": rt_b, "seg": seg, "absent": absent}


def uid_of(files) -> str:
    import io

    import pydicom

    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)


def test_ingest_idc_rtstructs_then_overlap(series, tmp_path, s3_env, capsys):
    import s3fs

    from archivestore.testing.idc import populate_idc_bucket

    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    bucket = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    index = tmp_path / "index.parquet"
    # the structure sets come first in the index: the ingest still writes the CT before them
    populate_idc_bucket(fs, [series[k] for k in ("rt_a", "absent", "seg", "rt_b", "ct")], index, bucket=bucket,
                        collection_id="test_rt")
    store_path = str(tmp_path / "rt.zarr")
    code = main(["ingest", "idc", "--collection", "test_rt", "--index", str(index), "--store", store_path,
                 "--source-option", f"endpoint_url={s3_env}", "--no-progress"])
    out = capsys.readouterr()
    assert code == 1  # the orphan structure set
    orphan, rt_a, rt_b = uid_of(series["absent"]), uid_of(series["rt_a"]), uid_of(series["rt_b"])
    failed = [line for line in (out.out + out.err).splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith(f"FAILED {orphan}:") and "is not in the store" in failed[0]
    warned = [line for line in (out.out + out.err).splitlines() if line.startswith("WARNING")]
    assert any(rt_a in line and "OPEN_PLANAR" in line for line in warned)

    store = open_store(store_path)
    ct = str(series["volume"].series_instance_uid)
    segs = store.segmentations_of(ct)
    assert sorted(s.attrs["series_instance_uid"] for s in segs) == sorted([rt_a, rt_b, uid_of(series["seg"])])
    stored = xr.open_zarr(store_path, group=store.layout.segmentation(rt_a), consolidated=False)
    with pytest.warns(RTStructWarning):
        expected = read_rtstruct(series["rt_a"], series["volume"])
    np.testing.assert_array_equal(stored["labels"].values, expected.labels)
    assert list(stored["segment_label"].values) == ["GTV", "Nodules"] and stored.attrs["rater"] == "Reader^A"
    np.testing.assert_array_equal(stored["z"].values, series["volume"].z)
    table = store.metadata_frame("series")
    assert table.loc[rt_b, "store.kind"] == "segmentation" and table.loc[rt_b, "store.source_series"] == ct
    study = table.loc[ct, "StudyInstanceUID"]  # the series table carries the viewer URL idc-index gives
    assert table.loc[ct, "viewer_url"] == ("https://viewer.imaging.datacommons.cancer.gov/v3/viewer/"
                                           f"?StudyInstanceUIDs={study}&initialSeriesInstanceUID={ct}")

    # RTSTRUCT and SEG raters alike (segments matched by code: GTV, Nodules, and the SEG's own)
    assert main(["overlap", store_path, "--segmentations"]) == 0
    out = capsys.readouterr().out
    assert "3 raters" in out
    result = open_store(store_path).open_dataset("segmentation_overlap").load()
    a, b = store.segmentation(rt_a), store.segmentation(rt_b)
    for k, name in enumerate(["GTV", "Nodules"]):
        ma, mb = a["labels"].values[k] == 1, b["labels"].values[k] == 1
        dice = 2 * np.count_nonzero(ma & mb) / (np.count_nonzero(ma) + np.count_nonzero(mb))
        got = result["dice"].sel(series=ct, rater="Reader^A", other="Reader^B")
        got = got.where(result["segment_label"] == name, drop=True)
        assert abs(float(got.values.ravel()[0]) - dice) < 1e-9 and 0.5 < dice < 1
