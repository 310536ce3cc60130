"""What a worker's task hands back to the submitting process (picklable, small)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archivestore.errors import BadItem
from archivestore.store import StudyRow

__all__ = ["ItemResult", "SeriesResult"]


@dataclass
class ItemResult:
    """What writing one image item did; the submitting process appends ``record`` and ``rows``."""

    wrote: bool
    rows: list[tuple[str, StudyRow]]
    record: dict[str, Any] | None  # the record written now, None if the group was complete
    error: BadItem | None = None    # the image is stored but its annotations were not


@dataclass
class SeriesResult:
    """What writing one series did; ``rows`` are its ``series_metadata`` rows by group id."""

    wrote: bool
    rows: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
