"""Rater-agreement heatmaps: per-pixel counts against brute force, painted colours, PNG files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fakes import V1_FIXTURES
from PIL import Image

from archivestore import ingest, open_store
from archivestore.analysis import _heatmap
from archivestore.analysis._heatmap import (
    agreement_counts,
    agreement_palette,
    heatmap,
    heatmap_path,
    montage,
    paint_counts,
    write_heatmaps,
)
from archivestore.imaging import decode_superpixels, encode_superpixels_rgb
from archivestore.sources import Annotation, Item

FIXTURES = V1_FIXTURES
FEATURES = ["globules", "Pigment network / reticular"]
RATERS = ["r1", "r2", "r3", "r4"]


def _grid_superpixels(shape: tuple[int, int], block: int) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    return ((y // block) * ((shape[1] + block - 1) // block) + x // block).astype(np.uint16)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _values(ann: np.ndarray, rater: int, skip: set[str]):
    return lambda: {f: ann[k, rater].tolist() for k, f in enumerate(FEATURES) if f not in skip}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """An ingested store with two images and a study of four raters.

    The images have the archive's real superpixels of ISIC_0000000 (when the shared
    fixtures are present) and a small grid; every rater gives 0/0.5/1 per superpixel,
    and rater r4 did not annotate the second feature of the last image.
    """
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("heat") / "store.zarr"
    sp_file = FIXTURES / "ISIC_0000000_superpixels.png"
    superpixels = {}
    if sp_file.exists():
        superpixels["ISIC_0000000"] = (decode_superpixels(sp_file.read_bytes()), sp_file.read_bytes())
    grid = _grid_superpixels((45, 70), 8)
    superpixels["ISIC_0000001"] = (grid, encode_superpixels_rgb(grid))
    rgb, ann, items = {}, {}, []
    for n, (image_id, (sp, sp_png)) in enumerate(superpixels.items()):
        rgb[image_id] = rng.integers(0, 256, (*sp.shape, 3), dtype=np.uint8)
        n_sp = int(sp.max()) + 1
        values = rng.choice([0.0, 0.5, 1.0], size=(len(FEATURES), len(RATERS), n_sp), p=[0.5, 0.25, 0.25])
        last = n == len(superpixels) - 1
        if last:
            values[1, 3] = np.nan
        ann[image_id] = values
        annotations = [
            Annotation("demo", rater, _values(values, r, {FEATURES[1]} if last and r == 3 else set()))
            for r, rater in enumerate(RATERS)
        ]
        image_png = _png(rgb[image_id])
        items.append(Item(image_id, {"name": image_id}, image=lambda b=image_png: b,
                          superpixels=lambda b=sp_png: b, annotations=annotations))
    store = open_store(path, mode="a")
    report = ingest(store, items, workers=2, progress=False)
    assert report.ok, report.failed
    images = {i: sp for i, (sp, _) in superpixels.items()}
    return open_store(path), images, rgb, ann


def _brute_pixel_counts(superpixels, values, definite, pixels):
    """Count raters per pixel with plain Python loops over the given pixels."""
    out = []
    for y, x in pixels:
        s = int(superpixels[y, x])
        n = 0
        for r in range(values.shape[0]):
            v = float(values[r, s])
            if (v == 1.0) if definite else (v > 0):  # NaN is neither
                n += 1
        out.append(n)
    return np.array(out)


@pytest.mark.parametrize("definite", [False, True])
@pytest.mark.parametrize("f", [0, 1])
def test_counts_per_pixel_match_brute_force(case, definite, f):
    store, images, rgb, ann = case
    rng = np.random.default_rng(f + 10 * definite)
    for i, (image_id, sp) in enumerate(images.items()):
        counts = agreement_counts(store, "demo", image_id, FEATURES[f], definite=definite)
        per_pixel = counts.values[sp]
        pixels = [(int(rng.integers(sp.shape[0])), int(rng.integers(sp.shape[1]))) for _ in range(2000)]
        expected = _brute_pixel_counts(sp, ann[image_id][f], definite, pixels)
        np.testing.assert_array_equal([per_pixel[p] for p in pixels], expected)
        expected_raters = 3 if (i == len(images) - 1 and f == 1) else 4
        assert counts.attrs["n_raters"] == expected_raters
        # the counts vary: the test sees several agreement levels
        assert len(np.unique(expected)) >= 3


@pytest.mark.parametrize("definite", [False, True])
def test_painted_pixels(case, definite):
    store, images, rgb, ann = case
    palette = agreement_palette(4)
    assert len({tuple(c) for c in palette[1:]}) == 4  # one colour per count
    for image_id, sp in images.items():
        img = heatmap(store, "demo", image_id, FEATURES[0], definite=definite, legend=False)
        assert img.mode == "RGB" and img.size == (sp.shape[1], sp.shape[0])
        out = np.asarray(img).astype(float)
        values = ann[image_id][0]
        marked = (values == 1) if definite else (values > 0)
        per_pixel = marked.sum(axis=0)[sp]
        a = _heatmap.ALPHA
        expected = np.where(
            (per_pixel > 0)[..., None],
            (1 - a) * rgb[image_id] + a * palette[per_pixel].astype(float),
            rgb[image_id],
        )
        assert np.abs(out - expected).max() <= 1.0
        np.testing.assert_array_equal(np.asarray(img)[per_pixel == 0], rgb[image_id][per_pixel == 0])


def test_strips_equal_whole(case, monkeypatch):
    store, images, _, _ = case
    image_id = list(images)[0]
    whole = np.asarray(heatmap(store, "demo", image_id, FEATURES[1]))
    monkeypatch.setattr(_heatmap, "_STRIP_ROWS", 7)
    strips = np.asarray(heatmap(store, "demo", image_id, FEATURES[1]))
    np.testing.assert_array_equal(whole, strips)


def test_paint_counts_checks_inputs():
    img = np.zeros((2, 3, 3), np.uint8)
    sp = np.array([[0, 1, 2], [2, 1, 5]])
    with pytest.raises(ValueError, match="superpixel index 5"):
        paint_counts(img, sp, np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="counts must lie"):
        paint_counts(img, sp, np.array([0, 1, 3, 0, 0, 0]), 2)
    with pytest.raises(ValueError, match="image is"):
        paint_counts(img, sp.T, np.zeros(6, int), 2)


def test_unknown_image_or_feature(case):
    store = case[0]
    with pytest.raises(KeyError, match="nope"):
        heatmap(store, "demo", "nope", FEATURES[0])
    with pytest.raises(KeyError, match="feature 'nope'"):
        heatmap(store, "demo", "ISIC_0000001", "nope")


def test_write_heatmaps_and_montage(case, tmp_path):
    store, images, _, _ = case
    paths = write_heatmaps(store, "demo", FEATURES[1], tmp_path / "out", definite=True)
    order = [str(i) for i in store.study("demo")["image"].values]
    assert sorted(order) == sorted(images)
    assert paths == [heatmap_path(tmp_path / "out", i, FEATURES[1], definite=True) for i in order]
    assert paths[0].name.endswith("_xPigment_20network_20_2F_20reticular_definite.png")  # escaped like store names
    for path, image_id in zip(paths, order, strict=True):
        sp = images[image_id]
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (sp.shape[1], sp.shape[0])
            # the legend is drawn in the top-left corner: the first pixels differ from the bare heatmap
            bare = np.asarray(heatmap(store, "demo", image_id, FEATURES[1], definite=True, legend=False))
            assert (np.asarray(img.convert("RGB"))[:5, :5] != bare[:5, :5]).any()
    tiles = paths * 2 + paths[:1]
    grid = montage(tiles, columns=2, cell_size=(120, 90), labels=[p.stem for p in tiles])
    n = len(paths) * 2 + 1
    assert grid.size == (2 * 120, -(-n // 2) * 90)
    grid.save(tmp_path / "montage.png")
    with Image.open(tmp_path / "montage.png") as reopened:
        assert reopened.size == grid.size
    # default cell: the largest image; fewer images than columns: one row
    single = montage([Image.new("RGB", (30, 20)), Image.new("RGB", (10, 40))], columns=5)
    assert single.size == (2 * 30, 40)
    with pytest.raises(ValueError):
        montage([], columns=2)


def test_heatmap_command(case, tmp_path, capsys):
    import argparse

    from archivestore.cli._analysis import add_heatmap_command

    store, images, _, _ = case
    parser = argparse.ArgumentParser(prog="archivestore")
    add_heatmap_command(parser.add_subparsers(dest="command"))
    image_id = list(images)[-1]
    args = parser.parse_args([
        "heatmap", store.url, "--study", "demo", "--feature", FEATURES[0], "--image", image_id,
        "--out", str(tmp_path / "png"), "--montage", str(tmp_path / "m" / "grid.png"),
        "--columns", "3", "--cell", "100x80",
    ])
    assert args.func(args) == 0
    assert "1 heatmaps written" in capsys.readouterr().out
    with Image.open(heatmap_path(tmp_path / "png", image_id, FEATURES[0])) as img:
        assert img.size == (images[image_id].shape[1], images[image_id].shape[0])
    with Image.open(tmp_path / "m" / "grid.png") as grid:
        assert grid.size == (100, 80)
    args = parser.parse_args(["heatmap", store.url, "--study", "nope", "--feature", "x", "--out", str(tmp_path / "o")])
    assert args.func(args) == 2
    assert "nope" in capsys.readouterr().err
    args = parser.parse_args(["heatmap", store.url, "--study", "demo", "--feature", FEATURES[0],
                              "--image", "ISIC_9999999", "--out", str(tmp_path / "o")])
    assert args.func(args) == 2
    assert "ISIC_9999999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["heatmap", store.url, "--study", "demo", "--feature", "x", "--out", "o", "--cell", "big"])
