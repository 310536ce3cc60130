"""The ISIC Archive API v2 as a source: searches, collections, signed file downloads.

>>> api = IsicV2(token=None)                                            # doctest: +SKIP
>>> source = IsicSearchSource(api, 'diagnosis_3:"Melanoma Invasive"', limit=50)  # doctest: +SKIP
>>> archivestore.ingest(store, source)                                  # doctest: +SKIP
"""

from ._isic_cli import add_ingest_isic_commands
from ._isic_v2 import DEFAULT_V2_URL, TOKEN_ENV, IsicSearchSource, IsicV2, strip_signed_urls, validate_query

__all__ = [
    "DEFAULT_V2_URL",
    "IsicSearchSource",
    "IsicV2",
    "TOKEN_ENV",
    "add_ingest_isic_commands",
    "strip_signed_urls",
    "validate_query",
]
