"""`archivestore tcia QUERY` against the local NBIA stand-in: tables, CSV, one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from archivestore.cli import _tcia as cli_tcia
from archivestore.cli import main
from archivestore.sources import tcia
from archivestore.testing.nbia import NbiaServer

dicom = pytest.importorskip("archivestore.testing.dicom")


@pytest.fixture(scope="module")
def server():
    with NbiaServer() as server:
        server.uids = [
            server.add_series(dicom.ct_series(3, seed="cli-a"), collection="CLI-TEST", PatientID="0042"),
            server.add_series(dicom.ct_series(2, seed="cli-b"), collection="CLI-TEST", Modality="MR"),
        ]
        yield server


def test_the_help_names_the_library_hosts():
    assert (cli_tcia.DEFAULT_NBIA_URL, cli_tcia.NLST_URL) == (tcia.DEFAULT_NBIA_URL, tcia.NLST_URL)


def test_series_as_a_table_and_as_csv(server, tmp_path, capsys):
    assert main(["tcia", "series", "--collection", "CLI-TEST", "--modality", "CT", "--base-url", server.url]) == 0
    out = capsys.readouterr().out
    assert server.uids[0] in out and server.uids[1] not in out
    path = tmp_path / "series.csv"
    assert main(["tcia", "series", "--collection", "CLI-TEST", "--csv", str(path), "--base-url", server.url]) == 0
    table = pd.read_csv(path, dtype={"PatientID": str})
    assert sorted(table["ImageCount"]) == [2, 3] and "0042" in set(table["PatientID"])


def test_queries_by_series_uid(server, capsys):
    assert main(["tcia", "metadata", *server.uids, "--csv", "-", "--base-url", server.url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Collection,PatientID,StudyInstanceUID,SeriesInstanceUID")
    assert main(["tcia", "series-size", server.uids[0], "--base-url", server.url]) == 0
    assert "ObjectCount" in capsys.readouterr().out


def test_no_results_and_errors(server, capsys):
    assert main(["tcia", "series", "--collection", "NOTHING-HERE", "--base-url", server.url]) == 0
    assert "no results" in capsys.readouterr().err
    assert main(["tcia", "collections", "--retries", "0", "--base-url", server.url + "wrong/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archivestore: error:") and "404" in err and len(err.strip().splitlines()) == 1
