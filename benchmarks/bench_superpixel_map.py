"""Superpixel map of a 6000x4000 image: archivestore against isicarchive.

Compares :func:`archivestore.analysis.superpixel_map` (CSR form) with
isicarchive 0.4.11's ``jitfunc.superpixel_map`` (dense numba-built array) on the
same index image: the real ISIC_0000000 superpixel image from the fixtures
(996 superpixels), upscaled by nearest neighbour to 4000x6000 pixels.

Each side runs in a fresh subprocess (isicarchive in its own environment, see
``isicarchive_env.py``) that loads the index image, resets the peak-RSS mark,
calls the function once (cold: includes first-touch page faults of its
output), reads the peak RSS above the RSS just before the call, then repeats the
call for the best warm time. Both sides run ``--rounds`` times, alternating,
and each figure is the best round. isicarchive gets its required int32 input, archivestore
the store's uint16; inputs are loaded before measuring and do not count.

Run::

    .venv/bin/python benchmarks/bench_superpixel_map.py [--repeat 5] [--rounds 3]

Goal (issue 3): at least 3x faster with at most half the memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isicarchive_env import ensure_env, run_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "isic-v1" / "ISIC_0000000_superpixels.png"

_MEASURE = r"""
import json, os, sys, time
import numpy as np

def rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

args = json.load(sys.stdin)
index = np.load(args["path"])
{setup}
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM)
except OSError:
    pass
rss0 = rss_kb("VmRSS")
t0 = time.perf_counter()
result = call(index)
cold = time.perf_counter() - t0
peak = rss_kb("VmHWM")
nbytes = {nbytes}
del result
warm = []
for _ in range(args["repeat"]):
    t0 = time.perf_counter()
    result = call(index)
    warm.append(time.perf_counter() - t0)
    del result
print(json.dumps({{"cold_s": cold, "warm_s": min(warm), "peak_mb": (peak - rss0) / 1024, "result_mb": nbytes / 1e6}}))
"""

ISICARCHIVE = _MEASURE.format(
    setup=("from isicarchive.jitfunc import superpixel_map\n"
           "index = np.ascontiguousarray(index, dtype=np.int32)\ncall = superpixel_map"),
    nbytes="result.nbytes",
)
ARCHIVESTORE = _MEASURE.format(
    setup="from archivestore.analysis import superpixel_map\ncall = superpixel_map",
    nbytes="result.nbytes",
)


def make_index(shape=(4000, 6000)) -> np.ndarray:
    """The fixture's superpixel image upscaled (nearest neighbour) to ``shape``."""
    from archivestore.imaging import decode_superpixels

    small = decode_superpixels(FIXTURE.read_bytes())
    ys = (np.arange(shape[0]) * small.shape[0]) // shape[0]
    xs = (np.arange(shape[1]) * small.shape[1]) // shape[1]
    return np.ascontiguousarray(small[ys[:, None], xs[None, :]])


def run_ours(payload: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", ARCHIVESTORE], input=json.dumps(payload), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions (best is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh subprocesses per side, alternating (best is kept)")
    parser.add_argument("--shape", type=int, nargs=2, default=(4000, 6000), metavar=("Y", "X"))
    args = parser.parse_args(argv)

    python = ensure_env()
    index = make_index(tuple(args.shape))
    counts = np.bincount(index.ravel())
    print(
        f"index image {index.shape[0]}x{index.shape[1]}, {len(counts)} superpixels, "
        f"largest {counts.max()} pixels; isicarchive's dense map would be "
        f"{4 * len(counts) * (counts.max() + 1) / 1e6:.0f} MB"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "index.npy")
        np.save(path, index)
        payload = {"path": path, "repeat": args.repeat}
        # alternate the two sides so that load from other processes hits both alike
        refs, ourss = [], []
        for _ in range(args.rounds):
            refs.append(run_json(ISICARCHIVE, payload, python=python))
            ourss.append(run_ours(payload))
    ref = {key: min(r[key] for r in refs) for key in refs[0]}
    ours = {key: min(r[key] for r in ourss) for key in ourss[0]}

    print(f"{'':28}{'isicarchive':>14}{'archivestore':>14}{'ratio':>10}")
    rows = [
        ("time, first call (s)", "cold_s", True),
        ("time, best warm call (s)", "warm_s", True),
        ("peak RSS above input (MB)", "peak_mb", True),
        ("result size (MB)", "result_mb", True),
    ]
    for name, key, _ in rows:
        ratio = ref[key] / ours[key] if ours[key] else float("inf")
        print(f"{name:28}{ref[key]:14.3f}{ours[key]:14.3f}{ratio:9.1f}x")
    print(
        f"speed-up {ref['warm_s'] / ours['warm_s']:.1f}x warm, {ref['cold_s'] / ours['cold_s']:.1f}x cold; "
        f"memory {ours['peak_mb'] / ref['peak_mb']:.2f} of isicarchive's peak "
        "(goal: >= 3x faster, <= 0.5 of the memory)"
    )


if __name__ == "__main__":
    main()
