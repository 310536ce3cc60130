"""Test utilities shipped with archivestore (like ``zarr.testing``); offline, 127.0.0.1 only.

- :mod:`~archivestore.testing.sample`: the synthetic data generator (lesion-like images,
  superpixels, masks) and :func:`write_sample_archive`, the demo's archive in ISIC
  challenge layouts.
- :mod:`~archivestore.testing.store`: :class:`CountingStore`, a zarr store wrapper that
  counts requests per operation and key.
- :mod:`~archivestore.testing.sources`: ``SourceTests``, the conformance kit a new
  source's tests subclass (needs pytest; imported on its own, not from here).
- Local stand-ins for archive APIs on 127.0.0.1, port 0, for tests and offline
  notebooks: :class:`V1Server` and :class:`V2Server` (ISIC API v1 and v2) with
  :class:`Faults` injection; :mod:`~archivestore.testing.httpserver` is their plumbing,
  for new stand-ins.

Importing this package needs neither pytest nor a network.
"""

from archivestore.testing.faults import Faults
from archivestore.testing.isic_v1 import V1Server, load_v1_fixtures, synthetic_study
from archivestore.testing.isic_v2 import V2Server, synthetic_v2_records, v2_record_from_v1
from archivestore.testing.sample import write_sample_archive
from archivestore.testing.store import CountingStore

__all__ = [
    "CountingStore",
    "Faults",
    "V1Server",
    "V2Server",
    "load_v1_fixtures",
    "synthetic_study",
    "synthetic_v2_records",
    "v2_record_from_v1",
    "write_sample_archive",
]
