"""One DICOM SR measurement report (TID 1500) into the store: ``findings/<SR uid>``, a table along ``row``.

Each column of :data:`archivestore.dicom.FINDING_COLUMNS` is one variable along ``row`` (``value``
float64, NaN for qualitative evaluations; the others strings), so the group opens with plain
``xr.open_zarr``; attrs ``series_instance_uid``, ``source_series``, ``observer``, ``dicom`` (the SR
without its content tree) and ``record``. Its ``series_metadata`` row has ``store.kind = "findings"``,
``store.source_series`` left out (that column means "segments this series") and ``store.about_series``,
``store.observer`` instead. Written under its lease, arrays first and state last, like every group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archivestore._ingest._results import SeriesResult
from archivestore.dicom import FINDING_COLUMNS, read_findings
from archivestore.sources import SeriesItem
from archivestore.store import Store, checksum

__all__ = ["write_findings"]


def write_findings(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    """Read a TID 1500 report and write its findings table (``InvalidInputError`` on bad input)."""
    findings = read_findings(files)
    path = store.layout.findings(item.id)
    row = {**item.metadata, "store": {"kind": "findings", "group": path, "about_series": findings.source_series,
                                      "observer": findings.observer, "findings": len(findings.rows)}}
    attrs = {"series_instance_uid": findings.series_instance_uid, "source_series": findings.source_series,
             "observer": findings.observer, "dicom": findings.header, "record": item.metadata}
    store.ensure_group(store.layout.FINDINGS)
    with store.lease(path):
        state = store.group_state(path)
        if state and state.get("complete"):
            return SeriesResult(False, {item.id: dict(state["row"])})
        writer = store.new_group(path, replace=state is not None, attributes=attrs)
        sums = {}
        for name in FINDING_COLUMNS:
            values: list[Any] = [r[name] for r in findings.rows]
            if name == "value":
                numbers = np.asarray(values, dtype=np.float64)
                writer.put_values(name, numbers, "row")
                sums[name] = checksum(numbers)  # ``verify`` checks the numbers as it checks every array
            else:
                writer.put_coord(name, [str(v) for v in values], dim="row")
        writer.finish({"complete": True, "name": item.id, "series": item.id, "rows": len(findings.rows),
                       "checksums": sums, "row": row, "source": item.where, "origin": item.origin})
    return SeriesResult(True, {item.id: row})
