"""Test utilities shipped with archivestore (like ``zarr.testing``).

- :mod:`archivestore.testing.sample`: synthetic images, superpixels and masks.
- :mod:`archivestore.testing.faults`, :mod:`archivestore.testing.httpserver`: fault
  injection and the HTTP plumbing of the local stand-in servers.
- :mod:`archivestore.testing.isic_v1`, :mod:`archivestore.testing.isic_v2`: local
  stand-ins for the ISIC Archive APIs (127.0.0.1, port 0, offline).

Importing this package needs neither pytest nor a network.
"""

from archivestore.testing.faults import Faults
from archivestore.testing.isic_v1 import V1Server, load_v1_fixtures, synthetic_study
from archivestore.testing.isic_v2 import V2Server, synthetic_v2_records, v2_record_from_v1

__all__ = ["Faults", "V1Server", "V2Server", "load_v1_fixtures", "synthetic_study", "synthetic_v2_records", "v2_record_from_v1"]
