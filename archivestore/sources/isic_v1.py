"""The ISIC Archive API v1 (Girder) as a source: studies, annotations, superpixels, masks.

>>> api = IsicV1("https://isic-archive.com/api/v1/", username="me")  # doctest: +SKIP
>>> source = IsicStudySource(api, "ISIC Annotation Study")            # doctest: +SKIP
>>> archivestore.ingest(store, source)                                 # doctest: +SKIP
"""

from ._isic_cli import add_ingest_isic_commands
from ._isic_v1 import DEFAULT_V1_URL, SKILL_RANK, IsicStudySource, IsicV1, best_segmentation

__all__ = [
    "DEFAULT_V1_URL",
    "IsicStudySource",
    "IsicV1",
    "SKILL_RANK",
    "add_ingest_isic_commands",
    "best_segmentation",
]
