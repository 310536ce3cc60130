"""Citations of an IDC selection: its ``source_DOI`` values resolved by DOI content negotiation, cached on disk.

Invariants:

- **Which DOIs.** The distinct ``source_DOI`` values of the selected index rows (a selection as
  ``idc series`` takes it), deduplicated case-insensitively (DOIs are case-insensitive; the first
  spelling is kept) after stripping ``https://doi.org/``, ``doi:`` and alike, in order of first
  appearance, followed -- as idc-index's ``citations_from_selection`` does -- by IDC's own
  publication :data:`IDC_DOI` unless ``include_idc=False``.
- **How.** ``GET <resolver><DOI>`` with ``Accept`` the format's media type (:data:`FORMATS`; the
  same strings idc-index sends), following the resolver's redirect to the registration agency
  (doi.org answers 302 to DataCite's or Crossref's content negotiation). An answer of another
  media type (doi.org redirects to the landing page when the agency cannot give the format) is a
  failure, never taken for a citation. Requests go through archivestore's HTTP client (retries on
  429/5xx and truncated bodies).
- **Cache.** Each citation is kept under ``cache_dir/<format>/<sha256 of the lower-cased DOI>``
  (written to a temporary file, then renamed: never half a citation), so a rerun, or another
  resolver (a mirror), asks nothing for what is cached. Failures are not cached.
- **Failures** are per DOI (:class:`~archivestore.errors.BadItem` naming the DOI, the URL and the
  reason); the other DOIs are still resolved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from archivestore.errors import APIError, BadItem, InvalidInputError
from archivestore.sources._http import Client
from archivestore.sources.idc import IdcIndex

__all__ = ["DEFAULT_RESOLVER", "FORMATS", "IDC_DOI", "CitationResult", "citations", "default_cache_dir",
           "normalise_doi", "selection_dois"]

DEFAULT_RESOLVER = "https://doi.org/"
IDC_DOI = "10.1148/rg.230180"
"""Fedorov et al., National Cancer Institute Imaging Data Commons (RadioGraphics 2023), which idc-index adds."""
FORMATS = {
    "apa": "text/x-bibliography; style=apa; locale=en-US",
    "bibtex": "application/x-bibtex",
    "json": "application/vnd.citationstyles.csl+json",
}
"""Format name -> the ``Accept`` header sent (idc-index's ``CITATION_FORMAT_*``)."""
_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)


@dataclass
class CitationResult:
    """Resolved citations (``(DOI, text)`` in order; JSON as text) and the DOIs that failed."""

    citations: list[tuple[str, str]] = field(default_factory=list)
    failed: list[BadItem] = field(default_factory=list)
    cached: int = 0
    """How many came from the cache."""

    def render(self, fmt: str) -> str:
        """The citations as one text: APA one a line, BibTeX entries apart by a blank line, JSON an array."""
        if fmt == "json":
            return json.dumps([json.loads(text) for _, text in self.citations], indent=2, ensure_ascii=False)
        separator = "\n\n" if fmt == "bibtex" else "\n"
        return separator.join(text.strip() for _, text in self.citations)


def normalise_doi(value: str) -> str:
    """A DOI without resolver prefixes and surrounding space (``https://doi.org/10.1/X`` -> ``10.1/X``)."""
    return _PREFIX.sub("", str(value).strip()).strip()


def selection_dois(index: IdcIndex, *, include_idc: bool = True, **selection: Any) -> list[str]:
    """The distinct DOIs of the index rows a selection picks (module docstring: order and deduplication).

    ``selection`` takes the arguments of :meth:`IdcIndex.selection` (``collection``, ``patient``,
    ``study``, ``series``, ``modality``, ``sql``); its ids are checked as there.
    """
    query, params = index.selection(**selection)
    rows = index.sql(f'SELECT "source_DOI", min(rn) AS first FROM (SELECT "source_DOI", row_number() OVER () AS rn '
                     f"FROM ({query}\n)) WHERE \"source_DOI\" IS NOT NULL GROUP BY 1 ORDER BY first", params)
    seen: dict[str, str] = {}
    for value in rows["source_DOI"]:
        doi = normalise_doi(value)
        if doi:
            seen.setdefault(doi.lower(), doi)
    if include_idc:
        seen.setdefault(IDC_DOI.lower(), IDC_DOI)
    return list(seen.values())


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/archivestore/citations`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archivestore" / "citations"


def _cache_path(cache_dir: Path, fmt: str, doi: str) -> Path:
    return cache_dir / fmt / hashlib.sha256(doi.lower().encode()).hexdigest()


def _store(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def citations(dois: Iterable[str], fmt: str = "apa", *, resolver: str = DEFAULT_RESOLVER,
              cache_dir: str | os.PathLike[str] | None = None, retries: int = 3,
              timeout: tuple[float, float] = (10.0, 30.0)) -> CitationResult:
    """Resolve DOIs to citations by content negotiation (module docstring).

    Parameters
    ----------
    dois
        The DOIs (deduplicated again, case-insensitively).
    fmt
        ``apa``, ``bibtex`` or ``json`` (CSL JSON).
    resolver
        The DOI resolver's base URL (default ``https://doi.org/``), e.g. a mirror.
    cache_dir
        Where citations are kept (default :func:`default_cache_dir`).
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"no citation format {fmt!r}; one of {', '.join(FORMATS)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    client = Client(resolver, retries=retries, timeout=timeout, pool_size=1)
    client.session.headers["Accept"] = FORMATS[fmt]
    wanted = FORMATS[fmt].split(";")[0].strip()
    result = CitationResult()
    unique: dict[str, str] = {}
    for value in dois:
        unique.setdefault(normalise_doi(value).lower(), normalise_doi(value))
    for doi in unique.values():
        path = _cache_path(cache, fmt, doi)
        if path.is_file():
            result.citations.append((doi, path.read_text(encoding="utf-8")))
            result.cached += 1
            continue
        url = client.url(quote(doi, safe="/"))
        try:
            response = client.get(url, item=doi)
        except APIError as exc:
            result.failed.append(BadItem(doi, url, exc.reason))
            continue
        kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != wanted and not (fmt == "json" and kind == "application/json"):
            result.failed.append(BadItem(doi, response.url or url, f"the resolver answered {kind or 'no type'}, not "
                                         f"{wanted} (no {fmt} citation for this DOI)"))
            continue
        text = response.content.decode("utf-8")
        if fmt == "json":
            try:
                json.loads(text)
            except ValueError:
                result.failed.append(BadItem(doi, response.url or url, "the CSL JSON answer is not JSON"))
                continue
        _store(path, text)
        result.citations.append((doi, text))
    return result
