"""OME-Zarr (OME-NGFF 0.4 and 0.5) as a source; see :mod:`archivestore.sources.ome_zarr._source`.

Opening and checking NGFF metadata in ``_ngff``, reading images and plates in ``_ngff_read``.
"""

from archivestore.sources.ome_zarr._source import (
    EXTRA_HINT,
    OmeZarrSource,
    item_from_origin,
    read_ome_zarr,
    read_ome_zarr_image,
)

__all__ = ["EXTRA_HINT", "OmeZarrSource", "item_from_origin", "read_ome_zarr", "read_ome_zarr_image"]
