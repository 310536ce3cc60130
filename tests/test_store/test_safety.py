"""Concurrent ingests, leases, and verify/repair against the checksums recorded at ingest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr.storage
from PIL import Image

from archivestore import ingest, open_store
from archivestore.cli import main
from archivestore.errors import LeaseTimeout
from archivestore.sources import ChallengeSource
from archivestore.store import acquire
from archivestore.testing.sample import STUDY
from archivestore.verify import verify


def _ingest_cmd(dirs, store, *extra):
    return [sys.executable, "-m", "archivestore", "ingest", "challenge", *map(str, dirs), "--store", str(store),
            "--no-progress", *extra]


@pytest.mark.parametrize("same", [True, False], ids=["same-images", "different-images"])
def test_two_ingests_at_once(sample_dirs, tmp_path, same):
    store_path = tmp_path / "s.zarr"
    if same:
        first = second = [sample_dirs["train"], sample_dirs["masks"], sample_dirs["part2"]]
    else:
        halves = [tmp_path / "a", tmp_path / "b"]
        for h in halves:
            h.mkdir()
        for p in list(sample_dirs["train"].iterdir()) + list(sample_dirs["masks"].iterdir()):
            if p.name.startswith("ISIC_"):
                shutil.copy(p, halves[int(p.name[5:12]) % 2])
        first, second = [halves[0]], [halves[1]]
    procs = [subprocess.Popen(_ingest_cmd(d, store_path, "--study", STUDY), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for d in (first, second)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    store = open_store(store_path)
    ids = store.image_ids()
    assert len(ids) == len(set(ids)) == 6                      # every image once, no row lost
    for image_id in ids:
        want = np.asarray(Image.open(sample_dirs["train"] / f"{image_id}.jpg").convert("RGB"))
        np.testing.assert_array_equal(store.image(image_id)["image"].values, want)
    assert verify(store, progress=False).ok
    if same:
        study = store.study(STUDY)
        assert sorted(study["image"].values) == sorted(ids)
        assert not np.isnan(study["annotation"].sel(rater="ground_truth").values[:, :, :100]).any()


def test_lease_excludes_waits_and_breaks_dead_holders(tmp_path):
    zstore = zarr.storage.LocalStore(tmp_path / "s.zarr")
    with acquire(zstore, "x", lease_seconds=30):
        with pytest.raises(LeaseTimeout):
            acquire(zstore, "x", wait_seconds=0.3)
    acquire(zstore, "x", wait_seconds=0.3).release()          # released: free again
    # a holder on this host that no longer runs is broken at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = tmp_path / "s.zarr" / "_locks" / "x" / "g1000" / "zarr.json"  # a newer generation than ours
    key.parent.mkdir()
    key.write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "token": "t", "host": __import__("socket").gethostname(), "pid": dead.pid, "expires": time.time() + 999}}))
    acquire(zstore, "x", wait_seconds=0.3).release()
    # an expired lease from another host too
    key = key.parent.parent / "g2000" / "zarr.json"
    key.parent.mkdir()
    key.write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "token": "t", "host": "elsewhere", "pid": 1, "expires": time.time() - 1}}))
    acquire(zstore, "x", wait_seconds=0.3).release()
    key = key.parent.parent / "g3000" / "zarr.json"
    key.parent.mkdir()
    key.write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "token": "t", "host": "elsewhere", "pid": 1, "expires": time.time() + 999}}))
    with pytest.raises(LeaseTimeout, match="elsewhere"):
        acquire(zstore, "x", wait_seconds=0.3)


def test_verify_finds_damage_and_repair_fetches_it_again(sample_dirs, tmp_path, capsys):
    path = tmp_path / "s.zarr"
    store = open_store(path, mode="a")
    dirs = [sample_dirs["train"], sample_dirs["masks"], sample_dirs["attributes"], sample_dirs["part2"]]
    assert ingest(store, ChallengeSource(dirs, study=STUDY), progress=False).ok
    assert ingest(store, ChallengeSource([sample_dirs["predictions"]], rater="model"), progress=False).ok
    before = {i: store.image(i).load() for i in store.image_ids()}
    assert verify(store, progress=False).ok
    # flip bytes of one chunk, drop another array's chunk, damage a rater's mask, leave a half-written group
    chunk = path / "images" / "ISIC_0000001" / "image" / "c" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    (path / "images" / "ISIC_0000004" / "superpixels" / "c" / "0" / "0").unlink()
    (path / "masks" / "model" / "ISIC_0000002" / "mask" / "c" / "0" / "0").unlink()
    store.root["images"].create_group("ISIC_9999999", attributes={"isic_id": "ISIC_9999999"})
    assert main(["verify", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "ISIC_0000001: damaged: images/ISIC_0000001/image" in err
    assert "ISIC_0000004: damaged: images/ISIC_0000004/superpixels" in err
    assert "ISIC_0000002: damaged: masks/model/ISIC_0000002/mask" in err
    assert "ISIC_9999999: incomplete" in err
    assert main(["verify", str(path), "--repair", "--no-progress"]) == 1       # one has no origin to fetch
    out = capsys.readouterr()
    assert "NOT REPAIRED ISIC_9999999" in out.err and "3 repaired" in out.out
    store = open_store(path)
    report = verify(store, progress=False)
    assert [p.image_id for p in report.problems] == ["ISIC_9999999"]
    for image_id, ds in before.items():
        again = store.image(image_id).load()
        for name in ds.data_vars:
            np.testing.assert_array_equal(again[name].values, ds[name].values)
    assert len(store.image_ids()) == 6
