"""Real NBIA answers replayed through the TCIA client and source, from a local server on 127.0.0.1.

The recording (``tcia/getSeries_Soft-tissue-Sarcoma_v2_2025-05-12_first120.json``) is raw JSON: the
first 120 of 612 ``getSeries`` records of a real collection, numbers as JSON numbers and keys
without a value absent.
"""

from __future__ import annotations

import json

import pytest

from archivestore.sources import Tcia, TciaSource
from archivestore.testing.nbia import NbiaServer

SERIES = "tcia/getSeries_Soft-tissue-Sarcoma_v2_2025-05-12_first120.json"
COLLECTIONS = "tcia/getCollectionValues_v2_2025-05-12.json"


@pytest.fixture
def recorded(real):
    records = json.loads((real / SERIES).read_text())
    collections = json.loads((real / COLLECTIONS).read_text())
    with NbiaServer() as server:
        for record in records:
            server.series[record["SeriesInstanceUID"]] = record  # served as recorded
        server.collections = collections
        yield server, records


def test_the_120_real_getseries_records_are_typed_and_complete_in_queries(recorded):
    server, records = recorded
    table = Tcia(server.url, progress=False).series("Soft-tissue-Sarcoma")
    assert len(table) == 120 and table["SeriesInstanceUID"].tolist() == [r["SeriesInstanceUID"] for r in records]
    assert set(table.columns) == {key for r in records for key in r}  # no field lost
    assert {table[c].dtype.kind for c in ("ImageCount", "FileSize", "SeriesNumber")} == {"i"}
    assert table["ImageCount"].tolist() == [r["ImageCount"] for r in records]
    missing = [i for i, r in enumerate(records) if "SoftwareVersions" not in r]
    assert missing and table.loc[missing, "SoftwareVersions"].isna().all()  # absent keys: missing, not ""
    assert (table["PatientID"] == [r["PatientID"] for r in records]).all()  # ids stay strings


def test_the_120_real_records_become_items_with_their_record_and_image_count(recorded):
    server, records = recorded
    source = TciaSource(Tcia(server.url, progress=False), "soft-tissue-sarcoma")  # the portal's spelling, any case
    items = list(source)
    assert source.problems == [] and [i.id for i in items] == [r["SeriesInstanceUID"] for r in records]
    for item, record in zip(items, records, strict=True):
        assert item.metadata == record
        assert item.files.expected == record["ImageCount"]  # a short zip is caught against it
        assert item.origin == {"source": "tcia", "base_url": server.url, "series": record["SeriesInstanceUID"]}


def test_the_real_collection_list(real):
    names = json.loads((real / COLLECTIONS).read_text())
    with NbiaServer() as server:
        server.collections = names
        table = Tcia(server.url, progress=False).collections()
    assert table["Collection"].tolist() == [n["Collection"] for n in names] and len(table) == 135


def test_the_120_real_records_in_tcia_series(recorded, tmp_path):
    import pandas as pd

    from archivestore.cli import main

    server, records = recorded
    out = tmp_path / "series.csv"
    assert main(["tcia", "series", "--collection", "Soft-tissue-Sarcoma", "--base-url", server.url,
                 "--csv", str(out)]) == 0
    table = pd.read_csv(out, dtype={"PatientID": str})
    assert len(table) == 120 and set(table.columns) == {key for r in records for key in r}
    assert table["FileSize"].tolist() == [r["FileSize"] for r in records]
