"""RTSTRUCT -> label volumes: agreement with an independent rasterisation, holes, islands, refusals, warnings.

The independent rasterisation reads the same file with pydicom alone: each contour is matched to the
CT slice whose ImagePositionPatient lies in its plane, mapped to pixel units with that slice's own
geometry, and filled with matplotlib's ``Path.contains_points`` at the pixel centres (even-odd per
slice). Both fill a pixel when its centre is inside the polygon, so they can differ only on pixels
whose centre lies on an edge (within floating-point rounding of it): Dice >= 0.95 per ROI is the
bound the issue sets; on these fixtures the two are identical (Dice 1.0, no pixel differs).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest

dicom = pytest.importorskip("archivestore.testing.dicom")
from matplotlib.path import Path  # noqa: E402

from archivestore.dicom import RTStructWarning, read_rtstruct, read_series, rtstruct_source  # noqa: E402
from archivestore.errors import InvalidInputError  # noqa: E402
from archivestore.testing import rtstruct  # noqa: E402


@pytest.fixture(scope="module")
def ct():
    files = dicom.ct_series(12, seed="rt-ct", spacing=2.5)
    return files, read_series(files)[0]


def independent_masks(ct_files, rt_files) -> dict[str, np.ndarray]:
    """ROI name -> (z, y, x) bool, from pydicom and matplotlib only (module docstring)."""
    images = [pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True) for _, d in ct_files]
    row_cos = np.asarray(images[0].ImageOrientationPatient[:3], float)
    col_cos = np.asarray(images[0].ImageOrientationPatient[3:], float)
    normal = np.cross(row_cos, col_cos)
    images.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    depth = np.array([float(np.asarray(ds.ImagePositionPatient, float) @ normal) for ds in images])
    ny, nx = int(images[0].Rows), int(images[0].Columns)
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = np.column_stack([yy.ravel(), xx.ravel()]).astype(float)
    rs = pydicom.dcmread(io.BytesIO(rt_files[0][1]))
    names = {int(r.ROINumber): str(r.ROIName) for r in rs.StructureSetROISequence}
    out = {}
    for roi in rs.ROIContourSequence:
        mask = np.zeros((len(images), ny, nx), bool)
        for c in roi.ContourSequence:
            if c.ContourGeometricType != "CLOSED_PLANAR":
                continue
            points = np.asarray(c.ContourData, float).reshape(-1, 3)
            k = int(np.argmin(np.abs(depth - (points @ normal).mean())))
            offsets = points - np.asarray(images[k].ImagePositionPatient, float)
            dy, dx = (float(v) for v in images[k].PixelSpacing)
            polygon = np.column_stack([offsets @ col_cos / dy, offsets @ row_cos / dx])
            mask[k] ^= Path(polygon).contains_points(centres).reshape(ny, nx)
        out[names[int(roi.ReferencedROINumber)]] = mask
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("observer", [0, 1, 2])
def test_masks_agree_with_an_independent_rasterisation(ct, observer):
    files, volume = ct
    rs = rtstruct.structure_set(files, rtstruct.observer_rois(volume.array.shape, observer), seed=f"obs{observer}")
    labels = read_rtstruct(rs, volume)
    assert labels.labels.dtype == np.uint8 and labels.labels.shape == (2, *volume.array.shape)
    assert labels.segment_label == ("GTV", "Nodules") and labels.segment == (1, 2)
    assert labels.segment_code == ("228793007:SCT", "27925004:SCT") and labels.segmentation_type == "BINARY"
    truth = independent_masks(files, rs)
    for k, name in enumerate(labels.segment_label):
        assert truth[name].any()
        assert dice(labels.labels[k].astype(bool), truth[name]) >= 0.95


def test_a_hole_and_two_islands_on_one_slice(ct):
    files, volume = ct
    rois = rtstruct.observer_rois(volume.array.shape)
    labels = read_rtstruct(rtstruct.structure_set(files, rois), volume)
    k, outer = rois["GTV"][len(rois["GTV"]) // 2]
    centre = np.round(outer.mean(axis=0)).astype(int)
    gtv = labels.labels[0, k]
    assert gtv[centre[0], centre[1]] == 0  # the hole
    assert gtv[centre[0], int(outer[:, 1].max()) - 2] == 1  # the ring
    nodules = labels.labels[1, rois["Nodules"][0][0]]
    from scipy import ndimage

    assert ndimage.label(nodules)[1] == 2  # two islands on the slice


def test_rater_code_and_header(ct):
    files, volume = ct
    rs = rtstruct.structure_set(files, rtstruct.observer_rois(volume.array.shape), observer=None,
                                operators="Smith^Ann", codes=False)
    labels = read_rtstruct(rs, volume)
    assert labels.rater == "Smith^Ann" and labels.segment_code == ("", "")
    assert labels.source_series == volume.series_instance_uid
    assert "30060039" not in labels.header  # no contour points in the header
    assert labels.segments[0]["segment_label"] == "GTV"
    assert rtstruct_source(rs).source_instances == frozenset(volume.sop_instance_uids)


def test_open_and_point_contours_are_skipped_with_a_warning(ct):
    files, volume = ct
    rois = rtstruct.observer_rois(volume.array.shape)
    rs = rtstruct.structure_set(files, rois, skipped_contours=True)
    with pytest.warns(RTStructWarning) as caught:
        labels = read_rtstruct(rs, volume)
    messages = [str(w.message) for w in caught]
    assert any("OPEN_PLANAR contour skipped" in m for m in messages)
    assert any("'Marker'" in m and "left out" in m for m in messages)
    assert labels.segment_label == ("GTV", "Nodules")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = read_rtstruct(rtstruct.structure_set(files, rois), volume)
    np.testing.assert_array_equal(labels.labels, plain.labels)


def _moved(rois, dy=0.0):
    out = {}
    for name, items in rois.items():
        out[name] = [(k, p + np.array([dy, 0.0])) for k, p in items]
    return out


def test_a_contour_off_the_grid_is_refused(ct):
    files, volume = ct
    rois = rtstruct.observer_rois(volume.array.shape)
    rs = rtstruct.structure_set(files, _moved(rois, dy=80.0))
    with pytest.raises(InvalidInputError, match="reaches outside the 128x128 image"):
        read_rtstruct(rs, volume)


def test_a_contour_between_slices_is_refused(ct):
    files, volume = ct
    rois = rtstruct.observer_rois(volume.array.shape)
    rs = pydicom.dcmread(io.BytesIO(rtstruct.structure_set(files, rois)[0][1]))
    contour = rs.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    points[:, 2] += 1.25  # half the 2.5 mm slice gap
    contour.ContourData = [f"{v:.6g}" for v in points.ravel()]
    buffer = io.BytesIO()
    rs.save_as(buffer)
    with pytest.raises(InvalidInputError, match="off the nearest slice plane"):
        read_rtstruct([("moved.dcm", buffer.getvalue())], volume)


def test_another_series_is_refused(ct):
    files, volume = ct
    other = dicom.ct_series(3, seed="rt-other")
    rs = rtstruct.structure_set(other, {"GTV": [(1, np.array([[10.0, 10], [10, 20], [20, 20]]))]})
    with pytest.raises(InvalidInputError, match="contours series"):
        read_rtstruct(rs, volume)


def test_the_fill_equals_skimage_on_random_polygons():
    """fill_polygon (Pillow's scanline fill, skimage's point-in-polygon test near the edges) == skimage.draw.polygon."""
    from skimage.draw import polygon

    from archivestore.dicom._rtstruct import fill_polygon

    rng = np.random.default_rng(5)
    for case in range(120):
        n, size = int(rng.integers(3, 120)), int(rng.choice([9, 64, 200]))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.2, 1, n) * rng.uniform(0.3, size / 2.2)
        centre = rng.uniform(size * 0.3, size * 0.7, 2)
        r = np.clip(centre[0] + radius * np.sin(angles), -0.5, size - 0.5)
        c = np.clip(centre[1] + radius * np.cos(angles), -0.5, size - 0.5)
        if case % 4 == 0:  # self-intersecting, tiny, or thin: vertices anywhere
            r, c = rng.uniform(-0.5, size - 0.5, n), rng.uniform(-0.5, size - 0.5, n)
        expected = np.zeros((size, size), np.uint8)
        rr, cc = polygon(r, c, (size, size))
        expected[rr, cc] = 1
        np.testing.assert_array_equal(fill_polygon(r, c, (size, size)), expected, err_msg=f"case {case}")
