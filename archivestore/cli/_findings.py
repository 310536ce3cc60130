"""``archivestore overlap STORE --findings``: observers' agreement on SR findings, printed and written."""

from __future__ import annotations

import argparse
from typing import Any

from archivestore.errors import InvalidInputError

__all__ = ["findings_agreement_command"]


def findings_agreement_command(args: argparse.Namespace, store: Any) -> int:
    """Kappas per qualitative concept and measurement spreads of the store's findings, to ``findings_agreement``."""
    from archivestore.analysis import findings_agreement, findings_agreement_table, write_findings_agreement

    frame = store.findings()
    if args.series:
        frame = frame[frame["source_series"].isin(args.series)]
    if frame.empty:
        raise InvalidInputError("no SR findings in the store" + (" for these series" if args.series else ""))
    ds = findings_agreement(frame)
    group = write_findings_agreement(store, ds)
    kappas, spread = findings_agreement_table(ds)
    matched = ", ".join(sorted(set(ds.attrs["matched_by"].values())))
    print(f"{len(ds.attrs['matched_by'])} series x {ds.sizes['rater']} observers; findings matched by {matched}")
    if len(kappas):
        print(kappas.to_string(float_format=lambda v: f"{v:.3f}"))
    if len(spread):
        print(spread.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"written to group {group!r}: xr.open_zarr({args.store!r}, group={group!r}, consolidated=False)")
    return 0
