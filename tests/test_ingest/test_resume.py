"""Kill -9 an ingest half-way, rerun it: every image stored once, nothing half-written complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from archivestore import open_store


def _many_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for k in range(n):
        noise = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)  # incompressible: slow enough to interrupt
        Image.fromarray(noise).save(folder / f"ISIC_{k:07d}.png", compress_level=1)


def _complete_groups(url: str) -> int:
    fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    n = 0
    for meta in fs.glob(f"{root}/images/*/zarr.json"):
        try:
            n += bool(json.loads(fs.cat_file(meta))["attributes"].get("_archivestore", {}).get("complete"))
        except (ValueError, KeyError, FileNotFoundError):
            pass
    return n


@pytest.mark.parametrize("where", ["local", "s3"])
def test_kill_and_rerun(tmp_path, request, where):
    n = 40 if where == "local" else 16
    src = tmp_path / "src"
    if where == "local":
        store_url = str(tmp_path / "s.zarr")
    else:
        store_url = f"s3://{request.getfixturevalue('s3_bucket')}/s.zarr"
    _many_images(src, n)
    cmd = [sys.executable, "-m", "archivestore", "ingest", "challenge", str(src), "--store", store_url,
           "--no-progress", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _complete_groups(store_url) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _complete_groups(store_url)
    assert 0 < done_before < n, "the ingest was not interrupted half-way"

    store = open_store(store_url, mode="r")
    for image_id in store.image_ids():   # whatever the table lists is complete
        assert store.image(image_id)["image"].shape == (700, 900, 3)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n - done_before} ingested, {done_before} already complete, 0 failed" in rerun.stdout
    store = open_store(store_url, mode="r")
    ids = store.image_ids()
    assert sorted(ids) == [f"ISIC_{k:07d}" for k in range(n)]      # each exactly once
    for image_id in ids[:: 7]:
        want = np.asarray(Image.open(src / f"{image_id}.png"))
        np.testing.assert_array_equal(store.image(image_id)["image"].values, want)
