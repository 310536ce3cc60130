"""``archivestore ingest challenge|isic|isic-study|tcia|idc``: fill a store from a source."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from archivestore.cli._common import (
    add_scheduler_option,
    add_store_options,
    command,
    error,
    need,
    open_store,
    print_report,
    storage_option,
)
from archivestore.layout import GROUND_TRUTH

__all__ = ["add_ingest_commands"]

TOKEN_ENV = "ISIC_TOKEN"
"""Named in the help text only (``archivestore.sources.isic.v2.TOKEN_ENV`` reads it; a test keeps them equal)."""


def add_ingest_commands(subparsers: Any) -> None:
    """Add ``ingest`` with its sources ``challenge``, ``isic-study``, ``isic``, ``tcia`` and ``idc``."""
    p = subparsers.add_parser("ingest", help="fill a store from a source")
    sources = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    _add_challenge(sources)
    _add_isic_study(sources)
    _add_isic(sources)
    _add_tcia(sources)
    _add_idc(sources)
    _add_ome_zarr(sources)
    _add_idr(sources)


def _add_challenge(sources: Any) -> None:
    c = sources.add_parser("challenge", help="ISIC challenge files on disk (2016/2017/2018 layouts)")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    c.add_argument("--store", required=True)
    c.add_argument("--study", help="study for *_features.json (default: the directory's name)")
    c.add_argument("--rater", default=GROUND_TRUTH, help=f"whose masks/features these are (default {GROUND_TRUTH})")
    c.add_argument("--workers", type=int, default=None, help="worker threads (default: CPUs)")
    c.add_argument("--no-progress", action="store_true")
    add_scheduler_option(c, "run on a dask.distributed cluster")
    add_store_options(c)
    c.set_defaults(func=_challenge)


def _http_options(p: argparse.ArgumentParser) -> None:
    """The HTTP client's flags, the same for every archive API (read by :func:`_client_options`)."""
    p.add_argument("--retries", type=int, default=5, help="tries again after 429/5xx/broken transfers (default 5)")
    p.add_argument("--backoff", type=float, default=0.5, help="exponential backoff factor in seconds (default 0.5)")
    p.add_argument("--debug", action="store_true", help="print every request (secrets redacted)")


def _source_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--source-option", action="append", default=[], type=storage_option, metavar="KEY=VALUE",
                   help=f"fsspec option for {what} (repeatable), e.g. anon=true or endpoint_url=http://...")


def _api_options(p: argparse.ArgumentParser, base_url_help: str) -> None:
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--base-url", default=None, help=base_url_help)
    p.add_argument("--workers", type=int, default=None,
                   help=f"parallel downloads/ingest workers (default {NETWORK_WORKERS})")
    _http_options(p)
    p.add_argument("--cache-dir", default=None, help="cache metadata listings here")
    p.add_argument("--cache-expire", type=float, default=86400.0, help="cache lifetime in seconds (default one day)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p, "run fetch/decode/write on a dask.distributed cluster")
    add_store_options(p)


def _add_isic_study(sources: Any) -> None:
    p = sources.add_parser(
        "isic-study",
        help="a whole v1 study: images, superpixels, best masks, every annotator's values",
        description="Ingest a study of an ISIC Archive API v1 (Girder) deployment by name or id. The public v1 was "
        "retired in 2022: its studies are the challenges' files ('ingest challenge'), today's archive is API v2 "
        "('ingest isic'). The password comes from --password, else ~/.netrc for the host, else a prompt.",
    )
    p.add_argument("study", help="study name or id")
    _api_options(p, "API root of a v1 deployment (required: the public v1 was retired in 2022)")
    p.add_argument("--username", default=None, help="log in as this user (else anonymous, or the ~/.netrc login)")
    p.add_argument("--password", default=None, help="password (prefer ~/.netrc or the prompt)")
    p.add_argument("--image", action="append", default=None, metavar="NAME", help="only this image (repeatable)")
    p.add_argument("--no-masks", action="store_true", help="skip segmentation masks")
    p.set_defaults(func=_isic_study)


def _add_isic(sources: Any) -> None:
    p = sources.add_parser(
        "isic",
        help="images of an API v2 search",
        description="Ingest the images of an ISIC Archive API v2 search, e.g. --query 'diagnosis_3:\"Melanoma "
        f"Invasive\"'. A bearer token for non-public images comes from --token or ${TOKEN_ENV}; it is checked "
        "first (users/me/), and a rejected one stops the command before anything is stored.",
    )
    _api_options(p, "API root (default: the ISIC Archive's public API v2)")
    p.add_argument("--query", default="", help="the archive's search query (double-quote values)")
    p.add_argument("--collections", default=None, help="comma-separated collection ids")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--token", default=None, help=f"OAuth bearer token (default ${TOKEN_ENV})")
    p.add_argument("--thumbnails", action="store_true",
                   help="store the 256-pixel thumbnails instead of the full images")
    p.set_defaults(func=_isic)


NETWORK_WORKERS = 8
"""Default ``--workers`` of the sources that download: an item waits on the archive before it has
anything to decode, so with only one worker per CPU the CPUs idle through every round trip (measured in
``benchmarks/bench_peers.py``); the HTTP client keeps as many connections."""


def _ingest(args: argparse.Namespace, source: Any, extra: str = "", *, network: bool = False) -> int:
    """Ingest and report: exit 0, 1 (items failed, or the store refused writes), 2 (the archive out of reach),
    130 (Ctrl-C: the rows of what completed are stored first; :func:`command` prints the line)."""
    from archivestore._ingest import IngestInterrupted, ingest
    from archivestore.errors import UnreachableError

    store = open_store(args, mode="a", create=True)
    workers = args.workers or (NETWORK_WORKERS if network else None)
    try:
        report = ingest(store, source, workers=workers, client=args.client, progress=not args.no_progress)
    except IngestInterrupted as exc:
        print_report("", True, [("FAILED", bad) for bad in exc.report.failed], summary_line=False)
        raise
    lines = [*(("WARNING", w) for w in report.warnings), *(("FAILED", bad) for bad in report.failed)]
    code = print_report(f"{report.summary()}{extra}", report.ok, lines)
    return 2 if isinstance(report.stopped, UnreachableError) else code


@command
def _challenge(args: argparse.Namespace) -> int:
    from archivestore.sources import ChallengeSource

    source = ChallengeSource(args.dirs, study=args.study, rater=args.rater)
    orphans = getattr(source, "csv_only", None)
    return _ingest(args, source, f"; {len(orphans)} CSV rows without an image file" if orphans else "")


@command
def _isic_study(args: argparse.Namespace) -> int:
    from archivestore.sources.isic.v1 import V1_RETIRED, IsicStudySource, IsicV1

    if not args.base_url:
        return error(V1_RETIRED)
    api = IsicV1(args.base_url, username=args.username, password=args.password, **_client_options(args))
    return _ingest(args, IsicStudySource(api, args.study, names=args.image, masks=not args.no_masks), network=True)


@command
def _isic(args: argparse.Namespace) -> int:
    from archivestore.sources.isic.v2 import DEFAULT_V2_URL, IsicSearchSource, IsicV2

    api = IsicV2(args.base_url or DEFAULT_V2_URL, token=args.token, **_client_options(args))
    api.check_token()  # a rejected token: exit 2 before the store is opened
    source = IsicSearchSource(api, args.query, args.collections, limit=args.limit,
                              file="thumbnail_256" if args.thumbnails else "full")
    return _ingest(args, source, network=True)


def _series_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", default=None, help="collection (as the portal writes it)")
    p.add_argument("--modality", nargs="+", default=None, help="modalities, e.g. CT SEG")
    p.add_argument("--patient", default=None, help="PatientID")
    p.add_argument("--study", default=None, help="StudyInstanceUID")
    p.add_argument("--series", nargs="+", default=None, metavar="UID", help="SeriesInstanceUIDs")
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"series fetched and written at once (default {NETWORK_WORKERS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p, "run fetch/decode/write on a dask.distributed cluster")
    add_store_options(p)


def _add_tcia(sources: Any) -> None:
    p = sources.add_parser(
        "tcia", help="DICOM series of The Cancer Imaging Archive (NBIA REST API v4): volumes and SEGs",
        description="Ingest the image series (into series/) and segmentations (into segmentations/) that the "
        "filters select. Each series' zip is checked before it is read.")
    _series_filters(p)
    p.add_argument("--base-url", default=None, help="API root (default: TCIA's public NBIA v4 API)")
    _http_options(p)
    p.set_defaults(func=_tcia, cache_dir=None, cache_expire=0.0)


def _add_idc(sources: Any) -> None:
    p = sources.add_parser(
        "idc", help="DICOM series of NCI Imaging Data Commons, read from its public buckets",
        description="Ingest the series the filters, --sql or --series select from IDC's index (idc-index-data, or "
        "--index FILE) straight from the bucket; needs the idc extra.")
    _series_filters(p)
    p.add_argument("--sql", default=None, help='"SELECT SeriesInstanceUID FROM index WHERE ..."')
    p.add_argument("--index", default=None, metavar="FILE", help="index parquet (default: idc-index-data's)")
    p.add_argument("--yes", action="store_true", help="ingest even when the selection is larger than the free "
                   "space of a local store")
    _source_options(p, "the bucket")
    p.set_defaults(func=_idc)


def _add_ome_zarr(sources: Any) -> None:
    p = sources.add_parser(
        "ome-zarr", help="OME-Zarr images and HCS plates (NGFF 0.4 or 0.5; local, s3://, https://)",
        description="Ingest OME-Zarr images (with their labels, physical scale and channels) and HCS plates "
        "(their field images, and the well grid into plates/<plate>); needs the ome extra.")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--level", type=int, default=0, help="resolution level (default 0: full resolution)")
    _source_options(p, "the URLs")
    p.add_argument("--workers", type=int, default=None, help="images read and written at once (default: CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p, "run read/write on a dask.distributed cluster")
    add_store_options(p)
    p.set_defaults(func=_ome_zarr)


def _add_idr(sources: Any) -> None:
    p = sources.add_parser(
        "idr", help="microscopy images and screening plates of the Image Data Resource (OMERO.web)",
        description="Ingest the images with their map annotations, and each plate's well grid. Pixels: raw values "
        "from the images' OME-Zarr (--zarr-url; an image without one is a FAILED line, never silently replaced), or "
        "OMERO.web's rendered 8-bit planes (--rendered, marked rendered), or thumbnails (--thumbnails).")
    what = p.add_mutually_exclusive_group(required=True)
    for flag in ("project", "dataset", "screen", "plate"):
        what.add_argument(f"--{flag}", type=int, default=None, metavar="ID", help=f"every image of this {flag}")
    what.add_argument("--image", type=int, nargs="+", default=None, metavar="ID", help="these images")
    p.add_argument("--zarr-url", default=None, metavar="TEMPLATE",
                   help="where the images' OME-Zarr lives, e.g. s3://idr/zarr/v0.4/{study}/{image_id}.zarr, "
                   "or 'idr' for IDR's own (anonymous, https://livingobjects.ebi.ac.uk, then IDR's old host)")
    p.add_argument("--no-fallback", action="store_true",
                   help="with --zarr-url idr: do not try IDR's old host for images not found on the new one")
    p.add_argument("--plate-zarr-url", default=None, metavar="TEMPLATE", help="a plate's OME-Zarr ({plate_id})")
    p.add_argument("--rendered", action="store_true",
                   help="OMERO.web's rendered 8-bit planes (marked rendered), whether or not an OME-Zarr exists")
    p.add_argument("--thumbnails", action="store_true", help="only IDR's RGB thumbnails (a quick preview)")
    p.add_argument("--level", type=int, default=0, help="OME-Zarr resolution level (default 0)")
    _source_options(p, "the OME-Zarr URLs")
    p.add_argument("--base-url", default=None, help="OMERO.web root (default: https://idr.openmicroscopy.org/)")
    _http_options(p)
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"images fetched and written at once (default {NETWORK_WORKERS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_option(p, "run fetch/decode/write on a dask.distributed cluster")
    add_store_options(p)
    p.set_defaults(func=_idr, cache_dir=None, cache_expire=0.0)


@command
def _idr(args: argparse.Namespace) -> int:
    from archivestore.sources.idr import (
        DEFAULT_IDR_URL,
        IDR_FALLBACK_STORAGE_OPTIONS,
        IDR_STORAGE_OPTIONS,
        IDR_ZARR_URL,
        Idr,
        IdrSource,
    )

    if not (args.zarr_url or args.rendered or args.thumbnails):
        return error("say where the pixels come from: --zarr-url idr (IDR's OME-Zarr, raw values), --zarr-url "
                     "TEMPLATE, or --rendered (OMERO.web's 8-bit rendered planes)")
    options = {k: v for k, v in _client_options(args).items() if k not in ("cache_dir", "cache_expire")}
    idr = Idr(args.base_url or DEFAULT_IDR_URL, **options)
    zarr_url, storage = args.zarr_url, dict(args.source_option)
    fallbacks: tuple[dict[str, Any], ...] = ()
    if zarr_url == "idr":
        zarr_url, storage = IDR_ZARR_URL, {**IDR_STORAGE_OPTIONS, **storage}
        fallbacks = () if args.no_fallback else tuple({**o, **dict(args.source_option)}
                                                      for o in IDR_FALLBACK_STORAGE_OPTIONS)
    source = IdrSource(idr, project=args.project, dataset=args.dataset, screen=args.screen, plate=args.plate,
                       images=args.image, zarr_url=zarr_url, plate_zarr_url=args.plate_zarr_url,
                       rendered=args.rendered, thumbnails=args.thumbnails, storage_options=storage or None,
                       level=args.level, fallback_storage_options=fallbacks)
    return _ingest(args, source, network=True)


@command
def _ome_zarr(args: argparse.Namespace) -> int:
    need("ome")
    from archivestore.sources.ome_zarr import OmeZarrSource

    return _ingest(args, OmeZarrSource(args.urls, level=args.level, storage_options=dict(args.source_option)))


@command
def _tcia(args: argparse.Namespace) -> int:
    need("dicom")
    from archivestore.sources.tcia import DEFAULT_NBIA_URL, Tcia, TciaSource

    options = {k: v for k, v in _client_options(args).items() if k not in ("cache_dir", "cache_expire")}
    tcia = Tcia(args.base_url or DEFAULT_NBIA_URL, progress=False, **options)
    modality = args.modality[0] if args.modality and len(args.modality) == 1 else None
    if args.modality and len(args.modality) > 1:
        return error("ingest tcia takes one --modality (NBIA filters by one)")
    return _ingest(args, TciaSource(tcia, collection=args.collection, modality=modality, patient=args.patient,
                                    study=args.study, series=args.series), network=True)


@command
def _idc(args: argparse.Namespace) -> int:
    need("idc", "dicom")
    from archivestore.sources.idc import IdcIndex, IdcSource

    source = IdcSource(IdcIndex(args.index), collection=args.collection, modality=args.modality, sql=args.sql,
                       series=args.series, patient=args.patient, study=args.study,
                       source_options=dict(args.source_option) or None, progress=False)
    from archivestore.cli._idc_size import check_room

    refused = check_room(args, source)
    return refused if refused is not None else _ingest(args, source, network=True)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (so pytest's capture sees it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The HTTP client's options; with ``--debug`` every request is logged to stderr (redacted)."""
    if args.debug:
        log = logging.getLogger("archivestore.http")
        if not any(isinstance(h, _StderrHandler) for h in log.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.INFO)
    return {"retries": args.retries, "backoff_factor": args.backoff, "cache_dir": args.cache_dir,
            "cache_expire": args.cache_expire, "workers": args.workers or NETWORK_WORKERS, "debug": args.debug}
