"""Affinities: the 3D route's targets and post-processing (the WEBKNOSSOS route).

An *affinity* of a voxel ``p`` for an ``offset`` ``o`` is 1 when ``p`` and ``p + o`` carry the
same non-zero neuron ID, else 0. A 3D U-Net predicts one affinity channel per offset: the
nearest neighbours ``(-1, 0, 0), (0, -1, 0), (0, 0, -1)`` (-z, -y, -x) and, optionally,
longer ranges, which a mutex watershed uses as repulsive evidence. Segments come from the
predicted affinities by

- ``"cc"``: connected components over the nearest-neighbour edges above a threshold (the
  WEBKNOSSOS post-processing), with :func:`cc3d.color_connectivity_graph`;
- ``"mws"``: a mutex watershed over all offsets (:func:`mwatershed.agglom`): edges are taken
  in order of ``|affinity - threshold|``, above the threshold they join, below they forbid a
  join;
- ``"waterz"``: fragments (a seeded watershed per xy slice) agglomerated by waterz on their
  region graph (:mod:`neuroseg.segment.fragments`): neighbouring regions merge while their
  mean affinity is above ``threshold`` (waterz's own threshold is ``1 - threshold``), the
  field's fast path.

Both may dissolve segments smaller than ``min_size`` voxels into their nearest large
neighbour (nearest in nm when ``resolution`` is given).

The user call is :func:`neuroseg.segment.volume_3d.segment_volume_3d`; the network is trained
with :func:`neuroseg.segment.volume_3d.train_affinities` (class-balanced BCE on a validity-masked target, flips, rotations,
in-plane elastic deformation, intensity changes) and is a model folder whose ``meta`` holds
``"target": "affinities"``, its ``offsets``, its voxel size (``pixel_size``, see :mod:`neuroseg.nets.scale`), the tile of
its tiled prediction and, once chosen on validation data, its ``postprocess``.

Examples
--------
>>> labels = np.array([[[1, 1, 2]]])
>>> affinities_from_labels(labels, offsets=[(0, 0, -1)])[0].tolist()
[[[0, 1, 0]]]
>>> cut = connected_components(affinities_from_labels(labels), threshold=0.5)
>>> cut.tolist()
[[[1, 1, 2]]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from neuroseg.checks import check_unit_interval, native_call

__all__ = [
    "METHODS",
    "NEAREST",
    "TARGET",
    "affinities_from_labels",
    "affinity_target",
    "agglomerate",
    "boundary_map",
    "connected_components",
    "dissolve_small",
    "long_range_offsets",
    "mutex_watershed",
    "valid_mask",
]

TARGET = "affinities"
#: The nearest-neighbour offsets (-z, -y, -x).
NEAREST = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
#: Post-processings of :func:`agglomerate`.
METHODS = ("cc", "mws", "waterz")


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------


def check_offsets(offsets: Sequence[Sequence[int]], ndim: int) -> list[tuple[int, ...]]:
    out = []
    for o in offsets:
        o = tuple(int(v) for v in o)
        if len(o) != ndim or not any(o):
            raise ValueError(f"offset {o} must have {ndim} integers, not all zero")
        out.append(o)
    if not out:
        raise ValueError("need at least one offset")
    return out


def _pairs(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(src, dst)``: voxels ``p`` whose neighbour ``p + offset`` is inside, and those
    neighbours."""
    src = tuple(slice(max(-o, 0), max(n - max(o, 0), 0)) for n, o in zip(shape, offset))
    dst = tuple(slice(max(o, 0), max(n + min(o, 0), 0)) for n, o in zip(shape, offset))
    return src, dst


def affinities_from_labels(
    labels: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST
) -> np.ndarray:
    """Affinities of a label volume: 1 where ``p`` and ``p + offset`` share a non-zero ID.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x) (or any n-d shape matching the offsets)
        Dense IDs; 0 is background/boundary and never has affinity 1.
    offsets : sequence of int tuples
        One channel per offset; a neighbour outside the volume gives affinity 0.

    Returns
    -------
    ndarray of uint8, shape (len(offsets), *labels.shape)

    Examples
    --------
    >>> affinities_from_labels([[[1, 1], [0, 0]]], offsets=[(0, -1, 0), (0, 0, -1)]).tolist()
    [[[[0, 0], [0, 0]]], [[[0, 1], [0, 0]]]]
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
    offsets = check_offsets(offsets, labels.ndim)
    out = np.zeros((len(offsets), *labels.shape), np.uint8)
    for k, o in enumerate(offsets):
        src, dst = _pairs(labels.shape, o)
        a, b = labels[src], labels[dst]
        out[(k, *src)] = (a == b) & (a != 0)
    return out


def long_range_offsets(resolution: Sequence[float], *, long_range_nm: float | None
                       ) -> list[tuple[int, int, int]]:
    """The nearest offsets plus, with ``long_range_nm``, one long-range offset per axis of
    about that length in nm (at least 2 voxels), all pointing back.

    Examples
    --------
    >>> long_range_offsets((40, 10, 10), long_range_nm=80)[3:]
    [(-2, 0, 0), (0, -8, 0), (0, 0, -8)]
    """
    out = [tuple(o) for o in NEAREST]
    if long_range_nm:
        for axis, r in enumerate(resolution):
            o = [0, 0, 0]
            o[axis] = -max(2, int(round(float(long_range_nm) / float(r))))
            out.append(tuple(o))
    return out


def valid_mask(shape: Sequence[int], *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """1 where the neighbour ``p + offset`` lies inside a volume of ``shape``, else 0.

    Examples
    --------
    >>> valid_mask((1, 1, 3), offsets=[(0, 0, -1)]).tolist()
    [[[[0, 1, 1]]]]
    """
    shape = tuple(int(s) for s in shape)
    offsets = check_offsets(offsets, len(shape))
    out = np.zeros((len(offsets), *shape), np.uint8)
    for k, o in enumerate(offsets):
        src, _ = _pairs(shape, o)
        out[(k, *src)] = 1
    return out


def affinity_target(labels: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """The training target of a label crop: the affinities, then their validity mask.

    Returns float32 ``(2 K, *shape)``; :func:`neuroseg.nets.train.loss_fn` reads a target with
    twice the network's channels as (target, mask), so edges leaving the crop do not count.
    """
    labels = np.asarray(labels)
    return np.concatenate(
        [affinities_from_labels(labels, offsets=offsets), valid_mask(labels.shape, offsets=offsets)]
    ).astype(np.float32)


# --------------------------------------------------------------------------------------------
# from affinities to segments
# --------------------------------------------------------------------------------------------


def _check_affinities(affs: npt.ArrayLike, offsets) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    affs = np.asarray(affs)
    if affs.ndim < 3:
        raise ValueError(f"affinities must be (channels, *spatial); got shape {affs.shape}")
    if not np.issubdtype(affs.dtype, np.floating) and not np.issubdtype(affs.dtype, np.integer):
        raise TypeError(f"affinities must be numbers; got dtype {affs.dtype}")
    if np.issubdtype(affs.dtype, np.floating) and not np.all(np.isfinite(affs)):
        raise ValueError("affinities contain NaN or infinite values")
    offsets = check_offsets(offsets, affs.ndim - 1)
    if len(offsets) != affs.shape[0]:
        raise ValueError(f"{affs.shape[0]} affinity channels but {len(offsets)} offsets")
    return affs, offsets


def _nearest_channels(offsets: list[tuple[int, ...]], ndim: int) -> list[tuple[int, int]]:
    """For each axis, the channel of its unit offset and that offset's sign."""
    out = []
    for axis in range(ndim):
        for k, o in enumerate(offsets):
            if abs(o[axis]) == 1 and sum(abs(v) for v in o) == 1:
                out.append((k, o[axis]))
                break
        else:
            raise ValueError(f"no nearest-neighbour offset along axis {axis} in {offsets}")
    return out


def relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """IDs 1..N in order of first appearance in a C-order scan, as uint32."""
    flat = labels.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return (rank[inverse] + 1).astype(np.uint32).reshape(labels.shape)


def dissolve_small(labels: np.ndarray, min_size: int, resolution=None) -> np.ndarray:
    """Segments below ``min_size`` voxels given to the nearest voxel of a larger one (nearest
    in nm with ``resolution``); IDs renumbered ``1..N`` in order of first appearance (uint32).

    Examples
    --------
    >>> dissolve_small(np.array([[5, 5, 5, 9]]), 2).tolist()
    [[1, 1, 1, 1]]
    """
    from scipy import ndimage

    labels = relabel_by_first_appearance(labels)
    if min_size <= 1:
        return labels
    counts = np.bincount(labels.ravel())
    small = counts[labels] < min_size
    if not small.any() or small.all():
        return labels
    idx = ndimage.distance_transform_edt(
        small, sampling=resolution, return_distances=False, return_indices=True
    )
    return relabel_by_first_appearance(labels[tuple(idx)])


def _check_min_size(min_size: int) -> int:
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer; got {min_size!r}")
    return int(min_size)


def connected_components(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]] = NEAREST,
    threshold: float = 0.5,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
) -> np.ndarray:
    """Segments: connected components of the nearest-neighbour edges with affinity > ``threshold``.

    Parameters
    ----------
    affs : array (K, z, y, x) (or (K, y, x))
        Affinities in [0, 1], one channel per offset; only the unit offsets are used.
    offsets : sequence of int tuples
        The offset of each channel; each axis needs one unit offset (-1 or +1).
    threshold : float
        An edge joins its two voxels when its affinity is above it.
    min_size : int
        Segments of fewer voxels are dissolved into the nearest larger one (0: keep all).
    resolution : sequence of float, optional
        Voxel size, for "nearest" in :paramref:`min_size` (default isotropic).

    Returns
    -------
    ndarray of uint32, IDs 1..N (every voxel belongs to a segment)

    Examples
    --------
    >>> affs = np.zeros((2, 2, 2)); affs[1, :, 1] = 0.9  # x-edges of both rows
    >>> connected_components(affs, offsets=[(-1, 0), (0, -1)]).tolist()
    [[1, 1], [2, 2]]
    """
    import cc3d

    affs, offsets = _check_affinities(affs, offsets)
    min_size = _check_min_size(min_size)
    threshold = check_unit_interval(threshold, "threshold")
    spatial = affs.shape[1:]
    if len(spatial) not in (2, 3):
        raise ValueError(f"connected_components needs 2D or 3D affinities; got {len(spatial)}D")
    graph = np.zeros(spatial, np.uint8)
    # cc3d's bit for axis a: 1 << 2a towards +a, 1 << (2a + 1) towards -a
    for axis, (k, sign) in enumerate(_nearest_channels(offsets, len(spatial))):
        offset = tuple(sign if a == axis else 0 for a in range(len(spatial)))
        src, dst = _pairs(spatial, offset)
        edge = affs[(k, *src)] > threshold
        towards, back = (1 << (2 * axis + 1), 1 << (2 * axis)) if sign < 0 else (
            1 << (2 * axis), 1 << (2 * axis + 1))
        graph[src] |= np.where(edge, towards, 0).astype(np.uint8)
        graph[dst] |= np.where(edge, back, 0).astype(np.uint8)
    labels = native_call(cc3d.color_connectivity_graph, graph,
                         connectivity=4 if len(spatial) == 2 else 6,
                         what="connected components (cc3d.color_connectivity_graph)")
    return dissolve_small(np.asarray(labels), min_size, resolution)


def mutex_watershed(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]] = NEAREST,
    threshold: float = 0.5,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
    strides: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Segments by a mutex watershed over all offsets (:func:`mwatershed.agglom`).

    Every edge carries ``affinity - threshold``: positive edges join, negative ones forbid a
    join, and edges are taken in order of decreasing magnitude. ``strides`` (per offset)
    thin out the long-range edges (faster, less over-splitting). Other parameters as
    :func:`connected_components`.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2]]])
    >>> offs = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -2)]
    >>> mutex_watershed(affinities_from_labels(labels, offsets=offs), offsets=offs).tolist()
    [[[1, 1, 2, 2]]]
    """
    import mwatershed

    affs, offsets = _check_affinities(affs, offsets)
    min_size = _check_min_size(min_size)
    threshold = check_unit_interval(threshold, "threshold")
    if strides is not None and len(strides) != len(offsets):
        raise ValueError(f"strides must give one stride per offset ({len(offsets)}); got {len(strides)}")
    # an offset as long as an axis (a thin volume) joins no voxel pair: leave its channel out
    # (mwatershed would panic on it)
    spatial = affs.shape[1:]
    keep = [k for k, o in enumerate(offsets) if all(abs(v) < n for v, n in zip(o, spatial))]
    if not keep:
        labels = np.arange(1, int(np.prod(spatial)) + 1, dtype=np.int64).reshape(spatial)
        return dissolve_small(labels, min_size, resolution)
    signed = np.asarray(affs[keep], np.float64) - threshold
    kwargs = {}
    if strides is not None:
        kwargs["strides"] = [list(map(int, strides[k])) for k in keep]
    agglom = native_call(mwatershed.agglom, signed, [list(offsets[k]) for k in keep],
                         what="mutex watershed (mwatershed.agglom)", **kwargs)
    labels = np.array(agglom, np.int64)
    # mwatershed labels every voxel it never joined to another with 0: each is its own segment
    alone = labels == 0
    labels[alone] = labels.max() + 1 + np.arange(int(alone.sum()))
    return dissolve_small(labels, min_size, resolution)


def agglomerate(
    affs: npt.ArrayLike,
    *,
    method: str = "cc",
    threshold: float = 0.5,
    offsets: Sequence[Sequence[int]] = NEAREST,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
    fragment_threshold: float = 0.5,
) -> np.ndarray:
    """Segments from affinities with the post-processing ``method`` (:data:`METHODS`).

    ``fragment_threshold`` is the boundary threshold of the fragments of ``"waterz"``
    (:func:`neuroseg.segment.fragments.fragments`); other methods ignore it.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2]], [[1, 1, 2, 2]]])
    >>> agglomerate(affinities_from_labels(labels), method="waterz").tolist()
    [[[1, 1, 2, 2]], [[1, 1, 2, 2]]]
    """
    if method == "waterz":
        from neuroseg.segment.fragments import fragments, waterz_agglomerate

        affs, offsets = _check_affinities(affs, offsets)
        min_size = _check_min_size(min_size)
        threshold = check_unit_interval(threshold, "threshold")
        frags = fragments(affs, offsets=offsets, threshold=fragment_threshold)
        seg = waterz_agglomerate(affs, frags, [1.0 - threshold], offsets=offsets)[0]
        return dissolve_small(seg, min_size, resolution)
    if method == "cc":
        fn = connected_components
    elif method == "mws":
        fn = mutex_watershed
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    return fn(affs, offsets=offsets, threshold=threshold, min_size=min_size, resolution=resolution)


def boundary_map(affs: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """1 - the mean nearest-neighbour affinity of each voxel (for display), float32."""
    affs, offsets = _check_affinities(affs, offsets)
    channels = [k for k, _ in _nearest_channels(offsets, affs.ndim - 1)]
    return (1.0 - affs[channels].astype(np.float32).mean(0)).astype(np.float32)
