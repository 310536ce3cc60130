"""archivestore against the tools users use instead, the whole job: from the archive to arrays in memory.

For each archive both sides run against **the same local stand-in** (``archivestore.testing``'s
servers, each in a process of its own, every request delayed by ``--latency-ms``, default 20 and 0),
on the same data, in interleaved rounds (the side that goes first alternates), each side a fresh
process whose wall time, CPU time (its own and its children's: ``os.wait4``) and peak memory (the
largest resident set of the process and its children) are taken:

* **isic** -- peer: ``isic --dev image download --search Q --limit N OUT`` (isic-cli; ``--dev`` is
  ``127.0.0.1:8000``, where the stand-in is bound), then every image decoded with Pillow into numpy
  and ``metadata.csv`` read; archivestore: ``archivestore ingest isic --query Q --limit N``, then
  every image read with ``store.read`` and the metadata table.
* **tcia** -- peer: tcia_utils ``getSeries`` + ``downloadSeries`` (it unzips), then pydicom stacking
  (``apply_modality_lut``, slices sorted along the normal); archivestore: ``ingest tcia``, then
  ``store.read_volume`` (``--volume-read xarray``: ``store.volume(uid, chunks=None)``).
* **idc** -- peer: ``s5cmd --no-sign-request --endpoint-url URL run MANIFEST`` of the series prefixes,
  the way idc-index's download runs it, then pydicom stacking and highdicom's
  ``get_pixels_by_source_instance`` for each SEG; archivestore: ``ingest idc``, then
  ``store.read_volume`` and ``store.read_segmentation`` (``--volume-read xarray``: ``store.volume`` and
  ``segmentations_by_series``, both with ``chunks=None``).
* **idr** -- a screen of one plate, ``--idr-images`` wells of one field each, 3 channels x 20 planes x
  ``--idr-size``^2 uint16, on the OMERO.web stand-in, and the same pixels as the plate's NGFF 0.4 OME-Zarr
  (written by ome-zarr-py, one plane per chunk) on a static HTTP server. **Two peers**, each compared with
  the same archivestore rounds: ``render`` -- the per-plane recipe (``requests``: ``imgData`` per image, then
  ``render_image`` per plane per channel as 8-bit greyscale over the channel's window, decoded with Pillow,
  8 threads; an ``.npy`` per image kept for the next analysis); ``omezarr`` -- ome-zarr-py's
  ``Reader(parse_url(field))`` and ``.compute()`` of each field's full resolution (nothing downloaded: its
  second analysis reads the remote OME-Zarr again). archivestore: ``ingest idr --screen ID --zarr-url
  TEMPLATE``, then ``store.image(id, chunks=None)["image"].values`` (``--idr-read read``: ``store.read(id)``). The
  rendered planes are 8-bit and lossy: only their count is compared; ome-zarr-py and archivestore must
  load identical raw values.

After each side's first job it runs its loading code again (``--load``): the second analysis of the
same data, which the peer does from its files and archivestore from the store. Both sides must load
the same values (the sum of all values and the number of arrays are compared).

The peers live in their own environments (``benchmarks/.venv-<peer>``, built on first use by
``peers_env.py`` from the package registry), never in the project's. Run::

    .venv/bin/python benchmarks/bench_peers.py [--archives isic tcia idc idr] [--latency-ms 20 0]
        [--rounds 3] [--isic-images 200] [--series 20] [--slices 16] [--idr-images 10] [--idr-size 256]
        [--idr-read image|read] [--volume-read numpy|xarray] [--before TREE]

``--before TREE`` adds a third side, archivestore run from another tree (``git archive COMMIT | tar -x
-C TREE``), in the same rounds: a fix measured against the code before it, under the same load.

Goals (issue 21): ISIC <= 0.8x the peer's wall time, IDC <= 1.0x, TCIA <= 0.8x, IDR <= 0.5x the render recipe
and <= 1.0x ome-zarr-py; re-read >= 3x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import peers_env  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ARCHIVES = ["isic", "tcia", "idc", "idr"]
PEER_ENV = {"isic": "isic", "tcia": "tcia", "idc": "idc", "idr": "idr"}
PEER_JOBS = {"isic": {"peer": "isic"}, "tcia": {"peer": "tcia"}, "idc": {"peer": "idc"},
             "idr": {"render": "idr-render", "omezarr": "idr-omezarr"}}
"""Each archive's peer sides and the ``_peer_side.py`` job each runs (IDR has two peers, one archivestore)."""
PEER_NAME = {"peer": {"isic": "isic-cli + Pillow", "tcia": "tcia_utils + pydicom", "idc": "s5cmd + pydicom/highdicom"},
             "render": {"idr": "render_image per plane"}, "omezarr": {"idr": "ome-zarr-py"}}
GOALS = {"isic": {"peer": 0.8}, "tcia": {"peer": 0.8}, "idc": {"peer": 1.0}, "idr": {"render": 0.5, "omezarr": 1.0}}
"""archivestore's wall time over each peer's, at most."""
LOSSY = {"render"}
"""Peer sides whose values are not the archive's (8-bit rendered JPEG planes): only the count of arrays is compared."""
ISIC_QUERY = "diagnosis_1:Benign"


# -- data -------------------------------------------------------------------------------------
def write_dicom(data: Path, series: int, slices: int, segs: bool) -> None:
    """``series`` CT series of ``slices`` 512x512 slices (bench_dicom_ingest's phantom), and a SEG of each."""
    import warnings

    import bench_dicom_ingest as bd
    import numpy as np

    from archivestore.testing.dicom import segmentation

    warnings.filterwarnings("ignore", message=".*person name")  # highdicom on the synthetic PatientName
    collection = bd.write_collection(data / "series", series, slices)
    if not segs:
        return
    for k, (uid, paths) in enumerate(sorted(collection.items())):
        files = [(p.name, p.read_bytes()) for p in paths]
        masks = np.zeros((1, slices, bd.SIZE, bd.SIZE), bool)
        yy, xx = np.mgrid[0 : bd.SIZE, 0 : bd.SIZE]
        disc = (yy - 256) ** 2 + (xx - 240 - 3 * k) ** 2 < (60 + k) ** 2
        masks[0, 1:-1] = disc
        (out := data / "segs" / f"{k:03d}").mkdir(parents=True, exist_ok=True)
        for name, blob in segmentation(files, masks, seed=f"bench-seg-{uid}"):
            (out / name).write_bytes(blob)


def prepare(kind: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write ``kind``'s data under ``data``; the spec both sides get (without ``url`` and ``out``)."""
    data.mkdir(parents=True, exist_ok=True)
    if kind == "isic":
        # 4/3 of the limit so the search (3 in 4 records match) has more than the limit to page through
        (data / "isic.json").write_text(json.dumps({"records": args.isic_images * 4 // 3 + 4,
                                                    "shape": args.isic_shape}))
        return {"query": ISIC_QUERY, "limit": args.isic_images}
    # the data are written in a process of their own: a spawned side's peak memory starts at this process's RSS
    if kind == "idr":
        code = f"from _peer_servers import write_idr; write_idr({str(data)!r}, {args.idr_images}, {args.idr_size})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return {"read": args.idr_read}
    code = f"from bench_peers import write_dicom; from pathlib import Path; " \
           f"write_dicom(Path({str(data)!r}), {args.series}, {args.slices}, segs={kind == 'idc'})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {"collection": "BENCH-CT" if kind == "tcia" else "bench_ct", "read": args.volume_read}


# -- running one side ---------------------------------------------------------------------------
def run_side(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``: its JSON line, wall seconds, CPU seconds (its own and its children's) and peak RSS in bytes.

    Spawned and reaped with ``os.wait4`` (its output through files), which gives the resource usage of
    this one child and the descendants it waited for -- the tool it ran and everything else.
    """
    with c.workdir("peers-log-") as logs:
        out_path, err_path = logs / "out", logs / "err"
        with out_path.open("w") as out, err_path.open("w") as err:
            t0 = time.perf_counter()
            pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)], setpgroup=0)
            try:
                _, status, usage = os.wait4(pid, 0)
            except BaseException:  # stopped (Ctrl-C, SIGTERM): stop the side and its tool (its process group)
                os.killpg(pid, signal.SIGTERM)
                raise
            wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd[1:3])} failed:\n{err_path.read_text()[-3000:]}")
        result = json.loads(out_path.read_text().strip().splitlines()[-1])
    result.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime, peak_bytes=usage.ru_maxrss * 1024)
    return result


def du(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def side_commands(kind: str, side: str, spec: dict[str, Any], load_only: bool,
                  trees: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    flag = ["--load"] if load_only else []
    if side in PEER_JOBS[kind]:
        python = str(peers_env.ensure_peer(PEER_ENV[kind]))
        return [python, str(HERE / "_peer_side.py"), PEER_JOBS[kind][side], json.dumps(spec), *flag], base_env
    env = {**base_env, "PYTHONPATH": str(trees[side])}  # this tree, or --before's
    return [sys.executable, str(HERE / "_store_side.py"), kind, json.dumps(spec), *flag], env


# -- one archive at one latency ------------------------------------------------------------------
def start_server(kind: str, data: Path, latency: float) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (data / f"server-{latency:g}.log").open("w")  # moto logs every request
    proc = subprocess.Popen([sys.executable, str(HERE / "_peer_servers.py"), kind, str(data), "--latency",
                             str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                            env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise SystemExit(f"the {kind} stand-in did not start (exit {proc.returncode}): see {log.name}")
    return proc, json.loads(line)


def measure(kind: str, data: Path, spec: dict[str, Any], latency_ms: float, rounds: int,
            work: Path, trees: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    server, info = start_server(kind, data, latency_ms / 1000)
    sides = [*PEER_JOBS[kind], *trees]
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    try:
        for r in range(rounds):
            for side in sides[r % len(sides):] + sides[: r % len(sides)]:  # who goes first rotates
                out = work / f"{kind}-{side}-{r}" / ("store.zarr" if side in trees else "out")
                out.parent.mkdir(parents=True)
                side_spec = {**spec, **info, "out": str(out)}
                load = os.getloadavg()[0]
                first = run_side(*side_commands(kind, side, side_spec, load_only=False, trees=trees))
                again = run_side(*side_commands(kind, side, side_spec, load_only=True, trees=trees))
                first.update(reread_s=again["wall_s"], reread_cpu_s=again["cpu_s"], disk_bytes=du(out), load=load,
                             reread_checksum=again["checksum"])
                results[side].append(first)
                print(f"  {kind} {latency_ms:g} ms round {r + 1} {side:7s}: {first['wall_s']:7.2f} s wall "
                      f"(fetch {first['download_s']:6.2f} + load {first['load_s']:5.2f}), "
                      f"{first['cpu_s']:6.2f} s CPU, re-read {again['wall_s']:5.2f} s, "
                      f"{first['disk_bytes'] / 1e6:7.1f} MB on disk, peak {first['peak_bytes'] / 1e6:6.0f} MB; "
                      f"load avg {load:.1f}", flush=True)
                shutil.rmtree(out.parent)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=60)
    return results


def check_same(kind: str, results: dict[str, list[dict[str, Any]]]) -> None:
    """Every side loaded the same values (the sum and the count; only the count for a :data:`LOSSY` side)."""
    exact = {side: runs for side, runs in results.items() if side not in LOSSY}
    sums = {tuple(r[key]) for runs in exact.values() for r in runs for key in ("checksum", "reread_checksum")}
    counts = {r[key][1] for runs in results.values() for r in runs for key in ("checksum", "reread_checksum")}
    if len(sums) != 1 or len(counts) != 1:
        raise SystemExit(f"{kind}: the sides loaded different values: {sorted(sums)}, counts {sorted(counts)}")


def report(kind: str, latency_ms: float, results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    loads = [r["load"] for side in results.values() for r in side]
    print(f"{kind} at {latency_ms:g} ms per request, medians of {len(results['store'])} rounds "
          f"(1-minute load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs):")
    print(f"  {'':28s} {'wall s':>8s} {'fetch s':>8s} {'load s':>7s} {'CPU s':>7s} {'re-read s':>9s} "
          f"{'re-read CPU':>11s} {'disk MB':>8s} {'peak MB':>8s}")
    names = {**{peer: PEER_NAME[peer][kind] for peer in PEER_JOBS[kind]}, "store": "archivestore",
             "before": "archivestore (--before tree)"}
    for side in results:
        name = names[side]
        print(f"  {name:28s} {med(side, 'wall_s'):8.2f} {med(side, 'download_s'):8.2f} {med(side, 'load_s'):7.2f} "
              f"{med(side, 'cpu_s'):7.2f} {med(side, 'reread_s'):9.3f} {med(side, 'reread_cpu_s'):11.3f} "
              f"{med(side, 'disk_bytes') / 1e6:8.1f} {med(side, 'peak_bytes') / 1e6:8.0f}")
    all_ratios = {}
    for peer, goal in GOALS[kind].items():
        ratios = all_ratios[peer] = {
            "wall": med("store", "wall_s") / med(peer, "wall_s"), "cpu": med("store", "cpu_s") / med(peer, "cpu_s"),
            "reread": med(peer, "reread_s") / med("store", "reread_s"),
            "reread_cpu": med(peer, "reread_cpu_s") / med("store", "reread_cpu_s")}
        print(f"  archivestore / {'peer' if peer == 'peer' else names[peer]}: wall {ratios['wall']:.2f}x (goal <= "
              f"{goal}x: {'met' if ratios['wall'] <= goal else 'MISSED'}), CPU {ratios['cpu']:.2f}x; "
              f"second analysis {ratios['reread']:.2f}x faster (goal >= 3x: "
              f"{'met' if ratios['reread'] >= 3 else 'MISSED'}; CPU {ratios['reread_cpu']:.2f}x); "
              f"load avg {os.getloadavg()[0]:.1f}", flush=True)
    if "before" in results:
        print(f"  archivestore / --before tree: wall {med('store', 'wall_s') / med('before', 'wall_s'):.2f}x, "
              f"CPU {med('store', 'cpu_s') / med('before', 'cpu_s'):.2f}x, re-read "
              f"{med('store', 'reread_s') / med('before', 'reread_s'):.2f}x", flush=True)
    print()
    return all_ratios


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archives", nargs="+", default=ARCHIVES, choices=ARCHIVES)
    p.add_argument("--latency-ms", nargs="+", type=float, default=[20.0, 0.0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--isic-images", type=int, default=200)
    p.add_argument("--isic-shape", type=int, nargs=2, default=[768, 1024], metavar=("ROWS", "COLUMNS"))
    p.add_argument("--series", type=int, default=20)
    p.add_argument("--slices", type=int, default=16)
    p.add_argument("--idr-images", type=int, default=10, help="IDR fields (wells of one field; at most 10)")
    p.add_argument("--idr-size", type=int, default=256, help="IDR image rows = columns (3 channels x 20 planes)")
    p.add_argument("--volume-read", choices=["numpy", "xarray"], default="numpy",
                   help="TCIA/IDC: read voxels with store.read_volume/read_segmentation (numpy, the default) "
                        "or store.volume(uid, chunks=None) / segmentations_by_series(chunks=None) (xarray)")
    p.add_argument("--idr-read", choices=["image", "read"], default="image",
                   help='archivestore reads each IDR image as store.image(id)["image"].values or store.read(id)')
    p.add_argument("--before", type=Path, default=None, metavar="TREE",
                   help="also run archivestore from this tree (e.g. `git archive COMMIT | tar -x -C TREE`)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the stand-in and the sides
    trees = {"store": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    print(c.machine())
    for kind in args.archives:
        peers_env.ensure_peer(PEER_ENV[kind])
    with c.workdir("peers-") as work:
        for kind in args.archives:
            data = work / f"data-{kind}"
            spec = prepare(kind, data, args)
            for latency_ms in args.latency_ms:
                results = measure(kind, data, spec, latency_ms, args.rounds, work, trees)
                check_same(kind, results)
                report(kind, latency_ms, results)
            shutil.rmtree(data)
    print(c.load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
