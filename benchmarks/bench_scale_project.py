"""Archive scale, projected: whole-archive ingests from the per-item costs ``bench_scale.py`` measures.

Called by ``bench_scale.py`` at the end of a run; ``benchmarks/scale.md`` explains the model. The
constants below are the archives' sizes, list prices and bucket limits (sources in scale.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# AWS S3 Standard, us-east-1, list prices (aws.amazon.com/s3/pricing; see scale.md for the date)
PUT_PRICE = 0.005 / 1000  # PUT, COPY, POST, LIST
GET_PRICE = 0.0004 / 1000  # GET, HEAD and the rest
STORAGE_TIERS = ((50_000, 0.023), (450_000, 0.022), (float("inf"), 0.021))  # (GB in the tier, $/GB-month)
S3_PREFIX_WRITES = 3500  # PUT/COPY/POST/DELETE per second per partitioned prefix
GCS_INITIAL_WRITES = 1000  # object writes per second per bucket before Cloud Storage ramps up
CLUSTER_WORKERS = 100  # one CPU each
MACHINE_CPUS = 2
NETWORK = 125e6  # bytes/s a 1 Gbit/s link brings in


@dataclass
class Archive:
    """A whole archive as a number of items like one measured kind, scaled by ``scale`` (CPU, bytes)."""

    name: str
    kind: str
    items: int
    source_bytes: float  # bytes fetched per item
    scale: float = 1.0  # the archive's item / the measured item (pixels)
    extra_writes: float = 0.0  # writes per item the measured item lacks (more chunks)


def archives(ct_slices: int) -> list[Archive]:
    """The three archives of issue 11 (sizes in scale.md), each against the measured kind it resembles."""
    slices = 50e12 / 60_000 / (512 * 512 * 2 + 1500)  # IDC CT: ~50 TB in ~60,000 series of 512x512 int16
    return [
        Archive("ISIC archive, 1024x768 images", "isic 1024x768", 400_000, 0.35e6),
        Archive("ISIC archive, 2000x1500 images", "isic 2000x1500", 400_000, 1.2e6),
        Archive(f"IDC CT, {slices:.0f}-slice series", f"ct 512x512x{ct_slices}", 60_000, 50e12 / 60_000,
                scale=slices / ct_slices, extra_writes=(slices - ct_slices) / 16),
        Archive("IDR idr0013 screen A", "idr0013 t=93", 191_368, 13.90e12 / 191_368),
    ]


def storage_dollars(gigabytes: float) -> float:
    """Dollars per month of S3 Standard for ``gigabytes``, tier by tier."""
    total, left = 0.0, gigabytes
    for size, price in STORAGE_TIERS:
        total += min(left, size) * price
        left -= min(left, size)
    return total


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds < 3 * 86400 else f"{seconds / 86400:,.1f} d"


def project(rows: dict[str, dict[str, Any]], submitter_ms: float, table_requests: float, table_batch: int,
            ct_slices: int) -> None:
    """Print the projection of each archive from ``rows`` (measured kind -> local row and ``s3`` row)."""
    print(f"\nprojection (S3 Standard list prices; {CLUSTER_WORKERS} workers of 1 CPU; one submitting process "
          f"at {submitter_ms:.1f} ms CPU per item; {S3_PREFIX_WRITES} writes/s per S3 prefix, {GCS_INITIAL_WRITES}/s "
          f"for a new GCS bucket):")
    for a in archives(ct_slices):
        if a.kind not in rows or "s3" not in rows[a.kind]:
            continue
        local, s3 = rows[a.kind], rows[a.kind]["s3"]["own"]
        cpu, stored = local["cpu"] * a.scale, local["bytes"] * a.scale
        writes = s3.get("PUT", 0) + s3.get("POST", 0) + s3.get("DELETE", 0) + a.extra_writes
        reads = s3.get("GET", 0) + s3.get("HEAD", 0)
        appends = a.items / table_batch
        put_n, get_n = a.items * writes + appends * table_requests / 2, a.items * reads + appends * table_requests / 2
        dollars = put_n * PUT_PRICE + get_n * GET_PRICE
        one_machine = max(a.items * cpu / MACHINE_CPUS, a.items * a.source_bytes / NETWORK)
        limits = {"workers' CPU": a.items * cpu / CLUSTER_WORKERS,
                  "submitting process": a.items * submitter_ms / 1e3,
                  "S3 prefix writes": a.items * writes / S3_PREFIX_WRITES,
                  "new GCS bucket writes": a.items * writes / GCS_INITIAL_WRITES,
                  "1 Gbit/s from the archive": a.items * a.source_bytes / NETWORK}
        first = max(limits, key=lambda k: limits[k])
        inside = max((k for k in limits if "archive" not in k), key=lambda k: limits[k])
        total = a.items * stored
        print(f"  {a.name}: {a.items:,} items x {cpu:.2f} s CPU, {stored / 1e6:.1f} MB, {writes:.1f} writes + "
              f"{reads:.1f} reads -> stored {total / 1e12:.2f} TB (${storage_dollars(total / 1e9):,.0f}/month); "
              f"{put_n / 1e6:.2f} M writes + {get_n / 1e6:.2f} M reads = ${dollars:,.0f}; 2-CPU machine "
              f"{_hours(one_machine)}; cluster " + ", ".join(f"{k} {_hours(v)}" for k, v in limits.items())
              + f" -> first: {first}; leaving the archive's side out: {inside}")
