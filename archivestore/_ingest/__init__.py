"""Items → store: the ingest loop, one item's write, and where tasks run.

Public names are re-exported by :mod:`archivestore` (``archivestore.ingest``,
``archivestore.IngestReport``).
"""

from archivestore._ingest._loop import IngestReport, ingest

__all__ = ["IngestReport", "ingest"]
