"""The ISIC Archive: the challenges' files on disk, the retired Girder API v1, today's API v2.

- :mod:`~archivestore.sources.isic.challenge`: :class:`ChallengeSource` (2016/2017/2018 layouts).
- :mod:`~archivestore.sources.isic.v1`: :class:`IsicStudySource` over :class:`IsicV1`.
- :mod:`~archivestore.sources.isic.v2`: :class:`IsicSearchSource` over :class:`IsicV2`.
"""

from archivestore.sources.isic.challenge import ChallengeSource
from archivestore.sources.isic.v1 import IsicStudySource, IsicV1
from archivestore.sources.isic.v2 import IsicSearchSource, IsicV2

__all__ = ["ChallengeSource", "IsicSearchSource", "IsicStudySource", "IsicV1", "IsicV2"]
