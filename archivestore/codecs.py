"""Zarr v3 codecs for slide tiles kept in their DICOM encoding: JPEG and JPEG 2000 (imagecodecs).

A slide's tiles are stored as the DICOM frames were encoded (no decode and recompress), so each
chunk of ``slides/<uid>/<level>/image`` is one JPEG or JPEG 2000 codestream and the array's
serializer (array -> bytes codec) is one of:

``archivestore_jpeg``
    JPEG (baseline, extended, lossless), decoded with ``imagecodecs.jpeg8_decode``; optional
    configuration ``colorspace_jpeg`` / ``colorspace_data`` (the colour space of the codestream
    and of the decoded array, e.g. ``RGB`` for DICOM ``PhotometricInterpretation`` RGB frames,
    whose codestreams have no colour transform).
``archivestore_jpeg2k``
    JPEG 2000 codestreams (J2K or JP2), decoded with ``imagecodecs.jpeg2k_decode`` (OpenJPEG).

The names and configuration keys are those of imagecodecs' own Zarr v3 codecs
(``imagecodecs_jpeg``, ``imagecodecs_jpeg2k``, package ``imagecodecs-zarr``, which needs
Python >= 3.12 and zarr >= 3.2) with the prefix ``archivestore_``: moving a store to them is a
rewrite of the name in each array's ``zarr.json``, the chunks untouched.

Registration: archivestore's ``zarr.codecs`` entry points (``pyproject.toml``) make zarr find the
codecs wherever archivestore is installed, so plain ``xr.open_zarr`` / ``zarr.open`` decode slides
without importing archivestore; :func:`register_codecs` registers them by hand (done when
:mod:`archivestore.store` or this module is imported, and by ``import archivestore`` once zarr is
loaded). Decoding a chunk returns the tile as ``(rows, columns, samples)`` reshaped to the chunk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["CODECS", "Jpeg", "Jpeg2k", "codec_for_transfer_syntax", "register_codecs"]


def _config(data: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if data.get("name") != name:
        raise ValueError(f"expected codec {name!r}, got {data.get('name')!r}")
    config = dict(data.get("configuration") or {})
    unknown = set(config) - set(keys)
    if unknown:
        raise ValueError(f"{name}: unknown configuration {sorted(unknown)}")
    return config


class _TileCodec(ArrayBytesCodec):
    """One encoded image per chunk; decoding reshapes the decoded tile to the chunk's shape."""

    is_fixed_size = False
    codec_name = ""
    keys: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**_config(data, cls.codec_name, cls.keys))

    def to_dict(self) -> dict[str, Any]:
        config = {k: getattr(self, k) for k in self.keys if getattr(self, k) is not None}
        return {"name": self.codec_name, "configuration": config} if config else {"name": self.codec_name}

    def _decode_array(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def _encode_array(self, data: np.ndarray) -> bytes:
        raise NotImplementedError

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = self._decode_array(chunk_bytes.to_bytes())
        if decoded.size != int(np.prod(chunk_spec.shape)):
            raise ValueError(f"{self.codec_name}: a {decoded.shape} tile in a chunk of shape {chunk_spec.shape}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(
            decoded.astype(chunk_spec.dtype.to_native_dtype(), copy=False).reshape(chunk_spec.shape))

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = chunk_array.as_numpy_array()
        if data.ndim == 3 and data.shape[-1] == 1:
            data = data[..., 0]
        return chunk_spec.prototype.buffer.from_bytes(self._encode_array(np.ascontiguousarray(data)))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("the size of an encoded image is not known in advance")


@dataclass(frozen=True)
class Jpeg(_TileCodec):
    """``archivestore_jpeg``: a JPEG codestream per chunk (see the module docstring).

    Encoding (for arrays written through zarr) is lossy at ``level`` (quality, default 90).
    """

    codec_name = "archivestore_jpeg"
    keys = ("level", "colorspace_jpeg", "colorspace_data")
    level: int | None = None
    colorspace_jpeg: str | None = None
    colorspace_data: str | None = None

    def _decode_array(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return np.asarray(imagecodecs.jpeg8_decode(data, colorspace=self.colorspace_jpeg,
                                                   outcolorspace=self.colorspace_data))

    def _encode_array(self, data: np.ndarray) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpeg8_encode(data, level=self.level or 90, colorspace=self.colorspace_data,
                                              outcolorspace=self.colorspace_jpeg))


@dataclass(frozen=True)
class Jpeg2k(_TileCodec):
    """``archivestore_jpeg2k``: a JPEG 2000 codestream per chunk (see the module docstring).

    Encoding (for arrays written through zarr) is lossless unless ``level`` (a PSNR) is given.
    """

    codec_name = "archivestore_jpeg2k"
    keys = ("level",)
    level: int | None = field(default=None)

    def _decode_array(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return np.asarray(imagecodecs.jpeg2k_decode(data))

    def _encode_array(self, data: np.ndarray) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpeg2k_encode(data, level=self.level, codecformat="J2K",
                                               reversible=self.level is None))


CODECS: dict[str, type[_TileCodec]] = {Jpeg.codec_name: Jpeg, Jpeg2k.codec_name: Jpeg2k}
"""The codecs by their Zarr name."""

_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": Jpeg,   # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": Jpeg,   # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57": Jpeg,   # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": Jpeg,   # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.90": Jpeg2k,  # JPEG 2000 (lossless only)
    "1.2.840.10008.1.2.4.91": Jpeg2k,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": Jpeg2k,  # HTJ2K (lossless)
    "1.2.840.10008.1.2.4.202": Jpeg2k,  # HTJ2K (lossless RPCL)
    "1.2.840.10008.1.2.4.203": Jpeg2k,  # HTJ2K
}


def codec_for_transfer_syntax(uid: str, photometric: str) -> _TileCodec:
    """The codec that decodes frames of DICOM transfer syntax ``uid`` as the DICOM decoders do.

    ``ValueError`` for a transfer syntax whose frames these codecs do not decode (native,
    RLE, JPEG-LS, ...): such a series is not kept in its encoding.
    """
    try:
        kind = _TRANSFER_SYNTAXES[str(uid)]
    except KeyError:
        raise ValueError(f"transfer syntax {uid} is not JPEG or JPEG 2000") from None
    if kind is Jpeg and photometric == "RGB":
        return Jpeg(colorspace_jpeg="RGB", colorspace_data="RGB")
    return kind()


def register_codecs() -> None:
    """Register the codecs with zarr (idempotent; the entry points do it where archivestore is installed)."""
    from zarr.registry import register_codec

    for name, cls in CODECS.items():
        register_codec(name, cls)


register_codecs()
