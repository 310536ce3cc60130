"""Slide microscopy (SM): a VL Whole Slide Microscopy series as a pyramid of encoded tiles (wsidicom).

:func:`open_slide` opens the instances of one SM series (``(name, bytes)`` pairs, datasets'
files or paths) with wsidicom, which groups them into pyramid levels (each level one instance
or a concatenation, ``TILED_FULL`` or ``TILED_SPARSE``), labels, overviews and thumbnails, and
finds each frame from the offset tables or, where a file has none, by walking the item headers
of its pixel data once (never a scan of the file per tile). A :class:`Slide` hands out, per
image, the tiles **as encoded in the DICOM frames** (:meth:`SlideImage.tiles`) and the zarr
codec that decodes them (:mod:`archivestore.codecs`), so the store keeps the scanner's JPEG or
JPEG 2000 codestreams.

Invariants:

- Level ``0`` is the full resolution (its ImageType's fourth value is not ``RESAMPLED``); every
  level halves (or quarters, ...) the last by one constant factor. A series whose base is
  resampled or whose factors differ (``0, 1, 3``) has a missing level: ``InvalidInputError``.
- Arrays are ``(y, x, channel)``: RGB samples for colour images, one channel per optical path
  for monochrome (fluorescence) ones; the default focal plane.
- A tile whose codestream does not end with its end-of-image marker (a truncated frame) is an
  ``InvalidInputError`` naming the level and tile.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from pydicom.dataset import Dataset

from archivestore.dicom._files import DicomInput, header_json
from archivestore.errors import InvalidInputError

__all__ = ["SM_SOP_CLASS", "Slide", "SlideImage", "is_slide", "open_slide"]

SM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
"""VL Whole Slide Microscopy Image Storage."""

_END_OF_IMAGE = b"\xff\xd9"
"""JPEG's EOI and JPEG 2000's EOC marker: the last two bytes of every complete codestream."""

_BATCH = 64
"""Tiles read from wsidicom at a time."""


def is_slide(files: Iterable[DicomInput]) -> bool:
    """Whether a series is slide microscopy (its first file decides: Modality SM or the WSI SOP class)."""
    from archivestore.dicom._files import read_files

    first = next(iter(files), None)
    if first is None:
        raise InvalidInputError("no DICOM files given")
    ds = read_files([first], pixels=False)[0].dataset
    return str(ds.get("SOPClassUID", "")) == SM_SOP_CLASS or str(ds.get("Modality", "")) == "SM"


@dataclass
class SlideImage:
    """One image of a slide: a pyramid level (``name`` ``"0"``, ``"1"``, ...) or an associated image.

    ``shape`` is (rows, columns, channels), ``tile`` the DICOM frame size (rows, columns),
    ``spacing_um`` the pixel spacing (row, column) in micrometres (None where the DICOM gives none),
    ``codec`` the zarr codec (as JSON) of its tiles, ``fill`` the value of absent tiles.
    """

    name: str
    kind: str
    shape: tuple[int, int, int]
    tile: tuple[int, int]
    spacing_um: tuple[float, float] | None
    codec: dict[str, Any]
    channels: tuple[str, ...]
    photometric: str
    transfer_syntax: str
    tiling: str
    image_type: tuple[str, ...]
    instances: tuple[str, ...]
    downsample: int
    fill: int
    present: int
    absent: int
    _planes: list[tuple[Any, float, str]] = field(repr=False, default_factory=list)

    @property
    def tiled(self) -> tuple[int, int]:
        """Tiles along y and x."""
        return (-(-self.shape[0] // self.tile[0]), -(-self.shape[1] // self.tile[1]))

    @property
    def chunks(self) -> tuple[int, int, int]:
        """The zarr chunk of one tile: all samples of a colour tile, one channel of a monochrome one."""
        return (self.tile[0], self.tile[1], self.shape[2] if len(self._planes) == 1 else 1)

    def tiles(self) -> Iterator[tuple[tuple[int, int, int], bytes]]:
        """``((tile row, tile column, channel chunk), codestream)`` of every tile present, as in the DICOM."""
        from wsidicom.geometry import Point

        rows, cols = self.tiled
        for c, (data, z, path) in enumerate(self._planes):
            points = [Point(x, y) for y in range(rows) for x in range(cols) if not data.is_sparse(Point(x, y), z, path)]
            for start in range(0, len(points), _BATCH):
                batch = points[start:start + _BATCH]
                try:
                    frames = list(data.get_encoded_tiles(batch, z, path))
                except Exception as exc:  # wsidicom/pydicom raise many kinds on a damaged file
                    raise InvalidInputError(f"level {self.name}: cannot read its frames ({type(exc).__name__}: "
                                            f"{exc})") from None
                for point, frame in zip(batch, frames, strict=True):
                    if not bytes(frame[-3:]).rstrip(b"\0").endswith(_END_OF_IMAGE):
                        raise InvalidInputError(f"{self.kind} {self.name}: tile (row {point.y}, column {point.x}) is "
                                                f"truncated (its codestream has no end marker)")
                    yield (point.y, point.x, c), bytes(frame)


@dataclass
class Slide:
    """An opened SM series: its pyramid ``levels`` (full resolution first), ``associated`` images
    (label, overview, thumbnail), ``attrs`` (the slide's metadata) and ``header`` (the base level's
    first instance as DICOM JSON, without bulk data). Close it (or use it as a context manager)."""

    series_instance_uid: str
    levels: list[SlideImage]
    associated: list[SlideImage]
    attrs: dict[str, Any]
    header: dict[str, Any]
    _wsi: Any = field(repr=False, default=None)

    def close(self) -> None:
        if self._wsi is not None:
            self._wsi.close()
            self._wsi = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _streams(files: Iterable[DicomInput]) -> list[Any]:
    from upath import UPath
    from wsidicom.file.io.wsidicom_io import WsiDicomReadIO

    out = []
    for item in files:
        if isinstance(item, Dataset):
            raise InvalidInputError("slides are read from their files (bytes or paths), not from parsed datasets")
        if isinstance(item, (str, os.PathLike)):
            out.append(WsiDicomReadIO(open(os.fspath(item), "rb"), UPath(os.fspath(item))))  # noqa: SIM115
        else:
            name, data = cast("tuple[str, bytes]", item)
            try:
                out.append(WsiDicomReadIO(io.BytesIO(data), UPath(name)))
            except Exception as exc:  # not DICOM at all
                raise InvalidInputError(f"{name}: not a readable DICOM file ({exc})") from None
    return out


def open_slide(files: Iterable[DicomInput]) -> Slide:
    """Open the instances of one SM series (see the module docstring); ``InvalidInputError`` if they
    are not one readable slide."""
    from wsidicom import WsiDicom
    from wsidicom.file import WsiDicomFileSource

    streams = _streams(files)
    try:
        wsi = WsiDicom(WsiDicomFileSource(streams), True)
    except Exception as exc:  # wsidicom: no level files, mixed slides, unsupported instances
        for stream in streams:
            stream.close()
        raise InvalidInputError(f"not a readable whole-slide series ({type(exc).__name__}: {exc})") from None
    try:
        levels = [_image(level, str(i), "level") for i, level in enumerate(wsi.levels)]
        _check_pyramid(levels)
        associated = [_image(group, kind, kind) for kind, groups in
                      (("label", wsi.labels), ("overview", wsi.overviews), ("thumbnail", wsi.pyramid.thumbnails))
                      for group in (groups or [])[:1]]
        datasets = [d.as_dataset() for d in wsi.levels[0].datasets]
        base = datasets[0]
        return Slide(str(base.SeriesInstanceUID), levels, associated, _attrs(base, levels, _optical_paths(datasets)),
                     header_json(base), wsi)
    except Exception:
        wsi.close()
        raise


def _image(group: Any, name: str, kind: str) -> SlideImage:
    instance = group.default_instance
    data = instance.image_data
    dataset = group.datasets[0]
    size, tile = group.size, data.tile_size
    samples = int(data.samples_per_pixel)
    z = data.default_z
    if samples == 1 and len(group.optical_paths) > 1:  # fluorescence: the paths in their identifiers' order
        paths = sorted(group.optical_paths, key=lambda p: (0, int(p), "") if str(p).isdigit() else (1, 0, str(p)))
        planes = [(group.instance_at(path, z).image_data, z, path) for path in paths]
        channels = tuple(str(p) for p in paths)
    else:
        planes = [(data, z, data.default_path)]
        channels = ("R", "G", "B") if samples == 3 else (str(data.default_path),)
    rows, cols = -(-size.height // tile.height), -(-size.width // tile.width)
    present = sum(1 for d, zz, p in planes for y in range(rows) for x in range(cols)
                  if not d.is_sparse(_point(x, y), zz, p))
    spacing = group.pixel_spacing
    from archivestore.codecs import codec_for_transfer_syntax

    photometric = str(data.photometric_interpretation)
    try:
        codec = codec_for_transfer_syntax(str(data.transfer_syntax), photometric).to_dict()
    except ValueError as exc:
        raise InvalidInputError(f"{kind} {name}: {exc}") from None
    blank = data.blank_color
    return SlideImage(
        name=name, kind=kind, shape=(size.height, size.width, samples if len(planes) == 1 else len(planes)),
        tile=(tile.height, tile.width),
        spacing_um=None if spacing is None else (float(spacing.height) * 1000.0, float(spacing.width) * 1000.0),
        codec=codec, channels=channels, photometric=photometric, transfer_syntax=str(data.transfer_syntax),
        tiling=str(dataset.as_dataset().get("DimensionOrganizationType", "TILED_FULL")),
        image_type=tuple(str(v) for v in dataset.as_dataset().ImageType),
        instances=tuple(sorted(str(d.uids.instance) for d in group.datasets)),
        downsample=2 ** int(getattr(group, "level", 0)),
        fill=int(blank[0] if isinstance(blank, tuple) else blank),
        present=present, absent=len(planes) * rows * cols - present, _planes=planes)


def _point(x: int, y: int) -> Any:
    from wsidicom.geometry import Point

    return Point(x, y)


def _check_pyramid(levels: list[SlideImage]) -> None:
    """Level 0 is the full resolution, and the levels shrink by one factor: else a level is missing."""
    if not levels:
        raise InvalidInputError("the series has no pyramid level (no VOLUME image)")
    if len(levels[0].image_type) > 3 and levels[0].image_type[3] == "RESAMPLED":
        kind = "\\".join(levels[0].image_type)
        raise InvalidInputError(f"level 0 is missing: the largest level is RESAMPLED (ImageType {kind})")
    factors = [b.downsample // a.downsample for a, b in zip(levels, levels[1:], strict=False)]
    if len(set(factors)) > 1:
        scales = ", ".join(str(level.downsample) for level in levels)
        raise InvalidInputError(f"a pyramid level is missing: downsampling factors {scales} do not shrink by "
                                "one constant factor")


def _optical_paths(datasets: list[Dataset]) -> list[Dataset]:
    """Every optical path the instances of a level describe (one per identifier, in order of appearance)."""
    seen: dict[str, Dataset] = {}
    for ds in datasets:
        for item in ds.get("OpticalPathSequence", []):
            seen.setdefault(str(item.get("OpticalPathIdentifier", len(seen))), item)
    return list(seen.values())


def _attrs(ds: Dataset, levels: list[SlideImage], optical_paths: list[Dataset]) -> dict[str, Any]:
    """The slide's metadata (objective power, optical paths, specimens, container, image types)."""
    paths = [header_json(item) for item in optical_paths]
    powers = sorted({float(item.ObjectiveLensPower) for item in optical_paths
                     if item.get("ObjectiveLensPower") not in (None, "")})
    specimens = []
    for item in ds.get("SpecimenDescriptionSequence", []):
        steps = []
        for step in item.get("SpecimenPreparationSequence", []):
            for content in step.get("SpecimenPreparationStepContentItemSequence", []):
                concept = content.ConceptNameCodeSequence[0].CodeMeaning if content.get(
                    "ConceptNameCodeSequence") else None
                if content.get("ConceptCodeSequence"):
                    value: Any = content.ConceptCodeSequence[0].CodeMeaning
                else:
                    value = next((str(content.get(k)) for k in ("TextValue", "DateTime", "NumericValue")
                                  if content.get(k) is not None), None)
                steps.append({"concept": str(concept), "value": value})
        specimens.append({"identifier": str(item.get("SpecimenIdentifier", "")),
                          "uid": str(item.get("SpecimenUID", "")),
                          "description": str(item.get("SpecimenShortDescription", "")
                                             or item.get("SpecimenDetailedDescription", "")),
                          "preparation": steps})
    return {
        "series_instance_uid": str(ds.SeriesInstanceUID), "study_instance_uid": str(ds.StudyInstanceUID),
        "modality": str(ds.get("Modality", "SM")), "container_id": str(ds.get("ContainerIdentifier", "")),
        "objective_power": powers[0] if len(powers) == 1 else powers or None,
        "optical_paths": paths, "specimens": specimens,
        "specimen_description": _sequence_json(ds, "SpecimenDescriptionSequence"),
        "image_type": {level.name: list(level.image_type) for level in levels},
        "levels": len(levels), "photometric_interpretation": levels[0].photometric,
        "transfer_syntax": levels[0].transfer_syntax, "tile": list(levels[0].tile),
        "spacing_um": None if levels[0].spacing_um is None else list(levels[0].spacing_um),
    }


def _sequence_json(ds: Dataset, keyword: str) -> list[dict[str, Any]]:
    """The items of sequence ``keyword`` as DICOM JSON (no bulk data)."""
    return [header_json(item) for item in ds.get(keyword, [])]
