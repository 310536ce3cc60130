"""The numpy kernel of study overlap: every rater pair of a block of images from one Gram product.

Per image × feature the raters' maps are the rows of a matrix ``U`` over superpixels, and one
weighted product ``(U w) Uᵀ`` (``w``: pixels per superpixel) holds every pixel sum a pair
needs. The rules (missing values, binarising, NaN cases) are those of
:mod:`archivestore.analysis._overlap`.

**Two exact paths.** Annotations are 0, 0.5 or 1 (or NaN), so a graded map is
``x = (P + D) / 2`` with the indicator maps ``P = x > 0`` and ``D = x >= 1``. When every
value of a block is on that grid, the binary map of the Dice measures is ``P`` or ``D``
itself, and the image has at most 2**24 pixels, ``U = [P; D]`` in float32 gives integer
sums below 2**24: exact, in single precision (half the memory traffic and BLAS time of
double). Otherwise (other values, other thresholds, larger images) ``U = [B; x]`` in
float64, exact for grid values up to ~30 megapixels, and accurate to rounding for
others. Either way the correlation and Dice are then formed in float64 from exact sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["pair_measures"]

_Sums = tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]
"""Weighted binary intersections, graded cross sums, graded sums, unweighted binary intersections."""

_EXACT_F32 = 2**24
"""Integer sums stay exact in float32 up to this value."""


def _on_grid(x: NDArray[Any]) -> tuple[bool, NDArray[np.bool_]]:
    """Whether every value is 0, 0.5, 1 or NaN; and which (…, rater) rows have a value."""
    present = x == x  # not NaN
    annotated = present.any(axis=-1)
    n = np.count_nonzero(present)
    on_grid = np.count_nonzero(x == 0) + np.count_nonzero(x == 0.5) + np.count_nonzero(x == 1) == n
    return bool(on_grid), np.asarray(annotated)


def _grid_binary(threshold: float, inclusive: bool) -> int | None:
    """On the 0/0.5/1 grid, which indicator the binary map is: 0 for ``P``, 1 for ``D``, else None."""
    passes = [v for v in (0.0, 0.5, 1.0) if (v >= threshold if inclusive else v > threshold)]
    if passes == [0.5, 1.0]:
        return 0
    if passes == [1.0]:
        return 1
    return None


def _sums_grid(x: NDArray[Any], w: NDArray[Any], which: int) -> _Sums:
    """Float32 path: ``(B w Bᵀ, 4 x w xᵀ, 2 x w, B Bᵀ)`` from the indicators ``[P; D]``."""
    r = x.shape[-2]
    u = np.empty(x.shape[:-2] + (2 * r, x.shape[-1]), dtype=np.float32)
    np.greater(x, 0, out=u[..., :r, :], casting="unsafe")
    np.greater_equal(x, 1, out=u[..., r:, :], casting="unsafe")
    g = (u * w.astype(np.float32)) @ np.swapaxes(u, -1, -2)
    g = g.astype(np.float64)
    pp, pd, dp, dd = g[..., :r, :r], g[..., :r, r:], g[..., r:, :r], g[..., r:, r:]
    sxy = pp + pd + dp + dd  # 4 Σ w x y
    sx = np.diagonal(pp, axis1=-2, axis2=-1) + np.diagonal(dd, axis1=-2, axis2=-1)  # 2 Σ w x
    b = u[..., which * r:(which + 1) * r, :]
    counts = (b @ np.swapaxes(b, -1, -2)).astype(np.float64)
    return (pp if which == 0 else dd), sxy, sx, counts


def _sums_general(x: NDArray[Any], w: NDArray[Any], threshold: float, inclusive: bool) -> _Sums:
    """Float64 path: ``(B w Bᵀ, x w xᵀ, x w, B Bᵀ)`` with ``B`` the thresholded map."""
    r = x.shape[-2]
    u = np.empty(x.shape[:-2] + (2 * r, x.shape[-1]), dtype=np.float64)
    graded = u[..., r:, :]
    np.copyto(graded, x)  # values compared in double precision, as given
    np.copyto(graded, 0.0, where=np.isnan(graded))  # a missing value counts as 0 (absent), also when binarised
    compare = np.greater_equal if inclusive else np.greater
    compare(graded, threshold, out=u[..., :r, :], casting="unsafe")
    uw = u * w.astype(np.float64)
    g = uw @ np.swapaxes(u, -1, -2)
    sx = uw[..., r:, :].sum(axis=-1)
    b = u[..., :r, :].astype(np.float32)  # superpixel counts: exact in float32
    counts = (b @ np.swapaxes(b, -1, -2)).astype(np.float64)
    return g[..., :r, :r], g[..., r:, r:], sx, counts


KERNEL_IMAGES = 8
"""Images per pass through the kernel: their indicator maps (~2.5 MB for 4 features x 10 raters x
1000 superpixels) stay in the CPU's cache between building them and the Gram product; blocks of
64 images take 2.7x as long (``benchmarks/README.md``, study overlap)."""


def pair_measures(
    values: NDArray[Any],
    weights: NDArray[Any],
    valid: NDArray[Any],
    threshold: float,
    inclusive: bool,
    same: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Dice, correlation and superpixel Dice of every pair of units of each (image, batch).

    Parameters
    ----------
    values : ndarray (image, batch, unit, superpixel)
        Annotation values (float32 or float64), NaN where missing.
    weights : ndarray (image, superpixel)
        Pixels counted per superpixel (non-negative integers).
    valid : ndarray (image,) bool
        Whether the pixel measures are defined for the image (``has_mask``).
    threshold, inclusive : float, bool
        Binarising of the Dice measures: ``value > threshold`` (``>=`` when inclusive).
    same : ndarray (unit, unit) bool
        Pairs that are the same rater (set to NaN).

    Returns
    -------
    ndarray (3, image, batch, unit, unit) float64
        ``dice``, ``correlation``, ``superpixel_dice``.

    Notes
    -----
    With ``N = Σw`` the correlation is ``(N Σxy - Σx Σy) / sqrt((N Σx² - (Σx)²)(N Σy² - (Σy)²))``.
    On the float32 path every sum is an integer (the graded sums scaled by 2 and 4, which the
    ratio cancels), so a map is constant exactly when its variance term is 0; on the float64
    path when it is at most ``1e-12 · N Σx²``.
    """
    x, w = np.asarray(values), np.asarray(weights)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    valid = np.asarray(valid, dtype=bool)
    out = np.empty((3, *x.shape[:-1], x.shape[-2]))
    for lo in range(0, x.shape[0], KERNEL_IMAGES):
        part = slice(lo, lo + KERNEL_IMAGES)
        out[:, part] = _measures(x[part], w[part], valid[part], threshold, inclusive, same)
    return out


def _measures(x: NDArray[Any], weights: NDArray[Any], valid: NDArray[np.bool_], threshold: float, inclusive: bool,
              same: NDArray[np.bool_]) -> NDArray[np.float64]:
    """:func:`pair_measures` of a few images."""
    w = weights[:, None, None, :]
    on_grid, annotated = _on_grid(x)
    total = np.asarray(weights, dtype=np.float64).sum(axis=-1)[:, None, None]  # (image, 1, 1)
    which = _grid_binary(threshold, inclusive) if on_grid else None
    exact = which is not None and (total.size == 0 or float(total.max()) < _EXACT_F32)
    if exact:
        assert which is not None
        inter, sxy, sx, counts = _sums_grid(x, w, which)
        tolerance = 0.0
    else:
        inter, sxy, sx, counts = _sums_general(x, w, threshold, inclusive)
        tolerance = 1e-12
    size = np.diagonal(inter, axis1=-2, axis2=-1)
    size_s = np.diagonal(counts, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2.0 * inter / (size[..., :, None] + size[..., None, :])
        sp_dice = 2.0 * counts / (size_s[..., :, None] + size_s[..., None, :])
        num = total[..., None] * sxy - sx[..., :, None] * sx[..., None, :]
        var = np.diagonal(num, axis1=-2, axis2=-1)
        varies = var > tolerance * total * np.diagonal(sxy, axis1=-2, axis2=-1)
        corr = num / np.sqrt(var[..., :, None] * var[..., None, :])
    corr = np.where(varies[..., :, None] & varies[..., None, :], corr, np.nan)
    both = annotated[..., :, None] & annotated[..., None, :] & ~same
    pixel_ok = both & valid[:, None, None, None]
    return np.stack([np.where(pixel_ok, dice, np.nan), np.where(pixel_ok, corr, np.nan),
                     np.where(both, sp_dice, np.nan)])
