"""The one overlap routine every metric is built on, and the pixel metrics.

:func:`contingency` counts, for two label arrays of equal shape, how many voxels every label of
the first overlaps every label of the second (only the non-zero pairs). Everything else is
derived from that table:

- pixel metrics on binary masks — :func:`pixel_iou`, :func:`dice`, :func:`dice_per_class`
  (here), and :func:`pairwise_iou` of instances;
- instance metrics (nuclei, somata) — :mod:`neuroseg.measure.matching`;
- volume metrics for dense EM neuron segmentation — :mod:`neuroseg.measure.voi_rand`.

Conventions
-----------
- Arrays come first, options are keyword-only; inputs are never modified.
- Label arrays must hold integers (integer or bool dtype, or floats with integral values);
  anything else raises :class:`TypeError`. Arrays compared with each other must have the
  same shape, else :class:`ValueError` names both shapes.
- Instance metrics: label 0 is background in both images. A true and a predicted object
  form a *hit* when their IoU is **strictly greater** than the threshold (the DSB 2018
  convention; StarDist counts IoU >= threshold).
- Volume metrics: ground-truth label 0 is ignored (its voxels are excluded entirely); the
  predicted label 0 is one ordinary segment. Entropies are in bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from neuroseg.data.labels import as_labels, require_same_shape

__all__ = [
    "Contingency",
    "contingency",
    "dice",
    "dice_per_class",
    "pairwise_iou",
    "pixel_iou",
]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _as_mask(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a bool array; accept bool or numbers that are all 0 or 1."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a binary mask; got dtype {arr.dtype}")
    mask = arr != 0
    if not bool((arr[mask] == 1).all()):
        raise ValueError(
            f"{name} must be a binary mask (bool, or values in {{0, 1}}); it contains other "
            "values (threshold a probability map or use labels > 0 first)"
        )
    return mask


def _ignore_array(ignore: int | Iterable[int]) -> np.ndarray:
    if isinstance(ignore, (int, np.integer)):
        return np.asarray([ignore])
    return np.asarray(list(ignore))


# --------------------------------------------------------------------------------------------
# the overlap table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contingency:
    """Sparse overlap table of two label arrays; see :func:`contingency`.

    Attributes
    ----------
    a_ids, b_ids : ndarray
        Label pairs that overlap (at least one voxel), sorted by ``a_ids`` then ``b_ids``.
    counts : ndarray of int64
        ``counts[i]`` voxels have label ``a_ids[i]`` in ``a`` and ``b_ids[i]`` in ``b``.
    a_labels, a_sizes : ndarray
        All labels present in ``a`` (sorted, ignored ones excluded) and their voxel counts.
    b_labels, b_sizes : ndarray
        The same for ``b``.
    n : int
        Number of voxels compared (``a.size``).
    """

    a_ids: np.ndarray
    b_ids: np.ndarray
    counts: np.ndarray
    a_labels: np.ndarray
    a_sizes: np.ndarray
    b_labels: np.ndarray
    b_sizes: np.ndarray
    n: int


def _compact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a 1-D integer array to dense indices 0..k-1; return (indices, labels of indices).

    Uses an offset when the value range is small (O(n)), a sort otherwise. Labels may include
    values that do not occur (zero counts); callers filter them by size.
    """
    if x.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, x.dtype)
    lo, hi = x.min(), x.max()
    span = int(hi) - int(lo) + 1
    if span <= max(2 * x.size, 1 << 16):
        if np.issubdtype(x.dtype, np.unsignedinteger):
            idx = (x - lo).astype(np.intp)
        else:
            idx = x.astype(np.int64) - int(lo)
        # in x's own dtype: uint64 IDs of 2**63 and above (real connectomics volumes) fit
        labels = np.arange(span, dtype=x.dtype) + lo
        return idx, labels
    labels, idx = np.unique(x, return_inverse=True)
    return idx.astype(np.intp, copy=False), labels


def contingency(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    ignore_a: int | Iterable[int] = (),
    ignore_b: int | Iterable[int] = (),
) -> Contingency:
    """Count the voxel overlaps of every label pair of two label arrays.

    Parameters
    ----------
    a, b : array_like of int
        Label arrays of the same shape (any dimensionality).
    ignore_a, ignore_b : int or iterable of int, optional
        Labels of ``a`` (of ``b``) to drop. Pairs involving an ignored label are removed from
        the pairs, and ignored labels from ``a_labels``/``a_sizes`` (``b_labels``/``b_sizes``).
        The sizes of the remaining labels are their full voxel counts, including voxels that
        overlap an ignored label of the other array (what IoU needs). Measures that must
        exclude such voxels entirely (VOI, Rand) work from ``counts`` alone.

    Returns
    -------
    Contingency
        ``a_ids``, ``b_ids``, ``counts`` (non-zero pairs), ``a_labels``, ``a_sizes``,
        ``b_labels``, ``b_sizes`` and ``n`` (number of voxels).

    Raises
    ------
    ValueError
        If the shapes differ.
    TypeError
        If an array is not an integer label array.

    Notes
    -----
    Labels are mapped to dense indices (by offset when their range is small, else by
    ``np.unique``) and each pair is encoded as one integer key, counted with ``np.bincount``
    when the table is small enough, else with ``np.unique(..., return_counts=True)``.

    Examples
    --------
    >>> a = np.array([[1, 1], [2, 2]])
    >>> b = np.array([[1, 0], [0, 0]])
    >>> c = contingency(a, b, ignore_b=0)
    >>> c.a_ids.tolist(), c.b_ids.tolist(), c.counts.tolist()
    ([1], [1], [1])
    >>> c.a_labels.tolist(), c.a_sizes.tolist(), c.b_labels.tolist(), c.b_sizes.tolist()
    ([1, 2], [2, 2], [1], [1])
    """
    a = as_labels(a, "a")
    b = as_labels(b, "b")
    require_same_shape(a, b, "a", "b")
    af, bf = a.ravel(), b.ravel()
    n = int(af.size)
    if n == 0:
        e = np.zeros(0, np.int64)
        return Contingency(af[:0], bf[:0], e, af[:0], e, bf[:0], e, 0)

    ia, la = _compact(af)
    ib, lb = _compact(bf)
    na, nb = int(la.size), int(lb.size)
    a_sizes = np.bincount(ia, minlength=na).astype(np.int64)
    b_sizes = np.bincount(ib, minlength=nb).astype(np.int64)

    key = ia.astype(np.int64) * nb + ib
    if na * nb <= max(4 * n, 1 << 20):
        table = np.bincount(key, minlength=na * nb)
        keys = np.flatnonzero(table)
        counts = table[keys].astype(np.int64)
    else:
        keys, counts = np.unique(key, return_counts=True)
        counts = counts.astype(np.int64)
    del key
    pa, pb = keys // nb, keys % nb

    keep_a = (a_sizes > 0) & ~np.isin(la, _ignore_array(ignore_a))
    keep_b = (b_sizes > 0) & ~np.isin(lb, _ignore_array(ignore_b))
    keep = keep_a[pa] & keep_b[pb]
    return Contingency(
        a_ids=la[pa[keep]],
        b_ids=lb[pb[keep]],
        counts=counts[keep],
        a_labels=la[keep_a],
        a_sizes=a_sizes[keep_a],
        b_labels=lb[keep_b],
        b_sizes=b_sizes[keep_b],
        n=n,
    )


def pair_iou(c: Contingency) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index into a_labels, column index into b_labels and IoU of every pair of ``c``."""
    ri = np.searchsorted(c.a_labels, c.a_ids)
    ci = np.searchsorted(c.b_labels, c.b_ids)
    union = c.a_sizes[ri] + c.b_sizes[ci] - c.counts
    return ri, ci, c.counts / union


def pairwise_iou(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    ignore_a: int | Iterable[int] = (0,),
    ignore_b: int | Iterable[int] = (0,),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersection over union of every overlapping pair of labels.

    Parameters
    ----------
    a, b : array_like of int
        Label arrays of the same shape.
    ignore_a, ignore_b : int or iterable of int, optional
        Labels that are not objects (default: 0, background). An object's size counts all
        its voxels, including those on the other array's ignored labels.

    Returns
    -------
    a_ids, b_ids : ndarray
        Overlapping label pairs.
    iou : ndarray of float64
        ``|A ∩ B| / |A ∪ B|`` of each pair.
    intersection : ndarray of int64
        ``|A ∩ B|`` of each pair.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 0]])
    >>> b = np.array([[0, 2, 2, 0]])
    >>> a_ids, b_ids, iou, inter = pairwise_iou(a, b)
    >>> a_ids.tolist(), b_ids.tolist(), iou.round(3).tolist(), inter.tolist()
    ([1], [2], [0.333], [1])
    """
    c = contingency(a, b, ignore_a=ignore_a, ignore_b=ignore_b)
    _, _, iou = pair_iou(c)
    return c.a_ids, c.b_ids, iou, c.counts


# --------------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------------


def pixel_iou(true_mask: npt.ArrayLike, pred_mask: npt.ArrayLike) -> float:
    """Intersection over union (Jaccard index) of two binary masks.

    Parameters
    ----------
    true_mask, pred_mask : array_like of bool
        Masks of the same shape (bool, or numbers that are all 0 or 1).

    Returns
    -------
    float
        ``|T ∩ P| / |T ∪ P|``; 1.0 when both masks are empty.

    Examples
    --------
    >>> pixel_iou([[1, 1], [0, 0]], [[1, 0], [0, 0]])
    0.5
    >>> pixel_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    1.0
    """
    t = _as_mask(true_mask, "true_mask")
    p = _as_mask(pred_mask, "pred_mask")
    require_same_shape(t, p, "true_mask", "pred_mask")
    inter = int(np.count_nonzero(t & p))
    union = int(np.count_nonzero(t | p))
    return 1.0 if union == 0 else inter / union


def dice(true_mask: npt.ArrayLike, pred_mask: npt.ArrayLike) -> float:
    """Dice coefficient (F1 over pixels) of two binary masks.

    Parameters
    ----------
    true_mask, pred_mask : array_like of bool
        Masks of the same shape (bool, or numbers that are all 0 or 1).

    Returns
    -------
    float
        ``2 |T ∩ P| / (|T| + |P|)``; 1.0 when both masks are empty.

    Examples
    --------
    >>> dice([[1, 1], [0, 0]], [[1, 0], [0, 0]])
    0.6666666666666666
    """
    t = _as_mask(true_mask, "true_mask")
    p = _as_mask(pred_mask, "pred_mask")
    require_same_shape(t, p, "true_mask", "pred_mask")
    total = int(np.count_nonzero(t)) + int(np.count_nonzero(p))
    return 1.0 if total == 0 else 2 * int(np.count_nonzero(t & p)) / total


def dice_per_class(
    true_labels: npt.ArrayLike,
    pred_labels: npt.ArrayLike,
    classes: Iterable[int],
) -> dict[int, float]:
    """Dice coefficient of each class of two semantic label maps.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int
        Class maps of the same shape.
    classes : iterable of int
        Classes to score (e.g. ``[1, 2]`` for axon and myelin).

    Returns
    -------
    dict of int to float
        ``{class: dice(true_labels == class, pred_labels == class)}``; 1.0 for a class absent
        from both maps.

    Examples
    --------
    >>> t = np.array([[0, 1], [2, 2]])
    >>> p = np.array([[1, 1], [2, 0]])
    >>> dice_per_class(t, p, [1, 2])
    {1: 0.6666666666666666, 2: 0.6666666666666666}
    """
    c = contingency(true_labels, pred_labels)
    cls = np.asarray(list(classes))
    if cls.size and not np.issubdtype(cls.dtype, np.integer):
        raise TypeError(f"classes must be integers; got {cls.tolist()}")

    def lookup(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.zeros(cls.size, np.int64)
        pos = np.searchsorted(labels, cls)
        found = pos < labels.size
        found[found] = labels[pos[found]] == cls[found]
        out[found] = values[pos[found]]
        return out

    t_size = lookup(c.a_labels, c.a_sizes)
    p_size = lookup(c.b_labels, c.b_sizes)
    diag = c.a_ids == c.b_ids
    inter = lookup(c.a_ids[diag], c.counts[diag])
    total = t_size + p_size
    score = np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))
    return {int(k): float(v) for k, v in zip(cls.tolist(), score, strict=True)}
