"""The Cancer Imaging Archive (TCIA) through the NBIA REST API v4; see :mod:`archivestore.sources.tcia._source`.

The NBIA answers' field names and types are in :mod:`~archivestore.sources.tcia._nbia`, the checked
download of a series zip in :mod:`~archivestore.sources.tcia._zipfetch`.
"""

from archivestore.sources.tcia._source import (
    DEFAULT_NBIA_URL,
    NLST_URL,
    NUMERIC_FIELDS,
    Tcia,
    TciaSource,
    item_from_origin,
)

__all__ = ["DEFAULT_NBIA_URL", "NLST_URL", "NUMERIC_FIELDS", "Tcia", "TciaSource", "item_from_origin"]
