"""The store's SR findings as one DataFrame: every ``findings/<SR uid>`` group, found through ``series_metadata``.

Columns: ``series`` (the SR's SeriesInstanceUID), ``source_series`` (the image series it reports
on), then :data:`archivestore.dicom.FINDING_COLUMNS` in their order (``observer``, ``finding``,
``concept``, ``value``, ``unit``, tracking identifiers, ``referenced_segment``, ...). A store
without findings gives an empty frame with these columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "findings_frame"]

COLUMNS = ("series", "source_series", "observer", "finding", "finding_code", "tracking_id", "tracking_uid",
           "referenced_segment", "finding_site", "kind", "concept", "concept_meaning", "value", "unit",
           "value_code", "value_meaning")


def findings_frame(store: Any, series: list[str] | None = None) -> pd.DataFrame:
    """All findings of the store (or of the SR series ``series``) as one DataFrame (module docstring)."""
    import pandas as pd

    table = store.metadata_frame("series")
    if "store.kind" not in table:
        return pd.DataFrame(columns=list(COLUMNS))
    uids = [str(u) for u, kind in table["store.kind"].items() if kind == "findings"]
    if series is not None:
        wanted = set(series)
        uids = [u for u in uids if u in wanted]
    frames = []
    for uid in uids:
        ds = store.open_dataset(store.layout.findings(uid))
        columns = {name: np.asarray(ds[name].values) for name in COLUMNS[2:] if name in ds.variables}
        frame = pd.DataFrame(columns)
        frame.insert(0, "source_series", str(ds.attrs.get("source_series", "")))
        frame.insert(0, "series", uid)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    for name in COLUMNS:
        if name != "value":
            out[name] = out[name].astype(str)
    out["value"] = out["value"].astype(np.float64)
    return out[list(COLUMNS)]
