"""Start-up of the ``archivestore`` command: ``--help`` and argument errors against bare Python.

Runs each command line in a fresh process, in turn within each round (so load changes fall on all
alike), ``--repeat`` rounds, and prints the best and the median wall time of each:

* baseline: ``python -c pass`` (the interpreter's own start-up, same Python);
* ``archivestore --help``, ``archivestore ingest challenge --help`` (the installed script),
  ``python -m archivestore --help``, and an argument error (``archivestore select`` without a store);
* for comparison, what a running command pays on top: ``python -c "import xarray, dask.array, zarr,
  pandas, PIL.Image, requests"`` (the libraries ``--help`` loaded before the CLI became lazy);
* with ``--before DIR``, ``python -m archivestore --help`` of another source tree (``DIR`` first
  on ``PYTHONPATH``), e.g. the code before issue 8.

Run::

    .venv/bin/python benchmarks/bench_startup.py [--repeat 15]
    # against the code before issue 8
    mkdir -p /tmp/before && git archive 2e01c9a archivestore | tar -x -C /tmp/before
    .venv/bin/python benchmarks/bench_startup.py --before /tmp/before

Goal (issue 8): ``--help``, ``COMMAND --help`` and argument errors in at most 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

GOAL = 0.3
WITH_GOAL = ("archivestore --help", "archivestore ingest challenge --help", "python -m archivestore --help",
             "archivestore select (argument error)")


def _commands(before: str | None) -> dict[str, list[str]]:
    python = sys.executable
    script = Path(python).with_name("archivestore")
    cli = [str(script)] if script.exists() else [python, "-m", "archivestore"]
    older = {"python -m archivestore --help (--before tree)": ["env", f"PYTHONPATH={before}", python, "-P", "-m",
                                                               "archivestore", "--help"]} if before else {}
    return {
        "python -c pass (baseline)": [python, "-c", "pass"],
        "archivestore --help": [*cli, "--help"],
        "archivestore ingest challenge --help": [*cli, "ingest", "challenge", "--help"],
        "python -m archivestore --help": [python, "-m", "archivestore", "--help"],
        "archivestore select (argument error)": [*cli, "select"],
        "import xarray, dask, zarr, pandas, PIL, requests": [
            python, "-c", "import xarray, dask.array, zarr, pandas, PIL.Image, requests"],
        **older,
    }


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=15, help="rounds (default 15)")
    ap.add_argument("--before", metavar="DIR", help="also time --help of the archivestore package under DIR")
    args = ap.parse_args(argv)
    if args.before and not os.path.isfile(os.path.join(args.before, "archivestore", "__init__.py")):
        ap.error(f"no archivestore package under {args.before}")
    print(c.machine())
    print(c.load_note())
    commands = _commands(args.before)
    for cmd in commands.values():  # warm the OS file cache and .pyc files once
        _run(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(_run(cmd))
    base = min(times["python -c pass (baseline)"])
    print(f"\n{args.repeat} rounds, each command in a fresh process\n")
    print(f"{'command':<50} {'best':>9} {'median':>9} {'best - baseline':>16}  goal")
    for name, t in times.items():
        best, median = min(t), statistics.median(t)
        goal = f"{'met' if best <= GOAL else 'MISSED'} (<= {GOAL:.1f} s)" if name in WITH_GOAL else ""
        print(f"{name:<50} {best * 1e3:7.0f} ms {median * 1e3:7.0f} ms {(best - base) * 1e3:13.0f} ms  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
