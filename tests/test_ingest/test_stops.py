"""A run that cannot go on stops at once and keeps what it finished: Ctrl-C, a store refusing writes, an archive
out of reach. Every completed item's row is in the table afterwards; nothing pending is fetched."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from fakes.faulty_proxy import FaultyProxy
from PIL import Image
from zarr.storage import WrapperStore

from archivestore import IngestInterrupted, ingest, open_store
from archivestore.errors import StoreWriteError, UnreachableError
from archivestore.sources import Item


def _png(seed: int, size: tuple[int, int] = (24, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Counted:
    """Items whose image loaders count their calls (and may sleep or fail)."""

    def __init__(self, n: int, *, delay: float = 0.0, fail: BaseException | None = None) -> None:
        self.n = n
        self.delay = delay
        self.fail = fail
        self.calls = 0
        self.lock = threading.Lock()

    def loader(self, k: int):
        def load() -> bytes:
            with self.lock:
                self.calls += 1
            if self.fail is not None:
                raise self.fail
            if self.delay and k >= 3:
                time.sleep(self.delay)
            return _png(k)
        return load

    def __iter__(self):
        for k in range(self.n):
            yield Item(f"IMG_{k:04d}", {"k": k}, image=self.loader(k), where=f"fake/{k}")


def _complete(store_url: str) -> set[str]:
    store = open_store(store_url, mode="a")
    return {name for name in store.stored_image_ids() if (store.image_state(name) or {}).get("complete")}


def test_ctrl_c_cancels_what_waits_and_stores_the_rows_of_what_completed(tmp_path):
    url = str(tmp_path / "s.zarr")
    store = open_store(url, mode="a")
    source = _Counted(200, delay=0.3)

    def interrupt() -> None:  # a real SIGINT, delivered to the main thread while it waits for results
        deadline = time.monotonic() + 60
        while len(_complete(url)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(IngestInterrupted) as caught:
        ingest(store, source, workers=2, progress=False)
    report = caught.value.report
    assert isinstance(caught.value, KeyboardInterrupt) and report.interrupted and not report.ok
    assert str(caught.value) == f"interrupted: {len(report.ingested)} stored; rerun to resume"
    assert source.calls < 20, "pending items were fetched after Ctrl-C"
    done = _complete(url)
    assert len(report.ingested) >= 3 and set(report.ingested) == done
    assert set(open_store(url).image_ids()) == done  # the rows of every completed image are in the table
    rerun = ingest(open_store(url, mode="a"), _Counted(200), progress=False)
    assert rerun.ok and len(rerun.skipped) == len(done) and len(rerun.ingested) == 200 - len(done)


def _many_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for k in range(n):
        noise = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)  # incompressible: slow enough to interrupt
        Image.fromarray(noise).save(folder / f"ISIC_{k:07d}.png", compress_level=1)


def test_ctrl_c_on_the_command_line_is_one_line_and_exit_130(tmp_path):
    src, url = tmp_path / "src", str(tmp_path / "s.zarr")
    _many_images(src, 40)
    cmd = [sys.executable, "-m", "archivestore", "ingest", "challenge", str(src), "--store", url, "--no-progress",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if os.path.isdir(f"{url}/images") and len(_complete(url)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    stored = set(open_store(url).image_ids())
    assert 3 <= len(stored) < 40
    assert err.strip().splitlines()[-1] == f"interrupted: {len(stored)} stored; rerun to resume"
    assert stored == _complete(url)


class _Full(WrapperStore):
    """A store whose image groups hit a full disk after ``room`` group documents (the tables still take writes)."""

    def __init__(self, store, room: int) -> None:
        super().__init__(store)
        self.room = room

    async def set(self, key, value, byte_range=None):
        if key.startswith("images/") and key.endswith("/zarr.json") and key.count("/") == 2:
            self.room -= 1
            if self.room < 0:
                raise OSError(errno.ENOSPC, "No space left on device", key)
        await self._store.set(key, value)

    def _with_store(self, store):  # zarr asks wrappers for a copy around another store
        return type(self)(store, self.room)


def test_a_full_disk_stops_submitting_at_once_and_keeps_what_completed(tmp_path):
    url = str(tmp_path / "s.zarr")
    store = open_store(url, mode="a")
    store.zstore = _Full(store.zstore, room=6)  # three images: claim + completion marker each
    source = _Counted(300)
    report = ingest(store, source, workers=1, progress=False)
    assert isinstance(report.stopped, StoreWriteError) and isinstance(report.stopped, OSError)
    assert "No space left on device" in str(report.stopped) and not report.ok
    assert "stopped early: the store refused a write" in report.summary()
    assert source.calls < 20, f"{source.calls} items fetched after the store refused writes"
    assert set(open_store(url).image_ids()) == set(report.ingested) == _complete(url)
    assert len(report.ingested) == 3


class _RefusingWrites(FaultyProxy):
    """A bucket that answers ``AccessDenied`` to every write under ``images/`` after the first ``room``."""

    def __init__(self, upstream: str, room: int) -> None:
        super().__init__(upstream, share=0.0)
        self.room = room

    def answer(self, command: str, path: str) -> tuple[int, bytes] | None:
        if command == "PUT" and re.search(r"/images/[^/]+/zarr\.json$", path.split("?")[0]):
            with self.lock:
                self.room -= 1
                if self.room < 0:
                    return 403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return None


def test_a_bucket_refusing_writes_stops_the_command_with_its_summary(tmp_path, s3_bucket, s3_env, monkeypatch):
    import s3fs

    from archivestore.cli import main

    folder = tmp_path / "src"
    folder.mkdir()
    for k in range(60):
        (folder / f"ISIC_{k:07d}.png").write_bytes(_png(k))
    url = f"s3://{s3_bucket}/s.zarr"
    with _RefusingWrites(s3_env, room=4) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        s3fs.S3FileSystem.clear_instance_cache()
        code = main(["ingest", "challenge", str(folder), "--store", url, "--no-progress", "--workers", "1"])
        refused = sum(1 for method, path in proxy.requests if method == "PUT" and "/images/" in path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)
    s3fs.S3FileSystem.clear_instance_cache()
    assert code == 1
    assert refused < 40, f"{refused} image writes tried after the bucket refused"
    stored = open_store(url).image_ids()
    assert len(stored) == 2  # the two images that completed have their rows


def test_capsys_summary_of_a_refused_store(tmp_path, capsys, monkeypatch):
    """The command prints the FAILED lines, then the summary naming why it stopped; exit 1, no traceback."""
    import archivestore.cli._common as common
    from archivestore.cli import main

    folder = tmp_path / "src"
    folder.mkdir()
    for k in range(30):
        (folder / f"ISIC_{k:07d}.png").write_bytes(_png(k))
    real = common.open_store

    def full_store(args, mode="r", *, create=False):
        store = real(args, mode, create=create)
        store.zstore = _Full(store.zstore, room=2)  # one image: its claim and its completion marker
        return store

    monkeypatch.setattr("archivestore.cli._ingest.open_store", full_store)
    code = main(["ingest", "challenge", str(folder), "--store", str(tmp_path / "s.zarr"), "--no-progress",
                 "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.strip().splitlines()[-1].startswith("1 ingested, 0 already complete, ")
    assert "stopped early: the store refused a write: [Errno 28] No space left on device" in out
    assert "Traceback" not in err


def test_an_archive_out_of_reach_stops_after_a_few_items(tmp_path):
    store = open_store(tmp_path / "s.zarr", mode="a")
    source = _Counted(500, fail=UnreachableError("https://archive.example.org/api/v2/images/x",
                                                 "connection refused"))
    report = ingest(store, source, workers=2, progress=False)
    assert isinstance(report.stopped, UnreachableError)
    assert "cannot reach archive.example.org" in str(report.stopped)
    assert source.calls < 20 and len(report.failed) >= 3
    assert all(bad.reason.startswith("GET https://archive.example.org") for bad in report.failed)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ClosedPort(_Counted):
    """Items fetched from 127.0.0.1 on a port nobody listens on (a real connection refused)."""

    def __init__(self, n: int, port: int) -> None:
        super().__init__(n)
        self.port = port

    def loader(self, k: int):
        def load() -> bytes:
            with self.lock:
                self.calls += 1
            url = f"http://127.0.0.1:{self.port}/images/{k}.png"
            try:
                return requests.get(url, timeout=5).content
            except requests.ConnectionError as exc:
                raise UnreachableError(url, f"connection refused: {type(exc).__name__}") from None
        return load


def test_a_real_closed_port_stops_the_ingest_naming_the_endpoint(tmp_path):
    port = _closed_port()
    url = str(tmp_path / "s.zarr")
    ingest(open_store(url, mode="a"), _Counted(2), progress=False)  # two images already there
    source = _ClosedPort(300, port)
    started = time.monotonic()
    report = ingest(open_store(url, mode="a"), source, workers=4, progress=False)
    assert time.monotonic() - started < 60
    assert f"cannot reach 127.0.0.1:{port}" in str(report.stopped)
    assert source.calls < 20
    assert set(open_store(url).image_ids()) == {"IMG_0000", "IMG_0001"}
