"""IDC viewer URLs and instance file URLs, as idc-index's ``get_viewer_URL`` / ``get_instance_file_URL`` give them.

Invariants (parity with idc-index's ``IDCClient``, read from its source):

- **Viewer.** The default viewer is Slim when the *study* holds an SM series (whichever series is
  asked for), else OHIF v3; ``viewer`` picks ``ohif_v2``, ``ohif_v3`` or ``slim`` instead. For a
  series the URL names its study and the series, for a study only the study:

  - OHIF v3: ``{BASE}/v3/viewer/?StudyInstanceUIDs=<study>[&initialSeriesInstanceUID=<series>]``
  - OHIF v2: ``{BASE}/viewer/<study>[?SeriesInstanceUID=<series>]``
  - Slim: ``{BASE}/slim/studies/<study>[/series/<series>]``

  with ``BASE = https://viewer.imaging.datacommons.cancer.gov``.
- **Instance file.** ``series_aws_url`` (``s3://<aws_bucket>/<crdc_series_uuid>/*``) without its
  trailing ``*`` + ``crdc_instance_uuid`` + ``.dcm``;
  for Google Cloud (``gcs``) the buckets idc-index maps are renamed (``idc-open-data-two`` ->
  ``idc-open-idc1``, ``idc-open-data-cr`` -> ``idc-open-cr``; ``idc-open-data`` has the same name on
  both). The SOPInstanceUID -> ``crdc_instance_uuid`` mapping comes from an instance index (idc-index's
  ``sm_instance_index`` parquet, or any parquet with ``SOPInstanceUID``, ``SeriesInstanceUID`` and
  ``crdc_instance_uuid``), which ``idc-index-data`` does not ship.
- A UID in neither the series nor the study column (an instance not in the instance index) is a
  :class:`~archivestore.errors.NotFoundError` naming it; nothing is fetched over the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from archivestore.errors import InvalidInputError, NotFoundError
from archivestore.sources.idc._index import IdcIndex

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GCS_BUCKETS", "VIEWERS", "VIEWER_BASE", "instance_url", "instance_urls", "slim_studies", "viewer_url",
           "viewer_urls", "with_viewer_urls"]

VIEWER_BASE = "https://viewer.imaging.datacommons.cancer.gov"
VIEWERS = ("ohif_v3", "ohif_v2", "slim")
GCS_BUCKETS = {"s3://idc-open-data-two/": "s3://idc-open-idc1/", "s3://idc-open-data-cr/": "s3://idc-open-cr/"}
"""AWS bucket URL prefix -> its Google Cloud twin, where the names differ (as idc-index maps them)."""
_INSTANCE_COLUMNS = ("SOPInstanceUID", "SeriesInstanceUID", "crdc_instance_uuid")


def viewer_url(study: str, series: str | None = None, *, modalities: Iterable[str] = (),
               viewer: str | None = None) -> str:
    """The IDC viewer URL of a study, or of one of its series (module docstring).

    Parameters
    ----------
    study
        StudyInstanceUID.
    series
        SeriesInstanceUID to open, or ``None`` for the study.
    modalities
        The modalities of the study's series (``SM`` among them picks Slim by default).
    viewer
        ``ohif_v3``, ``ohif_v2`` or ``slim``; default by modality.
    """
    if viewer is None:
        viewer = "slim" if "SM" in set(modalities) else "ohif_v3"
    if viewer == "ohif_v3":
        tail = f"&initialSeriesInstanceUID={series}" if series else ""
        return f"{VIEWER_BASE}/v3/viewer/?StudyInstanceUIDs={study}{tail}"
    if viewer == "ohif_v2":
        return f"{VIEWER_BASE}/viewer/{study}" + (f"?SeriesInstanceUID={series}" if series else "")
    if viewer == "slim":
        return f"{VIEWER_BASE}/slim/studies/{study}" + (f"/series/{series}" if series else "")
    raise InvalidInputError(f"no viewer {viewer!r}; one of {', '.join(VIEWERS)}")


def _study_modalities(index: IdcIndex, studies: Sequence[str]) -> dict[str, set[str]]:
    rows = index.sql('SELECT DISTINCT "StudyInstanceUID", "Modality" FROM index '
                     'WHERE "StudyInstanceUID" IN (SELECT unnest(?::VARCHAR[]))', [list(studies)])
    out: dict[str, set[str]] = {}
    for study, modality in zip(rows["StudyInstanceUID"], rows["Modality"], strict=True):
        out.setdefault(str(study), set()).add(str(modality))
    return out


def slim_studies(index: IdcIndex, query: str, params: Sequence[object]) -> dict[str, set[str]]:
    """``{StudyInstanceUID: {"SM"}}`` for the studies of a selection that hold an SM series (one query)."""
    rows = index.sql(f'SELECT DISTINCT "StudyInstanceUID" FROM index WHERE "Modality" = \'SM\' AND '
                     f'"StudyInstanceUID" IN (SELECT "StudyInstanceUID" FROM ({query}\n))', list(params))
    return {str(study): {"SM"} for study in rows["StudyInstanceUID"]}


def viewer_urls(index: IdcIndex, uids: Sequence[str], *, viewer: str | None = None) -> pd.DataFrame:
    """The viewer URL of each UID, a SeriesInstanceUID or a StudyInstanceUID of the index.

    Returns
    -------
    pandas.DataFrame
        ``uid``, ``level`` (``series``/``study``), ``StudyInstanceUID``, ``viewer_url``, in the given order.

    Raises
    ------
    NotFoundError
        A UID that is neither a series nor a study of the index.
    """
    import pandas as pd

    uids = list(dict.fromkeys(uids))
    series = index.sql('SELECT "SeriesInstanceUID", any_value("StudyInstanceUID") AS "StudyInstanceUID" FROM index '
                       'WHERE "SeriesInstanceUID" IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1', [uids])
    study_of = dict(zip(series["SeriesInstanceUID"], series["StudyInstanceUID"], strict=True))
    rest = [u for u in uids if u not in study_of]
    studies = set(index.sql('SELECT DISTINCT "StudyInstanceUID" FROM index WHERE "StudyInstanceUID" IN '
                            '(SELECT unnest(?::VARCHAR[]))', [rest])["StudyInstanceUID"]) if rest else set()
    missing = [u for u in rest if u not in studies]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFoundError(f"no series or study {missing[0]!r} in the IDC index{more}")
    modalities = _study_modalities(index, sorted({*study_of.values(), *studies}))
    rows = []
    for uid in uids:
        study = study_of.get(uid, uid)
        level = "series" if uid in study_of else "study"
        rows.append({"uid": uid, "level": level, "StudyInstanceUID": study,
                     "viewer_url": viewer_url(study, uid if level == "series" else None,
                                              modalities=modalities.get(study, ()), viewer=viewer)})
    return pd.DataFrame(rows, columns=["uid", "level", "StudyInstanceUID", "viewer_url"])


def with_viewer_urls(index: IdcIndex, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (index rows with ``StudyInstanceUID`` and ``SeriesInstanceUID``) with a ``viewer_url`` column."""
    out = table.copy()
    if out.empty:
        out["viewer_url"] = []
        return out
    modalities = _study_modalities(index, sorted(set(out["StudyInstanceUID"].astype(str))))
    out["viewer_url"] = [viewer_url(str(study), str(series), modalities=modalities.get(str(study), ()))
                         for study, series in zip(out["StudyInstanceUID"], out["SeriesInstanceUID"], strict=True)]
    return out


def instance_url(series_aws_url: str, crdc_instance_uuid: str, *, gcs: bool = False) -> str:
    """The bucket URL of one instance file from its series' ``series_aws_url`` (module docstring)."""
    url = series_aws_url.removesuffix("*")
    if gcs:
        for aws, google in GCS_BUCKETS.items():
            if url.startswith(aws):
                url = google + url[len(aws):]
    return f"{url}{crdc_instance_uuid}.dcm"


def instance_urls(index: IdcIndex, sop_uids: Sequence[str], instance_index: str | os.PathLike[str], *,
                  gcs: bool = False) -> pd.DataFrame:
    """The bucket URL of each instance (``SOPInstanceUID``, ``SeriesInstanceUID``, ``url``), in the given order.

    Raises
    ------
    NotFoundError
        The instance index file is missing, or a SOPInstanceUID is not in it (or its series not in ``index``).
    InvalidInputError
        The instance index lacks the columns it needs.
    """
    import pandas as pd

    path = os.fspath(instance_index)
    if not os.path.isfile(path):
        raise NotFoundError(f"no instance index parquet at {path}")
    uids = list(dict.fromkeys(sop_uids))
    columns = index.sql("SELECT * FROM read_parquet(?) LIMIT 0", [path]).columns
    lacking = [c for c in _INSTANCE_COLUMNS if c not in columns]
    if lacking:
        raise InvalidInputError(f"{path} is not an instance index: no column {', '.join(lacking)}")
    found = index.sql('SELECT i."SOPInstanceUID", i."SeriesInstanceUID", i."crdc_instance_uuid", '
                      '\'s3://\' || s."aws_bucket" || \'/\' || s."crdc_series_uuid" || \'/*\' AS series_aws_url '
                      'FROM read_parquet(?) AS i JOIN index AS s USING ("SeriesInstanceUID") '
                      'WHERE i."SOPInstanceUID" IN (SELECT unnest(?::VARCHAR[]))', [path, uids])
    by_uid = {str(r.SOPInstanceUID): r for r in found.itertuples(index=False)}
    missing = [u for u in uids if u not in by_uid]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFoundError(f"no instance {missing[0]!r} in the instance index {path}{more}")
    rows = [{"SOPInstanceUID": u, "SeriesInstanceUID": str(by_uid[u].SeriesInstanceUID),
             "url": instance_url(str(by_uid[u].series_aws_url), str(by_uid[u].crdc_instance_uuid), gcs=gcs)}
            for u in uids]
    return pd.DataFrame(rows, columns=["SOPInstanceUID", "SeriesInstanceUID", "url"])
