"""Only our own stores: ``open_store(mode="a")`` creates where nothing is or in an empty directory, and refuses
anything else — a foreign Zarr v3 or v2 hierarchy, an OME-Zarr image, the source folder — leaving it untouched."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import zarr

from archivestore import open_store
from archivestore.cli import main
from archivestore.errors import NotAStoreError, StoreNotFoundError


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (and every directory) with its bytes' sha256: a byte-for-byte picture."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def _v3_group(path: Path) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=3, attributes={"tool": "someone else's"})
    root.create_array("data", data=np.arange(12, dtype="u2").reshape(3, 4))


def _v2_group(path: Path) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("data", data=np.arange(12, dtype="u2").reshape(3, 4))


def _ome_image(path: Path) -> None:
    pytest.importorskip("ome_zarr")
    from archivestore.testing.ome import write_ome_image

    write_ome_image(path, version="0.5", axes="cyx", shape=(1, 16, 16))


def _source_folder(path: Path) -> None:
    path.mkdir()
    (path / "ISIC_0000000.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (path / "notes.txt").write_text("mine")


def _file(path: Path) -> None:
    path.write_bytes(b"a file, not a store")


@pytest.mark.parametrize("make, what", [
    (_v3_group, "a Zarr v3 hierarchy without the 'archivestore' root attribute"),
    (_v2_group, "a Zarr v2 hierarchy"),
    (_ome_image, "an OME-Zarr image or plate without the 'archivestore' root attribute"),
    (_source_folder, "a directory that is not empty"),
    (_file, "a file"),
], ids=["zarr-v3", "zarr-v2", "ome-zarr", "source-folder", "file"])
def test_ingest_into_what_is_not_a_store_is_refused_and_leaves_it_byte_for_byte(tmp_path, capsys, make, what):
    target = tmp_path / "target"
    make(target)
    before = _snapshot(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    code = main(["ingest", "challenge", str(src if make is not _source_folder else target), "--store", str(target),
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"archivestore: error: {target} is not an archivestore store ({what}")
    assert "nothing was written" in err
    after = _snapshot(tmp_path)
    after.pop("src")
    assert after == before
    with pytest.raises(NotAStoreError, match="is not an archivestore store"):
        open_store(target, mode="a")
    assert _snapshot(tmp_path) == {**before, "src": "dir"}


@pytest.mark.parametrize("make", [_v3_group, _v2_group], ids=["zarr-v3", "zarr-v2"])
def test_reading_a_foreign_zarr_says_it_is_not_an_archivestore_store(tmp_path, capsys, make):
    make(tmp_path / "t.zarr")
    with pytest.raises(NotAStoreError, match=r"is not an archivestore store \(a Zarr v[23] hierarchy"):
        open_store(tmp_path / "t.zarr")
    assert main(["info", str(tmp_path / "t.zarr")]) == 2
    assert "is not an archivestore store" in capsys.readouterr().err
    with pytest.raises(StoreNotFoundError):
        open_store(tmp_path / "nothing.zarr")


def test_a_new_or_empty_location_becomes_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    for where in (tmp_path / "empty", tmp_path / "new" / "s.zarr"):
        store = open_store(where, mode="a")
        assert store.root.attrs["archivestore"]["layout"] >= 1
        assert open_store(where).info()["images"] == 0
        open_store(where, mode="a")  # and opens again for writing


def test_a_foreign_group_on_memory_is_refused_untouched():
    url = f"memory://owned-{uuid.uuid4().hex}/t.zarr"
    root = zarr.open_group(url, mode="w", zarr_format=3, attributes={"x": 1})
    root.create_array("data", data=np.arange(4))
    fs = fsspec.filesystem("memory")
    before = {p: fs.cat_file(p) for p in fs.find(url.removeprefix("memory:/"))}
    with pytest.raises(NotAStoreError):
        open_store(url, mode="a")
    assert {p: fs.cat_file(p) for p in fs.find(url.removeprefix("memory:/"))} == before


def test_stores_created_at_once_by_several_processes_agree(tmp_path):
    """Writers creating one store at the same time all open it (the marker is in the first zarr.json)."""
    import subprocess

    code = ("import sys; from archivestore import open_store; "
            "s = open_store(sys.argv[1], mode='a'); print(s.layout.version)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s.zarr")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
