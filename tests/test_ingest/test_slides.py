"""Slide microscopy: SM series -> ``slides/<uid>`` pyramids whose tiles stay in their DICOM encoding.

The store keeps each frame's codestream byte for byte (checked); decoded pixels are checked against
pydicom's decoding of the same frames (Pillow's libjpeg-turbo for JPEG, pylibjpeg's OpenJPEG for JPEG
2000: other builds of the decoders imagecodecs uses, which round a few pixels differently by 1, as the
lossy standards' inverse-transform tolerances allow) and
wsidicom's ``read_region`` of the whole level; absent tiles of a TILED_SPARSE level are white there
and here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array

import archivestore
from archivestore.errors import BadItem
from archivestore.sources import SeriesItem
from archivestore.testing.slides import sm_series, synthetic_slide, truncated_frame, without_level

pytest.importorskip("wsidicom")

ROOT = Path(__file__).resolve().parents[2]


def _uid(files):
    return str(pydicom.dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True).SeriesInstanceUID)


def _item(files, **metadata):
    uid = _uid(files)
    return SeriesItem(id=uid, metadata={"Modality": "SM", "SeriesInstanceUID": uid, **metadata},
                      files=lambda: files, where=f"mem://{uid}", origin={})


def _ingest(store, files):
    from archivestore._ingest._series import process_series

    return process_series(store, _item(files))


def _frames_by_position(files, level):
    """{(row, column): decoded frame} of one level, decoded by pydicom (positions from the DICOM)."""
    out = {}
    for name, data in files:
        if not name.startswith(f"level{level}_"):
            continue
        ds = pydicom.dcmread(io.BytesIO(data))
        plugin = "pillow" if ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit else "pylibjpeg"
        n, tile, cols = int(ds.NumberOfFrames), int(ds.Rows), -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
        offset = int(ds.get("ConcatenationFrameOffsetNumber", 0))
        for i in range(n):
            frame = pixel_array(io.BytesIO(data), index=i, decoding_plugin=plugin)
            if ds.DimensionOrganizationType == "TILED_SPARSE":
                pos = ds.PerFrameFunctionalGroupsSequence[i].PlanePositionSlideSequence[0]
                key = (int(pos.RowPositionInTotalImagePixelMatrix) - 1,
                       int(pos.ColumnPositionInTotalImagePixelMatrix) - 1)
            else:
                key = (((offset + i) // cols) * tile, ((offset + i) % cols) * tile)
            out[key] = frame
    return out


@pytest.fixture(scope="module", params=["jpeg", "jpeg2000"])
def ingested(request, tmp_path_factory):
    slide = synthetic_slide(seed=f"t-{request.param}")
    files = sm_series(slide, codec=request.param, sparse_levels=(1,), absent_tiles=((0, 1),), concatenate=2)
    store = archivestore.open_store(str(tmp_path_factory.mktemp("slides") / "s.zarr"), mode="a")
    result = _ingest(store, files)
    return store, files, _uid(files), result


def test_every_level_equals_the_decoded_dicom_frames(ingested):
    store, files, uid, result = ingested
    assert result.wrote and result.rows[uid]["store"]["kind"] == "slide"
    assert store.slides() == [uid]
    for level in range(3):
        image = store.slide(uid, level)
        assert image.dims == ("y", "x", "channel") and image.chunks is not None
        assert tuple(image.encoding["chunks"]) == (256, 256, 3)   # the DICOM tile
        values = image.values
        frames = _frames_by_position(files, level)
        for r in range(0, values.shape[0], 256):
            for c in range(0, values.shape[1], 256):
                got = values[r:r + 256, c:c + 256]
                if (r, c) in frames:
                    want = frames[(r, c)][:got.shape[0], :got.shape[1]]
                    # two builds of libjpeg-turbo (JPEG) or of OpenJPEG (irreversible JPEG 2000): their
                    # inverse transforms may round a few pixels differently, by 1
                    diff = np.abs(got.astype(int) - want)
                    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.01 * diff.size
                else:   # left out of the TILED_SPARSE level: white, as wsidicom fills it
                    assert level == 1 and (r, c) == (0, 256) and (got == 255).all()
        assert len(frames) == (3 if level == 1 else int(np.prod([-(-n // 256) for n in values.shape[:2]])))


def test_levels_equal_wsidicom_read_region(ingested):
    from upath import UPath
    from wsidicom import WsiDicom
    from wsidicom.file import WsiDicomFileSource
    from wsidicom.file.io.wsidicom_io import WsiDicomReadIO

    store, files, uid, _ = ingested
    wsi = WsiDicom(WsiDicomFileSource([WsiDicomReadIO(io.BytesIO(d), UPath(n)) for n, d in files]), True)
    for level in range(3):
        image = store.slide(uid, level)
        h, w = image.shape[:2]
        region = np.asarray(wsi.read_region((0, 0), level, (w, h)))[..., :3]
        jpeg = files[0][1].find(b"1.2.840.10008.1.2.4.50") >= 0
        diff = np.abs(region.astype(int) - image.values.astype(int))
        # wsidicom decodes JPEG with whichever decoder it prefers; the tile grid must agree exactly
        assert diff.max() <= (3 if jpeg else 0)
    label = store.slide(uid, "label")
    assert label.shape == (96, 160, 3)
    assert np.abs(np.asarray(wsi.read_label()).astype(int)[..., :3] - label.values).max() <= 3
    wsi.close()


def test_tiles_are_the_dicom_codestreams_byte_for_byte(ingested):
    from pydicom.encaps import generate_frames

    store, files, uid, _ = ingested
    frames = []
    for _, data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        frames += [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    root = Path(store.url) / "slides" / uid
    chunks = [p.read_bytes() for p in root.rglob("*") if p.is_file() and "/image/c/" in str(p)]
    assert sorted(chunks) == sorted(frames)   # every frame kept as encoded, nothing else
    dicom_bytes = sum(len(d) for _, d in files)
    assert sum(map(len, chunks)) <= dicom_bytes


def test_metadata_coordinates_and_the_series_table(ingested):
    store, files, uid, _ = ingested
    image = store.slide(uid, 1)
    assert image.attrs["spacing_um"] == [0.5, 0.5] and image["y"].attrs["units"] == "micrometer"
    np.testing.assert_allclose(image["x"].values[:3], [0.0, 0.5, 1.0])
    assert list(image["channel"].values) == ["R", "G", "B"]
    attrs = store.slide_attrs(uid)
    assert attrs["objective_power"] == 40.0 and attrs["container_id"].startswith("SLIDE-t-")
    assert attrs["specimens"][0]["preparation"][1] == {"concept": "Using substance", "value": "hematoxylin stain"}
    assert attrs["optical_paths"][0]["00480106"]["Value"] == ["1"]
    assert [p["tiling"] for p in attrs["pyramid"]] == ["TILED_FULL", "TILED_SPARSE", "TILED_FULL"]
    assert attrs["pyramid"][0]["image_type"][:3] == ["ORIGINAL", "PRIMARY", "VOLUME"]
    assert len(attrs["pyramid"][0]["sop_instance_uids"]) == 2   # a concatenation of two instances
    assert [a["name"] for a in attrs["associated"]] == ["label", "overview"]
    assert attrs["record"]["SeriesInstanceUID"] == uid


def test_a_rerun_writes_nothing(ingested):
    store, files, uid, _ = ingested
    again = _ingest(store, files)
    assert not again.wrote and again.rows[uid]["store"]["group"] == store.layout.slide(uid)


@pytest.mark.parametrize("bad, reason", [
    (lambda f: truncated_frame(f, "level1_0.dcm"), "truncated"),
    (lambda f: without_level(f, 0), "level 0 is missing"),
])
def test_bad_slides_are_one_item_error(tmp_path, bad, reason):
    files = bad(sm_series(synthetic_slide(seed="bad"), codec="jpeg"))
    store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    with pytest.raises(BadItem) as err:
        _ingest(store, files)
    assert reason in str(err.value) and _uid(files) in str(err.value)
    assert store.slides() == [] or not (store.group_state(store.layout.slide(_uid(files))) or {}).get("complete")


def test_a_gap_in_the_pyramid_is_a_missing_level(tmp_path):
    files = without_level(sm_series(synthetic_slide((1200, 1600), levels=4, seed="gap"), codec="jpeg"), 2)
    store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    with pytest.raises(BadItem, match="a pyramid level is missing"):
        _ingest(store, files)


def test_plain_zarr_reads_a_slide_through_the_entry_point(ingested, tmp_path):
    """A fresh interpreter that never imports archivestore itself: zarr finds the codec by the entry
    point the pyproject declares. Where archivestore's installed metadata lacks it (the shared
    development venv was installed from another checkout), the declared entry points are installed
    as a distribution of their own on the path, exactly as pip would write them."""
    store, _, uid, _ = ingested
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["zarr.codecs"]
    assert declared == {"archivestore_jpeg": "archivestore.codecs:Jpeg",
                        "archivestore_jpeg2k": "archivestore.codecs:Jpeg2k"}
    import importlib.metadata

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if "archivestore_jpeg" not in {e.name for e in importlib.metadata.entry_points(group="zarr.codecs")}:
        info = tmp_path / "site" / "archivestore_codecs-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archivestore-codecs\nVersion: 0\n")
        (info / "entry_points.txt").write_text(
            "[zarr.codecs]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
        env["PYTHONPATH"] = f"{tmp_path / 'site'}{os.pathsep}{ROOT}"
    code = ("import json, sys, xarray as xr\n"
            "assert 'archivestore.codecs' not in sys.modules\n"
            f"ds = xr.open_zarr({store.url!r}, group='slides/{uid}/0', consolidated=False)\n"
            "v = ds['image'][:300, :300].values\n"
            "print(json.dumps({'sum': int(v.astype('int64').sum()),"
            " 'loaded': 'archivestore.codecs' in sys.modules}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out == {"sum": int(store.slide(uid)[:300, :300].values.astype("int64").sum()), "loaded": True}


def test_the_codecs_register_at_import_and_round_trip(tmp_path):
    import zarr

    import archivestore.codecs as codecs

    assert zarr.registry.get_codec_class("archivestore_jpeg") is codecs.Jpeg
    assert zarr.registry.get_codec_class("archivestore_jpeg2k") is codecs.Jpeg2k
    data = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(32, 32, 3), dtype="uint8",
                            serializer=codecs.Jpeg2k(), compressors=None)
    arr[...] = data
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[...], data)   # reversible J2K
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert meta["codecs"] == [{"name": "archivestore_jpeg2k"}]


def test_the_lazy_level_is_what_plain_xarray_opens_and_a_region_reads_only_its_tiles(ingested):
    import xarray as xr
    import zarr

    from archivestore.store import Store
    from archivestore.testing.store import CountingStore

    store, _, uid, _ = ingested
    plain = xr.open_zarr(store.url, group=f"slides/{uid}/0", consolidated=False)["image"]
    lazy = store.slide(uid, 0)
    xr.testing.assert_equal(lazy, plain)   # values and coordinates
    assert lazy.data.chunksize == (600, 800, 3)   # tiles grouped in dask blocks (the whole of this small level)
    assert store.slide(uid, 0, chunks="tile").data.chunksize == (256, 256, 3)

    counting = CountingStore(zarr.storage.LocalStore(store.url, read_only=True))
    counted = Store(store.url, counting, zarr.open_group(counting, mode="r", zarr_format=3))
    image = counted.slide(uid, 0)
    counting.reset()
    region = image[300:500, 100:300].values   # rows 300-499 cross tile rows 1 and 2, columns tile 0 and 1
    tiles = {k for (op, k), _ in counting.calls.items() if op == "get" and "/image/c/" in k}
    assert sorted(k.split("/image/c/")[1] for k in tiles) == ["1/0/0", "1/1/0"]
    np.testing.assert_array_equal(region, plain[300:500, 100:300].values)


def test_verify_checks_a_slides_tiles(tmp_path):
    from archivestore.verify import verify

    files = sm_series(synthetic_slide(seed="verify"), codec="jpeg")
    store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    report = archivestore.ingest(store, [_item(files)], progress=False)
    assert not report.failed
    uid = _uid(files)
    assert verify(store, progress=False).problems == []
    tile = tmp_path / "s.zarr" / "slides" / uid / "1" / "image" / "c" / "0" / "1" / "0"
    data = tile.read_bytes()
    tile.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])   # one flipped byte
    problems = verify(store, progress=False).problems
    assert [(p.image_id, p.kind) for p in problems] == [(uid, "damaged")]
    assert f"slides/{uid}/1/image does not match its checksum" in problems[0].detail


def test_a_fluorescence_slide_has_one_channel_per_optical_path(tmp_path):
    files = sm_series(synthetic_slide(seed="fluorescence"), codec="jpeg2000", fluorescence=2, overview=False)
    store = archivestore.open_store(str(tmp_path / "s.zarr"), mode="a")
    uid = _uid(files)
    _ingest(store, files)
    level = store.slide(uid, 0)
    assert level.shape == (600, 800, 2) and list(level["channel"].values) == ["1", "2"]
    assert level.encoding["chunks"] == (256, 256, 1)   # one tile of one optical path per chunk
    for path in (1, 2):
        data = dict(files)[f"level0_0_path{path}.dcm"]
        ds = pydicom.dcmread(io.BytesIO(data))
        for i in (0, 5):   # TILED_FULL: frame i is tile (i // 4, i % 4)
            want = pixel_array(io.BytesIO(data), index=i, decoding_plugin="pylibjpeg")
            r, c = (i // 4) * 256, (i % 4) * 256
            got = level.sel(channel=str(path)).values[r:r + 256, c:c + 256]
            diff = np.abs(got.astype(int) - want[:got.shape[0], :got.shape[1]])
            assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.01 * diff.size
        assert ds.PhotometricInterpretation == "MONOCHROME2"
    attrs = store.slide_attrs(uid)
    assert [p["00480106"]["Value"][0] for p in attrs["optical_paths"]] == ["1", "2"]
