"""``archivestore overlap STORE --study NAME``: compute, write and summarise a study's overlap."""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import xarray as xr

from archivestore.analysis._overlap import overlap, write_overlap

__all__ = ["add_overlap_command", "format_summary", "run_overlap_command"]


def add_overlap_command(subparsers) -> argparse.ArgumentParser:
    """Add the ``overlap`` subcommand to an ``argparse`` subparsers object."""
    from archivestore.cli import add_store_options

    p = subparsers.add_parser(
        "overlap",
        help="rater overlap of a study (pixel Dice, correlation, superpixel Dice), written to studies/<study>/overlap",
        description="Compare every ordered pair of raters on every image and feature of a study; write the "
        "result to the group studies/<study>/overlap of the store and print a per-feature summary.",
    )
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--study", help="study name (default: the store's only study)")
    binarise = p.add_mutually_exclusive_group()
    binarise.add_argument("--threshold", type=float, default=None,
                          help="Dice counts superpixels with value > THRESHOLD (default 0: 'possible' counts)")
    binarise.add_argument("--definite", action="store_true", help="Dice counts value >= 1 ('definite') only")
    p.add_argument("--within-mask", action="store_true",
                   help="only pixels inside the lesion mask (images without one give NaN)")
    p.add_argument("--cross-features", action="store_true",
                   help="also every feature of one rater against every feature of the other")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler address (default: local threads)")
    p.add_argument("--images-per-task", type=int, default=None, help="images per dask task (default: the study's chunks)")
    add_store_options(p)
    p.set_defaults(func=run_overlap_command)
    return p


def format_summary(ds: xr.Dataset) -> str:
    """A per-feature table of the summary variables of an overlap result."""
    cols = [("n", "dice_count", "{:>7d}")]
    for m, short in (("dice", "dice"), ("correlation", "corr"), ("superpixel_dice", "sp dice")):
        cols.append((f"{short} med", f"{m}_median", "{:>12.3f}"))
        cols.append((f"{short} std", f"{m}_std", "{:>12.3f}"))
    features = [str(f) for f in ds["feature"].values]
    width = max([len("feature"), *map(len, features)])
    head = f"{'feature':<{width}}" + "".join(f"{name:>{7 if key.endswith('count') else 12}}" for name, key, _ in cols)
    lines = [head]
    values = {key: np.asarray(ds[key].values) for _, key, _ in cols}
    for k, feature in enumerate(features):
        row = f"{feature:<{width}}"
        for _, key, fmt in cols:
            v = values[key][k]
            row += fmt.format(int(v)) if key.endswith("count") else (f"{'nan':>12}" if np.isnan(v) else fmt.format(float(v)))
        lines.append(row)
    if "superpixel_dice_cross_median" in ds:
        lines += ["", "superpixel Dice median, rater's feature (rows) x other rater's feature (columns):"]
        cross = np.asarray(ds["superpixel_dice_cross_median"].values)
        lines.append(" " * width + "".join(f"{k:>8d}" for k in range(len(features))))
        for k, feature in enumerate(features):
            lines.append(f"{feature:<{width}}" + "".join(f"{v:>8.3f}" for v in cross[k]) + f"  ({k})")
    return "\n".join(lines)


def run_overlap_command(args) -> int:
    """Run ``archivestore overlap`` for parsed ``args``; returns the exit code."""
    from archivestore import open_store
    from archivestore.cli import storage_options

    store = open_store(args.store, mode="a", storage_options=storage_options(args.storage_option))
    name = args.study
    if name is None:
        studies = store.studies()
        if len(studies) != 1:
            raise ValueError(f"say which study with --study; the store has: {', '.join(studies) or 'none'}")
        name = studies[0]
    if args.definite:
        threshold, inclusive = 1.0, True
    else:
        threshold, inclusive = (args.threshold if args.threshold is not None else 0.0), False
    study = store.study(name)
    ds = overlap(study, threshold=threshold, inclusive=inclusive, within_mask=args.within_mask,
                 cross_features=args.cross_features, images_per_task=args.images_per_task)

    client = contextlib.nullcontext()
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    with client:
        group = write_overlap(store, name, ds)

    written = xr.open_zarr(store.zstore, group=group, consolidated=False)
    n_img, n_feat, n_rat = (written.sizes[d] for d in ("image", "feature", "rater"))
    print(f"study {name}: {n_img} images x {n_feat} features x {n_rat} raters; "
          f"binarised {written.attrs['binarised']}{', within the lesion mask' if args.within_mask else ''}")
    print(format_summary(written))
    print(f"written to group {group!r}: xr.open_zarr({args.store!r}, group={group!r}, consolidated=False)")
    return 0
