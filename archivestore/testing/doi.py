"""A stand-in DOI resolver with content negotiation, on 127.0.0.1 (port 0), as doi.org and the agencies answer.

Modelled on the documented behaviour of doi.org (https://citation.crosscite.org/docs.html), not on
recorded answers:

- ``GET /<doi>`` with an ``Accept`` the DOI's registration agency supports (APA bibliography,
  BibTeX, CSL JSON) answers ``302`` to the agency's content-negotiation URL (``/datacite/...`` or
  ``/crossref/...`` on this server), which answers the citation with that media type.
- Any other ``Accept`` (or a DOI registered without content negotiation) answers ``302`` to the
  DOI's landing page, an HTML page (``200 text/html``) -- what a client must not take for a citation.
- An unknown DOI answers ``404`` with doi.org's HTML "DOI Not Found" page. DOIs match case-insensitively.

``records`` maps a DOI to ``{"agency": "datacite"|"crossref", "negotiation": bool, "apa": str,
"bibtex": str, "csl": dict}``; :data:`RECORDS` holds two (NSCLC-Radiomics' data DOI and IDC's paper).
``server.requests_to("")`` lists what was asked.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from archivestore.testing.faults import Faults
from archivestore.testing.httpserver import Answer, FakeServer, Request

__all__ = ["RECORDS", "DoiResolver"]

_TYPES = {"text/x-bibliography": "apa", "application/x-bibtex": "bibtex",
          "application/vnd.citationstyles.csl+json": "csl"}

RECORDS: dict[str, dict[str, Any]] = {
    "10.7937/k9/tcia.2015.pf0m9rei": {
        "agency": "datacite", "negotiation": True,
        "apa": "Aerts, H. J. W. L., Wee, L., Rios Velazquez, E., Leijenaar, R. T. H., Parmar, C., Grossmann, P., "
               "Carvalho, S., Bussink, J., Monshouwer, R., Haibe-Kains, B., Rietveld, D., Hoebers, F., Rietbergen, "
               "M. M., Leemans, C. R., Dekker, A., Quackenbush, J., Gillies, R. J., Lambin, P. (2014). Data From "
               "NSCLC-Radiomics (version 4) [Data set]. The Cancer Imaging Archive. "
               "https://doi.org/10.7937/K9/TCIA.2015.PF0M9REI\n",
        "bibtex": "@misc{https://doi.org/10.7937/k9/tcia.2015.pf0m9rei,\n  doi = {10.7937/K9/TCIA.2015.PF0M9REI},\n"
                  "  url = {https://www.cancerimagingarchive.net/collection/nsclc-radiomics/},\n"
                  "  author = {Aerts, Hugo J. W. L. and others},\n  title = {Data From NSCLC-Radiomics},\n"
                  "  publisher = {The Cancer Imaging Archive},\n  year = {2014}\n}",
        "csl": {"type": "dataset", "id": "https://doi.org/10.7937/k9/tcia.2015.pf0m9rei",
                "DOI": "10.7937/K9/TCIA.2015.PF0M9REI", "title": "Data From NSCLC-Radiomics",
                "publisher": "The Cancer Imaging Archive", "issued": {"date-parts": [[2014]]}},
    },
    "10.1148/rg.230180": {
        "agency": "crossref", "negotiation": True,
        "apa": "Fedorov, A., Longabaugh, W. J. R., Pot, D., Clunie, D. A., Pieper, S. D., Gibbs, D. L., Bridge, C., "
               "Herrmann, M. D., Homeyer, A., Lewis, R., Aerts, H. J. W. L., Krishnaswamy, D., Thiriveedhi, V. K., "
               "Ciausu, C., Schacherer, D. P., Bontempi, D., Pihl, T., Wagner, U., Farahani, K., Kim, E., Kikinis, R. "
               "(2023). National Cancer Institute Imaging Data Commons: Toward Transparency, Reproducibility, and "
               "Scalability in Imaging Artificial Intelligence. RadioGraphics, 43(12). "
               "https://doi.org/10.1148/rg.230180\n",
        "bibtex": "@article{Fedorov_2023,\n  title={National Cancer Institute Imaging Data Commons},\n"
                  "  volume={43},\n  number={12},\n  journal={RadioGraphics},\n  DOI={10.1148/rg.230180},\n"
                  "  author={Fedorov, Andrey and others},\n  year={2023}\n}",
        "csl": {"type": "article-journal", "DOI": "10.1148/rg.230180", "container-title": "RadioGraphics",
                "title": "National Cancer Institute Imaging Data Commons", "issued": {"date-parts": [[2023, 11]]}},
    },
}


class DoiResolver(FakeServer):
    """doi.org and two agencies' content negotiation in one server (module docstring)."""

    def __init__(self, records: dict[str, dict[str, Any]] | None = None, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.records = {k.lower(): v for k, v in (RECORDS if records is None else records).items()}

    def route(self, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        if parts[0] in ("datacite", "crossref") and len(parts) > 2:
            return self._agency(parts[1], "/".join(parts[2:]))
        if parts[0] == "landing":
            return Answer(200, b"<html><body>landing page</body></html>", "text/html;charset=utf-8")
        doi = request.path.strip("/")
        record = self.records.get(doi.lower())
        if record is None:
            return Answer(404, b"<html><head><title>Error: DOI Not Found</title></head></html>",
                          "text/html;charset=utf-8")
        accept = (request.headers.get("Accept") or "").split(";")[0].strip().lower()
        fmt = _TYPES.get(accept)
        if fmt is None or not record.get("negotiation", True):
            return Answer(302, b"", "text/html", {"Location": f"{self.origin}/landing/{quote(doi)}"})
        return Answer(302, b"", "text/html", {"Location": f"{self.origin}/{record['agency']}/{fmt}/{quote(doi)}"})

    def _agency(self, fmt: str, doi: str) -> Answer:
        record = self.records.get(doi.lower())
        if record is None or fmt not in ("apa", "bibtex", "csl"):
            return Answer(404, b"not found", "text/plain")
        if fmt == "csl":
            return Answer(200, json.dumps(record["csl"]).encode(), "application/vnd.citationstyles.csl+json")
        kind = "text/x-bibliography" if fmt == "apa" else "application/x-bibtex"
        return Answer(200, record[fmt].encode("utf-8"), f"{kind}; charset=utf-8")
