"""The Image Data Resource (IDR) via OMERO.web; see :mod:`archivestore.sources.idr._source`.

OMERO.web's JSON API and webclient in ``_omero`` (rendered planes in ``_omero_pixels``), an image's
item and pixels in ``_items``, the walk from containers to images in ``_walk``.
"""

from archivestore.sources.idr._source import (
    DEFAULT_IDR_URL,
    IDR_S3_ENDPOINT,
    IDR_STORAGE_OPTIONS,
    IDR_ZARR_URL,
    Idr,
    IdrSource,
    PlateLayout,
    item_from_origin,
    ref,
    study_folder,
)

__all__ = [
    "DEFAULT_IDR_URL", "IDR_S3_ENDPOINT", "IDR_STORAGE_OPTIONS", "IDR_ZARR_URL", "Idr", "IdrSource", "PlateLayout",
    "item_from_origin", "ref", "study_folder",
]
