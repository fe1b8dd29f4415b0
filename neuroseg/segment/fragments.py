"""Fragments and their agglomeration: the field's fast path from affinities to segments.

A voxel-level mutex watershed takes every voxel pair as an edge; the usual path of the
connectomics pipelines (LSD, waterz) first cuts the volume into a few thousand
*fragments* and then agglomerates the much smaller region graph:

1. **Fragments** (:func:`fragments`): a seeded watershed on the boundary map. The boundary
   of a voxel is ``1 -`` the mean, over the nearest-neighbour axes, of the smaller of its
   two affinities along that axis (the edge to the voxel before it and the edge to the one
   after it), so both sides of a boundary are dark. Seeds are the maxima of the distance
   transform of the thresholded boundary (``boundary < threshold``), smoothed with a
   Gaussian of ``sigma`` pixels; by default each xy slice is cut on its own (2D distance
   transform, 2D watershed), as the LSD pipelines make their fragments, with IDs unique
   over the volume.
2. **Agglomeration** (:func:`waterz_agglomerate`): ``waterz.agglomerate(affs, thresholds,
   fragments=...)`` merges neighbouring fragments in order of their mean affinity
   (``OneMinus<MeanAffinity>``), while ``1 - mean affinity < threshold``.

waterz reads the three nearest-neighbour affinities ``(-1, 0, 0), (0, -1, 0), (0, 0, -1)``
in that order, as float32 in [0, 1], and prints its progress from C++ to the process's
standard output; :func:`waterz_agglomerate` checks everything first (so that no native
error reaches the caller) and silences that output at the file-descriptor level.

Measured on the 3D route's affinities (the project notes, ``shared/notes/agglomeration.md``): 5-15x
faster than the voxel-level mutex watershed, as accurate or better on three of four test
cases; which to use is chosen on validation data (:mod:`neuroseg.segment.choose`).

Examples
--------
>>> labels = np.repeat(np.repeat(np.array([[1, 2], [3, 4]]), 5, 0), 5, 1)[None].repeat(2, 0)
>>> affs = np.stack([(labels == np.roll(labels, s, a)) & (np.arange(labels.shape[a]) > 0)
...                  .reshape([-1 if i == a else 1 for i in range(3)])
...                  for a, s in ((0, 1), (1, 1), (2, 1))]).astype(np.float32)
>>> frags = fragments(affs)
>>> seg = waterz_agglomerate(affs, frags, [0.5])[0]
>>> len(np.unique(seg)), len(np.unique(labels))
(4, 4)
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from neuroseg.checks import check_unit_interval, native_call

__all__ = ["WATERZ_OFFSETS", "fragments", "fragment_boundary", "silenced_stdout", "waterz_agglomerate"]

#: The affinity channels waterz reads, in its order: (-z, -y, -x).
WATERZ_OFFSETS = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))


def _check_affs(affs: npt.ArrayLike, offsets: Sequence[Sequence[int]]) -> np.ndarray:
    """The three nearest affinities in waterz's order, float32 C-contiguous, checked."""
    affs = np.asarray(affs)
    if affs.ndim != 4:
        raise ValueError(f"affinities must be (channels, z, y, x); got shape {affs.shape}")
    if not (np.issubdtype(affs.dtype, np.floating) or np.issubdtype(affs.dtype, np.integer)):
        raise TypeError(f"affinities must be numbers; got dtype {affs.dtype}")
    offsets = [tuple(int(v) for v in o) for o in offsets]
    if len(offsets) != affs.shape[0]:
        raise ValueError(f"{affs.shape[0]} affinity channels but {len(offsets)} offsets")
    missing = [o for o in WATERZ_OFFSETS if o not in offsets]
    if missing:
        raise ValueError(f"the offsets must hold the nearest offsets {list(WATERZ_OFFSETS)}; "
                         f"{missing} missing from {offsets}")
    near = np.ascontiguousarray(affs[[offsets.index(o) for o in WATERZ_OFFSETS]], np.float32)
    if not np.all(np.isfinite(near)):
        raise ValueError("affinities contain NaN or infinite values")
    if near.size and (near.min() < 0 or near.max() > 1):
        raise ValueError(f"affinities must be in [0, 1]; got values in [{near.min()}, {near.max()}]")
    if min(near.shape[1:]) < 1:
        raise ValueError(f"affinities of an empty volume {near.shape[1:]}")
    return near


def fragment_boundary(affs: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = WATERZ_OFFSETS,
                      axes: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """The boundary map of the fragments: ``1 -`` the mean over ``axes`` of each voxel's
    smaller nearest affinity along that axis (both sides of a boundary are dark), float32.

    Examples
    --------
    >>> affs = np.ones((3, 1, 1, 4), np.float32); affs[2, 0, 0, 2] = 0   # cut x between 1 and 2
    >>> fragment_boundary(affs, axes=(2,))[0, 0].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    near = _check_affs(affs, offsets)
    sym = []
    for axis in axes:
        a = near[axis]  # edge to the voxel before along ``axis`` (0 at the volume's start)
        after = np.ones_like(a)
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[axis], dst[axis] = slice(0, -1), slice(1, None)
        after[tuple(src)] = a[tuple(dst)]
        before = a.copy()
        first = [slice(None)] * 3
        first[axis] = 0
        before[tuple(first)] = 1.0  # no neighbour before the first voxel: no boundary there
        sym.append(np.minimum(before, after))
    return (1.0 - np.mean(sym, axis=0)).astype(np.float32)


def _seeds_2d(boundary: np.ndarray, threshold: float, sigma: float, min_distance: int) -> np.ndarray:
    from scipy import ndimage

    inside = boundary < threshold
    dist = ndimage.distance_transform_edt(inside).astype(np.float32)
    if sigma > 0:
        dist = ndimage.gaussian_filter(dist, sigma)
    peaks = (dist == ndimage.maximum_filter(dist, size=2 * min_distance + 1)) & inside
    markers, _ = ndimage.label(peaks)
    return markers


def fragments(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]] = WATERZ_OFFSETS,
    threshold: float = 0.5,
    sigma: float = 1.0,
    min_distance: int = 1,
    per_slice: bool = True,
) -> np.ndarray:
    """Fragments of a volume: a seeded watershed on :func:`fragment_boundary`.

    Parameters
    ----------
    affs : array (K, z, y, x)
        Affinities in [0, 1], one channel per offset; the nearest three are used.
    offsets : sequence of int tuples
        The offset of each channel; must hold ``(-1, 0, 0), (0, -1, 0), (0, 0, -1)``.
    threshold : float
        Voxels with boundary below it are inside an object; seeds are the maxima of their
        distance transform.
    sigma : float
        Gaussian smoothing (pixels) of the distance transform before its maxima are taken
        (fewer, better seeds); 0: none.
    min_distance : int
        Maxima are taken in windows of ``2 * min_distance + 1`` pixels.
    per_slice : bool
        True (default): each xy slice on its own, boundary from the y and x affinities; False:
        in 3D, boundary from all three.

    Returns
    -------
    ndarray of uint64, shape (z, y, x): fragment IDs ``1..N``, unique over the volume (a slice
    without any inside voxel is one fragment). A watershed basin is split where the in-plane
    (with ``per_slice=False``: the 3D) graph of nearest affinities above ``1 - threshold``
    falls apart, so that no fragment crosses a cut the affinities are sure of (a voxel at a
    corner of three objects is otherwise a tie for the watershed).
    """
    from scipy import ndimage
    from skimage.segmentation import watershed

    threshold = check_unit_interval(threshold, "threshold")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a non-negative number; got {sigma}")
    if int(min_distance) != min_distance or min_distance < 1:
        raise ValueError(f"min_distance must be a positive integer; got {min_distance}")
    boundary = fragment_boundary(affs, offsets=offsets, axes=(1, 2) if per_slice else (0, 1, 2))
    out = np.zeros(boundary.shape, np.uint64)
    if not per_slice:
        inside = boundary < threshold
        dist = ndimage.distance_transform_edt(inside).astype(np.float32)
        if sigma > 0:
            dist = ndimage.gaussian_filter(dist, sigma)
        peaks = (dist == ndimage.maximum_filter(dist, size=2 * int(min_distance) + 1)) & inside
        markers, n = ndimage.label(peaks)
        seg = watershed(boundary, markers) if n else np.ones(boundary.shape, np.int64)
        return _split_by_graph(seg, affs, offsets, 1.0 - threshold, axes=(0, 1, 2))
    offset = 0
    for z, b in enumerate(boundary):
        markers = _seeds_2d(b, threshold, float(sigma), int(min_distance))
        if markers.max() == 0:
            seg = np.ones(b.shape, np.int64)
        else:
            seg = watershed(b, markers)
        out[z] = seg.astype(np.uint64) + offset
        offset += int(seg.max())
    return _split_by_graph(out, affs, offsets, 1.0 - threshold, axes=(1, 2))


def _split_by_graph(seg: np.ndarray, affs, offsets, cut: float, *, axes: Sequence[int]) -> np.ndarray:
    """``seg`` intersected with the connected components of the nearest-affinity graph along
    ``axes`` (edges with affinity above ``cut``), renumbered ``1..N`` (uint64)."""
    import cc3d

    near = _check_affs(affs, offsets)
    graph = np.zeros(seg.shape, np.uint8)
    for axis in axes:
        src = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
        dst = tuple(slice(0, -1) if a == axis else slice(None) for a in range(3))
        edge = near[axis][src] > cut
        # cc3d's bits for numpy axis a: 1 << (2a + 1) towards -a, 1 << 2a towards +a
        graph[src] |= np.where(edge, 1 << (2 * axis + 1), 0).astype(np.uint8)
        graph[dst] |= np.where(edge, 1 << (2 * axis), 0).astype(np.uint8)
    parts = native_call(cc3d.color_connectivity_graph, graph, connectivity=6,
                        what="fragments (cc3d.color_connectivity_graph)")
    pairs = np.stack([seg.ravel().astype(np.uint64), np.asarray(parts).ravel().astype(np.uint64)])
    _, inverse = np.unique(pairs, axis=1, return_inverse=True)
    return (inverse.reshape(seg.shape) + 1).astype(np.uint64)


@contextlib.contextmanager
def silenced_stdout() -> Iterator[None]:
    """Silence standard output for the duration: Python's ``sys.stdout`` (what Cython code
    prints) and the process's file descriptor 1 (what C++ code prints), sent to the null
    device; ``sys.stdout`` is flushed before and after."""
    sys.stdout.flush()
    fd = 1  # where C++'s std::cout writes, whatever sys.stdout is (a notebook's, pytest's)
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            try:
                with contextlib.redirect_stdout(_io.StringIO()):
                    yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def waterz_agglomerate(
    affs: npt.ArrayLike,
    fragments: npt.ArrayLike,
    thresholds: Sequence[float],
    *,
    offsets: Sequence[Sequence[int]] = WATERZ_OFFSETS,
) -> list[np.ndarray]:
    """Agglomerate ``fragments`` with waterz at each of ``thresholds``.

    Parameters
    ----------
    affs : array (K, z, y, x)
        Affinities in [0, 1]; the three nearest (see :data:`WATERZ_OFFSETS`) are passed.
    fragments : array of int, shape (z, y, x)
        Non-negative fragment IDs (e.g. :func:`fragments`), below 2**63.
    thresholds : sequence of float in [0, 1]
        waterz's merge thresholds: neighbouring regions merge while ``1 -`` their mean
        affinity is below it (higher merges more).
    offsets : sequence of int tuples
        The offset of each channel of ``affs``.

    Returns
    -------
    list of ndarray of uint64, one segmentation per threshold, in the order given.
    """
    import waterz

    near = _check_affs(affs, offsets)
    frags = np.asarray(fragments)
    if frags.shape != near.shape[1:]:
        raise ValueError(f"fragments {frags.shape} must have the affinities' shape {near.shape[1:]}")
    if not np.issubdtype(frags.dtype, np.integer):
        raise TypeError(f"fragments must be integers; got dtype {frags.dtype}")
    if frags.size and (frags.min() < 0 or int(frags.max()) >= 2**63):
        raise ValueError("fragment IDs must be in [0, 2**63)")
    frags = np.ascontiguousarray(frags, np.uint64)
    values = [check_unit_interval(t, "threshold") for t in thresholds]
    if not values:
        raise ValueError("need at least one threshold")
    order = sorted(set(values))

    def run() -> list[np.ndarray]:  # waterz works while its generator is read
        return [np.array(seg, np.uint64, copy=True)
                for seg in waterz.agglomerate(near, order, fragments=frags.copy())]

    with silenced_stdout():
        segs = native_call(run, what="fragment agglomeration (waterz.agglomerate)")
    out = dict(zip(order, segs))
    return [out[t] for t in values]
