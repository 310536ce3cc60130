"""The parser: one sub-command group per module, registered here in the order ``--help`` lists them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from archivestore.cli._analysis import add_heatmap_command, add_overlap_command, add_score_command
from archivestore.cli._demo import add_demo_command
from archivestore.cli._export import add_export_commands
from archivestore.cli._idc import add_idc_commands
from archivestore.cli._idr import add_idr_commands
from archivestore.cli._ingest import add_ingest_commands
from archivestore.cli._ml import add_split_command
from archivestore.cli._store import add_store_commands
from archivestore.cli._tables import add_table_commands
from archivestore.cli._tcia import add_tcia_commands

__all__ = ["build_parser", "main"]

DESCRIPTION = "The ``archivestore`` command (also ``python -m archivestore``)."


def build_parser() -> argparse.ArgumentParser:
    """The ``archivestore`` parser; each sub-command's ``func`` runs it and returns the exit code."""
    from archivestore import __version__

    parser = argparse.ArgumentParser(prog="archivestore", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_command(sub)
    add_ingest_commands(sub)
    add_store_commands(sub)
    for add in (add_overlap_command, add_score_command, add_heatmap_command, add_table_commands, add_export_commands,
                add_tcia_commands, add_idc_commands, add_idr_commands, add_split_command):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``archivestore`` command.

    Parameters
    ----------
    argv
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 done; 1 some items failed (listed on stderr) or nothing to do;
        2 an error (one ``archivestore: error: ...`` line on stderr, see
        :mod:`archivestore.cli._common`); 130 interrupted (Ctrl-C). Argument errors, ``--help`` and ``--version``
        exit through argparse's ``SystemExit`` (2, 0, 0).
    """
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # stdout closed early (``| head``): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # outside a command's own handling (e.g. while modules load)
        print("interrupted", file=sys.stderr)
        return 130
    return code
