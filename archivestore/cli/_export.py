"""``archivestore export ome-zarr STORE OUT``: store images and volumes as OME-Zarr 0.5 images."""

from __future__ import annotations

import argparse
from typing import Any

from archivestore.cli._common import STORE_HELP, add_scheduler_option, add_store_options, command, need, open_store
from archivestore.cli._ml import add_hf_export

__all__ = ["add_export_commands"]


def add_export_commands(subparsers: Any) -> None:
    """Add ``export`` with its formats ``ome-zarr`` and ``hf``."""
    p = subparsers.add_parser("export", help="write store items in another format")
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    q = formats.add_parser(
        "ome-zarr", help="OME-Zarr 0.5 images with pyramids and label images (napari, ome-zarr-py, Fiji/MoBIE)",
        description="Write each chosen image (ISIC images with their masks and superpixels as labels; "
        "microscopy images as imported) and volume (with its segmentations as labels) to OUT/<id>.zarr, "
        "validated with ome-zarr-models; needs the ome extra. Default: every image and volume.")
    q.add_argument("store", help=STORE_HELP)
    q.add_argument("out", help="output folder or fsspec URL")
    q.add_argument("--image", nargs="+", default=None, metavar="ID", help="only these images")
    q.add_argument("--series", nargs="+", default=None, metavar="UID", help="only these volumes")
    q.add_argument("--slide", nargs="+", default=None, metavar="UID",
                   help="only these slides (SM series; their own DICOM pyramid is the multiscale)")
    q.add_argument("--levels", type=int, default=None, help="pyramid levels (default: down to ~256 pixels)")
    q.add_argument("--method", default="local_mean",
                   help="downsampling, any of ome-zarr-py's methods (default local_mean: the mean of 2x2 blocks)")
    add_scheduler_option(q, "write the pyramids on a dask.distributed cluster")
    add_store_options(q)
    q.set_defaults(func=_ome_zarr)
    add_hf_export(formats)


@command
def _ome_zarr(args: argparse.Namespace) -> int:
    need("ome")
    from archivestore.ome import export_ome_zarr

    written = export_ome_zarr(open_store(args), args.out, images=args.image, series=args.series, slides=args.slide,
                              levels=args.levels, method=args.method)
    for path in written:
        print(path)
    return 0
