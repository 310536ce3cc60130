"""archivestore.plot: the figures build, and what they draw is the data they were given."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from archivestore import ingest, open_store
from archivestore.analysis import agreement_counts, overlap, score
from archivestore.imaging import encode_superpixels_rgb
from archivestore.sources import Annotation, Item
from archivestore.testing.sample import png

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from archivestore import plot  # noqa: E402

SHAPE = (40, 60)
BLOCK = 10
STUDY = "Study / one"
FEATURES = ["network", "dots / globules"]
RATERS = ["r1", "r2", "r3"]
IDS = ["ISIC_0000001", "ISIC_0000002"]


def _grid() -> np.ndarray:
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return ((y // BLOCK) * (SHAPE[1] // BLOCK) + x // BLOCK).astype(np.uint32)


def _ellipse(shift: int) -> np.ndarray:
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return ((((y - 20) / 12) ** 2 + ((x - 30 - shift) / 18) ** 2) <= 1).astype(np.uint8) * 255


def _items(rng: np.random.Generator) -> list[Item]:
    """Two images with grid superpixels and masks; three raters, of whom only r1 gives the second feature."""
    n = int(_grid().max()) + 1
    items = []
    for image_id in IDS:
        rgb = rng.integers(0, 256, SHAPE + (3,), dtype=np.uint8)
        values = {r: {"network": rng.choice([0.0, 0.5, 1.0], n).tolist()} for r in RATERS}
        values["r1"]["dots / globules"] = rng.choice([0.0, 1.0], n).tolist()
        items.append(Item(
            id=image_id, metadata={"isic_id": image_id},
            image=lambda rgb=rgb: png(rgb), superpixels=lambda: encode_superpixels_rgb(_grid()),
            mask=lambda: png(_ellipse(0)),
            annotations=[Annotation(STUDY, r, lambda v=values[r]: v) for r in RATERS],
        ))
    return items


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("plot") / "store.zarr"
    store = open_store(path, mode="a")
    assert ingest(store, _items(np.random.default_rng(3)), progress=False).ok
    model = [Item(id=i, metadata={"isic_id": i}, mask=lambda: png(_ellipse(4)), rater="model") for i in IDS]
    assert ingest(store, model, progress=False).ok
    return open_store(path)


@pytest.fixture(scope="module")
def result(store):
    return overlap(store.study(STUDY), cross_features=True).compute()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_importing_the_module_loads_no_matplotlib():
    code = "import sys, archivestore.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_superpixel_boundaries_mark_pixels_whose_right_or_lower_neighbour_differs():
    index = np.array([[0, 0, 1], [0, 0, 1], [2, 2, 2]])
    expected = np.array([[0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(plot.superpixel_boundaries(index), expected)
    assert not plot.superpixel_boundaries(np.zeros((4, 5), int)).any()


def test_store_image_draws_the_superpixel_borders_and_one_contour_per_rater_with_a_mask(store):
    fig = plot.store_image(store, IDS[0], raters=["ground_truth", "model", "nobody"])
    (ax,) = fig.axes
    photo, borders = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    np.testing.assert_array_equal(photo.get_array(), store.read(IDS[0], "image"))
    np.testing.assert_array_equal(borders.get_array()[..., 3] > 0, plot.superpixel_boundaries(_grid()))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ground_truth", "model"]
    assert ax.get_title() == IDS[0]


def test_image_overlay_without_superpixels_or_masks_is_the_image_alone():
    rgb = np.zeros((8, 12, 3), np.uint8)
    fig = plot.image_overlay(rgb)
    (ax,) = fig.axes
    assert len([a for a in ax.get_children() if isinstance(a, AxesImage)]) == 1
    assert ax.get_legend() is None


def test_overlap_distributions_count_each_rater_pair_once(result):
    fig = plot.overlap_distributions(result, ["dice", "correlation"])
    assert len(fig.axes) == 2
    for ax, measure in zip(fig.axes, ["dice", "correlation"], strict=True):
        labels = [t.get_text() for t in ax.get_xticklabels()]
        counts = result[f"{measure}_count"].values  # ordered pairs: each value twice
        assert labels == [f"{f}\nn={c // 2}" for f, c in zip(FEATURES, counts, strict=True)]
        # the second feature has one rater only: no pair, no violin
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1


def test_overlap_distributions_as_box_plots_and_bad_arguments(result):
    fig = plot.overlap_distributions(result, ["superpixel_dice"], kind="box")
    assert fig.axes[0].get_ylabel() == "superpixel-set Dice"
    assert len(fig.axes[0].lines) > 0
    with pytest.raises(ValueError, match="kind"):
        plot.overlap_distributions(result, kind="strip")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="jaccard"):
        plot.overlap_distributions(result, ["jaccard"])


def test_feature_matrix_shows_the_cross_feature_summary(result, store):
    fig = plot.feature_matrix(result, "dice")
    ax = fig.axes[0]
    (matrix,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    np.testing.assert_array_equal(matrix.get_array().filled(np.nan), result["dice_cross_median"].values)
    assert len(ax.texts) == len(FEATURES) ** 2
    with pytest.raises(KeyError, match="cross_features"):
        plot.feature_matrix(overlap(store.study(STUDY)).compute())


def test_agreement_grid_paints_the_rater_counts_of_every_cell(store):
    study = store.study(STUDY)
    fig = plot.agreement_grid(store, study, IDS, FEATURES)
    cells = [ax for ax in fig.axes if ax.get_images()]
    assert len(cells) == len(IDS) * len(FEATURES)
    assert len(fig.axes) == len(cells) + 1  # and the colour bar
    for k, ax in enumerate(cells):
        image_id, feature = IDS[k // len(FEATURES)], FEATURES[k % len(FEATURES)]
        counts = agreement_counts(store, study, image_id, feature).values
        overlay = ax.get_images()[1].get_array()
        np.testing.assert_array_equal(overlay.filled(0), counts[_grid()])
        assert (overlay.mask == (counts[_grid()] == 0)).all()
    assert [ax.get_title() for ax in cells[: len(FEATURES)]] == FEATURES
    assert cells[len(FEATURES)].get_ylabel() == IDS[1]


def test_score_figure_plots_every_image_and_metric(store):
    scores = score(store, truth="ground_truth", prediction="model")
    fig = plot.score_figure(scores, ["jaccard", "dice"])
    ax = fig.axes[0]
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    for line, metric in zip(markers, ["jaccard", "dice"], strict=True):
        np.testing.assert_allclose(line.get_ydata(), scores[metric].values)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in scores["image"].values]
    with pytest.raises(ValueError, match="feature"):
        plot.score_figure(scores.expand_dims(feature=["a"]))


def test_save_png_writes_a_palette_png_of_the_figure_size(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    plot.save_png(fig, tmp_path / "fig.png", dpi=50, colors=16)
    with Image.open(tmp_path / "fig.png") as saved:
        assert saved.mode == "P"
        assert saved.size == (150, 100)
        assert len(saved.getcolors()) <= 16
    with pytest.raises(ValueError, match="colors"):
        plot.save_png(fig, tmp_path / "no.png", colors=1)
