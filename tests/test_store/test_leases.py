"""Leases that hold: with delays injected between every step of taking and breaking a lease, no two live
writers ever hold one lease at once (local disk and memory://); a holder renews while it works."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
import zarr.storage

from archivestore.store import _lock
from archivestore.store._lock import acquire


def _zstore(kind: str, tmp_path):
    if kind == "local":
        return zarr.storage.LocalStore(tmp_path / "s.zarr")
    return zarr.storage.FsspecStore.from_url(f"memory://leases-{uuid.uuid4().hex}/s.zarr")


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_mutual_exclusion_with_delays_between_the_steps_of_a_break(tmp_path, monkeypatch, kind):
    zstore = _zstore(kind, tmp_path)
    rng = random.Random(7)
    rng_lock = threading.Lock()

    def pause(step: str) -> None:  # widen every window: listed → read → created → checked again
        with rng_lock:
            delay = rng.random() * 0.03
        time.sleep(delay)

    monkeypatch.setattr(_lock, "_pause", pause)
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    guard = threading.Lock()
    done = {"held": 0, "abandoned": 0}

    def writer(k: int) -> None:
        local = random.Random(k)
        for round_ in range(12):
            lease = acquire(zstore, "tables", lease_seconds=0.3, wait_seconds=60, poll=0.005)
            me = f"{k}:{round_}"
            with guard:
                inside.append(me)
                if len(inside) > 1:
                    overlaps.append(tuple(inside))
            time.sleep(local.random() * 0.02)
            with guard:
                inside.remove(me)
                done["held"] += 1
            if local.random() < 0.25:  # a writer that dies holding it: the lease goes stale and is broken
                _lock.RENEWER.drop(lease)
                with guard:
                    done["abandoned"] += 1
            else:
                lease.release()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert done["held"] == 48 and done["abandoned"] > 3  # stale leases were broken, many times
    assert overlaps == []


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_holder_slower_than_its_lease_keeps_it(tmp_path, kind):
    zstore = _zstore(kind, tmp_path)
    lease = acquire(zstore, "images/x", lease_seconds=0.4)
    time.sleep(1.5)  # four times the lease: renewed meanwhile
    with pytest.raises(_lock.LeaseTimeout):
        acquire(zstore, "images/x", wait_seconds=0.5)
    assert not lease.lost
    lease.release()
    acquire(zstore, "images/x", wait_seconds=0.5).release()


def test_a_stalled_holder_whose_lease_was_broken_knows_it(tmp_path):
    zstore = _zstore("local", tmp_path)
    stalled = acquire(zstore, "tables", lease_seconds=0.2)
    _lock.RENEWER.drop(stalled)  # stalled: no renewal
    time.sleep(0.3)
    newer = acquire(zstore, "tables", wait_seconds=1)
    stalled.renew()  # it wakes up
    assert stalled.lost
    stalled.release()  # and gives up nothing of the newer holder's
    with pytest.raises(_lock.LeaseTimeout):
        acquire(zstore, "tables", wait_seconds=0.3)
    newer.release()


def _race(zstore, key: str, n: int) -> list[int]:
    wins: list[int] = []
    barrier = threading.Barrier(n)

    def create(k: int) -> None:
        barrier.wait()
        if _lock.create_exclusive(zstore, key, f'{{"k": {k}}}'.encode()):
            wins.append(k)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


def test_check_then_write_on_memory_is_exclusive_between_threads():
    zstore = _zstore("memory", None)
    for trial in range(200):
        wins = _race(zstore, f"k{trial}/zarr.json", 4)
        assert len(wins) == 1, (trial, wins)


def test_a_claim_on_a_new_group_is_renewed_while_its_writer_works(tmp_path):
    """A new image's group is claimed (its zarr.json names the writer); a slow writer keeps the claim."""
    from archivestore.store import open_store

    store = open_store(tmp_path / "s.zarr", mode="a")
    writer = store.claim_group("images/slow")
    writer.lease_seconds = 600.0  # renewed to ten minutes from now: later than the first expiry
    first = store.group_state("images/slow")["writer"]["expires"]
    writer.renewed = 0.0  # due at once
    deadline = time.monotonic() + 10
    while store.group_state("images/slow")["writer"]["expires"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.group_state("images/slow")["writer"]["expires"] > first
    writer.finish({"complete": True, "name": "slow", "checksums": {}})
    time.sleep(0.5)  # no renewal after the completion marker
    assert store.group_state("images/slow") == {"complete": True, "name": "slow", "checksums": {}}


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_generation_whose_document_was_deleted_is_no_generation(tmp_path, kind):
    # ``upgrade`` deletes dead leases' documents; on a disk their folders stay behind, and a folder
    # without its document once made every later acquire list it, find nothing, and list again
    zstore = _zstore(kind, tmp_path)
    lease = acquire(zstore, "tables", lease_seconds=5, wait_seconds=5)
    lease.release()
    prefix = _lock.LAYOUT.lock("tables").rsplit("/", 1)[0]
    newest = max(_lock._generations(zstore, prefix))
    _lock.sync(zstore.delete(_lock._key(prefix, newest)))
    acquire(zstore, "tables", lease_seconds=5, wait_seconds=5).release()
