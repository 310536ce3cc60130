"""The store as OME-Zarr (OME-NGFF 0.5 on Zarr v3), the format napari, Fiji (MoBIE) and the IDR read.

>>> from archivestore.ome import export_ome_zarr
>>> export_ome_zarr(store, "out/")                       # doctest: +SKIP
['out/ISIC_0000000.zarr', ..., 'out/1.2.826.0.1.3680043.8.498.104.zarr']

Each image or volume becomes one OME-Zarr image ``<out>/<escaped id>.zarr`` (ids escaped as the
store escapes group names) with a multiscale pyramid (y and x halved per level until both are at
most 256 pixels; intensities by the mean of 2x2 blocks, or another of ome-zarr-py's methods, labels by
nearest neighbour) and its
label images under ``labels/``; the multiscales ``name`` is the id, so importing it again gives the
same id, and the store's record is the group's ``archivestore`` attribute:

- **ISIC images** (y, x, channel) uint8 RGB → (c, y, x), channels R, G, B in red, green, blue
  (window 0-255); label images ``mask`` (1 = lesion), ``superpixels`` (the superpixel index) and
  ``attribute_<feature>`` (1 = present).
- **Microscopy images** → their own axes (t, c, z, y, x), dtype, physical scale and origin with
  units, OMERO channels, and label images, as imported.
- **CT/MR volumes** (z, y, x) → voxel spacing and origin in millimetre (uneven slice gaps: the
  ``spacing`` attribute's; the exact affine is in the ``archivestore`` attribute); each DICOM SEG of the volume
  → one label image named by the SEG's SeriesInstanceUID, values = segment numbers (fractional
  segments binarised at >= 0.5), each segment's label, code and rater in the label's
  ``properties``; a SEG whose segments overlap → one label image per segment
  (``<SEG uid>_<segment number>``), so no voxel is lost.

The metadata is made by ome-zarr-py and ome-zarr-models (never hand-written JSON), every written
image is validated with ome-zarr-models, and the pixel values are the store's, unchanged.
Needs ``pip install 'archivestore[ome]'``. Reads the store only: imports no source and no ingest.
"""

from archivestore.ome._export import export_ome_zarr, output_url
from archivestore.ome._write import DEFAULT_METHOD, METHODS, MIN_LEVEL_SIZE, pyramid_factors, validate_ome_zarr

__all__ = ["DEFAULT_METHOD", "METHODS", "MIN_LEVEL_SIZE", "export_ome_zarr", "output_url", "pyramid_factors",
           "validate_ome_zarr"]
