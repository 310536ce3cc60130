"""Rater-agreement heatmaps: per-pixel counts against brute force, painted colours, PNG files."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import xarray as xr
import zarr
from PIL import Image

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
from archivestore.imaging import decode_superpixels

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "isic-v1"
FEATURES = ["globules", "Pigment network / reticular"]
RATERS = ["r1", "r2", "r3", "r4"]


class LayoutStore:
    """Minimal reader of docs/layout.md with the Store methods the heatmaps use."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)
        self.root = zarr.open_group(self.path, mode="r")

    def image_ids(self) -> list[str]:
        meta = xr.open_zarr(self.path, group="metadata", consolidated=False)
        return [str(i) for i in meta["image"].values]

    def image(self, image_id: str) -> xr.Dataset:
        if not self.root[f"images/{image_id}"].attrs.get("_archivestore", {}).get("complete"):
            raise KeyError(image_id)
        return xr.open_zarr(self.path, group=f"images/{image_id}", consolidated=False)

    def study(self, name: str) -> xr.Dataset:
        return xr.open_zarr(self.path, group=f"studies/{name}", consolidated=False)


def _grid_superpixels(shape: tuple[int, int], block: int) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    return ((y // block) * ((shape[1] + block - 1) // block) + x // block).astype(np.uint16)


def _annotations(rng: np.random.Generator, n_superpixels: int, width: int) -> np.ndarray:
    """(feature, rater, superpixel) values 0/0.5/1, NaN beyond the image's superpixels."""
    out = np.full((len(FEATURES), len(RATERS), width), np.nan, dtype=np.float32)
    out[..., :n_superpixels] = rng.choice([0.0, 0.5, 1.0], size=(len(FEATURES), len(RATERS), n_superpixels), p=[0.5, 0.25, 0.25])
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A store with two images: the archive's real superpixels of ISIC_0000000 and a small grid."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("heat") / "store.zarr"
    sp_file = FIXTURES / "ISIC_0000000_superpixels.png"
    images = {}
    if sp_file.exists():
        images["ISIC_0000000"] = decode_superpixels(sp_file.read_bytes())
    images["ISIC_0000001"] = _grid_superpixels((45, 70), 8)
    width = max(int(sp.max()) + 1 for sp in images.values()) + 5
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs["archivestore"] = {"layout": 1}
    rgb, ann = {}, []
    for image_id, sp in images.items():
        rgb[image_id] = rng.integers(0, 256, (*sp.shape, 3), dtype=np.uint8)
        ds = xr.Dataset(
            {"image": (("y", "x", "channel"), rgb[image_id]), "superpixels": (("y", "x"), sp)},
            coords={"channel": ["R", "G", "B"]},
            attrs={"_archivestore": {"complete": True, "n_superpixels": int(sp.max()) + 1}},
        )
        ds.to_zarr(str(path), group=f"images/{image_id}", mode="w", consolidated=False, zarr_format=3)
        ann.append(_annotations(rng, int(sp.max()) + 1, width))
    ann = np.stack(ann)
    ann[-1, 1, 3, :] = np.nan  # rater r4 did not annotate the second feature of the last image
    study = xr.Dataset(
        {"annotation": (("image", "feature", "rater", "superpixel"), ann)},
        coords={"image": list(images), "feature": FEATURES, "rater": RATERS},
    )
    study.to_zarr(str(path), group="studies/demo", mode="w", consolidated=False, zarr_format=3)
    xr.Dataset(coords={"image": list(images)}).to_zarr(str(path), group="metadata", mode="w", consolidated=False, zarr_format=3)
    return LayoutStore(path), images, rgb, ann


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
        expected = _brute_pixel_counts(sp, ann[i, f], definite, pixels)
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
    for i, (image_id, sp) in enumerate(images.items()):
        img = heatmap(store, "demo", image_id, FEATURES[0], definite=definite, legend=False)
        assert img.mode == "RGB" and img.size == (sp.shape[1], sp.shape[0])
        out = np.asarray(img).astype(float)
        values = ann[i, 0]
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
    assert paths == [heatmap_path(tmp_path / "out", i, FEATURES[1], definite=True) for i in images]
    assert paths[0].name.endswith("_Pigment_network_reticular_definite.png")
    for path, (image_id, sp) in zip(paths, images.items()):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (sp.shape[1], sp.shape[0])
            # the legend is drawn in the top-left corner: the first pixels differ from the bare heatmap
            bare = np.asarray(heatmap(store, "demo", image_id, FEATURES[1], definite=True, legend=False))
            assert (np.asarray(img.convert("RGB"))[:5, :5] != bare[:5, :5]).any()
    grid = montage(paths * 2 + paths[:1], columns=2, cell_size=(120, 90), labels=[p.stem for p in paths * 2 + paths[:1]])
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
