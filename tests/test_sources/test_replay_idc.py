"""Real rows of IDC's index (idc-index-data 25.0.5) through the IDC source: all three buckets, joined values.

``idc/idc_index_v25_rows_*.csv`` are rows of the index parquet the package ships, written as CSV (a
fragment: the first rows of RIDER Breast MRI, and rows chosen for the buckets ``idc-open-data-cr`` and
``idc-open-data-two`` and for values joined by commas). They are made a parquet again here (DuckDB) and
queried as the index; ``idc/s5cmd_ls_series_prefix.txt`` shows the object layout the URLs point at.
"""

from __future__ import annotations

import pytest

pytest.importorskip("duckdb")

ROWS = ("idc/idc_index_v25_rows_rider_breast_mri.csv", "idc/idc_index_v25_rows_other_buckets_and_mixed_values.csv")


@pytest.fixture
def index(real, tmp_path):
    import duckdb

    path = tmp_path / "index.parquet"
    files = ", ".join(f"'{real / name}'" for name in ROWS)
    duckdb.sql(f"SELECT * FROM read_csv([{files}], header = true, union_by_name = true)").write_parquet(str(path))
    rows = duckdb.sql(f"SELECT * FROM read_csv([{files}], header = true, union_by_name = true)").df()
    return path, rows


def test_real_rows_become_items_on_their_own_buckets(index, real):
    from archivestore.sources.idc import IdcIndex, IdcSource

    path, rows = index
    source = IdcSource(IdcIndex(path), collection=sorted(set(rows["collection_id"])))
    items = {item.id: item for item in source}
    assert source.problems == [] and set(items) == set(rows["SeriesInstanceUID"])
    for row in rows.to_dict("records"):
        item = items[row["SeriesInstanceUID"]]
        assert item.where == f"s3://{row['aws_bucket']}/{row['crdc_series_uuid']}/"  # bucket + uuid, not series_aws_url
        assert item.origin["instances"] == row["instanceCount"]
        assert item.metadata["TransferSyntaxUID"] == row["TransferSyntaxUID"]  # joined values kept as they are
    assert {item.where.split("/")[2] for item in items.values()} == {"idc-open-data", "idc-open-data-cr",
                                                                    "idc-open-data-two"}
    assert any("," in str(item.metadata["TransferSyntaxUID"]) for item in items.values())
    listing = (real / "idc/s5cmd_ls_series_prefix.txt").read_text()
    assert "s3://idc-open-data/e127d258-37c2-47bb-a7d1-1faa7f47f47a/5dce0cf0-4694-4dff-8f9e-2785bf179267.dcm" in listing
