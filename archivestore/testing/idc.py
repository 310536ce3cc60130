"""A stand-in for NCI Imaging Data Commons: a bucket laid out like ``idc-open-data`` and its index parquet.

>>> fs = s3fs.S3FileSystem(endpoint_url=endpoint)                          # doctest: +SKIP
>>> rows = populate_idc_bucket(fs, [series_a, series_b], tmp / "index.parquet")  # doctest: +SKIP
>>> source = IdcSource(tmp / "index.parquet", collection="archivestore_test",
...                    source_options={"endpoint_url": endpoint})           # doctest: +SKIP

Each series (a list of ``(name, DICOM bytes)``) is written as ``<bucket>/<crdc_series_uuid>/
<crdc_instance_uuid>.dcm`` with public-read objects (the real buckets are public), and described by
one index row with the columns and DuckDB types of the real ``idc_index.parquet``
(:data:`INDEX_SCHEMA`), its values read from the DICOM headers as IDC fills them. The UUIDs are
derived from the DICOM UIDs, so the same series always lands under the same prefix.
Needs pydicom and duckdb.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["INDEX_SCHEMA", "crdc_uuid", "idc_series_row", "populate_idc_bucket", "write_idc_index"]

INDEX_SCHEMA: tuple[tuple[str, str], ...] = (
    ("collection_id", "VARCHAR"), ("analysis_result_id", "VARCHAR"), ("PatientID", "VARCHAR"),
    ("SeriesInstanceUID", "VARCHAR"), ("StudyInstanceUID", "VARCHAR"), ("source_DOI", "VARCHAR"),
    ("PatientAge", "VARCHAR"), ("PatientSex", "VARCHAR"), ("StudyDate", "VARCHAR"),
    ("StudyDescription", "VARCHAR"), ("BodyPartExamined", "VARCHAR"), ("Modality", "VARCHAR"),
    ("SOPClassUID", "VARCHAR"), ("sop_class_name", "VARCHAR"), ("TransferSyntaxUID", "VARCHAR"),
    ("transfer_syntax_name", "VARCHAR"), ("PhotometricInterpretation", "VARCHAR"),
    ("PixelRepresentation", "VARCHAR"), ("Manufacturer", "VARCHAR"), ("ManufacturerModelName", "VARCHAR"),
    ("SeriesDate", "VARCHAR"), ("SeriesDescription", "VARCHAR"), ("SeriesNumber", "VARCHAR"),
    ("instanceCount", "BIGINT"), ("license_short_name", "VARCHAR"), ("series_init_idc_version", "BIGINT"),
    ("series_revised_idc_version", "BIGINT"), ("aws_bucket", "VARCHAR"), ("crdc_series_uuid", "VARCHAR"),
    ("series_aws_url", "VARCHAR"), ("series_size_MB", "DOUBLE"),
)
"""Columns and DuckDB types of ``idc-index-data`` 25's ``idc_index.parquet``, in its order."""

_HEADER_FIELDS = ("PatientID", "SeriesInstanceUID", "StudyInstanceUID", "PatientAge", "PatientSex",
                  "StudyDescription", "BodyPartExamined", "Modality", "SOPClassUID", "PhotometricInterpretation",
                  "PixelRepresentation", "Manufacturer", "ManufacturerModelName", "SeriesDescription", "SeriesNumber")


def crdc_uuid(dicom_uid: str) -> str:
    """A stable UUID standing for IDC's ``crdc_*_uuid`` of a DICOM UID (IDC's own are random)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, dicom_uid))


def _date(value: Any) -> str | None:
    """A DICOM DA value as IDC's index writes it (``YYYY-MM-DD``)."""
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else None


def idc_series_row(files: Sequence[tuple[str, bytes]], *, collection_id: str, bucket: str = "idc-open-data",
                   source_doi: str | None = None, license_short_name: str = "CC BY 4.0",
                   analysis_result_id: str | None = None, idc_version: int = 1) -> dict[str, Any]:
    """The index row of one series, read from the header of its first instance (all of :data:`INDEX_SCHEMA`)."""
    import pydicom

    first = pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True)
    row: dict[str, Any] = {name: None if first.get(name) is None else str(first.get(name)) for name in _HEADER_FIELDS}
    series_uuid = crdc_uuid(str(first.SeriesInstanceUID))
    syntax = first.file_meta.get("TransferSyntaxUID")
    row.update(
        collection_id=collection_id,
        analysis_result_id=analysis_result_id,
        source_DOI=source_doi,
        StudyDate=_date(first.get("StudyDate")),
        SeriesDate=_date(first.get("SeriesDate")),
        sop_class_name=pydicom.uid.UID(str(first.SOPClassUID)).name if first.get("SOPClassUID") else None,
        TransferSyntaxUID=None if syntax is None else str(syntax),
        transfer_syntax_name=None if syntax is None else pydicom.uid.UID(str(syntax)).name,
        instanceCount=len(files),
        license_short_name=license_short_name,
        series_init_idc_version=idc_version,
        series_revised_idc_version=idc_version,
        aws_bucket=bucket,
        crdc_series_uuid=series_uuid,
        series_aws_url=f"s3://{bucket}/{series_uuid}/*",
        series_size_MB=sum(len(data) for _, data in files) / 1e6,
    )
    return row


def write_idc_index(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write index rows as a parquet file with exactly the columns and types of :data:`INDEX_SCHEMA`."""
    import duckdb

    con = duckdb.connect()
    columns = ", ".join(f'"{name}" {kind}' for name, kind in INDEX_SCHEMA)
    con.execute(f"CREATE TABLE idc_index ({columns})")
    values = [[row.get(name) for name, _ in INDEX_SCHEMA] for row in rows]
    if values:
        con.executemany(f"INSERT INTO idc_index VALUES ({', '.join('?' * len(INDEX_SCHEMA))})", values)
    con.table("idc_index").write_parquet(os.fspath(path))
    con.close()


def populate_idc_bucket(fs: Any, series: Iterable[Sequence[tuple[str, bytes]]],
                        index_path: str | os.PathLike[str] | None = None, *, bucket: str = "idc-open-data",
                        collection_id: str = "archivestore_test", public: bool = True,
                        **row_options: Any) -> list[dict[str, Any]]:
    """Write series into ``bucket`` as IDC lays them out and (optionally) their index parquet.

    Parameters
    ----------
    fs
        An fsspec filesystem, normally ``s3fs.S3FileSystem`` on a local server; the bucket is
        created if missing.
    series
        Each series as ``(name, DICOM bytes)`` of its instances (names are ignored: objects are
        named ``<crdc_instance_uuid>.dcm`` from each SOPInstanceUID).
    index_path
        Where to write the index parquet (a local file), if anywhere.
    public
        Write objects with the ``public-read`` ACL so anonymous reads work as on the real bucket.
    row_options
        Passed to :func:`idc_series_row` (``source_doi``, ``license_short_name``, ...).

    Returns
    -------
    list of dict
        The index rows, one per series.
    """
    import pydicom

    if not fs.exists(bucket):
        fs.mkdir(bucket)
    extra = {"ACL": "public-read"} if public else {}
    rows = []
    for files in series:
        files = list(files)
        row = idc_series_row(files, collection_id=collection_id, bucket=bucket, **row_options)
        for _, data in files:
            sop = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID
            fs.pipe_file(f"{bucket}/{row['crdc_series_uuid']}/{crdc_uuid(str(sop))}.dcm", data, **extra)
        rows.append(row)
    if index_path is not None:
        write_idc_index(rows, index_path)
    return rows
