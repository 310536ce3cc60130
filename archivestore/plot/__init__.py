"""Pictures of a store and of its analyses, drawn with matplotlib (the ``archivestore[plot]`` extra).

Every function returns a :class:`matplotlib.figure.Figure` (draw into an existing
``ax`` where offered, to compose several in one figure). matplotlib is imported inside
the functions, so importing this package needs only numpy and xarray.

- :func:`image_overlay` / :func:`store_image`: an image with its superpixel
  boundaries and the lesion-mask contours of one or more raters.
- :func:`overlap_distributions`: per-feature distributions (violin or box) of the
  rater-pair measures of :func:`archivestore.analysis.overlap`.
- :func:`feature_matrix`: feature x feature agreement (``overlap(...,
  cross_features=True)``) as an annotated matrix.
- :func:`agreement_grid`: how many raters marked each superpixel, images x features,
  with one shared count legend.
- :func:`score_figure`: per-image segmentation scores of :func:`archivestore.analysis.score`.
- :func:`volume_slices` / :func:`store_volume`: axial, coronal and sagittal slices of a volume
  in millimetres, with the segments of one or more segmentations filled and outlined.
- :func:`plate_map`: a plate's well grid as a plate, wells coloured by a per-well value
  (a map annotation, a score).
- :func:`channel_composite` / :func:`composite_rgb`: a multichannel microscopy image as an
  additive colour composite in its OMERO channel colours and windows (max projection over z).
- :func:`save_png`: a figure as a small palette PNG (for pictures kept in a repository).

An analysis-layer package: it reads stores and analysis results, never sources or ingest.
"""

from archivestore.plot._images import MASK_COLORS, image_overlay, save_png, store_image, superpixel_boundaries
from archivestore.plot._microscopy import DEFAULT_CHANNEL_COLORS, channel_composite, composite_rgb, plate_map
from archivestore.plot._studies import agreement_grid, feature_matrix, overlap_distributions, score_figure
from archivestore.plot._volumes import RATER_LINESTYLES, store_volume, volume_slices

__all__ = [
    "DEFAULT_CHANNEL_COLORS",
    "MASK_COLORS",
    "RATER_LINESTYLES",
    "agreement_grid",
    "channel_composite",
    "composite_rgb",
    "feature_matrix",
    "image_overlay",
    "overlap_distributions",
    "plate_map",
    "save_png",
    "score_figure",
    "store_image",
    "store_volume",
    "superpixel_boundaries",
    "volume_slices",
]
