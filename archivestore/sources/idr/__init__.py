"""The Image Data Resource (IDR) via OMERO.web; see :mod:`archivestore.sources.idr._source`.

The modules, each importing only those below it (no cycle; a contract in ``pyproject.toml`` and
``tests/test_sources/test_import_cycles.py`` keep it so): ``_source`` (:class:`IdrSource`) → ``_walk``
(containers to images) → ``_client`` (:class:`Idr`, the queries) → ``_items`` (an image's item and
pixels) → ``_omero_pixels`` (rendered planes) → ``_omero`` (OMERO.web's JSON API and webclient).
"""

from archivestore.sources.idr._client import (
    DEFAULT_IDR_URL,
    IDR_FALLBACK_STORAGE_OPTIONS,
    IDR_OLD_S3_ENDPOINT,
    IDR_S3_ENDPOINT,
    IDR_STORAGE_OPTIONS,
    IDR_ZARR_URL,
    Idr,
    PlateLayout,
    ref,
    study_folder,
)
from archivestore.sources.idr._source import IdrSource, item_from_origin

__all__ = [
    "DEFAULT_IDR_URL", "IDR_FALLBACK_STORAGE_OPTIONS", "IDR_OLD_S3_ENDPOINT", "IDR_S3_ENDPOINT", "IDR_STORAGE_OPTIONS",
    "IDR_ZARR_URL", "Idr", "IdrSource", "PlateLayout", "item_from_origin", "ref", "study_folder",
]
