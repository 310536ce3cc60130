"""``verify --repair`` never destroys: a damaged group stays as it is until a complete fresh copy replaces it;
an origin or a store out of reach is its own outcome and changes nothing."""

from __future__ import annotations

import errno
import hashlib
import io
import socket
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from zarr.storage import WrapperStore

import archivestore.sources as sources
from archivestore import ingest, open_store
from archivestore.cli import main
from archivestore.errors import UnreachableError
from archivestore.sources import Item
from archivestore.verify import verify


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class _Origin:
    """An archive the test can take down: items rebuilt from origin ``{"source": "test-origin", "k": k}``.

    While down, a fetch connects to a closed port on 127.0.0.1 (a real connection refused) and raises
    :class:`UnreachableError`, as an archive client does. ``changed`` makes it serve other pixels.
    """

    def __init__(self) -> None:
        self.down = False
        self.changed = False
        self.fetches = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.closed = f"http://127.0.0.1:{s.getsockname()[1]}/files"

    def item(self, image_id: str, origin: dict, metadata: dict) -> Item:
        k = int(origin["k"])

        def load() -> bytes:
            self.fetches += 1
            if self.down:
                url = f"{self.closed}/{image_id}.png"
                try:
                    requests.get(url, timeout=5)
                except requests.ConnectionError:
                    raise UnreachableError(url, "connection refused") from None
            return _png(k + 1000 if self.changed else k)

        return Item(image_id, metadata, image=load, where=f"test-origin/{k}", origin=origin)


@pytest.fixture
def origin(monkeypatch):
    archive = _Origin()
    monkeypatch.setitem(sources._ORIGINS, "test-origin", archive.item)
    return archive


def _store(path: Path, origin: _Origin):
    store = open_store(path, mode="a")
    items = [origin.item(f"IMG_{k}", {"source": "test-origin", "k": k}, {"k": k}) for k in range(3)]
    assert ingest(store, items, progress=False).ok
    return store


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_locks" not in p.parts}


def _damage(path: Path, image_id: str) -> None:
    chunk = next(p for p in (path / "images" / image_id / "image" / "c").rglob("*") if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))


def test_repair_while_the_origin_is_down_changes_nothing_and_can_be_tried_again(tmp_path, origin, capsys):
    path = tmp_path / "s.zarr"
    _store(path, origin)
    _damage(path, "IMG_1")
    before = _files(path)
    origin.down = True
    for _ in range(2):  # the second attempt still knows the origin: nothing was dropped
        assert main(["verify", str(path), "--repair", "--no-progress"]) == 1
        out, err = capsys.readouterr()
        assert "UNREACHABLE IMG_1: damaged: images/IMG_1/image" in err
        assert "cannot reach the origin" in err and "no origin recorded" not in err
        assert "1 left as they are (store or origin out of reach)" in out
        assert _files(path) == before  # byte for byte: record, intact arrays, recorded origin
    store = open_store(path)
    assert sorted(store.image_ids()) == ["IMG_0", "IMG_1", "IMG_2"]
    assert store.image_state("IMG_1")["origin"] == {"source": "test-origin", "k": 1}
    origin.down = False
    report = verify(open_store(path, mode="a"), repair=True, progress=False)
    assert report.ok and report.repaired == ["IMG_1"]
    again = open_store(path)
    assert verify(again, progress=False).ok
    expected = np.asarray(Image.open(io.BytesIO(_png(1))))
    np.testing.assert_array_equal(again.read("IMG_1", "image"), expected)


def test_a_fresh_copy_that_differs_from_the_recorded_checksums_is_not_swapped_in(tmp_path, origin):
    path = tmp_path / "s.zarr"
    _store(path, origin)
    _damage(path, "IMG_2")
    before = _files(path)
    origin.changed = True
    report = verify(open_store(path, mode="a"), repair=True, progress=False)
    assert not report.ok and [p.image_id for p in report.unrepaired] == ["IMG_2"]
    assert "the origin now gives other data for image" in report.unrepaired[0].detail
    assert _files(path) == before


def test_a_repair_cut_short_before_the_swap_leaves_the_damaged_group(tmp_path, origin, monkeypatch):
    """The fresh copy is written in full elsewhere first: a failure while fetching never reaches the store."""
    path = tmp_path / "s.zarr"
    _store(path, origin)
    _damage(path, "IMG_0")
    before = _files(path)
    from archivestore.store import _swap

    def broken(*args, **kwargs):
        raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")

    monkeypatch.setattr(_swap, "swap_group", broken)
    monkeypatch.setattr("archivestore.store._writing.swap_group", broken)
    report = verify(open_store(path, mode="a"), repair=True, progress=False)
    assert [p.image_id for p in report.unreachable] == ["IMG_0"]
    assert "cannot reach the store" in report.unreachable[0].detail
    assert _files(path) == before


class _Dropping(WrapperStore):
    """A store whose reads of one image's chunks fail with a reset connection (a bucket timing out)."""

    def __init__(self, store, prefix: str) -> None:
        super().__init__(store)
        self.prefix = prefix

    async def get(self, key, prototype, byte_range=None):
        if key.startswith(self.prefix) and "/c/" in key:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return await self._store.get(key, prototype, byte_range)

    def _with_store(self, store):
        return type(self)(store, self.prefix)


def test_a_read_that_cannot_reach_the_store_is_not_damage(tmp_path, origin):
    path = tmp_path / "s.zarr"
    _store(path, origin)
    before = _files(path)
    store = open_store(path, mode="a")
    store.zstore = _Dropping(store.zstore, "images/IMG_1/")
    fetches = origin.fetches
    report = verify(store, repair=True, progress=False)
    assert [(p.image_id, p.kind) for p in report.problems] == [("IMG_1", "unreachable")]
    assert "ConnectionResetError" in report.problems[0].detail
    assert [p.image_id for p in report.unreachable] == ["IMG_1"] and not report.repaired
    assert origin.fetches == fetches  # nothing was fetched again: the image is not known to be damaged
    assert _files(path) == before


def test_an_image_and_a_raters_masks_of_it_both_damaged_are_both_repaired(sample_dirs, tmp_path):
    from archivestore.sources import ChallengeSource

    path = tmp_path / "s.zarr"
    store = open_store(path, mode="a")
    assert ingest(store, ChallengeSource([sample_dirs["train"], sample_dirs["masks"]]), progress=False).ok
    assert ingest(store, ChallengeSource([sample_dirs["predictions"]], rater="model"), progress=False).ok
    image_id = "ISIC_0000002"
    before = {name: store.read_array(group, name) for group, name in
              ((store.layout.image(image_id), "image"), (store.layout.masks(image_id, "model"), "mask"))}
    for group, name in (("images", "image"), ("masks/model", "mask")):
        chunk = next(p for p in (path / group / image_id / name / "c").rglob("*") if p.is_file())
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        chunk.write_bytes(bytes(raw))
    report = verify(open_store(path, mode="a"), repair=True, progress=False)
    assert sorted(p.group for p in report.problems) == [f"images/{image_id}", f"masks/model/{image_id}"]
    assert report.ok and sorted(report.repaired) == [image_id, image_id]
    again = open_store(path)
    assert verify(again, progress=False).ok
    np.testing.assert_array_equal(again.read_array(again.layout.image(image_id), "image"), before["image"])
    np.testing.assert_array_equal(again.read_array(again.layout.masks(image_id, "model"), "mask"), before["mask"])
