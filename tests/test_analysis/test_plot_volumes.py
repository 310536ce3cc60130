"""archivestore.plot.volume_slices: three planes in mm, oriented, with the segments drawn where the labels are."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from archivestore.errors import InvalidInputError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from archivestore import plot  # noqa: E402

SHAPE = (6, 20, 24)  # z, y, x
SPACING = (2.5, 0.5, 0.8)
ORIGIN = (-40.0, -30.0, 12.0)
AXIAL_AFFINE = [[0, 0, SPACING[2], ORIGIN[0]], [0, SPACING[1], 0, ORIGIN[1]], [SPACING[0], 0, 0, ORIGIN[2]],
                [0, 0, 0, 1]]
# a coronal acquisition: rows run to the patient's left, columns to inferior, slices to posterior
CORONAL_AFFINE = [[0, 0, SPACING[2], ORIGIN[0]], [SPACING[0], 0, 0, ORIGIN[1]], [0, -SPACING[1], 0, ORIGIN[2]],
                  [0, 0, 0, 1]]
# segment 1 ("liver"): a box; segment 2 ("tumour"): a smaller box inside it for rater A, shifted for rater B
LIVER = (slice(1, 5), slice(4, 14), slice(5, 17))
TUMOUR_A = (slice(2, 4), slice(6, 10), slice(8, 12))
TUMOUR_B = (slice(2, 4), slice(7, 11), slice(9, 13))


def volume(affine: list[list[float]] = AXIAL_AFFINE, z: np.ndarray | None = None) -> xr.Dataset:
    values = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) % 1500 - 1000
    coords = {"z": ORIGIN[2] + SPACING[0] * np.arange(SHAPE[0]) if z is None else z,
              "y": SPACING[1] * np.arange(SHAPE[1]), "x": SPACING[2] * np.arange(SHAPE[2])}
    return xr.Dataset({"volume": (("z", "y", "x"), values)}, coords=coords,
                      attrs={"affine": affine, "spacing": list(SPACING), "series_instance_uid": "2.25.1"})


def segmentation(vol: xr.Dataset, tumour: tuple[slice, ...], rater: str) -> xr.Dataset:
    labels = np.zeros((2, *SHAPE), dtype=np.uint8)
    labels[(0, *LIVER)] = 1
    labels[(1, *tumour)] = 1
    return xr.Dataset({"labels": (("segment", "z", "y", "x"), labels),
                       "segment_label": ("segment", ["liver", "tumour"])},
                      coords={"segment": [1, 2], **{d: vol[d] for d in ("z", "y", "x")}},
                      attrs={"rater": rater, "spacing": list(SPACING)})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def meshes(ax) -> list[QuadMesh]:
    return [c for c in ax.collections if isinstance(c, QuadMesh)]


def contours(ax) -> list[ContourSet]:
    return [c for c in ax.get_children() if isinstance(c, ContourSet)]


def test_three_planes_through_the_labels_in_true_proportions():
    vol = volume()
    fig = plot.volume_slices(vol, segmentation(vol, TUMOUR_A, "A"))
    axes = fig.axes
    assert len(axes) == 3
    # default slices: the labelled index nearest the labelled voxels' mean index (z: 2.5 -> 2, y: 8.5 -> 8)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["axial", "coronal", "sagittal"]
    assert [ax.get_title().split("(")[-1] for ax in axes] == ["#2)", "#8)", "#10)"]
    for ax, (across, up) in zip(axes, [("x", "y"), ("x", "z"), ("y", "z")], strict=True):
        assert ax.get_aspect() == 1.0
        assert ax.get_xlabel() == f"{across} (mm)" and ax.get_ylabel() == f"{up} (mm)"
        image = meshes(ax)[0]
        edges = image.get_coordinates()  # (rows + 1, columns + 1, 2) in mm
        n_across, n_up = (SHAPE["zyx".index(across)], SHAPE["zyx".index(up)])
        step_across, step_up = SPACING["zyx".index(across)], SPACING["zyx".index(up)]
        np.testing.assert_allclose(np.diff(edges[0, :, 0]), step_across)
        np.testing.assert_allclose(np.diff(edges[:, 0, 1]), step_up)
        width = abs(np.diff(ax.get_xlim())[0])
        height = abs(np.diff(ax.get_ylim())[0])
        np.testing.assert_allclose((width, height), (n_across * step_across, n_up * step_up))
    # radiological convention: axial anterior (low y) up, coronal and sagittal superior (high z) up
    assert axes[0].get_ylim()[0] > axes[0].get_ylim()[1]
    assert axes[1].get_ylim()[0] < axes[1].get_ylim()[1]
    assert axes[2].get_xlim()[0] < axes[2].get_xlim()[1]  # anterior (low y) on the left


def test_fill_and_contours_are_where_the_labels_are():
    vol = volume()
    seg_a, seg_b = segmentation(vol, TUMOUR_A, "A"), segmentation(vol, TUMOUR_B, "B")
    fig = plot.volume_slices(vol, [seg_a, seg_b], z=2, y=8, x=10, fill=0.4)
    axial = fig.axes[0]
    fill = meshes(axial)[1].get_array()  # (y, x, RGBA)
    liver = np.zeros(SHAPE[1:], dtype=bool)
    liver[LIVER[1:]] = True
    tumour_a, tumour_b = np.zeros_like(liver), np.zeros_like(liver)
    tumour_a[TUMOUR_A[1:]] = True
    tumour_b[TUMOUR_B[1:]] = True
    np.testing.assert_array_equal(fill[..., 3] > 0, liver | tumour_a | tumour_b)
    # the tumour is painted over the liver; opacity is 0.4 x the share of raters marking the voxel
    np.testing.assert_allclose(fill[tumour_a & tumour_b, 3], 0.4)
    np.testing.assert_allclose(fill[tumour_a ^ tumour_b, 3], 0.2)
    np.testing.assert_allclose(fill[liver & ~(tumour_a | tumour_b), 3], 0.4)
    tumour_colour = to_rgb(plot.MASK_COLORS[1])
    both = fill[tumour_a & tumour_b, :3]
    np.testing.assert_allclose(both, np.broadcast_to(tumour_colour, both.shape), atol=1e-6)
    # one contour per rater and segment, in the segment's colour and the rater's line style
    drawn = contours(axial)
    assert len(drawn) == 4
    x_mm, y_mm = vol["x"].values, vol["y"].values
    for cs, (rater_box, colour) in zip(drawn, [(LIVER, 0), (TUMOUR_A, 1), (LIVER, 0), (TUMOUR_B, 1)], strict=True):
        points = np.concatenate([p.vertices for p in cs.get_paths()])
        _, ys, xs = rater_box  # the 0.5 level runs half a voxel outside the box's outer voxel centres
        np.testing.assert_allclose([points[:, 0].min(), points[:, 0].max()],
                                   [x_mm[xs.start] - SPACING[2] / 2, x_mm[xs.stop - 1] + SPACING[2] / 2])
        np.testing.assert_allclose([points[:, 1].min(), points[:, 1].max()],
                                   [y_mm[ys.start] - SPACING[1] / 2, y_mm[ys.stop - 1] + SPACING[1] / 2])
        np.testing.assert_allclose(cs.get_edgecolor()[0][:3], to_rgb(plot.MASK_COLORS[colour]))
    assert [cs.get_linestyle()[0] for cs in drawn] == [(0, None)] * 2 + [drawn[2].get_linestyle()[0]] * 2
    assert drawn[2].get_linestyle()[0] != (0, None)  # rater B dashed
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["liver", "tumour", "A", "B"]


def test_default_slices_show_every_segment_they_can():
    vol = volume()
    seg = segmentation(vol, (slice(4, 6), slice(12, 16), slice(15, 19)), "A")  # a tumour at the liver's corner
    fig = plot.volume_slices(vol, seg)
    # the labelled voxels' centre is z 2.6, y 8.8, x 10.8 (slices with liver only); both show on z 4,
    # y 12-13, x 15-16
    assert [ax.get_title().split("(")[-1] for ax in fig.axes] == ["#4)", "#12)", "#15)"]
    assert all(len(contours(ax)) == 2 for ax in fig.axes)


def test_no_overlay_on_a_slice_without_labels():
    vol = volume()
    fig = plot.volume_slices(vol, segmentation(vol, TUMOUR_A, "A"), z=0, y=8, x=10)
    assert contours(fig.axes[0]) == []
    assert not (meshes(fig.axes[0])[1].get_array()[..., 3] > 0).any()
    assert contours(fig.axes[1])  # the coronal plane still crosses both boxes


def test_segments_by_label_or_number_and_the_window():
    vol = volume()
    seg = segmentation(vol, TUMOUR_A, "A")
    for chosen in (["tumour"], [2], ["#2"]):
        fig = plot.volume_slices(vol, seg, segments=chosen, z=2, window=(-500, 500))
        assert len(contours(fig.axes[0])) == 1
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["tumour", "A"]
        image = meshes(fig.axes[0])[0]
        assert (image.norm.vmin, image.norm.vmax) == (-500, 500)
        plt.close(fig)
    fig = plot.volume_slices(vol["volume"], window=None, z=1)
    plane = vol["volume"].isel(z=1).values
    image = meshes(fig.axes[0])[0]
    assert (image.norm.vmin, image.norm.vmax) == (plane.min(), plane.max())
    assert len(meshes(fig.axes[0])) == 1 and not fig.legends  # no segmentation: the image alone


def test_planes_are_named_and_oriented_from_the_affine():
    vol = volume(CORONAL_AFFINE)
    fig = plot.volume_slices(vol)
    names = [ax.get_title().split(":")[0] for ax in fig.axes]
    assert names == ["coronal", "axial", "sagittal"]  # through z (posterior), y (inferior), x (left)
    coronal, axial, sagittal = fig.axes
    assert coronal.get_xlabel() == "x (mm)" and coronal.get_ylabel() == "y (mm)"
    assert coronal.get_ylim()[0] > coronal.get_ylim()[1]  # y runs inferior: superior (low y) up
    assert axial.get_xlabel() == "x (mm)" and axial.get_ylabel() == "z (mm)"
    assert axial.get_ylim()[0] > axial.get_ylim()[1]  # z runs posterior: anterior (low z) up
    assert sagittal.get_xlabel() == "z (mm)" and sagittal.get_ylabel() == "y (mm)"


def test_uneven_slice_positions_keep_their_place():
    z = np.array([0.0, 2.5, 5.0, 12.5, 15.0, 17.5])
    vol = volume(z=z)
    coronal = plot.volume_slices(vol).axes[1]
    edges = meshes(coronal)[0].get_coordinates()[:, 0, 1]
    np.testing.assert_allclose(edges, [-1.25, 1.25, 3.75, 8.75, 13.75, 16.25, 18.75])


def test_bad_input_is_a_clear_error():
    vol = volume()
    with pytest.raises(InvalidInputError, match="grid"):
        plot.volume_slices(vol, segmentation(vol, TUMOUR_A, "A").isel(x=slice(0, 10)))
    with pytest.raises(InvalidInputError, match="outside"):
        plot.volume_slices(vol, z=SHAPE[0])
    with pytest.raises(InvalidInputError, match="dimensions"):
        plot.volume_slices(vol["volume"].isel(z=0))


def test_store_volume_draws_every_stored_segmentation(tmp_path):
    pytest.importorskip("highdicom")
    from archivestore import ingest, open_store
    from archivestore.sources import SeriesItem
    from archivestore.testing import dicom as fx

    ct = fx.ct_series(4, seed="plot-ct")
    shape = (4, 128, 128)
    segs = [fx.segmentation(ct, fx.blob_masks(shape, 2, seed=6), seed="plot-a", creator="Doe^Jane"),
            fx.segmentation(ct, fx.blob_masks(shape, 1, seed=6), seed="plot-b", algorithm="net", creator=None)]
    items = [SeriesItem(id=str(fx.datasets(files[:1])[0].SeriesInstanceUID), metadata={"Modality": modality},
                        files=lambda f=files: f, where="test")
             for files, modality in [(ct, "CT"), (segs[0], "SEG"), (segs[1], "SEG")]]
    store = open_store(tmp_path / "ct.zarr", mode="a")
    assert ingest(store, items, progress=False).ok
    fig = plot.store_volume(store, items[0].id, z=2)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["liver", "tumour"] and sorted(legend[2:]) == ["Doe^Jane", "net"]
    labels = [store.segmentation(item.id)["labels"].isel(z=2).values.any(axis=0) for item in items[1:]]
    np.testing.assert_array_equal(meshes(fig.axes[0])[1].get_array()[..., 3] > 0, labels[0] | labels[1])
