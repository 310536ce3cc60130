"""Layout 3: node names any HTTP server can serve, and ``upgrade`` of layout-1 and layout-2 stores.

The defect: layout 2 percent-encoded names (``studies/Hidden%20Study%3A...``); a static HTTP
server (and a browser reader) decodes the ``%`` in the URL path and looks for
``Hidden Study:...``, so every escaped group was "not found". A plate image's record key
``field`` became the column ``metadata/field%``.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from archivestore import ingest, open_store, upgrade
from archivestore.cli import main
from archivestore.errors import InvalidInputError
from archivestore.layout import STATE_KEY, escape_name
from archivestore.sources import ChallengeSource
from archivestore.store import _upgrade

STUDY = "Hidden Study: Globules & Network"
RATER = "model v2.0"
SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served by Python's own static server (``http.server``) on 127.0.0.1: (folder, its URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _ingest(store, sample_dirs) -> None:
    source = ChallengeSource([sample_dirs["train"], sample_dirs["part2"]], study=STUDY)
    assert ingest(store, source, progress=False).ok
    assert ingest(store, ChallengeSource([sample_dirs["predictions"]], rater=RATER), progress=False).ok
    # records with a key named like the table's coordinate and a key holding "/" and spaces
    store.append_tables({"plate 1 A01": {"field": 3, "meta": {"clinical diagnosis/impression": "x"}}})


def _node_names(fs_root: Path) -> list[str]:
    """Every node name under a local store (folders and arrays; zarr.json and chunk keys left out)."""
    out = []
    for doc in fs_root.rglob("zarr.json"):
        rel = doc.parent.relative_to(fs_root)
        out += list(rel.parts)
    return sorted(set(out))


def test_new_stores_are_layout_3_with_safe_names(sample_dirs, tmp_path):
    path = tmp_path / "s.zarr"
    store = open_store(path, mode="a")
    _ingest(store, sample_dirs)
    assert zarr.open_group(str(path), mode="r").attrs["archivestore"]["layout"] == 3
    names = _node_names(path)
    assert all(set(n) <= SAFE for n in names), [n for n in names if not set(n) <= SAFE]
    assert escape_name(STUDY) in names and escape_name(RATER) == "_xmodel_20v2.0" and escape_name(RATER) in names
    assert "_xfield" in names and "field%" not in names
    assert store.studies() == [STUDY] and store.mask_raters() == [RATER]
    assert open_store(path).metadata_records()["plate 1 A01"]["field"] == 3


def test_a_static_http_server_serves_every_group(sample_dirs, http_root):
    root, origin = http_root
    store = open_store(root / "isic.zarr", mode="a")
    _ingest(store, sample_dirs)
    url = f"{origin}/isic.zarr"
    study = xr.open_zarr(url, group=f"studies/{escape_name(STUDY)}", consolidated=False)
    assert study.sizes["image"] == 6 and "annotation" in study
    masks = xr.open_zarr(url, group=f"masks/{escape_name(RATER)}/ISIC_0000001", consolidated=False)
    np.testing.assert_array_equal(masks["mask"].values, store.read("ISIC_0000001", "mask", rater=RATER))
    table = xr.open_zarr(url, group="metadata", consolidated=False)
    assert table["_xfield"].attrs["path"] == ["field"]
    # what archivestore reads through the same server
    served = open_store(url)
    assert served.studies() == [STUDY] and served.mask_raters() == [RATER]
    assert served.study(STUDY)["annotation"].shape == study["annotation"].shape


def _old_store(url: str, version: int, sample_dirs) -> None:
    """A store written as layout ``version`` (1 or 2) named it."""
    zarr.open_group(url, mode="w", zarr_format=3, attributes={"archivestore": {"layout": version}})
    store = open_store(url, mode="a")
    assert store.layout.version == version
    _ingest(store, sample_dirs)


def _contents(store) -> dict:
    return {"studies": store.studies(), "raters": store.mask_raters(), "ids": store.image_ids(),
            "records": store.metadata_records(), "annotation": store.study(STUDY)["annotation"].values,
            "mask": store.read("ISIC_0000002", "mask", rater=RATER), "image": store.read("ISIC_0000003")}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k], k


def test_upgrade_a_layout_2_store(sample_dirs, store_url):
    _old_store(store_url, 2, sample_dirs)
    old = open_store(store_url)
    before = _contents(old)
    assert [n for n, _ in old.root["studies"].groups()] == ["Hidden%20Study%3A%20Globules%20%26%20Network"]
    assert "field%" in old.root["metadata"]
    report = upgrade(store_url)
    assert report.from_layout == 2 and report.to_layout == 3
    assert ("studies/Hidden%20Study%3A%20Globules%20%26%20Network", f"studies/{escape_name(STUDY)}") in report.moved
    assert ("masks/model%20v2.0", "masks/_xmodel_20v2.0") in report.moved
    assert ("metadata/field%", "metadata/_xfield") in report.renamed
    new = open_store(store_url)
    assert new.layout.version == 3
    _same(before, _contents(new))
    root = new.root
    assert [n for n, _ in root["studies"].groups()] == [escape_name(STUDY)]
    assert dict(root[f"masks/{escape_name(RATER)}"].attrs)[STATE_KEY]["name"] == RATER
    fields = [str(f) for f in root["metadata"]["field"][:]]
    assert "_xfield" in fields and "meta._xclinical_20diagnosis_2Fimpression" in fields
    assert all(set(f) <= SAFE for f in fields)
    # appends go on with layout-3 names, and a second upgrade has nothing to do
    w = open_store(store_url, mode="a")
    assert ingest(w, ChallengeSource([sample_dirs["rater_a"]], study=STUDY, rater="rater a"), progress=False).ok
    assert "rater a" in [str(r) for r in open_store(store_url).study(STUDY)["rater"].values]
    again = upgrade(store_url)
    assert not again.moved and not again.renamed and "nothing to do" in again.summary()


def test_upgrade_a_layout_1_store_and_serve_it(sample_dirs, http_root):
    root, origin = http_root
    path = root / "old.zarr"
    _old_store(str(path), 1, sample_dirs)
    assert (path / "studies" / STUDY).is_dir() and (path / "masks" / RATER).is_dir()
    inode = (path / "studies" / STUDY / "annotation" / "zarr.json").stat().st_ino
    before = _contents(open_store(path))
    assert main(["upgrade", str(path)]) == 0
    _same(before, _contents(open_store(path)))
    moved = path / "studies" / escape_name(STUDY) / "annotation" / "zarr.json"
    assert moved.stat().st_ino == inode  # renamed, not copied
    assert all(set(n) <= SAFE for n in _node_names(path))
    ds = xr.open_zarr(f"{origin}/old.zarr", group=f"masks/{escape_name(RATER)}/ISIC_0000004", consolidated=False)
    np.testing.assert_array_equal(ds["mask"].values, open_store(path).read("ISIC_0000004", "mask", rater=RATER))


def test_an_interrupted_upgrade_is_refused_then_finished(sample_dirs, tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "old.zarr")
    _old_store(path, 2, sample_dirs)
    before = _contents(open_store(path))
    real = _upgrade._move
    calls = []

    def cut_short(zstore, src, dst, name):
        if calls:
            raise KeyboardInterrupt
        calls.append(src)
        real(zstore, src, dst, name)

    monkeypatch.setattr(_upgrade, "_move", cut_short)
    with pytest.raises(KeyboardInterrupt):
        upgrade(path)
    monkeypatch.setattr(_upgrade, "_move", real)
    with pytest.raises(InvalidInputError, match="did not finish"):
        open_store(path)
    assert main(["info", path]) == 2
    assert "archivestore upgrade" in capsys.readouterr().err
    report = upgrade(path)
    assert report.moved and calls[0] not in [src for src, _ in report.moved]
    _same(before, _contents(open_store(path)))


def test_upgrade_refuses_while_a_writer_holds_a_lease(sample_dirs, tmp_path, capsys):
    path = str(tmp_path / "old.zarr")
    _old_store(path, 2, sample_dirs)
    store = open_store(path, mode="a")
    with store.lease("tables"):
        with pytest.raises(InvalidInputError, match="being written"):
            upgrade(path)
        assert main(["upgrade", path]) == 2
        assert "being written" in capsys.readouterr().err
    assert open_store(path).layout.version == 2  # untouched
    assert json.loads((Path(path) / "zarr.json").read_text())["attributes"]["archivestore"] == {"layout": 2}


def test_upgrade_when_an_old_plain_name_is_a_new_escaped_one(tmp_path):
    # layout 2 kept "_xmodel_20v2.0" as it is; in layout 3 that is the node of "model v2.0"
    path = str(tmp_path / "old.zarr")
    zarr.open_group(path, mode="w", zarr_format=3, attributes={"archivestore": {"layout": 2}})
    store = open_store(path, mode="a")
    for name in ("model v2.0", "_xmodel_20v2.0"):
        store.ensure_group(store.layout.rater(name), name)
    store.append_tables({"a b": {"field": 1, "_xfield": 2}})
    report = upgrade(path)
    assert ("metadata/_xfield", "metadata/_x_5Fxfield") in report.renamed
    new = open_store(path)
    assert new.mask_raters() == sorted(["model v2.0", "_xmodel_20v2.0"])
    assert sorted(n for n, _ in new.root["masks"].groups()) == ["_x_5Fxmodel_5F20v2.0", "_xmodel_20v2.0"]
    assert new.metadata_records() == {"a b": {"field": 1, "_xfield": 2}}


def test_upgrade_leaves_other_zarr_hierarchies_alone(tmp_path, capsys):
    path = tmp_path / "other.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3).create_group("Hidden Study")
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    assert main(["upgrade", str(path)]) == 2
    assert "not an archivestore store" in capsys.readouterr().err
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
