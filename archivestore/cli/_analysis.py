"""``archivestore overlap``, ``score`` and ``heatmap``: the study analyses on the command line.

Each command opens the store, calls :mod:`archivestore.analysis`, and prints; ``--scheduler``
runs the dask work on a cluster (see :func:`archivestore.cli._common.command`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archivestore.cli._common import STORE_HELP, add_scheduler_option, add_store_options, command, error, open_store
from archivestore.errors import InvalidInputError
from archivestore.layout import GROUND_TRUTH

if TYPE_CHECKING:
    import xarray as xr

    from archivestore.analysis import OverlapArrays

__all__ = ["add_heatmap_command", "add_overlap_command", "add_score_command", "format_scores", "format_summary"]


# --------------------------------------------------------------------------- overlap


def add_overlap_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``overlap STORE [--study NAME] [--definite | --threshold T] [--within-mask] [--cross-features]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "overlap",
        help="rater overlap of a study (pixel Dice, correlation, superpixel Dice), written to studies/<study>/overlap",
        description="Compare every ordered pair of raters on every image and feature of a study; write the "
        "result to the group studies/<study>/overlap of the store and print a per-feature summary.",
    )
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("--study", help="study name (default: the store's only study)")
    p.add_argument("--segmentations", action="store_true",
                   help="instead: the DICOM SEGs of every series with two or more, rater against rater per "
                   "segment (Dice, Jaccard, volume in ml), written to segmentation_overlap")
    p.add_argument("--findings", action="store_true",
                   help="instead: the SR findings of every observer, matched across observers; Cohen's/Fleiss' "
                   "kappa per qualitative concept and the spread of each measurement, written to findings_agreement")
    p.add_argument("--series", nargs="+", default=None, metavar="UID",
                   help="with --segmentations or --findings: only these source series")
    binarise = p.add_mutually_exclusive_group()
    binarise.add_argument("--threshold", type=float, default=None,
                          help="Dice counts superpixels with value > THRESHOLD (default 0: 'possible' counts); "
                          "with --segmentations, fractional labels count where >= THRESHOLD (default 0.5)")
    binarise.add_argument("--definite", action="store_true", help="Dice counts value >= 1 ('definite') only")
    p.add_argument("--within-mask", action="store_true",
                   help="only pixels inside the lesion mask (images without one give NaN)")
    p.add_argument("--cross-features", action="store_true",
                   help="also every feature of one rater against every feature of the other")
    add_scheduler_option(p)
    p.add_argument("--images-per-task", type=int, default=None,
                   help="images per task (default: the study's chunks)")
    add_store_options(p)
    p.set_defaults(func=_overlap)
    return p


IN_MEMORY_BYTES = 2**30
"""A study whose annotations take at most this much memory is read whole and computed on threads
with numpy alone (xarray's and dask's imports cost more than such a study's work); larger ones,
or any with ``--scheduler``, go through xarray and dask one block of images at a time."""


@command
def _overlap(args: argparse.Namespace) -> int:
    store = open_store(args, mode="a")
    if args.segmentations:
        return _segmentation_overlap(args, store)
    if args.findings:
        from archivestore.cli._findings import findings_agreement_command

        return findings_agreement_command(args, store)
    name = args.study if args.study is not None else _only_study(store.studies())
    threshold, inclusive = (1.0, True) if args.definite else (args.threshold or 0.0, False)
    options = {"threshold": threshold, "inclusive": inclusive, "within_mask": args.within_mask,
               "cross_features": args.cross_features, "images_per_task": args.images_per_task}
    study = None if args.scheduler else store.read_study(name, max_bytes=IN_MEMORY_BYTES)
    group, written = (_overlap_in_memory(store, name, study, options) if study is not None
                      else _overlap_with_dask(store, name, options))
    n_img, n_feat, n_rat = (len(written[d]) for d in ("image", "feature", "rater"))
    print(f"study {name}: {n_img} images x {n_feat} features x {n_rat} raters; "
          f"binarised {written.attrs['binarised']}{', within the lesion mask' if args.within_mask else ''}")
    print(format_summary(written))
    print(f"written to group {group!r}: xr.open_zarr({args.store!r}, group={group!r}, consolidated=False)")
    return 0


def _overlap_in_memory(store: Any, name: str, study: Any, options: dict[str, Any]) -> tuple[str, OverlapArrays]:
    """Overlap of a study read whole, with numpy on threads; the group path and the result."""
    from archivestore.analysis import overlap_arrays, write_overlap_arrays

    result = overlap_arrays(study, **options)
    return write_overlap_arrays(store, name, result), result


def _overlap_with_dask(store: Any, name: str, options: dict[str, Any]) -> tuple[str, xr.Dataset]:
    """Overlap of a lazy study, block by block with dask (here or on ``--scheduler``); the group and its summary."""
    import xarray as xr

    from archivestore.analysis import overlap, write_overlap

    group = write_overlap(store, name, overlap(store.study(name), **options))
    return group, xr.open_zarr(store.zstore, group=group, consolidated=False, chunks=None)


def _segmentation_overlap(args: argparse.Namespace, store: Any) -> int:
    from archivestore.analysis import segmentation_overlap, segmentation_overlap_summary, write_segmentation_overlap

    groups = store.segmentations_by_series(args.series)
    if not any(len(segs) >= 2 for segs in groups.values()):
        raise InvalidInputError("no series has two or more segmentations in the store")
    ds = segmentation_overlap(groups, threshold=0.5 if args.threshold is None else args.threshold)
    group = write_segmentation_overlap(store, ds)
    written = store.open_dataset(group)
    print(f"{written.sizes['series']} series x {written.sizes['segment']} segments x {written.sizes['rater']} "
          f"raters; binarised {written.attrs['binarised']}")
    print(segmentation_overlap_summary(written).to_dataframe().to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"written to group {group!r}: xr.open_zarr({args.store!r}, group={group!r}, consolidated=False)")
    return 0


def _only_study(studies: list[str]) -> str:
    if len(studies) != 1:
        raise InvalidInputError(f"say which study with --study; the store has: {', '.join(studies) or 'none'}")
    return studies[0]


def format_summary(ds: xr.Dataset | OverlapArrays) -> str:
    """A per-feature table of the summary variables of an overlap result (a Dataset or :class:`OverlapArrays`)."""
    import numpy as np

    cols = [("n", "dice_count", "{:>7d}")]
    for m, short in (("dice", "dice"), ("correlation", "corr"), ("superpixel_dice", "sp dice")):
        cols.append((f"{short} med", f"{m}_median", "{:>12.3f}"))
        cols.append((f"{short} std", f"{m}_std", "{:>12.3f}"))
    features = [str(f) for f in np.asarray(ds["feature"])]
    width = max([len("feature"), *map(len, features)])
    head = f"{'feature':<{width}}" + "".join(f"{name:>{7 if key.endswith('count') else 12}}" for name, key, _ in cols)
    lines = [head]
    values = {key: np.asarray(ds[key]) for _, key, _ in cols}
    for k, feature in enumerate(features):
        row = f"{feature:<{width}}"
        for _, key, fmt in cols:
            v = values[key][k]
            if key.endswith("count"):
                row += fmt.format(int(v))
            else:
                row += f"{'nan':>12}" if np.isnan(v) else fmt.format(float(v))
        lines.append(row)
    if "superpixel_dice_cross_median" in ds:
        lines += ["", "superpixel Dice median, rater's feature (rows) x other rater's feature (columns):"]
        cross = np.asarray(ds["superpixel_dice_cross_median"])
        lines.append(" " * width + "".join(f"{k:>8d}" for k in range(len(features))))
        for k, feature in enumerate(features):
            lines.append(f"{feature:<{width}}" + "".join(f"{v:>8.3f}" for v in cross[k]) + f"  ({k})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- score


def add_score_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``score STORE --truth RATER --prediction RATER [--attribute] [--image ID ...] [--out CSV]``.

    Exit codes: 0 ok, 1 nothing to score, 2 unknown rater or image, or masks of different shapes.
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "score",
        help="score one rater's segmentation masks against another's (ISIC challenge metrics)",
        description="Per-image accuracy, sensitivity, specificity, Jaccard, threshold Jaccard (0.65) and "
        "Dice of PREDICTION's masks against TRUTH's, with macro averages, as the official "
        "isic-challenge-scoring computes them.",
    )
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--truth", default=GROUND_TRUTH, metavar="RATER", help=f"reference rater (default: {GROUND_TRUTH})")
    p.add_argument("--prediction", required=True, metavar="RATER", help="rater whose masks are scored")
    p.add_argument("--attribute", action="store_true",
                   help="score the attribute masks (ISIC 2018 task 2) instead of lesion masks")
    p.add_argument("--image", nargs="+", metavar="ID",
                   help="score only these images (default: all with masks of both raters)")
    p.add_argument("--out", metavar="CSV", help="write the per-image scores to this CSV file")
    add_scheduler_option(p)
    add_store_options(p)
    p.set_defaults(func=_score)
    return p


@command
def _score(args: argparse.Namespace) -> int:
    from archivestore.analysis import score, score_table

    what = "attribute masks" if args.attribute else "lesion masks"
    ds = score(open_store(args), truth=args.truth, prediction=args.prediction,
               kind="attribute" if args.attribute else "mask", image_ids=args.image or None)
    if ds.sizes["image"] == 0:
        return error(f"no image has {what} of both {args.truth!r} and {args.prediction!r}", code=1)
    print(format_scores(ds))
    if args.out:
        score_table(ds).to_csv(args.out)
        print(f"per-image scores written to {args.out}")
    return 0


def format_scores(ds: xr.Dataset) -> str:
    """A :func:`~archivestore.analysis.score` result as text: per-image statistics and the averages."""
    import pandas as pd

    from archivestore.analysis import METRICS, score_table

    kind = ds.attrs["kind"]
    what = "lesion masks" if kind == "mask" else "attribute masks"
    lines = [f"{ds.attrs['prediction']} vs {ds.attrs['truth']}: {what} of {ds.sizes['image']} images"]
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 4):
        if kind == "mask":
            per_image = score_table(ds)[list(METRICS)].describe().loc[["mean", "std", "min", "50%", "max"]]
            lines += ["\nPer image:", str(per_image),
                      "\nMacro averaged metrics:", ds["macro_average"].to_series().to_string()]
        else:
            micro = pd.DataFrame({"jaccard": ds["micro_jaccard"].to_series(), "dice": ds["micro_dice"].to_series()})
            lines += ["\nMacro averaged metrics per feature (mean over images):",
                      ds["macro_average"].to_pandas().to_string(),
                      "\nOfficial task 2 scores per feature (micro average of normalised confusion matrices):",
                      micro.to_string(),
                      "\nMicro average over all features:", ds["micro_average"].to_series().to_string()]
    lines.append(f"\noverall: {ds.attrs['overall']:.4f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- heatmap


def _cell(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (or ``SIZE``) → ``(width, height)``, for ``--cell``."""
    try:
        w, _, h = text.lower().partition("x")
        size = (int(w), int(h or w))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 512x384, not {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError("cell width and height must be positive")
    return size


def add_heatmap_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``heatmap STORE --study NAME --feature F --out DIR [--image ID ...] [--definite] [--montage FILE]``.

    Exit codes: 0 ok, 1 nothing to paint, 2 unknown study, feature or image.
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "heatmap",
        help="paint how many study raters marked each superpixel for a feature",
        description="One PNG per image: the number of raters who marked each superpixel for FEATURE "
        "(any mark, or only definite ones), as a colour overlay with a legend.",
    )
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--study", required=True, metavar="NAME", help="study name (studies/<name>)")
    p.add_argument("--feature", required=True, metavar="F", help="study feature to paint")
    p.add_argument("--image", nargs="+", metavar="ID", help="images to paint (default: all of the study)")
    p.add_argument("--definite", action="store_true", help="count only definite marks (value 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNGs")
    p.add_argument("--montage", metavar="FILE", help="also write a grid of all heatmaps to this PNG")
    p.add_argument("--columns", type=int, default=4, metavar="N", help="montage columns (default 4)")
    p.add_argument("--cell", type=_cell, default=(512, 384), metavar="WxH", help="montage cell size (default 512x384)")
    add_scheduler_option(p)
    add_store_options(p)
    p.set_defaults(func=_heatmap)
    return p


@command
def _heatmap(args: argparse.Namespace) -> int:
    from archivestore.analysis import montage, write_heatmaps

    paths = write_heatmaps(open_store(args), args.study, args.feature, args.out, args.image or None,
                           definite=args.definite)
    if not paths:
        return error(f"study {args.study!r} has no images in the store", code=1)
    print(f"{len(paths)} heatmaps written to {args.out}")
    if args.montage:
        grid = montage(paths, columns=args.columns, cell_size=args.cell, labels=[p.stem for p in paths])
        Path(args.montage).parent.mkdir(parents=True, exist_ok=True)
        grid.save(args.montage)
        print(f"montage of {len(paths)} heatmaps written to {args.montage}")
    return 0
