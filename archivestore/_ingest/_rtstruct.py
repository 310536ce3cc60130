"""One RT Structure Set into the store: rasterised label volumes in ``segmentations/<uid>`` (a worker's task).

The structure set is stored exactly like a SEG (:func:`archivestore._ingest._series.write_labels`):
``labels`` (segment, z, y, x) uint8 on the grid of the stored volume it contours, one segment per
ROI, its row in ``series_metadata`` with ``store.kind = "segmentation"`` and its ``source_series``,
so ``store.segmentations_of`` and ``overlap --segmentations`` take it beside SEGs. The referenced
series must be in the store (ingested first, or in the same run: the ingest submits RTSTRUCTs after
the image series); skipped open or point contours become the series' WARNING lines.
"""

from __future__ import annotations

from archivestore._ingest._results import SeriesResult
from archivestore._ingest._series import stored_volume, write_labels
from archivestore._ingest._warnings import with_notes
from archivestore.dicom import read_rtstruct, rtstruct_source
from archivestore.errors import BadItem, NotFoundError
from archivestore.sources import SeriesItem
from archivestore.store import Store

__all__ = ["write_rtstruct"]


def write_rtstruct(store: Store, item: SeriesItem, files: list[tuple[str, bytes]]) -> SeriesResult:
    """Rasterise an RTSTRUCT onto its stored volume's grid and write it (``InvalidInputError`` on bad input)."""
    source = rtstruct_source(files)
    try:
        vid, volume = stored_volume(store, source.source_series, source.source_instances)
    except NotFoundError as exc:
        raise BadItem(item.id, item.where, str(exc).replace("it segments", "it contours")) from None
    labels, notes = with_notes(item.id, lambda: read_rtstruct(files, volume))
    return write_labels(store, item, labels, volume, vid, notes)
