"""Reading slides (``slides/<SM SeriesInstanceUID>``) as :class:`~archivestore.Store` methods (a mixin).

A slide is a group per pyramid level (``0`` full resolution, ``1``, ...) and per associated image
(``label``, ``overview``, ``thumbnail``), each holding ``image`` (y, x, channel) whose chunks are the
DICOM tiles in their encoding (:mod:`archivestore.codecs` decodes them). Reading is lazy: a region
costs the tiles it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archivestore.errors import NotFoundError

if TYPE_CHECKING:
    import xarray as xr

    from archivestore.layout import Layout

__all__ = ["StoreSlides"]


class StoreSlides:
    """The slide half of :class:`~archivestore.Store`."""

    url: str
    layout: Layout
    root: Any

    if TYPE_CHECKING:  # provided by Store and StoreWriting
        def group_state(self, path: str) -> dict[str, Any] | None: ...

        def open_dataset(self, path: str) -> xr.Dataset: ...

        def _names(self, path: str) -> list[str]: ...

    def slides(self) -> list[str]:
        """The SeriesInstanceUIDs of the complete slides in the store (lists the ``slides`` group, reads
        each slide's state)."""
        return [uid for uid in self._names(self.layout.SLIDES)
                if (self.group_state(self.layout.slide(uid)) or {}).get("complete")]

    def slide_attrs(self, series_uid: str) -> dict[str, Any]:
        """The slide's attributes (metadata, ``pyramid``, ``associated``, ``dicom``, ``record``); one read."""
        path = self.layout.slide(series_uid)
        if not (self.group_state(path) or {}).get("complete"):
            raise NotFoundError(f"no complete slide {series_uid!r} in {self.url}")
        return {k: v for k, v in self.root[path].attrs.items() if k != "_archivestore"}

    def slide(self, series_uid: str, level: int | str = 0) -> xr.DataArray:
        """One level of a slide as a lazy, dask-backed ``(y, x, channel)`` DataArray.

        Parameters
        ----------
        series_uid
            The SM series' SeriesInstanceUID.
        level
            ``0`` (full resolution), ``1``, ... as the series holds them, or ``"label"``,
            ``"overview"``, ``"thumbnail"``.

        Returns
        -------
        xarray.DataArray
            ``image`` with coordinates ``y``/``x`` in micrometres and ``channel``, chunked by the
            DICOM tile; its attributes are the level's, plus the slide's under ``slide``.
        """
        path = self.layout.slide(series_uid)
        state = self.group_state(path) or {}
        if not state.get("complete"):
            raise NotFoundError(f"no complete slide {series_uid!r} in {self.url}")
        names = [str(n) for n in (state.get("checksums") or {})]
        if str(level) not in names:
            raise NotFoundError(f"slide {series_uid!r} has no level {level!r}; it has {', '.join(names)}")
        ds = self.open_dataset(f"{path}/{level}")
        image = ds["image"]
        image.attrs.update({k: v for k, v in ds.attrs.items() if k != "_archivestore"})
        image.attrs["series_instance_uid"] = series_uid
        return image
