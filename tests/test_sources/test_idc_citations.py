"""``idc citations``: DOIs of a selection resolved by content negotiation at a local stand-in resolver,
deduplicated, cached on disk (a rerun asks nothing), per-DOI failures, the three formats."""

from __future__ import annotations

import json

import pytest

from archivestore.cli import main
from archivestore.sources.idc._citations import IDC_DOI, citations, normalise_doi, selection_dois
from archivestore.testing.doi import RECORDS, DoiResolver

pytest.importorskip("duckdb")
dicom = pytest.importorskip("archivestore.testing.dicom")

NSCLC = "10.7937/K9/TCIA.2015.PF0M9REI"


@pytest.fixture(scope="module")
def index_path(tmp_path_factory) -> str:
    from archivestore.testing.idc import idc_series_row, write_idc_index

    rows = [idc_series_row(dicom.ct_series(2, seed="doi-a"), collection_id="doi_test", source_doi=NSCLC),
            idc_series_row(dicom.ct_series(2, seed="doi-b"), collection_id="doi_test",
                           source_doi="https://doi.org/10.7937/k9/tcia.2015.pf0m9rei"),  # the same DOI again
            idc_series_row(dicom.ct_series(2, seed="doi-c"), collection_id="doi_test", source_doi="10.9999/unknown"),
            idc_series_row(dicom.ct_series(2, seed="doi-d"), collection_id="other", source_doi=None)]
    path = tmp_path_factory.mktemp("doi") / "index.parquet"
    write_idc_index(rows, path)
    return str(path)


def test_selection_dois_are_deduplicated_with_idc_last(index_path):
    from archivestore.sources.idc import IdcIndex

    index = IdcIndex(index_path)
    assert selection_dois(index, collection="doi_test") == [NSCLC, "10.9999/unknown", IDC_DOI]
    assert selection_dois(index, collection="other") == [IDC_DOI]
    assert selection_dois(index, collection="other", include_idc=False) == []
    assert normalise_doi(" doi:10.1/X ") == "10.1/X" and normalise_doi("http://dx.doi.org/10.1/X") == "10.1/X"


@pytest.mark.parametrize("fmt", ["apa", "bibtex", "json"])
def test_each_format_is_negotiated_and_cached(fmt, tmp_path):
    with DoiResolver() as server:
        first = citations([NSCLC, IDC_DOI, NSCLC.lower()], fmt, resolver=server.url, cache_dir=tmp_path)
        asked = len(server.log)
        again = citations([NSCLC, IDC_DOI], fmt, resolver=server.url, cache_dir=tmp_path)
        assert len(server.log) == asked  # the cache answered
    assert not first.failed and [d for d, _ in first.citations] == [NSCLC, IDC_DOI]
    assert again.cached == 2 and again.citations == first.citations
    accepts = {headers.get("Accept") for path, _, headers in server.log if not path.startswith(("/datacite", "/cros"))}
    expected = {"apa": "text/x-bibliography; style=apa; locale=en-US", "bibtex": "application/x-bibtex",
                "json": "application/vnd.citationstyles.csl+json"}[fmt]
    assert accepts == {expected}
    text = first.render(fmt)
    record = RECORDS[NSCLC.lower()]
    if fmt == "json":
        assert json.loads(text)[0] == record["csl"]
    else:
        assert record[fmt].strip() in text and RECORDS[IDC_DOI][fmt].strip() in text


def test_an_unknown_doi_and_a_landing_page_fail_alone(tmp_path):
    records = {**RECORDS, "10.5555/landing-only": {**RECORDS[IDC_DOI], "negotiation": False}}
    with DoiResolver(records) as server:
        result = citations(["10.9999/unknown", "10.5555/landing-only", IDC_DOI], "apa", resolver=server.url,
                           cache_dir=tmp_path, retries=0)
    assert [d for d, _ in result.citations] == [IDC_DOI]
    reasons = {bad.item_id: bad.reason for bad in result.failed}
    assert "HTTP 404" in reasons["10.9999/unknown"]
    assert "answered text/html" in reasons["10.5555/landing-only"]
    assert not any((tmp_path / "apa").glob(".part-*")) and len(list((tmp_path / "apa").iterdir())) == 1


def test_cli_citations(index_path, tmp_path, capsys):
    with DoiResolver() as server:
        code = main(["idc", "citations", "--collection", "doi_test", "--index", index_path, "--doi-resolver",
                     server.url, "--cache-dir", str(tmp_path), "--format", "bibtex"])
    out = capsys.readouterr()
    assert code == 1  # the unknown DOI
    assert RECORDS[NSCLC.lower()]["bibtex"] in out.out and RECORDS[IDC_DOI]["bibtex"] in out.out
    assert out.err.count("FAILED 10.9999/unknown:") == 1 and "2 citations of 3 DOIs" in out.err
    assert main(["idc", "citations", "--index", index_path]) == 2
    assert "say which series" in capsys.readouterr().err
