"""Sources: one module per archive or on-disk layout, all yielding :class:`Item` objects."""

from typing import Any

from archivestore.sources import challenge
from archivestore.sources._base import Annotation, BadItem, Item, Source, validate_id
from archivestore.sources.challenge import ChallengeSource

__all__ = ["Annotation", "BadItem", "ChallengeSource", "Item", "Source", "item_from_origin", "validate_id"]

_ORIGINS = {"challenge": challenge.item_from_origin}


def item_from_origin(image_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> Item:
    """Rebuild an image's :class:`Item` from the ``origin`` its group recorded at ingest."""
    try:
        rebuild = _ORIGINS[origin.get("source")]
    except KeyError:
        raise ValueError(f"cannot fetch {image_id} again from a {origin.get('source')!r} origin") from None
    return rebuild(image_id, origin, metadata)
