"""Scores of dense neuron segmentations: VOI (split, merge), adapted Rand error, CREMI.

Every function takes the ground truth first and the prediction second, as
:func:`neuroseg.measure.matching.matching` and scikit-image do. Ground-truth label 0 is
ignored (its voxels are excluded entirely); the predicted label 0 is one ordinary segment.
Entropies are in bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from neuroseg.data.labels import as_labels, require_same_shape
from neuroseg.measure.overlap import contingency


def _joint_table(
    true: npt.ArrayLike, pred: npt.ArrayLike, ignore_true: int | Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred index, true index, count) of the pairs on voxels whose true label is not ignored."""
    true = as_labels(true, "true")
    pred = as_labels(pred, "pred")
    require_same_shape(true, pred, "true", "pred")
    c = contingency(pred, true, ignore_b=ignore_true)
    _, si = np.unique(c.a_ids, return_inverse=True)
    _, gi = np.unique(c.b_ids, return_inverse=True)
    return si, gi, c.counts


def _voi_from_table(si: np.ndarray, gi: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    n = counts.sum()
    if n == 0:
        return 0.0, 0.0
    seg_size = np.bincount(si, weights=counts)
    gt_size = np.bincount(gi, weights=counts)
    p = counts / n
    split = -float(np.sum(p * np.log2(counts / gt_size[gi])))  # H(pred | true)
    merge = -float(np.sum(p * np.log2(counts / seg_size[si])))  # H(true | pred)
    # every term is <= 0 before negation; clamp -0.0 and rounding noise to 0.0
    return (split if split > 0 else 0.0), (merge if merge > 0 else 0.0)


def _rand_from_table(
    si: np.ndarray, gi: np.ndarray, counts: np.ndarray
) -> tuple[float, float, float]:
    if counts.sum() == 0:
        return 0.0, 1.0, 1.0
    c = counts.astype(np.float64)
    seg_size = np.bincount(si, weights=c)
    gt_size = np.bincount(gi, weights=c)
    sum_joint = float(np.dot(c, c))
    sum_seg = float(np.dot(seg_size, seg_size))
    sum_gt = float(np.dot(gt_size, gt_size))
    precision = sum_joint / sum_seg
    recall = sum_joint / sum_gt
    fscore = 2.0 * sum_joint / (sum_seg + sum_gt)
    return 1.0 - fscore, precision, recall


def voi(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    ignore_true: int | Iterable[int] = (0,),
) -> tuple[float, float]:
    """Variation of information, split into its split and merge parts, in bits.

    ``split = H(pred | true)`` (over-segmentation: a true neuron cut into pieces) and
    ``merge = H(true | pred)`` (under-segmentation: neurons fused); VOI = split + merge.

    Voxels whose ground-truth label is in ``ignore_true`` are excluded entirely. The predicted
    label 0 is **not** special: it is one ordinary segment (so leaving voxels unlabelled in
    ``pred`` fuses them, which costs merge error).

    Parameters
    ----------
    true, pred : array_like of int
        Ground-truth and predicted segmentations of the same shape (truth first).
    ignore_true : int or iterable of int, optional
        Ground-truth labels to exclude (default 0).

    Returns
    -------
    split, merge : float
        Conditional entropies in bits (log base 2). Both 0.0 when every voxel is ignored.

    Notes
    -----
    ``skimage.metrics.variation_of_information(true, pred, ignore_labels=(0,))`` returns the same
    pair ``[H(pred|true), H(true|pred)]``, also in bits. Its ``ignore_labels`` default is ``()``
    (nothing ignored), and it ignores labels of its *first* argument only.

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> voi(gt, np.ones((2, 2), int))  # two neurons merged: 1 bit of merge error
    (0.0, 1.0)
    """
    return _voi_from_table(*_joint_table(true, pred, ignore_true))


def adapted_rand(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    ignore_true: int | Iterable[int] = (0,),
) -> tuple[float, float, float]:
    """Adapted Rand error with Rand precision and recall, as defined for SNEMI3D.

    With ``n_ij`` the voxels in segment ``i`` of ``pred`` and ``j`` of ``true``, ``s_i`` and
    ``t_j`` the segment sizes (all on non-ignored voxels)::

        precision = sum n_ij**2 / sum s_i**2     (low when pred merges neurons)
        recall    = sum n_ij**2 / sum t_j**2     (low when pred splits neurons)
        error     = 1 - 2 * precision * recall / (precision + recall)

    Voxels whose ground-truth label is in ``ignore_true`` are excluded entirely; the predicted
    label 0 is one ordinary segment.

    Parameters
    ----------
    true, pred : array_like of int
        Ground-truth and predicted segmentations of the same shape (truth first).
    ignore_true : int or iterable of int, optional
        Ground-truth labels to exclude (default 0).

    Returns
    -------
    error, precision, recall : float
        When every voxel is ignored: (0.0, 1.0, 1.0).

    Notes
    -----
    Differences from ``skimage.metrics.adapted_rand_error(true, pred)`` (which also ignores
    ground-truth label 0 by default): scikit-image counts pairs of *distinct* voxels
    (``sum n_ij**2 - n`` etc.), whereas the sums of squares here include each voxel paired
    with itself, as in the SNEMI3D definition; the difference vanishes for large segments.
    scikit-image 0.26 also returns precision and recall in the opposite order to this function
    (its "precision" is ``sum n_ij**2 / sum t_j**2``; scikit-image issue #6485).

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> adapted_rand(gt, np.ones((2, 2), int))  # merge: precision (4+4)/16, recall 8/8
    (0.33333333333333337, 0.5, 1.0)
    """
    return _rand_from_table(*_joint_table(true, pred, ignore_true))


def adapted_rand_error(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    ignore_true: int | Iterable[int] = (0,),
) -> float:
    """Adapted Rand error (SNEMI3D); the first value of :func:`adapted_rand`.

    Parameters
    ----------
    true, pred : array_like of int
        Ground-truth and predicted segmentations of the same shape (truth first).
    ignore_true : int or iterable of int, optional
        Ground-truth labels whose voxels are excluded (default 0).

    Returns
    -------
    float
        ``1 - F`` of Rand precision and recall, in [0, 1).

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> adapted_rand_error(gt, gt)
    0.0
    """
    return adapted_rand(true, pred, ignore_true=ignore_true)[0]


def cremi_score(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    ignore_true: int | Iterable[int] = (0,),
) -> float:
    """CREMI score: ``sqrt((voi_split + voi_merge) * adapted_rand_error)``; lower is better.

    Parameters
    ----------
    true, pred : array_like of int
        Ground-truth and predicted segmentations of the same shape (truth first).
    ignore_true : int or iterable of int, optional
        Ground-truth labels whose voxels are excluded (default 0).

    Returns
    -------
    float

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> round(cremi_score(gt, np.ones((2, 2), int)), 4)  # sqrt(1 * 1/3)
    0.5774
    """
    return segmentation_scores(true, pred, ignore_true=ignore_true)["cremi"]


def segmentation_scores(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    ignore_true: int | Iterable[int] = (0,),
) -> dict[str, float]:
    """VOI split/merge, adapted Rand error and CREMI score from one contingency table.

    Parameters
    ----------
    true, pred : array_like of int
        Ground-truth and predicted segmentations of the same shape (truth first).
    ignore_true : int or iterable of int, optional
        Ground-truth labels whose voxels are excluded (default 0); predicted 0 is an
        ordinary segment.

    Returns
    -------
    dict
        Keys ``voi_split``, ``voi_merge`` (bits), ``arand`` and ``cremi``.

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> segmentation_scores(gt, gt)
    {'voi_split': 0.0, 'voi_merge': 0.0, 'arand': 0.0, 'cremi': 0.0}
    """
    table = _joint_table(true, pred, ignore_true)
    split, merge = _voi_from_table(*table)
    arand = _rand_from_table(*table)[0]
    return {
        "voi_split": split,
        "voi_merge": merge,
        "arand": arand,
        "cremi": float(np.sqrt((split + merge) * arand)),
    }
