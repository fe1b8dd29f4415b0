"""From network outputs to instance labels, and from instance labels to training targets.

Two target encodings are used:

- **foreground + contour** (nuclei, somata; StarDist-/DCAN-style): :func:`fg_contour_targets`
  makes the two target channels, :func:`labels_from_fg_contour` turns the two predicted
  probability maps back into instances (seeds, then seeded watershed);
- **boundaries** (dense EM neuron segmentation with a 2D network): :func:`boundary_targets`
  makes the per-slice boundary target, :func:`labels_from_boundaries` segments one slice and
  :func:`labels_from_boundaries_stack` a whole (z, y, x) stack with IDs unique across slices.

:func:`connected_components_per_slice` gives the "oracle" 2D segmentation of a dense 3D
labelling (what a perfect 2D network followed by :func:`labels_from_boundaries` would
produce), and :func:`relabel_sequential` renumbers labels 1..N.

All label outputs are ``uint32`` with 0 as background. Probability maps must be real arrays
with values in [0, 1] and no NaN (a :class:`ValueError` names the offending input).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.segmentation import relabel_sequential as _sk_relabel_sequential
from skimage.segmentation import watershed

from neuroseg.checks import check_unit_interval
from neuroseg.data.labels import UINT32_MAX, check_labels, to_uint32

__all__ = [
    "boundary_targets",
    "fg_contour_targets",
    "labels_from_boundaries",
    "labels_from_boundaries_stack",
    "labels_from_fg_contour",
    "relabel_sequential",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_prob(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a float array after checking it is a probability map."""
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real-valued probability map; got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if arr.size == 0:
        return arr
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values ({int(np.isnan(arr).sum())} of {arr.size})")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must hold probabilities in [0, 1]; got values in [{lo}, {hi}]")
    return arr


def _label_edges(labels: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """True where a face neighbour along one of ``axes`` has a different label (both sides)."""
    out = np.zeros(labels.shape, bool)
    for ax in axes:
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        lo_t, hi_t = tuple(lo), tuple(hi)
        differ = labels[lo_t] != labels[hi_t]
        out[lo_t] |= differ
        out[hi_t] |= differ
    return out


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set labels with fewer than ``min_size`` voxels to 0 (returns a new array)."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def relabel_sequential(labels: npt.ArrayLike) -> np.ndarray:
    """Renumber the labels of an image to 1..N, keeping 0 as background.

    A thin wrapper of :func:`skimage.segmentation.relabel_sequential` that returns only the
    relabelled array.

    Parameters
    ----------
    labels : array_like of int
        Non-negative label image.

    Returns
    -------
    ndarray of uint32
        Same shape; labels in order of their original value.

    Examples
    --------
    >>> relabel_sequential(np.array([[0, 7], [7, 3]])).tolist()
    [[0, 2], [2, 1]]
    """
    arr = check_labels(labels)
    return to_uint32(_sk_relabel_sequential(arr)[0])


# --------------------------------------------------------------------------------------------
# foreground + contour
# --------------------------------------------------------------------------------------------


def fg_contour_targets(labels: npt.ArrayLike, *, contour_width: int = 1) -> np.ndarray:
    """Foreground and contour target channels of an instance labelling.

    The contour is the *inner* boundary of every object (the object pixels that touch a
    pixel of another label, background included, through a face), the same as
    ``skimage.segmentation.find_boundaries(labels, mode="inner")``. Two touching objects
    therefore both get a contour line along their contact, which separates them once the
    contour is subtracted from the foreground. Pixels on the image border are not contour.

    Parameters
    ----------
    labels : array_like of int
        Instance labels (0 = background), 2D or 3D (any dimensionality works; the contour
        is computed along all axes).
    contour_width : int, optional
        Width of the contour in pixels (>= 1): object pixels within ``contour_width`` steps
        (city-block) of another label.

    Returns
    -------
    ndarray of float32, shape (2, *labels.shape)
        Channel 0: foreground (``labels > 0``); channel 1: contour.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2, 2]] * 3)
    >>> fg_contour_targets(labels)[1].astype(int).tolist()
    [[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0]]
    """
    arr = check_labels(labels)
    if int(contour_width) < 1:
        raise ValueError(f"contour_width must be >= 1; got {contour_width}")
    fg = arr > 0
    contour = _label_edges(arr, tuple(range(arr.ndim))) & fg
    if contour_width > 1:
        structure = ndimage.generate_binary_structure(arr.ndim, 1)
        contour = ndimage.binary_dilation(
            contour, structure=structure, iterations=int(contour_width) - 1
        )
        contour &= fg
    return np.stack([fg, contour]).astype(np.float32)


def labels_from_fg_contour(
    fg_prob: npt.ArrayLike,
    contour_prob: npt.ArrayLike,
    *,
    fg_threshold: float = 0.5,
    seed_threshold: float = 0.5,
    min_seed_size: int = 4,
    min_size: int = 16,
) -> np.ndarray:
    """Instance labels from foreground and contour probability maps.

    1. Seeds: connected components (face connectivity) of
       ``fg_prob - contour_prob > seed_threshold`` inside the foreground mask
       ``fg_prob > fg_threshold``. The difference is high only where the network is sure of
       foreground *and* sure there is no contour, so touching objects give separate seeds.
       Seeds smaller than ``min_seed_size`` pixels are dropped.
    2. Seeded watershed (:func:`skimage.segmentation.watershed`) on ``contour_prob``,
       restricted to the foreground mask: seeds grow across low contour probability and meet
       on the contour ridges. Foreground components without a seed stay background.
    3. Objects smaller than ``min_size`` pixels become background; labels are renumbered 1..N.

    Parameters
    ----------
    fg_prob, contour_prob : array_like of float
        Probability maps of the same shape (2D or 3D), values in [0, 1], no NaN.
    fg_threshold : float, optional
        Foreground mask threshold.
    seed_threshold : float, optional
        Threshold on ``fg_prob - contour_prob`` for seeds.
    min_seed_size : int, optional
        Minimum seed size in pixels.
    min_size : int, optional
        Minimum object size in pixels.

    Returns
    -------
    ndarray of uint32
        Instance labels, 0 = background.

    Raises
    ------
    ValueError
        If the shapes differ, or a map contains NaN or values outside [0, 1].

    Examples
    --------
    >>> labels = np.zeros((8, 12), int)
    >>> labels[1:7, 1:6] = 1
    >>> labels[1:7, 6:11] = 2
    >>> fg, contour = fg_contour_targets(labels)
    >>> out = labels_from_fg_contour(fg, contour, min_seed_size=1, min_size=1)
    >>> bool((out == labels).all())
    True
    """
    fg = _as_prob(fg_prob, "fg_prob")
    contour = _as_prob(contour_prob, "contour_prob")
    fg_threshold = check_unit_interval(fg_threshold, "fg_threshold")
    seed_threshold = check_unit_interval(seed_threshold, "seed_threshold")
    if fg.shape != contour.shape:
        raise ValueError(
            f"shape mismatch: fg_prob has shape {fg.shape} but contour_prob has shape "
            f"{contour.shape}"
        )
    mask = fg > fg_threshold
    seeds, _ = ndimage.label(((fg - contour) > seed_threshold) & mask)
    seeds = _remove_small(seeds, min_seed_size)
    if not seeds.any():
        return np.zeros(fg.shape, np.uint32)
    out = watershed(contour, markers=seeds, mask=mask)
    out = _remove_small(out, min_size)
    return to_uint32(_sk_relabel_sequential(out)[0])


# --------------------------------------------------------------------------------------------
# boundaries (EM)
# --------------------------------------------------------------------------------------------


def boundary_targets(labels: npt.ArrayLike) -> np.ndarray:
    """In-plane boundary target of a dense labelling, for a 2D boundary network.

    A pixel is boundary (1.0) when a face neighbour *in its own 2D slice* carries a different
    label (both sides of the interface are marked, so the boundary is 2 pixels thick), or when
    its own label is 0 (membrane / unlabelled). Everything else is 0.0.

    Parameters
    ----------
    labels : array_like of int
        A 2D slice (y, x), or a stack (..., y, x) whose leading axes are treated as
        independent slices (no boundaries across z).

    Returns
    -------
    ndarray of float32
        Same shape as ``labels``.

    Examples
    --------
    >>> boundary_targets(np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])).astype(int).tolist()
    [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    """
    arr = check_labels(labels)
    if arr.ndim < 2:
        raise ValueError(f"labels must be 2D (y, x) or a stack (..., y, x); got shape {arr.shape}")
    edges = _label_edges(arr, (arr.ndim - 2, arr.ndim - 1))
    return (edges | (arr == 0)).astype(np.float32)


def labels_from_boundaries(
    boundary_prob: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    seed_distance: float | None = None,
    min_size: int = 16,
) -> np.ndarray:
    """2D segmentation of one EM slice from its boundary probability map.

    1. Seeds: connected components (4-connectivity) of ``boundary_prob < threshold``. With
       ``seed_distance``, only pixels farther than ``seed_distance`` pixels (Euclidean) from
       every above-threshold pixel are kept, which cuts thin bridges through gaps in a
       membrane.
    2. Seeded watershed on ``boundary_prob`` over the whole slice: every pixel, boundaries
       included, gets the label of a neighbouring region (a dense segmentation, as EM
       metrics expect).
    3. Regions smaller than ``min_size`` pixels are removed by dropping their seeds and
       flooding again, so their pixels join neighbouring regions instead of becoming 0.

    Parameters
    ----------
    boundary_prob : array_like of float, shape (y, x)
        Boundary probabilities in [0, 1], no NaN.
    threshold : float, optional
        Pixels below it are cell interior.
    seed_distance : float or None, optional
        Minimum distance of seed pixels from the boundary; None (or 0) keeps all interior
        pixels.
    min_size : int, optional
        Minimum region size in pixels.

    Returns
    -------
    ndarray of uint32, shape (y, x)
        Labels 1..N; 0 only when no seed was found (then everything is 0).

    Examples
    --------
    >>> labels = np.repeat([[1] * 4 + [2] * 4], 4, axis=0)
    >>> prob = boundary_targets(labels)
    >>> labels_from_boundaries(prob, min_size=1).tolist() == labels.tolist()
    True
    """
    prob = _as_prob(boundary_prob, "boundary_prob")
    threshold = check_unit_interval(threshold, "threshold")
    if prob.ndim != 2:
        raise ValueError(
            f"boundary_prob must be a 2D slice (y, x); got shape {prob.shape} "
            "(use labels_from_boundaries_stack for a (z, y, x) stack)"
        )
    inside = prob < threshold
    if seed_distance:
        inside = ndimage.distance_transform_edt(inside) > seed_distance
    seeds, n = ndimage.label(inside)
    if n == 0:
        return np.zeros(prob.shape, np.uint32)
    out = watershed(prob, markers=seeds)
    sizes = np.bincount(out.ravel(), minlength=n + 1)
    small = sizes < min_size
    small[0] = False
    if small.any():
        seeds = np.where(small[seeds], 0, seeds)
        if not seeds.any():
            return np.zeros(prob.shape, np.uint32)
        out = watershed(prob, markers=seeds)
    return to_uint32(_sk_relabel_sequential(out)[0])


def labels_from_boundaries_stack(prob_stack: npt.ArrayLike, **kwargs) -> np.ndarray:
    """Apply :func:`labels_from_boundaries` to every z-slice of a (z, y, x) stack.

    Labels of each slice are offset by the number of labels in the slices before it, so no ID
    occurs in two slices (the input of slice linking).

    Parameters
    ----------
    prob_stack : array_like of float, shape (z, y, x)
        Boundary probabilities per slice.
    **kwargs
        Options of :func:`labels_from_boundaries` (``threshold``, ``seed_distance``,
        ``min_size``).

    Returns
    -------
    ndarray of uint32, shape (z, y, x)

    Examples
    --------
    >>> labels = np.repeat([[1] * 4 + [2] * 4], 4, axis=0)
    >>> stack = np.stack([boundary_targets(labels)] * 2)
    >>> out = labels_from_boundaries_stack(stack, min_size=1)
    >>> np.unique(out[0]).tolist(), np.unique(out[1]).tolist()
    ([1, 2], [3, 4])
    """
    prob = _as_prob(prob_stack, "prob_stack")
    if prob.ndim != 3:
        raise ValueError(f"prob_stack must be a (z, y, x) stack; got shape {prob.shape}")
    out = np.zeros(prob.shape, np.uint32)
    offset = 0
    for z in range(prob.shape[0]):
        seg = labels_from_boundaries(prob[z], **kwargs).astype(np.int64)
        n = int(seg.max()) if seg.size else 0
        if offset + n > UINT32_MAX:
            raise OverflowError(f"more than {UINT32_MAX} segments in the stack")
        out[z] = np.where(seg > 0, seg + offset, 0)
        offset += n
    return out
