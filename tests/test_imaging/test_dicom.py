"""DICOM series -> volumes and SEG -> labels, against independent pydicom/highdicom references."""

from __future__ import annotations

import io
import json
import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from archivestore.dicom import (
    UnevenSpacingWarning,
    is_segmentation,
    read_segmentation,
    read_series,
    segmentation_source,
)
from archivestore.errors import InvalidInputError
from archivestore.testing import dicom as fixtures


def _normal(ds: pydicom.Dataset) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(iop[:3], iop[3:])


def _by_position(files: fixtures.Files) -> list[pydicom.Dataset]:
    """The instances sorted by ImagePositionPatient . (row x column cosines), ascending."""
    datasets = fixtures.datasets(files)
    return sorted(datasets, key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), _normal(ds))))


def _reference(files: fixtures.Files) -> np.ndarray:
    """pydicom's pixels stacked in position order, rescaled in float64."""
    return np.stack([ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
                     for ds in _by_position(files)])


def _one(files: fixtures.Files) -> object:
    volumes = read_series(files)
    assert len(volumes) == 1
    return volumes[0]


@pytest.mark.parametrize(("files", "dtype"), [
    pytest.param(lambda: fixtures.ct_series(5), np.int16, id="ct-int16"),
    pytest.param(lambda: fixtures.ct_series(4, divide=16, intercept=0), np.uint8, id="uint8"),
    pytest.param(lambda: fixtures.ct_series(4, divide=16, intercept=-100), np.int8, id="int8"),
    pytest.param(lambda: fixtures.ct_series(3, intercept=40000), np.uint16, id="uint16"),
    pytest.param(lambda: fixtures.ct_series(3, slope=3, intercept=-70000), np.int32, id="int32"),
    pytest.param(lambda: fixtures.ct_series(4, slope=0.5, intercept=-1024), np.float32, id="float-slope"),
    pytest.param(lambda: fixtures.ct_series(3, slope=1, intercept=-1024.5), np.float32, id="float-intercept"),
    pytest.param(lambda: fixtures.ct_series(3, transfer_syntax=RLELossless), np.int16, id="rle"),
    pytest.param(lambda: fixtures.ct_series(3, transfer_syntax=JPEG2000Lossless), np.int16, id="jpeg2000"),
    pytest.param(lambda: fixtures.ct_series(3, transfer_syntax=JPEGLSLossless), np.int16, id="jpeg-ls"),
    pytest.param(fixtures.uneven_ct_series, np.int16, id="ct2-uneven"),
])
def test_volume_equals_the_pydicom_reference(files, dtype) -> None:
    files = files()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnevenSpacingWarning)
        volume = _one(files)
    reference = _reference(files)
    assert volume.array.dtype == dtype
    if np.issubdtype(dtype, np.integer):
        assert np.array_equal(volume.array.astype(np.float64), reference)
    else:
        assert np.array_equal(volume.array, reference.astype(np.float32))
    assert volume.sop_instance_uids == tuple(ds.SOPInstanceUID for ds in _by_position(files))


def test_integer_dtype_is_the_smallest_that_holds_the_values() -> None:
    volume = _one(fixtures.ct_series(3))
    values = _reference(fixtures.ct_series(3))
    assert values.min() < np.iinfo(np.int8).min and values.max() <= np.iinfo(np.int16).max
    assert volume.array.dtype == np.int16


def test_coordinates_spacing_and_header() -> None:
    files = fixtures.ct_series(5, spacing=2.5, pixel_spacing=(0.5, 0.8))
    volume = _one(files)
    ordered = _by_position(files)
    first = ordered[0]
    assert np.allclose(volume.z, [np.dot(np.asarray(ds.ImagePositionPatient, float), _normal(ds)) for ds in ordered])
    assert np.all(np.diff(volume.z) > 0)
    assert np.allclose(volume.y, np.arange(first.Rows) * float(first.PixelSpacing[0]))
    assert np.allclose(volume.x, np.arange(first.Columns) * float(first.PixelSpacing[1]))
    assert np.allclose(volume.spacing, (2.5, *map(float, first.PixelSpacing)))
    assert volume.orientation == tuple(map(float, first.ImageOrientationPatient))
    assert volume.uniform_spacing and volume.part == 0 and volume.parts == 1
    assert (volume.series_instance_uid, volume.modality) == (first.SeriesInstanceUID, "CT")
    header = volume.header
    assert header["00080018"]["Value"] == [first.SOPInstanceUID]
    assert "7FE00010" not in header and "PixelData" not in json.dumps(header)
    assert pydicom.Dataset.from_json(header).Modality == "CT"


def test_affine_maps_indices_to_each_slice_and_corner() -> None:
    files = fixtures.ct_series(4, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), origin=(10.0, -60.0, 40.0),
                               pixel_spacing=(0.5, 0.8))
    volume = _one(files)
    for k, ds in enumerate(_by_position(files)):
        ipp = np.asarray(ds.ImagePositionPatient, float)
        assert np.allclose(volume.affine @ [k, 0, 0, 1], [*ipp, 1], atol=1e-6)
        row, col = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        dy, dx = map(float, ds.PixelSpacing)
        corner = ipp + (ds.Rows - 1) * dy * col + (ds.Columns - 1) * dx * row  # PS3.3 C.7.6.2.1.1
        assert np.allclose(volume.affine @ [k, ds.Rows - 1, ds.Columns - 1, 1], [*corner, 1], atol=1e-6)


def test_gantry_tilt_keeps_the_sheared_step() -> None:
    files = fixtures.ct_series(4, spacing=2.0, shear=(0.0, 0.7, 0.0))
    volume = _one(files)
    assert volume.uniform_spacing
    assert np.allclose(volume.spacing[0], 2.0) and np.allclose(np.diff(volume.z), 2.0)
    for k, ds in enumerate(_by_position(files)):
        assert np.allclose(volume.affine @ [k, 0, 0, 1], [*map(float, ds.ImagePositionPatient), 1], atol=1e-6)


def test_volume_and_affine_agree_with_highdicom() -> None:
    files = fixtures.ct_series(5, pixel_spacing=(0.5, 0.8), orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    volume = _one(files)
    theirs = hd.get_volume_from_series(fixtures.datasets(files), dtype=np.float64)
    if theirs.affine[:3, 0] @ volume.affine[:3, 0] < 0:  # highdicom may stack the other way round
        theirs = theirs.flip_spatial(0)
    assert np.allclose(theirs.affine, volume.affine, atol=1e-9)
    assert np.array_equal(theirs.array, volume.array.astype(np.float64))


def test_uneven_gap_is_kept_flagged_and_warned() -> None:
    with pytest.warns(UnevenSpacingWarning, match="uneven slice spacing"):
        volume = _one(fixtures.uneven_ct_series())
    assert not volume.uniform_spacing
    assert np.allclose(volume.z, [-99.48, 103.02, 104.27, 105.52], atol=1e-5)
    assert np.allclose(volume.affine @ [0, 0, 0, 1], [-125.0, -128.100006, -99.480003, 1])
    assert np.allclose(volume.affine @ [3, 0, 0, 1], [-125.0, -128.100006, 105.519997, 1])


def test_even_series_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnevenSpacingWarning)
        assert _one(fixtures.ct_series(4)).uniform_spacing


def _parts_are_clean(files: fixtures.Files, volumes: list) -> None:
    by_uid = {ds.SOPInstanceUID: ds for ds in fixtures.datasets(files)}
    seen = [uid for v in volumes for uid in v.sop_instance_uids]
    assert sorted(seen) == sorted(by_uid)
    for volume in volumes:
        members = [by_uid[uid] for uid in volume.sop_instance_uids]
        assert {tuple(ds.ImageOrientationPatient) for ds in members} == {tuple(members[0].ImageOrientationPatient)}
        assert np.allclose(volume.orientation, members[0].ImageOrientationPatient)
        subset = [(uid, pydicom_bytes(by_uid[uid])) for uid in volume.sop_instance_uids]
        assert np.array_equal(volume.array.astype(np.float64), _reference(subset))


def pydicom_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_two_orientations_become_two_parts() -> None:
    files = fixtures.multi_orientation_series()
    volumes = read_series(files)
    assert [(v.part, v.parts, v.array.shape[0]) for v in volumes] == [(0, 2, 3), (1, 2, 2)]
    assert "orientation [1, 0, 0, 0, 0, -1]" in volumes[1].part_description
    _parts_are_clean(files, volumes)


def test_localizers_are_split_from_the_axial_stack() -> None:
    files = fixtures.localizer_mixed_series()
    volumes = read_series(files)
    assert [v.array.shape[0] for v in volumes] == [5, 1, 1]
    assert "image slice" in volumes[0].part_description
    assert all("localizer" in v.part_description for v in volumes[1:])
    _parts_are_clean(files, volumes)


def test_duplicate_positions_are_refused() -> None:
    names = r"duplicate-00[12]\.dcm and duplicate-00[12]\.dcm"
    with pytest.raises(InvalidInputError, match=rf"two slices at one position.*{names}"):
        read_series(fixtures.duplicate_position_series())


def test_slices_off_one_line_are_refused() -> None:
    files = dict(fixtures.ct_series(4, seed="offline"))
    ds = pydicom.dcmread(io.BytesIO(files["offline-002.dcm"]))
    ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 5.0, *ds.ImagePositionPatient[1:]]
    files["offline-002.dcm"] = pydicom_bytes(ds)
    with pytest.raises(InvalidInputError, match="not stacked on one line"):
        read_series(list(files.items()))


@pytest.mark.parametrize("bad", ["truncated", "garbage"])
def test_corrupt_file_error_names_the_file(bad) -> None:
    with pytest.raises(InvalidInputError, match="corrupt-001.dcm") as caught:
        read_series(fixtures.corrupt_series(bad))
    assert isinstance(caught.value, ValueError)


def test_other_bad_inputs() -> None:
    other = fixtures.ct_series(2, seed="other")
    with pytest.raises(InvalidInputError, match="2 series"):
        read_series(fixtures.ct_series(2) + other)
    with pytest.raises(InvalidInputError, match="no DICOM files"):
        read_series([])
    seg = fixtures.segmentation(other, fixtures.blob_masks((2, 128, 128), 1))
    with pytest.raises(InvalidInputError, match="read_segmentation"):
        read_series(seg)


def test_datasets_and_paths_are_accepted(tmp_path) -> None:
    files = fixtures.ct_series(3)
    paths = []
    for name, data in files:
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    expected = _one(files).array
    assert np.array_equal(_one(fixtures.datasets(files)).array, expected)
    assert np.array_equal(_one(paths).array, expected)


def test_enhanced_multiframe_stacks_like_its_single_frame_source() -> None:
    single = _one(fixtures.ct_series(4, seed="enhanced"))
    enhanced = _one(fixtures.enhanced_ct(4, seed="enhanced"))
    assert np.array_equal(enhanced.array, single.array) and enhanced.array.dtype == single.array.dtype
    assert np.allclose(enhanced.z, single.z) and np.allclose(enhanced.affine, single.affine)
    assert sorted(enhanced.frame_numbers) == [1, 2, 3, 4] and len(set(enhanced.sop_instance_uids)) == 1
    assert "52009230" not in enhanced.header  # PerFrameFunctionalGroupsSequence left out
    assert "52009229" in enhanced.header  # the shared groups kept


# --- segmentations ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ct() -> fixtures.Files:
    return fixtures.ct_series(6, seed="seg-source")


@pytest.fixture(scope="module")
def ct_volume(ct):
    return _one(ct)


def _highdicom_labels(seg_files: fixtures.Files, sop_uids: list[str]) -> np.ndarray:
    seg = hd.seg.segread(io.BytesIO(seg_files[0][1]))
    pixels = seg.get_pixels_by_source_instance(sop_uids, assert_missing_frames_are_empty=True)
    return np.moveaxis(pixels, -1, 0)


def test_binary_seg_of_a_manual_rater(ct, ct_volume) -> None:
    masks = fixtures.blob_masks(ct_volume.array.shape, 2, empty_slices=(0, 5))
    seg_files = fixtures.segmentation(ct, masks, seed="manual", creator="Doe^Jane")
    labels = read_segmentation(seg_files, ct_volume)
    assert labels.labels.dtype == np.uint8 and labels.labels.shape == (2, *ct_volume.array.shape)
    assert np.array_equal(labels.labels, masks)
    ours_sorted = [ds.SOPInstanceUID for ds in _by_position(ct)]
    assert np.array_equal(labels.labels, _highdicom_labels(seg_files, ours_sorted))
    frames = pydicom.dcmread(io.BytesIO(seg_files[0][1])).NumberOfFrames
    assert frames == int(masks.any(axis=(2, 3)).sum()) < masks.shape[0] * masks.shape[1]  # empty frames omitted
    assert not labels.labels[:, [0, 5]].any()
    assert labels.segment == (1, 2)
    assert labels.segment_label == ("liver", "tumour")
    assert labels.segment_code == ("10200004:SCT", "108369006:SCT")
    assert (labels.rater, labels.segmentation_type) == ("Doe^Jane", "BINARY")
    assert labels.source_series == ct_volume.series_instance_uid
    assert labels.segments[0]["algorithm_type"] == "MANUAL"
    assert labels.segments[1]["segmented_property_type"]["meaning"] == "Neoplasm"
    json.dumps([labels.segments, labels.header])
    assert "7FE00010" not in labels.header


def test_fractional_seg_of_an_automatic_rater(ct, ct_volume) -> None:
    masks = fixtures.blob_masks(ct_volume.array.shape, 2, fractional=True, seed=3, empty_slices=(2,))
    seg_files = fixtures.segmentation(ct, masks, seed="auto", fractional=True, algorithm="TotalSegmentator",
                                      creator="Roe^Richard")
    labels = read_segmentation(seg_files, ct_volume)
    assert labels.labels.dtype == np.float32
    assert labels.labels.min() >= 0 and labels.labels.max() <= 1 and 0 < labels.labels.max()
    ours_sorted = [ds.SOPInstanceUID for ds in _by_position(ct)]
    assert np.array_equal(labels.labels, _highdicom_labels(seg_files, ours_sorted))
    assert np.allclose(labels.labels, masks, atol=1e-6)
    assert not labels.labels[:, 2].any()
    assert (labels.rater, labels.segmentation_type) == ("TotalSegmentator", "FRACTIONAL")
    assert labels.segments[0]["algorithm_name"] == "TotalSegmentator"


def test_rater_falls_back_to_series_description_then_uid(ct, ct_volume) -> None:
    masks = fixtures.blob_masks(ct_volume.array.shape, 1)
    described = fixtures.segmentation(ct, masks, seed="described", creator=None, description="reader study 2")
    assert read_segmentation(described, ct_volume).rater == "reader study 2"
    anonymous = fixtures.segmentation(ct, masks, seed="anonymous", creator=None, description="")
    labels = read_segmentation(anonymous, ct_volume)
    assert labels.rater == labels.series_instance_uid


def test_seg_source_is_found_without_decoding(ct, ct_volume) -> None:
    masks = fixtures.blob_masks(ct_volume.array.shape, 2, empty_slices=(0,))
    seg_files = fixtures.segmentation(ct, masks, seed="header")
    source = segmentation_source(seg_files)
    assert source.source_series == ct_volume.series_instance_uid
    by_z = dict(enumerate(ct_volume.sop_instance_uids))
    assert source.source_instances == {by_z[k] for k in np.flatnonzero(masks.any(axis=(0, 2, 3)))}
    assert is_segmentation(seg_files) and not is_segmentation(ct)


def test_seg_of_an_absent_series_is_refused(ct_volume) -> None:
    other = fixtures.ct_series(6, seed="elsewhere")
    seg_files = fixtures.segmentation(other, fixtures.blob_masks((6, 128, 128), 1))
    with pytest.raises(InvalidInputError, match="segments series"):
        read_segmentation(seg_files, ct_volume)


def test_seg_frames_on_slices_the_volume_lacks_are_refused(ct) -> None:
    masks = fixtures.blob_masks((6, 128, 128), 1, empty_slices=())
    seg_files = fixtures.segmentation(ct, masks, seed="partial")
    missing = _by_position(ct)[3].SOPInstanceUID
    partial = [(name, data) for name, data in ct
               if pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID != missing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnevenSpacingWarning)
        volume = _one(partial)
    with pytest.raises(InvalidInputError, match="not slices of the volume"):
        read_segmentation(seg_files, volume)


def test_seg_of_an_enhanced_multiframe_source() -> None:
    files = fixtures.enhanced_ct(4, seed="enhanced-seg")
    volume = _one(files)
    masks = fixtures.blob_masks(volume.array.shape, 2, empty_slices=(1,))
    labels = read_segmentation(fixtures.segmentation(files, masks, seed="enhanced-seg"), volume)
    assert np.array_equal(labels.labels, masks)
