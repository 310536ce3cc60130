"""The objects the OMERO.web stand-in serves, and how omero-web marshals them into JSON.

Shapes follow omero-web 5.x: omero-marshal records for ``api/v0`` (``@id``, ``@type`` with the
2016-06 schema, ``Name``, ``omero:details``, ``url:*`` links; fields that are ``None`` left out;
``Pixels`` with ``PhysicalSizeX`` as ``{"Symbol", "Value", "@type", "Unit"}``), the webclient's
annotation and plate records (``omeroweb/webclient/tree.py``), the plate grid
(``omeroweb/webgateway/plategrid.py``) and ``imgData`` (``omeroweb/webgateway/marshal.py``); :func:`render`
draws a plane as ``render_image`` does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "Container", "FakeImage", "FakePlate", "FakeWell", "MapAnnotation", "labels", "render"]

SCHEMA = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
"""The ``@type`` prefix omero-marshal writes."""

MAP_NS = "openmicroscopy.org/omero/client/mapAnnotation"
"""The namespace of map annotations a user adds in the webclient (IDR uses its own namespaces too)."""

DETAILS = {
    "@type": "TBD#Details",
    "owner": {"@id": 2, "@type": f"{SCHEMA}#Experimenter", "UserName": "public", "FirstName": "Public",
              "LastName": "User", "omero:details": {"@type": "TBD#Details"}},
    "group": {"@id": 3, "@type": f"{SCHEMA}#ExperimenterGroup", "Name": "public"},
    "permissions": {"@type": "TBD#Permissions", "perm": "rwr---", "canAnnotate": False, "canDelete": False,
                    "canEdit": False, "canLink": False, "isWorldRead": False, "isGroupRead": True},
}
"""``omero:details`` of every object (owner, group, permissions): what clients drop."""

EXPERIMENTER = {"id": 2, "omeName": "public", "firstName": "Public", "lastName": "User"}


def labels(n: int, convention: str) -> list[str]:
    """Row or column labels as OMERO gives them: ``letter`` → A, B, ...; ``number`` → 1, 2, ..."""
    return [chr(ord("A") + i) for i in range(n)] if convention == "letter" else [str(i + 1) for i in range(n)]


def _length(value: float | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"Symbol": "µm", "Value": value, "@type": "TBD#LengthI", "Unit": "MICROMETER"}


def _signed_rgba(color: str) -> int:
    """An ``RRGGBB`` colour as OMERO's signed 32-bit RGBA integer (alpha 255)."""
    value = int(color + "FF", 16)
    return value - (1 << 32) if value >= 1 << 31 else value


def _drop_none(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


@dataclass
class Container:
    """A project, dataset or screen."""

    id: int
    kind: str
    name: str
    description: str = ""
    parent: int | None = None

    def marshal(self, origin: str) -> dict[str, Any]:
        """The api/v0 record."""
        kind = self.kind.capitalize()
        record = {"@id": self.id, "@type": f"{SCHEMA}#{kind}", "Name": self.name,
                  "Description": self.description or None, "omero:details": DETAILS,
                  f"url:{self.kind}": f"{origin}/api/v0/m/{self.kind}s/{self.id}/"}
        child = {"project": "datasets", "dataset": "images", "screen": "plates"}[self.kind]
        record[f"url:{child}"] = f"{origin}/api/v0/m/{self.kind}s/{self.id}/{child}/"
        return _drop_none(record)


@dataclass
class FakeImage:
    """An image: pixels ``(t, c, z, y, x)``, pixel sizes in µm (``None``: unknown), channel names and colours."""

    id: int
    name: str
    pixels: np.ndarray
    pixel_size: tuple[float | None, float | None, float | None]
    channels: list[tuple[str, str]]
    dataset: int | None = None
    well: int | None = None
    description: str = ""
    acquired: int = 1_700_000_000_000

    @property
    def sizes(self) -> dict[str, int]:
        """``SizeT``, ``SizeC``, ``SizeZ``, ``SizeY``, ``SizeX``."""
        return dict(zip(("SizeT", "SizeC", "SizeZ", "SizeY", "SizeX"), (int(n) for n in self.pixels.shape),
                        strict=True))

    def window(self, channel: int) -> tuple[float, float]:
        """The channel's min and max (OMERO's statistics)."""
        values = self.pixels[:, channel]
        return float(values.min()), float(values.max())

    def marshal(self, origin: str, *, pixels: bool = True, channels: bool = False) -> dict[str, Any]:
        """The api/v0 record (with ``Pixels`` in listings and single images, ``Channels`` in single images)."""
        record: dict[str, Any] = {"@id": self.id, "@type": f"{SCHEMA}#Image", "Name": self.name,
                                  "Description": self.description or None, "AcquisitionDate": self.acquired,
                                  "omero:series": 0, "omero:details": DETAILS,
                                  "url:image": f"{origin}/api/v0/m/images/{self.id}/"}
        if pixels:
            dtype = str(self.pixels.dtype)
            px: dict[str, Any] = {"@id": self.id + 100_000, "@type": f"{SCHEMA}#Pixels", **self.sizes,
                  "PhysicalSizeX": _length(self.pixel_size[0]), "PhysicalSizeY": _length(self.pixel_size[1]),
                  "PhysicalSizeZ": _length(self.pixel_size[2]),
                  "Type": {"@id": 1, "@type": "TBD#PixelsType", "value": dtype},
                  "SignificantBits": self.pixels.dtype.itemsize * 8, "omero:sha1": "0" * 40, "omero:details": DETAILS}
            if channels:
                px["Channels"] = [{"@id": self.id * 10 + i, "@type": f"{SCHEMA}#Channel", "Name": name,
                                   "Color": _signed_rgba(color),
                                   "SamplesPerPixel": 1, "omero:details": {}}
                                  for i, (name, color) in enumerate(self.channels)]
            record["Pixels"] = _drop_none(px)
        return _drop_none(record)

    def image_data(self, *, project: Container | None, dataset: Container | None, well: int | None,
                   ) -> dict[str, Any]:
        """``webclient/imgData/<id>/``."""
        t, c, z, y, x = (int(n) for n in self.pixels.shape)
        limits = np.iinfo(self.pixels.dtype) if self.pixels.dtype.kind in "iu" else None
        channels = []
        for i, (label, color) in enumerate(self.channels):
            low, high = self.window(i)
            channels.append({"emissionWave": None, "label": label, "color": color, "inverted": False,
                             "reverseIntensity": False, "family": "linear", "coefficient": 1.0,
                             "window": {"min": low, "max": high, "start": low, "end": high}, "active": i < 3})
        return {
            "id": self.id,
            "meta": {"imageName": self.name, "imageDescription": self.description, "imageAuthor": "Public User",
                     "imageArchived": False, "projectName": project.name if project else "Multiple",
                     "projectId": project.id if project else None,
                     "projectDescription": project.description if project else "",
                     "datasetName": dataset.name if dataset else "Multiple",
                     "datasetId": dataset.id if dataset else None,
                     "datasetDescription": dataset.description if dataset else "", "wellSampleId": "",
                     "wellId": well or "", "imageTimestamp": self.acquired / 1000, "imageId": self.id,
                     "pixelsType": str(self.pixels.dtype)},
            "perms": {"canAnnotate": False, "canEdit": False, "canDelete": False, "canLink": False},
            "tiles": False, "interpolate": True, "size": {"width": x, "height": y, "z": z, "t": t, "c": c},
            "pixel_size": dict(zip("xyz", self.pixel_size, strict=True)), "init_zoom": 0,
            "pixel_range": [int(limits.min), int(limits.max)] if limits else [0, 1],
            "channels": channels, "split_channel": {},
            "rdefs": {"model": "color", "projection": "normal", "defaultZ": z // 2, "defaultT": 0,
                      "invertAxis": False},
        }


@dataclass
class FakeWell:
    """A well: its position (indices) and its fields' image ids, in order."""

    id: int
    plate: int
    row: int
    column: int
    images: list[int] = field(default_factory=list)

    def marshal(self, origin: str, images: dict[int, FakeImage]) -> dict[str, Any]:
        """The api/v0 record: WellSamples with their Image (without Pixels)."""
        samples = [{"@id": self.id * 100 + i, "@type": f"{SCHEMA}#WellSample", "omero:details": DETAILS,
                    "PositionX": {"Symbol": "reference frame", "Value": 100.0 * i, "@type": "TBD#LengthI",
                                  "Unit": "REFERENCEFRAME"},
                    "Image": images[image].marshal(origin, pixels=False)}
                   for i, image in enumerate(self.images)]
        return {"@id": self.id, "@type": f"{SCHEMA}#Well", "Row": self.row, "Column": self.column,
                "omero:details": DETAILS, "url:well": f"{origin}/api/v0/m/wells/{self.id}/", "WellSamples": samples}


@dataclass
class FakePlate:
    """A plate: its size and naming conventions."""

    id: int
    name: str
    rows: int
    columns: int
    screen: int | None = None
    row_naming: str = "letter"
    column_naming: str = "number"

    def marshal(self, origin: str, fields: int | None = None) -> dict[str, Any]:
        """The api/v0 record (a single plate also has ``omero:wellsampleIndex``)."""
        record: dict[str, Any] = {
            "@id": self.id, "@type": f"{SCHEMA}#Plate", "Name": self.name, "Rows": self.rows, "Columns": self.columns,
            "RowNamingConvention": self.row_naming, "ColumnNamingConvention": self.column_naming,
            "ExternalIdentifier": f"EXT-{self.id}", "omero:details": DETAILS,
            "url:plate": f"{origin}/api/v0/m/plates/{self.id}/",
            "url:wells": f"{origin}/api/v0/m/plates/{self.id}/wells/",
        }
        if fields:
            record["omero:wellsampleIndex"] = [0, fields - 1]
        return record


@dataclass
class MapAnnotation:
    """A map annotation linked to one object."""

    id: int
    kind: str
    parent: int
    values: list[tuple[str, str]]
    ns: str = MAP_NS

    def marshal(self, parent_name: str | None) -> dict[str, Any]:
        """The webclient's record (``_marshal_annotation`` with its link)."""
        perms = {"canDelete": False, "canAnnotate": False, "canLink": False, "canEdit": False}
        parent: dict[str, Any] = {"id": self.parent, "class": f"{self.kind.capitalize()}I"}
        if parent_name:
            parent["name"] = parent_name
        return {"id": self.id, "ns": self.ns, "name": None, "description": None, "owner": {"id": 2},
                "date": "2024-01-01T00:00:00Z", "permissions": perms, "class": "MapAnnotationI",
                "values": [[k, v] for k, v in self.values],
                "link": {"id": self.id + 500_000, "owner": {"id": 2}, "parent": parent,
                         "date": "2024-01-01T00:00:00Z", "permissions": perms}}


def render(image: FakeImage, z: int, t: int, query: dict[str, str]) -> bytes:
    """A plane rendered as OMERO.web does for ``query`` (``c``, ``m``, ``q``), as a JPEG.

    Each active channel maps its window linearly to 0..255; greyscale (``m=g``) shows the first
    active channel in grey, colour adds every active channel in its colour. Without ``c`` the
    rendering defaults apply (the first three channels, full windows, their colours).
    """
    from PIL import Image

    active: list[tuple[int, float, float, str]] = []
    if "c" in query:
        for entry in query["c"].split(","):
            index, _, rest = entry.partition("|")
            if index.startswith("-"):
                continue
            window, _, color = rest.partition("$")
            low_text, _, high_text = window.partition(":")
            channel = int(index) - 1
            low, high = image.window(channel)
            active.append((channel, float(low_text or low), float(high_text or high),
                           color or image.channels[channel][1]))
    else:
        active = [(c, *image.window(c), image.channels[c][1]) for c in range(min(3, len(image.channels)))]
    height, width = image.pixels.shape[-2:]
    rgb = np.zeros((height, width, 3), dtype=np.float64)
    for number, (channel, start, end, color) in enumerate(active):
        plane = image.pixels[t, channel, z].astype(np.float64)
        level = np.clip((plane - start) / max(end - start, 1e-12), 0.0, 1.0) * 255.0
        if query.get("m") == "g":
            if number == 0:
                rgb[...] = level[..., None]
            continue
        weights = np.array([int(color[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])
        rgb += level[..., None] * weights
    out = io.BytesIO()
    quality = int(round(float(query.get("q") or 0.9) * 100))
    Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB").save(
        out, "JPEG", quality=max(1, min(100, quality)))
    return out.getvalue()
