"""``ingest idc --modality SM`` from a local IDC-like bucket (moto): good slides in, bad ones one line each."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pydicom
import pytest

from archivestore.cli import main
from archivestore.store import open_store
from archivestore.testing.slides import sm_series, synthetic_slide, truncated_frame, without_level

pytest.importorskip("wsidicom")
pytest.importorskip("duckdb")


def _uid(files):
    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)


def test_ingest_idc_slides_from_a_bucket(tmp_path, s3_env, capsys):
    import s3fs

    from archivestore.testing.idc import populate_idc_bucket

    good_jpeg = sm_series(synthetic_slide(seed="cli-jpeg"), codec="jpeg", sparse_levels=(2,))
    good_j2k = sm_series(synthetic_slide(seed="cli-j2k"), codec="jpeg2000", concatenate=2)
    truncated = truncated_frame(sm_series(synthetic_slide(seed="cli-truncated"), codec="jpeg"))
    missing = without_level(sm_series(synthetic_slide(seed="cli-missing"), codec="jpeg"), 0)
    fs = s3fs.S3FileSystem(endpoint_url=s3_env, skip_instance_cache=True)
    bucket = f"idc-open-data-{uuid.uuid4().hex[:8]}"
    index = tmp_path / "index.parquet"
    populate_idc_bucket(fs, [good_jpeg, good_j2k, truncated, missing], index, bucket=bucket,
                        collection_id="test_sm")
    store_path = str(tmp_path / "sm.zarr")
    argv = ["ingest", "idc", "--collection", "Test-SM", "--modality", "SM", "--index", str(index),
            "--store", store_path, "--source-option", f"endpoint_url={s3_env}", "--no-progress"]
    code = main(argv)
    out = capsys.readouterr()
    assert code == 1, out.err   # two bad series: reported, the rest ingested
    failed = [line for line in out.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and "Traceback" not in out.err
    assert any(_uid(truncated) in line and "truncated" in line for line in failed)
    assert any(_uid(missing) in line and "level 0 is missing" in line for line in failed)

    store = open_store(store_path)
    assert sorted(store.slides()) == sorted([_uid(good_jpeg), _uid(good_j2k)])
    table = store.metadata_frame("series")
    assert set(table["store.kind"]) == {"slide"} and set(table.index) == {_uid(good_jpeg), _uid(good_j2k)}
    assert set(table["collection_id"]) == {"test_sm"}
    level2 = store.slide(_uid(good_jpeg), 2)
    assert level2.shape == (150, 200, 3) and level2.attrs["downsample"] == 4
    region = store.slide(_uid(good_j2k), 0)[100:300, 200:500].values
    assert region.shape == (300 - 100, 500 - 200, 3) and region.dtype == np.uint8

    assert main(["info", store_path]) == 0
    assert f"slides: {', '.join(sorted(store.slides()))}" in capsys.readouterr().out
    # a rerun fetches nothing for the complete slides and reports the bad ones again
    assert main(argv) == 1
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]) == 2
