"""Sources: one module per archive or on-disk layout, all yielding :class:`Item` objects."""

from archivestore.sources._base import Annotation, BadItem, Item, Source, validate_id
from archivestore.sources.challenge import ChallengeSource

__all__ = ["Annotation", "BadItem", "ChallengeSource", "Item", "Source", "validate_id"]
