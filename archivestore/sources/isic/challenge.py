"""ISIC challenge data already on disk (2016, 2017, 2018 layouts), as a source.

Files are recognised by their real names and grouped by image id across all the
directories given, so images, masks, superpixels and ground truth kept in separate
folders (as the challenges ship them) come together:

=====================================  ===========================================
``ISIC_0000000.jpg`` / ``.png``        the image
``ISIC_0000000_superpixels.png``       superpixel index (RGB-encoded or 16-bit gray)
``ISIC_0000000_segmentation.png``      lesion mask (2017/2018; ``_Segmentation`` 2016)
``ISIC_0000000_features.json``         2017 part 2 per-superpixel feature values
``ISIC_0000000_attribute_<f>.png``     2018 task 2 per-feature mask
``*.csv``                              ground truth / metadata rows → the record
``ATTRIBUTION.txt``, ``LICENSE.txt``   skipped
=====================================  ===========================================
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from archivestore.sources._base import Annotation, BadItem, Item, Loader, validate_id

__all__ = ["ChallengeSource", "item_from_origin", "read_csv_records"]

_FILE_RE = re.compile(
    r"^(?P<id>.+?)(?P<suffix>_superpixels|_segmentation|_Segmentation|_features|_attribute_(?P<feature>.+))?"
    r"\.(?P<ext>jpe?g|png|json)$",
    re.IGNORECASE,
)
_SKIP = {"attribution.txt", "license.txt", "readme.txt", ".ds_store", "thumbs.db"}


def _reader(path: Path) -> Loader:
    return lambda: path.read_bytes()


def _typed(values: list[str]) -> list[Any]:
    """Parse a CSV column: all ints → int, all numbers → float, else strings; empty → None."""
    present = [v for v in values if v != ""]
    for cast in (int, float):
        try:
            parsed = [cast(v) for v in present]
        except ValueError:
            continue
        it = iter(parsed)
        return [next(it) if v != "" else None for v in values]
    return [v if v != "" else None for v in values]


def _section(path: Path) -> str:
    name = path.name.lower()
    if "groundtruth" in name or "ground_truth" in name:
        return "ground_truth"
    if "metadata" in name:
        return "clinical"
    return path.stem


def read_csv_records(path: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """Read a challenge CSV into ``(section, {image id: {column: value}})``.

    Headered files have ``image_id`` or ``image`` as their first column; the 2016
    part 3 file has no header and is read as ``image_id,benign_malignant``.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        return _section(path), {}
    if rows[0][0].strip().lower() in ("image_id", "image", "isic_id", "image_name"):
        header, body = [h.strip() for h in rows[0]], rows[1:]
    else:
        header = ["image_id", "benign_malignant"] + [f"column_{i}" for i in range(2, len(rows[0]))]
        body = rows
    columns = {h: _typed([r[i].strip() if i < len(r) else "" for r in body]) for i, h in enumerate(header)}
    ids = [r[0].strip() for r in body]
    out = {}
    for k, image_id in enumerate(ids):
        out[image_id] = {h: columns[h][k] for h in header[1:]}
    return _section(path), out


class ChallengeSource:
    """Images, masks, superpixels, features and CSV rows found in challenge directories.

    Parameters
    ----------
    dirs
        Directories to scan (recursively).
    study
        Study that ``*_features.json`` values go to (default: the name of the
        directory argument the file was found under).
    rater
        Whose masks and feature values these are (default ``ground_truth``).
    """

    def __init__(self, dirs: Sequence[str | os.PathLike], *, study: str | None = None,
                 rater: str = "ground_truth") -> None:
        self.dirs = [Path(d) for d in dirs]
        self.study = study
        self.rater = rater
        self.problems: list[BadItem] = []
        self.ignored: list[Path] = []
        self.csv_only: list[str] = []
        self._items = self._scan()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def _scan(self) -> list[Item]:
        files: dict[str, dict[str, Any]] = {}
        records: dict[str, dict[str, Any]] = {}
        for top in self.dirs:
            if not top.is_dir():
                raise FileNotFoundError(f"not a directory: {top}")
            study = self.study or top.resolve().name
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for name in sorted(filenames):
                    self._file(Path(dirpath) / name, study, files, records)
        items = []
        for image_id in sorted(files):
            parts = files[image_id]
            try:
                validate_id(image_id, str(parts["where"]))
            except BadItem as exc:
                self.problems.append(exc)
                continue
            record = {"isic_id": image_id, **records.get(image_id, {})}
            origin = {"source": "challenge", "rater": self.rater,
                      "files": {k: str(v) for k, v in parts["paths"].items()}}
            items.append(Item(
                id=image_id,
                metadata=record,
                image=parts.get("image"),
                superpixels=parts.get("superpixels"),
                mask=parts.get("mask"),
                attributes=parts.get("attributes", {}),
                annotations=parts.get("annotations", []),
                where=str(parts["where"]),
                rater=self.rater,
                origin=origin,
            ))
        for image_id in sorted(set(records) - set(files)):
            self.csv_only.append(image_id)
        return items

    def _file(self, path: Path, study: str, files: dict, records: dict) -> None:
        if path.name.lower() in _SKIP or path.name.startswith("._"):
            return
        if path.suffix.lower() == ".csv":
            section, rows = read_csv_records(path)
            for image_id, values in rows.items():
                try:
                    validate_id(image_id, f"{path} (row {image_id!r})")
                except BadItem as exc:
                    self.problems.append(exc)
                    continue
                records.setdefault(image_id, {}).setdefault(section, {}).update(values)
            return
        m = _FILE_RE.match(path.name)
        if not m:
            self.ignored.append(path)
            return
        image_id, suffix = m["id"], (m["suffix"] or "").lower()
        parts = files.setdefault(image_id, {"where": path, "paths": {}})
        if suffix != "_features":
            key = f"attribute_{m['feature']}" if m["feature"] else (suffix.lstrip("_") or "image")
            parts["paths"]["mask" if key == "segmentation" else key] = path.resolve()
        if suffix == "":
            if m["ext"].lower() == "json":
                self.ignored.append(path)
                return
            parts["image"] = _reader(path)
            parts["where"] = path
        elif suffix == "_superpixels":
            parts["superpixels"] = _reader(path)
        elif suffix == "_segmentation":
            parts["mask"] = _reader(path)
        elif suffix == "_features":
            parts.setdefault("annotations", []).append(
                Annotation(study=study, rater=self.rater, values=_json_reader(path), where=str(path)))
        else:
            parts.setdefault("attributes", {})[m["feature"]] = _reader(path)


def item_from_origin(image_id: str, origin: dict[str, Any], metadata: dict[str, Any]) -> Item:
    """Rebuild the item of one image from the ``origin`` kept in the store (for repair)."""
    files = {k: Path(v) for k, v in origin["files"].items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{image_id}: source files are gone: {', '.join(missing)}")
    return Item(
        id=image_id, metadata=metadata,
        image=_reader(files["image"]) if "image" in files else None,
        superpixels=_reader(files["superpixels"]) if "superpixels" in files else None,
        mask=_reader(files["mask"]) if "mask" in files else None,
        attributes={k[len("attribute_"):]: _reader(p) for k, p in files.items() if k.startswith("attribute_")},
        where=str(files.get("image", next(iter(files.values()), ""))),
        rater=origin.get("rater", "ground_truth"),
        origin=origin,
    )


def _json_reader(path: Path) -> Callable[[], dict[str, Any]]:
    def load() -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path.name} is not a JSON object of feature lists")
        return data
    return load
