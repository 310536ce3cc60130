"""Items → store: the ingest loop, one item's write, and where tasks run.

Public names are re-exported by :mod:`archivestore` (``archivestore.ingest``,
``archivestore.IngestReport``, ``archivestore.IngestInterrupted``).
"""

from archivestore._ingest._loop import IngestInterrupted, IngestReport, ingest

__all__ = ["IngestInterrupted", "IngestReport", "ingest"]
