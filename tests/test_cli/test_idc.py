"""`archivestore idc sql|series|collections` on the packaged index and a test index: tables, CSV, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from archivestore.cli import main

pytest.importorskip("duckdb")
dicom = pytest.importorskip("archivestore.testing.dicom")


@pytest.fixture(scope="module")
def packaged() -> None:
    pytest.importorskip("idc_index_data")


@pytest.fixture(scope="module")
def test_index(tmp_path_factory) -> str:
    from archivestore.testing.idc import idc_series_row, write_idc_index

    rows = [idc_series_row(dicom.ct_series(n, seed=f"cli-idc-{n}"), collection_id="cli_test") for n in (2, 3)]
    path = tmp_path_factory.mktemp("idc") / "index.parquet"
    write_idc_index(rows, path)
    return str(path)


def test_sql_prints_a_table(packaged, capsys):
    query = "SELECT collection_id, count(*) AS n FROM index WHERE collection_id = 'nsclc_radiomics' GROUP BY 1"
    assert main(["idc", "sql", query]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["collection_id", "n"] and row.split()[0] == "nsclc_radiomics" and int(row.split()[1]) > 0


def test_series_by_portal_name_as_csv_agrees_with_sql(packaged, tmp_path, capsys):
    path = tmp_path / "series.csv"
    assert main(["idc", "series", "--collection", "NSCLC-Radiomics", "--modality", "SEG", "RTSTRUCT",
                 "--csv", str(path)]) == 0
    table = pd.read_csv(path, dtype=str)
    count = tmp_path / "count.csv"
    assert main(["idc", "sql", "SELECT count(*) AS n FROM index WHERE collection_id = 'nsclc_radiomics' "
                 "AND Modality IN ('SEG', 'RTSTRUCT')", "--csv", str(count)]) == 0
    assert len(table) == int(pd.read_csv(count)["n"][0]) > 0
    assert set(table["Modality"]) == {"SEG", "RTSTRUCT"} and "crdc_series_uuid" in table.columns


def test_a_misspelt_collection_and_bad_sql_are_one_line(packaged, capsys):
    assert main(["idc", "series", "--collection", "NSCLC-Radiomic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("archivestore: error: no collection 'nsclc_radiomic'") and "closest: nsclc_radiomics" in err
    assert main(["idc", "sql", "SELEC 1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "syntax error" in err


def test_a_custom_index_its_collections_and_columns(test_index, capsys):
    assert main(["idc", "collections", "--index", test_index, "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "collection_id,series,patients,size_GB" and lines[1].startswith("cli_test,2,1,")
    assert main(["idc", "series", "--index", test_index, "--collection", "cli_test",
                 "--columns", "SeriesInstanceUID,instanceCount"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SeriesInstanceUID", "instanceCount"]
    assert sorted(int(r.split()[1]) for r in out[1:]) == [2, 3]
    assert main(["idc", "series", "--index", test_index, "--patient", "1CT1", "--columns", "nope"]) == 2
    assert "no column nope" in capsys.readouterr().err


def test_a_missing_extra_is_one_line_naming_it():
    code = ("import sys\nsys.modules['duckdb'] = None\nfrom archivestore.cli import main\n"
            "sys.exit(main(['idc', 'sql', 'SELECT 1']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pip install 'archivestore[idc]'" in proc.stderr
