"""Synthetic slide-microscopy (SM) series: VL Whole Slide Microscopy Image instances built offline.

>>> slide = synthetic_slide(seed="a")            # doctest: +SKIP
>>> files = sm_series(slide, codec="jpeg")        # [(name, bytes)], one instance per level + a label  # doctest: +SKIP

highdicom 0.28 has no constructor for whole-slide images and wsidicom writes only from its own
sources, so the instances are assembled with pydicom (the attributes of the VL WSI IOD that
wsidicom and highdicom read) and their tiles encoded with imagecodecs: JPEG baseline
(``YBR_FULL_422``) or JPEG 2000 (irreversible, ``YBR_ICT``). Each level of the pyramid is its
own instance, ``TILED_FULL`` (frames in row-major tile order, no per-frame positions) or
``TILED_SPARSE`` (each frame's position in ``PerFrameFunctionalGroupsSequence``; tiles left out
are absent); ``concatenate=k`` splits level 0 into a concatenation of ``k`` instances. A label
and an overview image sit beside the pyramid. UIDs are fixed by ``seed``, so the same call gives
the same bytes.

Also :func:`truncated_frame` and :func:`without_level` (bad inputs). Needs pydicom and imagecodecs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import JPEG2000, UID, JPEGBaseline8Bit, generate_uid

__all__ = ["SM_STORAGE", "SyntheticSlide", "sm_series", "synthetic_slide", "truncated_frame", "without_level"]

SM_STORAGE = UID("1.2.840.10008.5.1.4.1.1.77.1.6")
"""VL Whole Slide Microscopy Image Storage."""

Files = list[tuple[str, bytes]]


@dataclass(frozen=True)
class SyntheticSlide:
    """The pixels of a slide's levels (level 0 first, each half the last) and its label, with UIDs."""

    levels: tuple[np.ndarray, ...]
    label: np.ndarray
    overview: np.ndarray
    spacing_mm: float
    seed: str

    def uid(self, *parts: object) -> UID:
        return generate_uid(entropy_srcs=[self.seed, *map(str, parts)])


def synthetic_slide(shape: tuple[int, int] = (600, 800), levels: int = 3, *, seed: str = "slide",
                    spacing_mm: float = 0.00025) -> SyntheticSlide:
    """A tissue-like RGB image (smooth stained blobs on white) and its 2x-downsampled levels.

    ``spacing_mm`` is level 0's pixel spacing (0.25 µm: a 40x scan).
    """
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    h, w = shape
    step = max(1, min(h, w) // 256)  # the smooth stain field at a coarse grid, then repeated up
    yy, xx = np.mgrid[0:-(-h // step), 0:-(-w // step)].astype(np.float32) * step
    field = np.full((*yy.shape, 3), 240.0, np.float32)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.2) * min(h, w)
        colour = rng.uniform([120, 40, 120], [230, 140, 220])
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        field = field * (1 - 0.8 * weight) + colour * 0.8 * weight
    image = np.repeat(np.repeat(field, step, 0), step, 1)[:h, :w]
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    pyramid = [np.clip(image, 0, 255).astype(np.uint8)]
    for _ in range(levels - 1):
        last = pyramid[-1].astype(np.float32)
        hh, ww = last.shape[0] // 2, last.shape[1] // 2
        pyramid.append(last[: 2 * hh, : 2 * ww].reshape(hh, 2, ww, 2, 3).mean((1, 3)).round().astype(np.uint8))
    label = np.full((96, 160, 3), 255, np.uint8)
    label[20:76, 20:140] = (30, 30, 30)
    label[36:60, 36:124] = 255
    overview = pyramid[-1].copy()
    return SyntheticSlide(tuple(pyramid), label, overview, spacing_mm, seed)


def _encode(tile: np.ndarray, codec: str) -> bytes:
    import imagecodecs

    colour = tile.ndim == 3
    if codec == "jpeg":
        return bytes(imagecodecs.jpeg8_encode(tile, level=90, subsampling="422" if colour else None))
    if codec == "jpeg2000":
        return bytes(imagecodecs.jpeg2k_encode(tile, level=40, codecformat="J2K", reversible=False, mct=colour))
    raise ValueError(f"codec {codec!r}: jpeg or jpeg2000")


def _tiles(image: np.ndarray, tile: int) -> list[tuple[int, int, np.ndarray]]:
    """Row-major ``(row, column, full-size tile)``; edge tiles padded with white (black for a monochrome
    fluorescence channel) as scanners pad them."""
    out = []
    for r in range(0, image.shape[0], tile):
        for c in range(0, image.shape[1], tile):
            block = np.full((tile, tile, *image.shape[2:]), 255 if image.ndim == 3 else 0, np.uint8)
            part = image[r: r + tile, c: c + tile]
            block[: part.shape[0], : part.shape[1]] = part
            out.append((r, c, block))
    return out


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _base(slide: SyntheticSlide, image_type: Sequence[str], shape: tuple[int, int], tile: int, codec: str,
          spacing_mm: float, instance: int, path_id: int | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SM_STORAGE
    sop = slide.uid("instance", instance)
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if codec == "jpeg" else JPEG2000
    ds.file_meta.ImplementationClassUID = slide.uid("implementation")
    ds.SOPClassUID, ds.SOPInstanceUID = SM_STORAGE, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = slide.uid("study"), slide.uid("series")
    ds.FrameOfReferenceUID = slide.uid("frame of reference")
    ds.Modality, ds.PatientID, ds.PatientName = "SM", f"P-{slide.seed}", f"Synthetic^{slide.seed}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
    ds.StudyTime = ds.ContentTime = "101500"
    ds.AcquisitionDateTime = "20240102101500"
    ds.Manufacturer, ds.ManufacturerModelName = "archivestore", "synthetic scanner"
    ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = f"synthetic slide {slide.seed}", 1, instance
    ds.ImageType = list(image_type)
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.PhotometricInterpretation = "YBR_FULL_422" if codec == "jpeg" else "YBR_ICT"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1" if codec == "jpeg" else "ISO_15444_1"
    ds.LossyImageCompressionRatio = 10
    ds.Rows = ds.Columns = tile
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = shape
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    ds.FocusMethod, ds.ExtendedDepthOfField = "AUTO", "NO"
    ds.ImagedVolumeWidth = shape[1] * spacing_mm
    ds.ImagedVolumeHeight = shape[0] * spacing_mm
    ds.ImagedVolumeDepth = 0.001
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem, origin.YOffsetInSlideCoordinateSystem = 20.0, 40.0
    ds.TotalPixelMatrixOriginSequence = DicomSequence([origin])
    measures = Dataset()
    measures.PixelSpacing = [spacing_mm, spacing_mm]
    measures.SliceThickness = 0.001
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    path = Dataset()
    if path_id is None:
        path.OpticalPathIdentifier, path.OpticalPathDescription = "1", "brightfield"
        path.IlluminationTypeCodeSequence = DicomSequence([_code("111744", "DCM", "Brightfield illumination")])
        path.IlluminationColorCodeSequence = DicomSequence([_code("11744", "DCM", "Full Spectrum")])
    else:  # one monochrome channel of a fluorescence slide
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        del ds.PlanarConfiguration
        path.OpticalPathIdentifier, path.OpticalPathDescription = str(path_id), f"channel {path_id}"
        path.IlluminationTypeCodeSequence = DicomSequence([_code("111743", "DCM", "Epifluorescence illumination")])
        path.IlluminationWaveLength = 400 + 100 * path_id
    path.ObjectiveLensPower = 40
    path.ObjectiveLensNumericalAperture = 0.75
    ds.OpticalPathSequence = DicomSequence([path])
    ds.ContainerIdentifier = f"SLIDE-{slide.seed}"
    ds.ContainerTypeCodeSequence = DicomSequence([_code("433466003", "SCT", "Microscope slide")])
    ds.SpecimenDescriptionSequence = DicomSequence([_specimen(slide)])
    ds.VolumetricProperties = "VOLUME"
    ds.BurnedInAnnotation = "YES" if "LABEL" in image_type else "NO"
    ds.SpecimenLabelInImage = "YES" if "LABEL" in image_type else "NO"
    return ds


def _specimen(slide: SyntheticSlide) -> Dataset:
    specimen = Dataset()
    specimen.SpecimenIdentifier = f"S-{slide.seed}"
    specimen.SpecimenUID = slide.uid("specimen")
    specimen.SpecimenShortDescription = "synthetic tissue section"
    step = Dataset()
    item = Dataset()
    item.ValueType = "CODE"
    item.ConceptNameCodeSequence = DicomSequence([_code("111704", "DCM", "Sampling Method")])
    item.ConceptCodeSequence = DicomSequence([_code("434472006", "SCT", "Block sectioning")])
    stain = Dataset()
    stain.ValueType = "CODE"
    stain.ConceptNameCodeSequence = DicomSequence([_code("424361007", "SCT", "Using substance")])
    stain.ConceptCodeSequence = DicomSequence([_code("12710003", "SCT", "hematoxylin stain")])
    step.SpecimenPreparationStepContentItemSequence = DicomSequence([item, stain])
    specimen.SpecimenPreparationSequence = DicomSequence([step])
    specimen.IssuerOfTheSpecimenIdentifierSequence = DicomSequence([])
    return specimen


def _frame_positions(ds: Dataset, positions: list[tuple[int, int]], spacing_mm: float) -> None:
    """``TILED_SPARSE``: each frame's (1-based) position in the total pixel matrix."""
    items = []
    for r, c in positions:
        pos = Dataset()
        pos.RowPositionInTotalImagePixelMatrix, pos.ColumnPositionInTotalImagePixelMatrix = r + 1, c + 1
        pos.XOffsetInSlideCoordinateSystem = 20.0 + r * spacing_mm
        pos.YOffsetInSlideCoordinateSystem = 40.0 + c * spacing_mm
        pos.ZOffsetInSlideCoordinateSystem = 0.0
        frame = Dataset()
        frame.PlanePositionSlideSequence = DicomSequence([pos])
        items.append(frame)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(items)


def _write(ds: Dataset, frames: list[bytes]) -> bytes:
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _level(files: Files, slide: SyntheticSlide, index: int, image: np.ndarray, codec: str, tile: int,
           sparse_levels: Sequence[int], absent_tiles: Sequence[tuple[int, int]], concatenate: int, instance: int,
           path_id: int | None, suffix: str) -> int:
    """Append the instance(s) of one level (of one optical path); return the next instance number."""
    spacing = slide.spacing_mm * 2**index
    kind = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if index == 0 else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    tiles = _tiles(image, tile)
    sparse = index in sparse_levels
    if sparse:
        drop = {(r * tile, c * tile) for r, c in absent_tiles}
        tiles = [t for t in tiles if (t[0], t[1]) not in drop]
    frames = [_encode(block, codec) for _, _, block in tiles]
    parts = concatenate if index == 0 else 1
    bounds = np.linspace(0, len(frames), parts + 1).round().astype(int)
    source = slide.uid("instance", instance)
    concat_uid = slide.uid("concatenation", index, suffix)
    for part in range(parts):
        lo, hi = int(bounds[part]), int(bounds[part + 1])
        ds = _base(slide, kind, image.shape[:2], tile, codec, spacing, instance, path_id)
        ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
        if sparse:
            _frame_positions(ds, [(r, c) for r, c, _ in tiles[lo:hi]], spacing)
        if parts > 1:
            ds.ConcatenationUID, ds.InConcatenationNumber = concat_uid, part + 1
            ds.InConcatenationTotalNumber = parts
            ds.ConcatenationFrameOffsetNumber = lo
            ds.SOPInstanceUIDOfConcatenationSource = source
        files.append((f"level{index}_{part}{suffix}.dcm", _write(ds, frames[lo:hi])))
        instance += 1
    return instance


def sm_series(slide: SyntheticSlide, *, codec: str = "jpeg", tile: int = 256,
              sparse_levels: Sequence[int] = (), absent_tiles: Sequence[tuple[int, int]] = (),
              concatenate: int = 1, label: bool = True, overview: bool = True, fluorescence: int = 0) -> Files:
    """The instances of one SM series: one per level (``TILED_FULL`` unless in ``sparse_levels``).

    Parameters
    ----------
    codec
        ``jpeg`` (baseline, 4:2:2) or ``jpeg2000`` (irreversible).
    tile
        Frame (tile) size in pixels.
    sparse_levels
        Levels written ``TILED_SPARSE``; ``absent_tiles`` ((tile row, tile column), in tiles) are
        left out of each of them.
    concatenate
        Level 0 as a concatenation of this many instances (frames split evenly).
    label, overview
        Add the label image / the overview image (one frame each, their own size).
    fluorescence
        Instead of RGB, this many monochrome optical paths (channel k of the RGB pixels as path k + 1),
        each level's paths as instances of their own.
    """
    files: Files = []
    instance = 1
    for index, pixels in enumerate(slide.levels):
        for path in range(fluorescence) if fluorescence else [None]:
            image = pixels if path is None else np.ascontiguousarray(pixels[..., path % 3])
            suffix = "" if path is None else f"_path{path + 1}"
            instance = _level(files, slide, index, image, codec, tile, sparse_levels, absent_tiles,
                              concatenate, instance, None if path is None else path + 1, suffix)
    for wanted, name, image in ((label, "LABEL", slide.label), (overview, "OVERVIEW", slide.overview)):
        if not wanted:
            continue
        ds = _base(slide, ["ORIGINAL", "PRIMARY", name, "NONE"], image.shape[:2], 0, codec, slide.spacing_mm,
                   instance)
        ds.Rows, ds.Columns = image.shape[:2]
        ds.DimensionOrganizationType = "TILED_FULL"
        files.append((f"{name.lower()}.dcm", _write(ds, [_encode(image, codec)])))
        instance += 1
    return files


def truncated_frame(files: Files, name: str = "level1_0.dcm") -> Files:
    """``files`` with the instance ``name`` cut in the middle of its last frame."""
    out = []
    for file_name, data in files:
        if file_name == name:
            data = data[: len(data) - 400]
        out.append((file_name, data))
    return out


def without_level(files: Files, level: int = 1) -> Files:
    """``files`` without the instances of one level (a series with a missing level)."""
    return [(n, d) for n, d in files if not n.startswith(f"level{level}_")]

