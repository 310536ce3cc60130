"""Reading zip archives from the network without trusting them.

A zip is checked as a whole from its central directory *before* any entry is read:

- names: no ``..`` component, no absolute path (``/x``, ``\\x``), no drive letter
  (``C:``), no NUL or other control character;
- kinds: only regular files and directories; symbolic links and other special files
  (their type is in the high bits of ``external_attr``) and encrypted entries are refused;
- sizes: at most ``max_entries`` entries, at most ``max_total_size`` bytes
  uncompressed in all, and no entry over ``min_ratio_size`` bytes that expands more
  than ``max_ratio`` times (a zip bomb is refused without inflating it).

Entries are then read with :mod:`zipfile`, which stops at each entry's declared size
and checks its CRC-32, so the sizes checked above bound what is read and corruption
is caught. Nothing is ever written to disk under an entry's name: entries come back as
``(name, bytes)``.
"""

from __future__ import annotations

import logging
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from archivestore.errors import InvalidInputError

__all__ = ["UnsafeZipError", "ZipLimits", "check_zip", "dicom_members", "is_dicom"]

log = logging.getLogger("archivestore.zip")

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


class UnsafeZipError(InvalidInputError):
    """A zip that is refused as a whole (unsafe entry names or kinds, or too large once inflated).

    ``entry`` names the offending entry (``None`` when the archive as a whole is refused).
    """

    def __init__(self, reason: str, entry: str | None = None) -> None:
        self.reason = reason
        self.entry = entry
        super().__init__(f"unsafe zip: {reason}")

    def __reduce__(self) -> tuple[type[UnsafeZipError], tuple[str, str | None]]:
        return type(self), (self.reason, self.entry)


@dataclass(frozen=True)
class ZipLimits:
    """Caps on what a zip may expand to.

    Parameters
    ----------
    max_total_size
        Uncompressed bytes of all entries together (default 4 GiB; a series is
        held in memory while it is decoded, so this also bounds memory).
    max_ratio
        Largest uncompressed/compressed ratio of one entry. Deflate cannot exceed
        about 1032:1, which a run of zeros reaches; DICOM images compress a few
        times, nearly empty segmentation frames a few hundred times (default 250).
    min_ratio_size
        Entries up to this many uncompressed bytes are not held to ``max_ratio``
        (small files cannot bomb; default 1 MiB).
    max_entries
        Most entries in one zip (default 100 000).
    """

    max_total_size: int = 4 << 30
    max_ratio: float = 250.0
    min_ratio_size: int = 1 << 20
    max_entries: int = 100_000


def _name_problem(name: str) -> str | None:
    """Why an entry name is unsafe, or ``None``."""
    if _CONTROL_RE.search(name):
        return "control character in entry name"
    if name.startswith(("/", "\\")):
        return "absolute entry path"
    if _DRIVE_RE.match(name):
        return "entry path with a drive letter"
    if ".." in re.split(r"[/\\]", name):
        return "entry path with '..'"
    return None


def _kind_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry's kind is unsafe (link, device, encrypted), or ``None``."""
    if info.flag_bits & 0x1:
        return "encrypted entry"
    if info.compress_type not in _METHODS:
        return f"unsupported compression method {info.compress_type}"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.create_system != 3 or kind in (0, stat.S_IFREG, stat.S_IFDIR):  # Unix file type in the high bits; 0: unset
        return None
    if kind == stat.S_IFLNK:
        return "symbolic link entry"
    return "special file entry (not a regular file)"


def check_zip(archive: zipfile.ZipFile, limits: ZipLimits | None = None) -> list[zipfile.ZipInfo]:
    """Check every entry of ``archive`` from its central directory; return the file entries.

    Raises
    ------
    UnsafeZipError
        An unsafe name or kind, or a cap of ``limits`` exceeded (nothing has been read).
    """
    limits = limits or ZipLimits()
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise UnsafeZipError(f"{len(infos)} entries (the cap is {limits.max_entries})")
    total = 0
    files = []
    for info in infos:
        problem = _name_problem(info.filename) or _kind_problem(info)
        if problem:
            raise UnsafeZipError(f"{problem}: {info.filename!r}", info.filename)
        if info.is_dir():
            continue
        total += info.file_size
        if total > limits.max_total_size:
            raise UnsafeZipError(f"more than {limits.max_total_size} bytes once uncompressed (the cap)", info.filename)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.min_ratio_size and ratio > limits.max_ratio:
            raise UnsafeZipError(
                f"entry {info.filename!r} expands {ratio:.0f} times ({info.compress_size} -> {info.file_size} bytes;"
                f" the cap is {limits.max_ratio:g}): a zip bomb?", info.filename)
        files.append(info)
    return files


def is_dicom(data: bytes) -> bool:
    """Whether ``data`` is a DICOM Part 10 file (the ``DICM`` marker after the 128-byte preamble)."""
    return data[128:132] == b"DICM"


def dicom_members(file: str | IO[bytes], limits: ZipLimits | None = None) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the DICOM entries of a zip, after :func:`check_zip`.

    Entries that are not DICOM Part 10 files (a ``LICENSE``, a ``README``) are skipped.
    Each entry is read whole and its CRC-32 checked; names are never used as paths.

    Raises
    ------
    UnsafeZipError
        The zip is refused (see :func:`check_zip`).
    zipfile.BadZipFile
        Not a zip, truncated, or an entry fails its CRC (a retry may help).
    """
    with zipfile.ZipFile(file) as archive:
        members = []
        for info in check_zip(archive, limits):
            try:
                data = archive.read(info)
            except (zlib.error, EOFError) as exc:
                raise zipfile.BadZipFile(f"entry {info.filename!r} does not inflate: {exc}") from None
            if len(data) != info.file_size:  # zipfile guarantees it; a cheap belt to its braces
                raise zipfile.BadZipFile(f"entry {info.filename!r} has {len(data)} bytes, not {info.file_size}")
            if is_dicom(data):
                members.append((info.filename, data))
            else:
                log.debug("skipping %r: not a DICOM file", PurePosixPath(info.filename).name)
    return members
