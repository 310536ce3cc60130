"""``archivestore ingest isic-study`` and ``archivestore ingest isic``: the ISIC APIs on the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ._http import APIError
from ._isic_v1 import DEFAULT_V1_URL, IsicStudySource, IsicV1
from ._isic_v2 import DEFAULT_V2_URL, TOKEN_ENV, IsicSearchSource, IsicV2

__all__ = ["add_ingest_isic_commands"]


def _common(p: argparse.ArgumentParser, default_url: str) -> None:
    p.add_argument("--store", required=True, help="store path or fsspec URL (created if missing)")
    p.add_argument("--base-url", default=default_url, help=f"API root (default {default_url})")
    p.add_argument("--workers", type=int, default=None, help="parallel downloads/ingest workers")
    p.add_argument("--retries", type=int, default=5, help="tries again after 429/5xx/broken transfers (default 5)")
    p.add_argument("--backoff", type=float, default=0.5, help="exponential backoff factor in seconds (default 0.5)")
    p.add_argument("--cache-dir", default=None, help="cache metadata listings here")
    p.add_argument("--cache-expire", type=float, default=86400.0, help="cache lifetime in seconds (default one day)")
    p.add_argument("--debug", action="store_true", help="print every request (secrets redacted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run fetch/decode/write on a dask.distributed cluster")
    from archivestore.cli import add_store_options

    add_store_options(p)


def add_ingest_isic_commands(ingest_subparsers: Any) -> None:
    """Add ``isic-study`` (API v1) and ``isic`` (API v2) under ``archivestore ingest``."""
    p = ingest_subparsers.add_parser(
        "isic-study",
        help="a whole v1 study: images, superpixels, best masks, every annotator's values",
        description=(
            "Ingest a study of the ISIC Archive API v1 (Girder) by name or id. The password comes from "
            "--password, else ~/.netrc for the host, else a prompt."
        ),
    )
    p.add_argument("study", help="study name or id")
    _common(p, DEFAULT_V1_URL)
    p.add_argument("--username", default=None, help="log in as this user (else anonymous, or the ~/.netrc login)")
    p.add_argument("--password", default=None, help="password (prefer ~/.netrc or the prompt)")
    p.add_argument("--image", action="append", default=None, metavar="NAME", help="only this image (repeatable)")
    p.add_argument("--no-masks", action="store_true", help="skip segmentation masks")
    p.set_defaults(func=_run_isic_study)

    p = ingest_subparsers.add_parser(
        "isic",
        help="images of an API v2 search",
        description=(
            "Ingest the images of an ISIC Archive API v2 search, e.g. --query 'diagnosis_3:\"Melanoma Invasive\"'. "
            f"A bearer token for non-public images comes from --token or ${TOKEN_ENV}."
        ),
    )
    _common(p, DEFAULT_V2_URL)
    p.add_argument("--query", default="", help="the archive's search query (double-quote values)")
    p.add_argument("--collections", default=None, help="comma-separated collection ids")
    p.add_argument("--limit", type=int, default=None, help="at most this many images")
    p.add_argument("--token", default=None, help=f"OAuth bearer token (default ${TOKEN_ENV})")
    p.add_argument("--thumbnails", action="store_true", help="store the 256-pixel thumbnails instead of the full images")
    p.set_defaults(func=_run_isic)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (added once)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.debug:
        log = logging.getLogger("archivestore.http")
        if not any(isinstance(h, _StderrHandler) for h in log.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.INFO)
    return dict(
        retries=args.retries,
        backoff_factor=args.backoff,
        cache_dir=args.cache_dir,
        cache_expire=args.cache_expire,
        workers=args.workers or 8,
        debug=args.debug,
    )


def _ingest(args: argparse.Namespace, source: Any) -> int:
    import archivestore
    from archivestore.cli import storage_options

    store = archivestore.open_store(args.store, mode="a", storage_options=storage_options(args.storage_option))
    report = archivestore.ingest(store, source, workers=args.workers, client=args.scheduler,
                                 progress=not args.no_progress)
    for bad in report.failed:
        print(f"FAILED {bad}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


def _run_isic_study(args: argparse.Namespace) -> int:
    try:
        api = IsicV1(args.base_url, username=args.username, password=args.password, **_client_options(args))
        source = IsicStudySource(api, args.study, names=args.image, masks=not args.no_masks)
        return _ingest(args, source)
    except (APIError, KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2


def _run_isic(args: argparse.Namespace) -> int:
    try:
        api = IsicV2(args.base_url, token=args.token, **_client_options(args))
        source = IsicSearchSource(api, args.query, args.collections, limit=args.limit,
                                  file="thumbnail_256" if args.thumbnails else "full")
        return _ingest(args, source)
    except (APIError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
