"""Summary images of a two-photon movie: temporal moments and the local correlation image."""

from __future__ import annotations

import numpy as np


def local_correlation(movie: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Local correlation image of a (T, Y, X) movie.

    For each pixel, the mean Pearson correlation of its time trace with those of its 8
    neighbours (fewer at the border). Traces with zero variance correlate 0. Vectorised:
    each of the 4 neighbour directions is one array product, accumulated over time chunks.

    Examples
    --------
    >>> m = np.random.default_rng(0).normal(size=(50, 4, 4))
    >>> m[:, :2, :2] += 5 * np.random.default_rng(1).normal(size=(50, 1, 1))
    >>> c = local_correlation(m)
    >>> bool(c[0, 0] > 0.5 > c[3, 3])
    True
    """
    movie = np.asarray(movie)
    if movie.ndim != 3:
        raise ValueError(f"movie must be (T, Y, X), got shape {movie.shape}")
    t, h, w = movie.shape
    mean, std = temporal_moments(movie, chunk=chunk)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    # (dy, dx) with dy > 0 or (dy == 0 and dx > 0): each neighbour pair once.
    offsets = ((0, 1), (1, -1), (1, 0), (1, 1))
    sums = [np.zeros((h - dy, w - abs(dx)), np.float64) for dy, dx in offsets]
    for start in range(0, t, chunk):
        z = ((movie[start : start + chunk] - mean) * scale).astype(np.float32)
        for k, (dy, dx) in enumerate(offsets):
            a, b = _pair_slices(h, w, dy, dx)
            sums[k] += np.einsum("tyx,tyx->yx", z[(slice(None), *a)], z[(slice(None), *b)])
    for k, (dy, dx) in enumerate(offsets):
        a, b = _pair_slices(h, w, dy, dx)
        corr = sums[k] / t
        total[a] += corr
        total[b] += corr
        count[a] += 1
        count[b] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


def temporal_moments(movie: np.ndarray, *, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) over axis 0, in float64, chunk by chunk.

    Avoids the full-size float64 copy that ``movie.std(axis=0)`` makes.
    """
    t = movie.shape[0]
    total = np.zeros(movie.shape[1:], np.float64)
    for start in range(0, t, chunk):
        total += movie[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / t
    sq = np.zeros_like(mean)
    for start in range(0, t, chunk):
        sq += np.square(movie[start : start + chunk] - mean).sum(axis=0)
    return mean, np.sqrt(sq / t)


def _pair_slices(h: int, w: int, dy: int, dx: int):
    """Slices selecting pixels p and their neighbour p + (dy, dx), both inside the image."""
    ys_a, ys_b = slice(0, h - dy), slice(dy, h)
    if dx >= 0:
        xs_a, xs_b = slice(0, w - dx), slice(dx, w)
    else:
        xs_a, xs_b = slice(-dx, w), slice(0, w + dx)
    return (ys_a, xs_a), (ys_b, xs_b)


CORR_DESCRIPTION = (
    "local correlation image: mean Pearson correlation of each pixel trace with its 8 "
    "neighbours, frames 0-{last}"
)
