"""NCI Imaging Data Commons (IDC); see :mod:`archivestore.sources.idc._source` (the index: ``_index``)."""

from archivestore.sources.idc._source import (
    DEFAULT_SOURCE_OPTIONS,
    EXTRA_HINT,
    REQUIRED_COLUMNS,
    IdcIndex,
    IdcSource,
    SeriesFiles,
    collection_id,
    item_from_origin,
    packaged_index_path,
    series_url,
)

__all__ = [
    "DEFAULT_SOURCE_OPTIONS",
    "EXTRA_HINT",
    "REQUIRED_COLUMNS",
    "IdcIndex",
    "IdcSource",
    "SeriesFiles",
    "collection_id",
    "item_from_origin",
    "packaged_index_path",
    "series_url",
]
