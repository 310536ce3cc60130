"""What every command shares: store options, ``--scheduler``, errors → exit codes, report lines.

Nothing here imports more than the standard library and :mod:`archivestore.errors` at module
level, so building the parser (``--help``, argument errors) stays fast; the store, dask and
``distributed`` are imported when a command runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from archivestore.errors import ArchivestoreError

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from archivestore.store import Store

__all__ = [
    "EXPECTED_ERRORS",
    "INTERRUPTED",
    "STORE_HELP",
    "Command",
    "show_table",
    "add_scheduler_option",
    "add_store_options",
    "command",
    "error",
    "expected_message",
    "need",
    "open_store",
    "print_report",
    "scheduler",
    "storage_option",
]

STORE_HELP = "store path or fsspec URL"

Command = Callable[[argparse.Namespace], int]
"""A command: parsed arguments in, exit code out."""

INTERRUPTED = 130
"""The exit code of a command interrupted by Ctrl-C (128 + SIGINT, as shells report it)."""

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ArchivestoreError, KeyError, ValueError, OSError)
"""What a command may raise for bad input or a missing thing: exit 2 with one line, no traceback.

archivestore's own errors, and the builtins they also are (``KeyError``, ``ValueError``,
``FileNotFoundError``/``OSError``, ``TimeoutError``) when a library beneath raises them.
"""


EXTRAS: dict[str, str] = {
    "distributed": "distributed", "s3fs": "s3", "idc_index_data": "idc", "duckdb": "idc", "pydicom": "dicom",
    "highdicom": "dicom", "pylibjpeg": "dicom", "libjpeg": "dicom", "openjpeg": "dicom", "rle": "dicom",
    "matplotlib": "plot", "ome_zarr": "ome", "ome_zarr_models": "ome",
}
"""An optional package → the archivestore extra that installs it (``pip install 'archivestore[<extra>]'``)."""

OTHER_PACKAGES: dict[str, str] = {"gcsfs": "gcsfs", "adlfs": "adlfs", "ocifs": "ocifs", "sshfs": "sshfs"}
"""fsspec backends no extra installs (module → package)."""


NEEDS: dict[str, tuple[str, ...]] = {
    "dicom": ("pydicom", "highdicom"), "idc": ("idc_index_data", "duckdb", "s3fs"),
    "ome": ("ome_zarr", "ome_zarr_models"), "distributed": ("distributed",), "s3": ("s3fs",),
}
"""The modules each extra brings that a command checks for before it starts."""


def need(*extras: str) -> None:
    """Import what ``extras`` bring, or raise one ``ModuleNotFoundError`` naming the extra to install.

    A command calls it before it reaches out to an archive, so a missing extra is said at once (and not
    as a failure of every item).
    """
    for extra in extras:
        for module in NEEDS[extra]:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ModuleNotFoundError(f"this needs {module}, which is not installed: "
                                          f"pip install 'archivestore[{extra}]'", name=module) from exc


def _missing_module(exc: BaseException) -> str | None:
    """The top-level module whose absence ``exc`` (or what it wraps: fsspec's ImportError) is about."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ModuleNotFoundError) and cur.name:
            return cur.name.split(".")[0]
        cur = cur.__cause__ or cur.__context__
    return None


def expected_message(exc: BaseException) -> str | None:
    """The one line for a failure a user can fix that no archivestore error names (else None: a bug).

    A missing optional package (naming the extra to install), a bucket without credentials or refusing
    them, a bucket endpoint out of reach.
    """
    if isinstance(exc, ImportError):
        name = _missing_module(exc)
        if name in EXTRAS:
            hint = f"pip install 'archivestore[{EXTRAS[name]}]'"
            return str(exc) if hint in str(exc) else f"this needs {name}, which is not installed: {hint}"
        if name in OTHER_PACKAGES:
            return f"this needs {name}, which is not installed: pip install {OTHER_PACKAGES[name]}"
        return None
    module = type(exc).__module__.split(".")[0]
    kind = type(exc).__name__
    if module in ("botocore", "aiobotocore", "google"):
        if "Credentials" in kind or "Credential" in str(exc)[:40]:
            return (f"no usable credentials for the bucket ({exc}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "or AWS_PROFILE, or pass --storage-option anon=true for a public bucket")
        if "Connect" in kind or "Timeout" in kind:
            return f"cannot reach the bucket: {exc}"
        if kind == "ClientError":
            return f"the bucket refused the request: {exc}"
    if module == "aiohttp" and ("Connect" in kind or "Timeout" in kind):
        return f"cannot reach {getattr(exc, 'host', 'the server')}: {exc}"
    return None


def storage_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → ``(key, value)``; a value that parses as JSON (``true``, ``3``) is converted."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE`` (repeatable), for any command that opens a store."""
    parser.add_argument("--storage-option", "-O", action="append", type=storage_option, default=[],
                        metavar="KEY=VALUE", dest="storage_option",
                        help="fsspec storage option for the store URL (repeatable), e.g. anon=true")


def open_store(args: argparse.Namespace, mode: str = "r", *, create: bool = False) -> Store:
    """Open ``args.store`` with the command's ``--storage-option`` pairs.

    ``mode="a"`` writes into the store; only with ``create`` does a missing store get created
    (ingest), otherwise it is an error as with ``mode="r"`` (overlap, ``verify --repair``).
    """
    from archivestore import open_store as _open

    options = dict(args.storage_option)
    if mode == "a" and not create:
        _open(args.store, mode="r", storage_options=options)  # StoreNotFoundError if there is none
    return _open(args.store, mode=mode, storage_options=options)


def add_scheduler_option(parser: argparse.ArgumentParser,
                         what: str = "run the dask work on a dask.distributed cluster") -> None:
    """``--scheduler ADDRESS``; :func:`command` opens (and closes) a client on it for the run."""
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help=f"{what} (scheduler address; default: local threads)")


@contextmanager
def scheduler(address: str | None) -> Iterator[Client | None]:
    """A ``distributed.Client`` connected to ``address`` for the duration, closed after; ``None`` without one.

    While it is open it is dask's default scheduler, so ``compute()`` in the body runs on the cluster.
    """
    if not address:
        yield None
        return
    need("distributed")
    from distributed import Client

    with Client(address) as client:
        yield client


def error(message: object, code: int = 2) -> int:
    """Print ``archivestore: error: <message>`` on stderr (one line); return ``code``."""
    text = " ".join(str(message).split("\n"))
    print(f"archivestore: error: {text}", file=sys.stderr)
    return code


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and not isinstance(exc, ArchivestoreError) and exc.args:
        return str(exc.args[0])  # not KeyError's repr() quotes
    return str(exc) or type(exc).__name__


def command(func: Callable[[argparse.Namespace], int]) -> Command:
    """Wrap a command: ``--scheduler`` opens a client for the run (``args.client``), errors become exit 2.

    The errors of :data:`EXPECTED_ERRORS` print one line (:func:`error`) and give exit code 2;
    anything else is a bug and keeps its traceback. Per-item failures are the command's own
    business (exit 1, see :func:`print_report`).
    """

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            with scheduler(getattr(args, "scheduler", None)) as client:
                args.client = client
                return func(args)
        except BrokenPipeError:
            raise  # the reader went away (``| head``): see main()
        except EXPECTED_ERRORS as exc:
            return error(_message(exc))
        except Exception as exc:
            message = expected_message(exc)
            if message is None:
                raise  # a bug: keep the traceback
            return error(message)
        except KeyboardInterrupt as exc:  # Ctrl-C: one line (an ingest's says what it stored), exit 130
            print(str(exc) or "interrupted", file=sys.stderr)
            return INTERRUPTED

    return run


def print_report(summary: str, ok: bool, lines: Iterable[tuple[str, object]] = (), *, summary_line: bool = True
                 ) -> int:
    """One ``LABEL <item>: <where>: <reason>`` line per failure on stderr, the summary on stdout.

    Returns the exit code: 0 when ``ok``, else 1.
    """
    for label, item in lines:
        print(f"{label} {item}", file=sys.stderr)
    if summary_line:
        print(summary)
    return 0 if ok else 1


def show_table(table: pd.DataFrame, csv: str | None) -> int:
    """Print a query's table, or write it as CSV to ``csv`` (``-``: standard output); return 0."""
    if csv is not None:
        table.to_csv(sys.stdout if csv == "-" else csv, index=False)
    elif table.empty:
        print("no results", file=sys.stderr)
    else:
        print(table.to_string(index=False))
    return 0
