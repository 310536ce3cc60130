"""OME-Zarr metadata, read and checked: which NGFF version, which kind of group, and the image's geometry.

NGFF 0.4 lives in Zarr v2 groups (``multiscales``/``omero``/``plate``/``well`` as top-level
attributes), NGFF 0.5 in Zarr v3 groups (everything under the ``ome`` attribute, with its
``version``). :func:`open_ngff` opens a group at a path or fsspec URL and says which it is; the
metadata is validated with ome-zarr-models' own pydantic models of that version, and every
problem becomes an :class:`~archivestore.errors.InvalidInputError` naming the URL (secrets redacted).

One leniency, on purpose: ome-zarr-py 0.18 writes a 0.5 ``labels`` group without its ``version``;
a group below an OME-Zarr group (:meth:`Ngff.child`) that has no version is read as its parent's.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, overload

import numpy as np

from archivestore._secrets import redact
from archivestore.errors import InvalidInputError

__all__ = ["EXTRA_HINT", "Ngff", "VERSIONS", "check_arrays", "join", "models", "open_ngff", "transforms", "validate"]

EXTRA_HINT = "pip install 'archivestore[ome]'"
VERSIONS = {"0.4": 2, "0.5": 3}
"""The NGFF versions archivestore reads, with the Zarr format each lives in."""

_METADATA_KEYS = ("multiscales", "plate", "well", "labels", "bioformats2raw.layout")


def models(version: str) -> ModuleType:
    """``ome_zarr_models.v04`` or ``.v05`` with the submodules used here imported (or how to install them)."""
    package = "ome_zarr_models.v04" if version == "0.4" else "ome_zarr_models.v05"
    try:
        for sub in ("image", "labels", "image_label", "hcs", "well"):
            importlib.import_module(f"{package}.{sub}")
        return importlib.import_module(package)
    except ImportError as exc:
        raise ModuleNotFoundError(f"OME-Zarr support needs ome-zarr-models: {EXTRA_HINT}",
                                  name="ome_zarr_models") from exc


def join(url: str, path: str) -> str:
    """``url`` + ``/`` + ``path`` (a path inside an OME-Zarr: ``labels/nuclei``, ``A/1/0``)."""
    return f"{url.rstrip('/')}/{path.strip('/')}" if path.strip("/") else url


@dataclass
class Ngff:
    """One opened OME-Zarr group: where, which NGFF version, its attributes, and the Zarr group."""

    url: str
    version: str
    attrs: dict[str, Any]
    """The NGFF attributes: a 0.4 group's attributes, a 0.5 group's ``ome`` attribute."""
    extra: dict[str, Any]
    """Other attributes of the group (a 0.5 group's keys beside ``ome``)."""
    group: Any

    @property
    def where(self) -> str:
        """The URL for messages (secrets redacted)."""
        return redact(self.url)

    def kind(self) -> str:
        """``image``, ``plate``, ``well``, ``labels`` or ``bioformats2raw``."""
        for key, kind in (("multiscales", "image"), ("plate", "plate"), ("well", "well"), ("labels", "labels"),
                          ("bioformats2raw.layout", "bioformats2raw")):
            if self.attrs.get(key) is not None:
                return kind
        raise InvalidInputError(f"{self.where}: a Zarr group but not OME-Zarr (no multiscales, plate or well metadata)")

    @overload
    def child(self, path: str, *, missing_ok: Literal[False] = False) -> Ngff: ...

    @overload
    def child(self, path: str, *, missing_ok: bool) -> Ngff | None: ...

    def child(self, path: str, *, missing_ok: bool = False) -> Ngff | None:
        """The OME-Zarr group at ``path`` below this one (same store, same NGFF version).

        ``missing_ok``: None when there is no group at ``path``, instead of an error.
        """
        import zarr

        try:
            group = zarr.open_group(self.group.store_path / path.strip("/"), mode="r",
                                    zarr_format=VERSIONS[self.version])  # type: ignore[arg-type]
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError,
                zarr.errors.ContainsArrayError):
            if missing_ok:
                return None
            raise InvalidInputError(f"{redact(join(self.url, path))}: no Zarr group there") from None
        return _ngff(join(self.url, path), group, fallback=self.version)


def _zarr_store(url: str, storage_options: Mapping[str, Any] | None, where: str) -> Any:
    import zarr.storage

    if "://" in url and not url.startswith("file://"):
        try:
            return zarr.storage.FsspecStore.from_url(url, storage_options=dict(storage_options or {}), read_only=True)
        except (ImportError, ValueError) as exc:
            raise InvalidInputError(f"{where}: cannot open this URL: {redact(exc)}") from None
    return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=True)


def open_ngff(url: str, storage_options: Mapping[str, Any] | None = None) -> Ngff:
    """Open the OME-Zarr group at a path or fsspec URL and detect its NGFF version.

    Raises
    ------
    InvalidInputError
        Nothing there, an array instead of a group, a group without OME-Zarr metadata, an
        NGFF version other than 0.4 (Zarr v2) or 0.5 (Zarr v3), or a version in the other
        Zarr format.
    """
    import zarr

    where = redact(url)
    try:
        group = zarr.open_group(_zarr_store(url, storage_options, where), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise InvalidInputError(f"{where}: no Zarr group there") from None
    except (zarr.errors.ContainsArrayError, zarr.errors.NodeTypeValidationError):
        raise InvalidInputError(f"{where}: a Zarr array, not an OME-Zarr group") from None
    except Exception as exc:  # noqa: BLE001 - I/O, HTTP, credentials: all say the same to the caller
        raise InvalidInputError(f"{where}: cannot read it: {type(exc).__name__}: {redact(exc)}") from None
    return _ngff(url, group)


def _version_v2(attrs: Mapping[str, Any]) -> str:
    for key in ("multiscales", "plate", "well"):
        value = attrs.get(key)
        entry = value[0] if isinstance(value, list) and value else value
        if isinstance(entry, dict) and entry.get("version") is not None:
            return str(entry["version"])
    return "0.4"  # labels and bioformats2raw groups of 0.4 carry no version


def _ngff(url: str, group: Any, *, fallback: str | None = None) -> Ngff:
    where = redact(url)
    raw = group.attrs.asdict()
    zarr_format = group.metadata.zarr_format
    if zarr_format == 3:
        ome = raw.get("ome")
        if not isinstance(ome, dict):
            hint = " (NGFF 0.4 metadata in a Zarr v3 group)" if any(k in raw for k in _METADATA_KEYS) else ""
            raise InvalidInputError(f"{where}: a Zarr v3 group but not OME-Zarr: no 'ome' metadata{hint}")
        attrs, extra = dict(ome), {k: v for k, v in raw.items() if k != "ome"}
        version = attrs.get("version", fallback)
    else:
        attrs, extra = dict(raw), {}
        if not any(k in attrs for k in _METADATA_KEYS):
            raise InvalidInputError(f"{where}: a Zarr v2 group but not OME-Zarr (no multiscales, plate or well)")
        version = _version_v2(attrs)
    version = None if version is None else str(version)
    if version not in VERSIONS:
        raise InvalidInputError(f"{where}: NGFF version {version!r} is not supported; archivestore reads "
                                f"0.4 (Zarr v2) and 0.5 (Zarr v3)")
    if VERSIONS[version] != zarr_format:
        raise InvalidInputError(f"{where}: NGFF {version} metadata in a Zarr v{zarr_format} group "
                                f"(NGFF {version} lives in Zarr v{VERSIONS[version]})")
    if fallback is not None and "version" not in attrs and zarr_format == 3:
        attrs["version"] = version  # ome-zarr-py 0.18's labels group (see the module docstring)
    return Ngff(url, version, attrs, extra, group)


def validate(ngff: Ngff, model: Any, what: str, *, exclude: tuple[str, ...] = ()) -> Any:
    """``model.model_validate`` of the group's NGFF attributes (but ``exclude``), errors summarised on one line."""
    from pydantic import ValidationError

    try:
        return model.model_validate({k: v for k, v in ngff.attrs.items() if k not in exclude})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:4])
        raise InvalidInputError(f"{ngff.where}: invalid NGFF {ngff.version} {what} metadata: {problems}") from None


def check_arrays(ngff: Ngff, multiscale: Any) -> list[Any]:
    """The Zarr arrays of every level of ``multiscale``, each checked to exist with one dimension per axis."""
    import zarr

    arrays = []
    for dataset in multiscale.datasets:
        try:
            array = zarr.open_array(ngff.group.store_path / dataset.path, mode="r",
                                    zarr_format=VERSIONS[ngff.version])  # type: ignore[arg-type]
        except (FileNotFoundError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError,
                zarr.errors.ContainsGroupError):
            raise InvalidInputError(f"{ngff.where}: multiscales dataset {dataset.path!r} points at a missing array "
                                    f"({redact(join(ngff.url, dataset.path))})") from None
        if array.ndim != len(multiscale.axes):
            raise InvalidInputError(f"{ngff.where}: array {dataset.path!r} has {array.ndim} dimensions but the "
                                    f"multiscales metadata {len(multiscale.axes)} axes")
        arrays.append(array)
    return arrays


def transforms(ngff: Ngff, multiscale: Any, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translation of one level, in the axes' order (the dataset's, then the multiscale's)."""
    n = len(multiscale.axes)
    scale, offset = np.ones(n), np.zeros(n)
    steps = list(multiscale.datasets[level].coordinateTransformations) + list(multiscale.coordinateTransformations
                                                                              or [])
    for step in steps:
        if step.type == "scale":
            values = getattr(step, "scale", None)
            if not isinstance(values, list):
                raise InvalidInputError(f"{ngff.where}: scale given by a path ({getattr(step, 'path', '')!r}) is "
                                        f"not supported")
            scale, offset = scale * np.asarray(values, float), offset * np.asarray(values, float)
        elif step.type == "translation":
            values = getattr(step, "translation", None)
            if not isinstance(values, list):
                raise InvalidInputError(f"{ngff.where}: translation given by a path is not supported")
            offset = offset + np.asarray(values, float)
    return scale, offset
