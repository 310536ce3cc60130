"""Stand-ins the tests run against: the ISIC API servers (from :mod:`archivestore.testing`), a flaky S3 proxy.

The servers live in the package so notebooks can run them too; this package
re-exports them for the tests and adds what only the tests need.
"""

from archivestore.testing.faults import Faults
from archivestore.testing.isic_v1 import (
    FIXTURES,
    V1_FIXTURES,
    V1Server,
    load_v1_fixtures,
    synthetic_size,
    synthetic_study,
    v1_superpixels,
)
from archivestore.testing.isic_v2 import V2Server, synthetic_v2_records, v2_record_from_v1
from archivestore.testing.sample import synthetic_image, synthetic_mask

__all__ = [
    "FIXTURES",
    "V1_FIXTURES",
    "Faults",
    "V1Server",
    "V2Server",
    "load_v1_fixtures",
    "synthetic_image",
    "synthetic_mask",
    "synthetic_size",
    "synthetic_study",
    "synthetic_v2_records",
    "v1_superpixels",
    "v2_record_from_v1",
]
