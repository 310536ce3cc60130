"""DICOM inputs as named pydicom datasets, and a dataset's header as DICOM JSON.

Every input file keeps the name it came with, so that each error names the file it is about.
Names are only ever printed: a ``(name, bytes)`` pair is parsed from its bytes, never opened by
name (paths are opened only when the caller passes a path).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import MediaStorageDirectoryStorage

from archivestore.errors import InvalidInputError

__all__ = ["DicomInput", "Named", "header_json", "read_files"]

DicomInput: TypeAlias = "tuple[str, bytes] | Dataset | str | os.PathLike[str]"
"""One DICOM file: ``(name, bytes)`` as sources hand them over, a parsed dataset, or a path."""

_PIXEL_TAGS = frozenset(Tag(k) for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
_LEFT_OUT = _PIXEL_TAGS | {Tag("PerFrameFunctionalGroupsSequence")}
_BULK_BYTES = 1024
"""Binary elements (OB, OW, OF, UN, ...) longer than this count as bulk data and are left out."""
_BULK = "\x00bulk"


@dataclass(frozen=True)
class Named:
    """A parsed DICOM file and the name it came with (for error messages)."""

    name: str
    dataset: Dataset
    owned: bool = True
    """False when the caller passed the dataset in (then it must not be changed in place)."""


def read_files(files: Iterable[DicomInput], *, pixels: bool = True) -> list[Named]:
    """Parse DICOM files; ``InvalidInputError`` naming the first file that is not DICOM.

    Parameters
    ----------
    files
        ``(name, bytes)`` pairs, pydicom datasets, or paths.
    pixels
        ``False`` stops reading before the pixel data (headers only).

    Returns
    -------
    list of Named
        One entry per file, DICOMDIR index files left out.
    """
    named = [n for n in _parse(files, pixels) if n.dataset.get("SOPClassUID") != MediaStorageDirectoryStorage]
    if not named:
        raise InvalidInputError("no DICOM files given")
    return named


def _parse(files: Iterable[DicomInput], pixels: bool) -> Iterator[Named]:
    for item in files:
        if isinstance(item, Dataset):
            filename = getattr(item, "filename", None)
            yield Named(filename if isinstance(filename, str) else str(item.get("SOPInstanceUID", "<dataset>")),
                        item, owned=False)
        elif isinstance(item, (str, os.PathLike)):
            yield Named(os.fspath(item), _dcmread(os.fspath(item), os.fspath(item), pixels))
        else:
            name, data = cast("tuple[str, bytes]", item)
            yield Named(name, _dcmread(name, io.BytesIO(data), pixels))


def _dcmread(name: str, source: str | io.BytesIO, pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(source, force=True, stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many kinds of error on malformed bytes
        raise InvalidInputError(f"{name}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise InvalidInputError(f"{name}: not a DICOM file (no SOPInstanceUID/SOPClassUID)")
    return ds


def header_json(ds: Dataset) -> dict[str, Any]:
    """The dataset as DICOM JSON (PS3.18 F.2) without bulk data.

    Left out: the pixel data, binary elements over 1 KiB (overlays, private blobs), and
    ``PerFrameFunctionalGroupsSequence`` of multi-frame objects (its per-frame positions
    are in the volume's coordinates; kept, it can weigh megabytes).
    """
    keep: dict[BaseTag, Any] = {tag: ds[tag] for tag in ds.keys() if tag not in _LEFT_OUT}
    slim = Dataset(keep)
    js = slim.to_json_dict(bulk_data_threshold=_BULK_BYTES, bulk_data_element_handler=lambda _: _BULK,
                           suppress_invalid_tags=True)
    return _without_bulk(js)


def _without_bulk(js: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, element in js.items():
        if element.get("BulkDataURI") == _BULK:
            continue
        if element.get("vr") == "SQ" and "Value" in element:
            element = {**element, "Value": [_without_bulk(item) for item in element["Value"]]}
        out[tag] = element
    return out
