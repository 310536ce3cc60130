"""Sources: one module per archive or on-disk layout, all yielding :class:`Item` objects.

- :class:`ChallengeSource`: ISIC challenge files on disk (2016/2017/2018 layouts).
- :class:`IsicStudySource` over :class:`IsicV1`: a study of the Girder API v1.
- :class:`IsicSearchSource` over :class:`IsicV2`: a search of today's API v2.
- :class:`IdcSource` over :class:`IdcIndex`: NCI Imaging Data Commons series (:class:`SeriesItem`);
  :func:`viewer_urls`/:func:`instance_urls` (as idc-index gives them) and :func:`citations` of a
  selection's DOIs (:func:`selection_dois`).
- :class:`TciaSource` over :class:`Tcia`: The Cancer Imaging Archive's series (NBIA REST API v4).
- :class:`IdrSource` over :class:`Idr`: the Image Data Resource's microscopy images and plates (OMERO.web).
- :class:`OmeZarrSource`: OME-Zarr images and HCS plates (NGFF 0.4 and 0.5) at paths or URLs.
"""

from collections.abc import Callable
from typing import Any

from archivestore.sources import idc, idr, ome_zarr, tcia
from archivestore.sources._base import (
    AXES,
    Annotation,
    ArrayImage,
    ArrayItem,
    BadItem,
    Item,
    PlateItem,
    SeriesItem,
    Source,
    validate_id,
)
from archivestore.sources.idc import IdcIndex, IdcSource
from archivestore.sources.idc._citations import citations, selection_dois
from archivestore.sources.idc._urls import instance_urls, viewer_url, viewer_urls
from archivestore.sources.idr import Idr, IdrSource
from archivestore.sources.isic import challenge
from archivestore.sources.isic import v1 as isic_v1
from archivestore.sources.isic import v2 as isic_v2
from archivestore.sources.isic.challenge import ChallengeSource
from archivestore.sources.isic.v1 import IsicStudySource, IsicV1
from archivestore.sources.isic.v2 import IsicSearchSource, IsicV2
from archivestore.sources.ome_zarr import OmeZarrSource
from archivestore.sources.tcia import Tcia, TciaSource

__all__ = [
    "AXES",
    "Annotation",
    "ArrayImage",
    "ArrayItem",
    "BadItem",
    "ChallengeSource",
    "IdcIndex",
    "IdcSource",
    "Idr",
    "IdrSource",
    "IsicSearchSource",
    "IsicStudySource",
    "IsicV1",
    "IsicV2",
    "Item",
    "OmeZarrSource",
    "PlateItem",
    "SeriesItem",
    "Source",
    "Tcia",
    "TciaSource",
    "citations",
    "instance_urls",
    "item_from_origin",
    "selection_dois",
    "validate_id",
    "viewer_url",
    "viewer_urls",
]

_ORIGINS: dict[str | None, Callable[[str, dict[str, Any], dict[str, Any]], Item | SeriesItem | ArrayItem]] = {
    "challenge": challenge.item_from_origin,
    "idc": idc.item_from_origin,
    "idr": idr.item_from_origin,
    "isic_v1": isic_v1.item_from_origin,
    "isic_v2": isic_v2.item_from_origin,
    "ome_zarr": ome_zarr.item_from_origin,
    "tcia": tcia.item_from_origin,
}


def item_from_origin(image_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> Item | SeriesItem | ArrayItem:
    """Rebuild an image's :class:`Item` (a series' :class:`SeriesItem`) from the ``origin`` recorded at ingest."""
    try:
        rebuild = _ORIGINS[origin.get("source")]
    except KeyError:
        raise ValueError(f"cannot fetch {image_id} again from a {origin.get('source')!r} origin") from None
    return rebuild(image_id, origin, metadata)
