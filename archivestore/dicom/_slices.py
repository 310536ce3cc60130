"""Image instances flattened to 2-D slices with their geometry, and slices grouped into stacks.

A single-frame image is one slice; each frame of an enhanced (multi-frame) image is one slice,
its geometry and rescale taken from the per-frame functional groups, else the shared ones.
No pixels are decoded here.

**Splitting.** Slices stack into one volume only when they share the frame of reference, the
image size, the pixel spacing and the orientation (direction cosines within ``1e-4``), and are
all localizers or all not (``ImageType`` value ``LOCALIZER``). A series whose slices fall into
several such groups becomes several parts: ordered non-localizer first, then by slice count
(most first), then by the smallest ``(SOPInstanceUID, frame)``; each part says what sets it
apart (:func:`describe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from archivestore.dicom._files import Named
from archivestore.errors import InvalidInputError

__all__ = ["Slice", "describe", "group_slices", "slices_of"]

_ORIENTATION_TOL = 1e-4
_SPACING_RTOL = 1e-4


@dataclass(frozen=True)
class Slice:
    """One 2-D image plane: where it is, how its values rescale, and where its pixels are."""

    source: Named
    frame: int | None
    """0-based frame index within a multi-frame instance; ``None`` for a single-frame instance."""
    position: tuple[float, ...]
    """ImagePositionPatient (x, y, z) in mm."""
    orientation: tuple[float, ...]
    """ImageOrientationPatient: row then column direction cosines."""
    pixel_spacing: tuple[float, ...]
    """PixelSpacing: between rows, between columns (mm)."""
    shape: tuple[int, int]
    slope: float
    intercept: float
    thickness: float | None
    localizer: bool

    @property
    def sop_instance_uid(self) -> str:
        """The SOPInstanceUID of the instance the slice belongs to."""
        return str(self.source.dataset.SOPInstanceUID)

    @property
    def frame_of_reference(self) -> str:
        """The instance's FrameOfReferenceUID (empty if it has none)."""
        return str(self.source.dataset.get("FrameOfReferenceUID", ""))

    def sort_key(self) -> tuple[str, int]:
        """``(SOPInstanceUID, frame)``, a deterministic tie-break."""
        return self.sop_instance_uid, -1 if self.frame is None else self.frame


def slices_of(named: Named) -> list[Slice]:
    """The slices of one image instance; ``InvalidInputError`` naming the file if it has none."""
    ds = named.dataset
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InvalidInputError(f"{named.name}: no pixel data (not an image)")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InvalidInputError(f"{named.name}: colour image (SamplesPerPixel {ds.SamplesPerPixel}), "
                                "not a volume slice")
    if "ModalityLUTSequence" in ds:
        raise InvalidInputError(f"{named.name}: Modality LUT rescaling is not supported (only RescaleSlope/Intercept)")
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return [_slice(named, frame, _FrameView(ds, frame, named.name)) for frame in range(frames)]
    return [_slice(named, None, ds)]


class _FrameView:
    """Attribute lookup for one frame: per-frame functional groups, then shared, then top level."""

    _GROUPS = ("PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence",
               "PixelValueTransformationSequence")

    def __init__(self, ds: Dataset, frame: int, name: str) -> None:
        self._items: list[Dataset] = []
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None:
            if len(per_frame) <= frame:
                raise InvalidInputError(f"{name}: PerFrameFunctionalGroupsSequence has {len(per_frame)} items, "
                                        f"NumberOfFrames says {ds.get('NumberOfFrames')}")
            self._items.append(per_frame[frame])
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared:
            self._items.append(shared[0])
        self._ds = ds

    def get(self, keyword: str, default: Any = None) -> Any:
        for item in self._items:
            for group in self._GROUPS:
                sequence = item.get(group)
                if sequence and keyword in sequence[0]:
                    return sequence[0].get(keyword)
        return self._ds.get(keyword, default)


def _slice(named: Named, frame: int | None, attrs: Dataset | _FrameView) -> Slice:
    ds = named.dataset
    position, orientation, spacing = (attrs.get(k) for k in ("ImagePositionPatient", "ImageOrientationPatient",
                                                              "PixelSpacing"))
    if not position or not orientation or not spacing:
        where = named.name if frame is None else f"{named.name} frame {frame + 1}"
        raise InvalidInputError(f"{where}: no patient geometry (ImagePositionPatient, ImageOrientationPatient, "
                                "PixelSpacing); not a volume slice")
    thickness = attrs.get("SpacingBetweenSlices") or attrs.get("SliceThickness")
    return Slice(
        source=named,
        frame=frame,
        position=_floats(position, 3, named.name, "ImagePositionPatient"),
        orientation=_floats(orientation, 6, named.name, "ImageOrientationPatient"),
        pixel_spacing=_floats(spacing, 2, named.name, "PixelSpacing"),
        shape=(int(ds.Rows), int(ds.Columns)),
        slope=float(attrs.get("RescaleSlope", 1.0) or 1.0),
        intercept=float(attrs.get("RescaleIntercept", 0.0) or 0.0),
        thickness=float(thickness) if thickness else None,
        localizer="LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])],
    )


def _floats(value: Sequence[Any], n: int, name: str, keyword: str) -> tuple[float, ...]:
    numbers = tuple(float(v) for v in value)
    if len(numbers) != n or not np.all(np.isfinite(numbers)):
        raise InvalidInputError(f"{name}: {keyword} should be {n} finite numbers, is {list(value)}")
    return numbers


def _same_stack(a: Slice, b: Slice) -> bool:
    return (a.frame_of_reference == b.frame_of_reference and a.shape == b.shape and a.localizer == b.localizer
            and np.allclose(a.orientation, b.orientation, rtol=0, atol=_ORIENTATION_TOL)
            and np.allclose(a.pixel_spacing, b.pixel_spacing, rtol=_SPACING_RTOL, atol=0))


def group_slices(slices: list[Slice]) -> list[list[Slice]]:
    """Slices grouped into stacks that can form one volume each, in part order (module docstring)."""
    groups: list[list[Slice]] = []
    for s in slices:
        for group in groups:
            if _same_stack(group[0], s):
                group.append(s)
                break
        else:
            groups.append([s])
    return sorted(groups, key=lambda g: (g[0].localizer, -len(g), min(s.sort_key() for s in g)))


def describe(group: list[Slice]) -> str:
    """What the slices of one part share: orientation, size, spacing, localizer or not."""
    s = group[0]
    orientation = ", ".join(f"{v:g}" for v in s.orientation)
    kind = "localizer" if s.localizer else "image"
    return (f"{len(group)} {kind} slice(s), orientation [{orientation}], {s.shape[0]}x{s.shape[1]} pixels, "
            f"pixel spacing {s.pixel_spacing[0]:g}x{s.pixel_spacing[1]:g} mm, frame of reference "
            f"{s.frame_of_reference or '-'}")
