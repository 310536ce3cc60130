"""``archivestore demo [STORE]``: build the embedded sample archive into a store and show it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archivestore.cli._common import command

if TYPE_CHECKING:
    from archivestore.store import Store

__all__ = ["add_demo_command", "run_demo"]

Out = Callable[[str], Any]


def add_demo_command(subparsers: Any) -> None:
    """Add ``demo [STORE] [--no-progress]``."""
    p = subparsers.add_parser("demo", help="build the embedded sample archive into a store and show it")
    p.add_argument("store", nargs="?", default="archivestore-demo.zarr")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_demo)


@command
def _demo(args: argparse.Namespace) -> int:
    return run_demo(args.store, progress=not args.no_progress)


def run_demo(store_url: str | Path = "archivestore-demo.zarr", workdir: str | Path | None = None,
             progress: bool = True, out: Out = print) -> int:
    """Write the sample archive, ingest it into ``store_url``, analyse it, and print what is there.

    Parameters
    ----------
    store_url
        The store to fill (a path or fsspec URL; created if missing).
    workdir
        Where to write the sample archive's files (default: a temporary directory, removed after).
    progress
        Show ingest progress bars.
    out
        Called with each line of the description (default :func:`print`).

    Returns
    -------
    int
        The exit code: 1 if any sample item failed to ingest, else 0.
    """
    from archivestore import open_store
    from archivestore.testing.sample import STUDY

    failed = _ingest_sample(store_url, workdir, progress, out)
    store = open_store(store_url, mode="a")
    out("")
    out(f"store: {Path(store_url).resolve() if '://' not in str(store_url) else store_url}")
    first = _describe(store, out)
    _analyses(store, STUDY, out)
    out("")
    out("open it with plain xarray (archivestore need not be installed):")
    out("  import xarray as xr")
    layout = store.layout
    for group in (layout.image(first), layout.METADATA, layout.study(STUDY), layout.overlap(STUDY)):
        out(f"  xr.open_zarr({str(store_url)!r}, group='{group}', consolidated=False)")
    return 1 if failed else 0


def _ingest_sample(store_url: str | Path, workdir: str | Path | None, progress: bool, out: Out) -> int:
    """Draw the sample archive and ingest it the way challenge downloads are; return the failures."""
    import tempfile

    from archivestore import ingest, open_store
    from archivestore.sources import ChallengeSource
    from archivestore.testing.sample import RATERS, SIZES, STUDY, write_sample_archive

    with tempfile.TemporaryDirectory() as tmp:
        files = Path(workdir) if workdir else Path(tmp) / "sample-archive"
        dirs = write_sample_archive(files)
        out(f"sample archive: {len(SIZES)} images in ISIC challenge layouts under {files}")
        store = open_store(store_url, mode="a")
        runs = [
            ("images, superpixels, masks, attributes, CSVs and ground-truth features",
             ChallengeSource([dirs["train"], dirs["masks"], dirs["attributes"], dirs["part2"]], study=STUDY)),
            *[(f"features of {r}", ChallengeSource([dirs[r]], study=STUDY, rater=r)) for r in RATERS[1:]],
            ("a model's lesion masks (rater 'model')", ChallengeSource([dirs["predictions"]], rater="model")),
        ]
        failed = 0
        for what, source in runs:
            report = ingest(store, source, progress=progress)
            out(f"ingest {what}: {report.summary()}")
            for bad in report.failed:
                out(f"  {bad}")
            failed += len(report.failed)
    return failed


def _describe(store: Store, out: Out) -> str:
    """Print the store's contents and the first image's arrays; return that image's id."""
    info = store.info()
    out(f"  images: {info['images']}  metadata fields: {info['metadata_fields']}  mask raters: "
        f"{', '.join(info['mask_raters']) or '-'}")
    for name, s in info["studies"].items():
        out(f"  study {name}: {s['images']} images x {len(s['features'])} features x "
            f"{len(s['raters'])} raters ({', '.join(s['raters'])}), up to {s['max_superpixels']} superpixels")
    first = sorted(store.image_ids())[0]
    ds = store.image(first)
    out(f"  {first}: " + ", ".join(f"{v} {tuple(ds[v].shape)} {ds[v].dtype}" for v in ds.data_vars))
    return first


def _analyses(store: Store, study: str, out: Out) -> None:
    """Rater overlap of the demo study, and the model's masks scored against the ground truth."""
    from archivestore.analysis import overlap, score, write_overlap
    from archivestore.cli._analysis import format_summary

    result = overlap(store.study(study))
    write_overlap(store, study, result)
    out("")
    out(f"rater overlap in {study} (written to studies/{study}/overlap):")
    for line in format_summary(result.compute()).splitlines():
        out("  " + line)
    macro = score(store, truth="ground_truth", prediction="model")["macro_average"].to_series()
    out("")
    out("the model's lesion masks against ground_truth (macro averages): "
        + ", ".join(f"{k} {v:.3f}" for k, v in macro.items()))
