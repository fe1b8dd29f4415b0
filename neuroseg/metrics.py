"""Segmentation metrics, all built on one overlap routine.

:func:`contingency` counts, for two label arrays of equal shape, how many voxels every label of
the first overlaps every label of the second (only the non-zero pairs). Everything else is
derived from that table:

- pixel metrics on binary masks — :func:`pixel_iou`, :func:`dice`, :func:`dice_per_class`;
- instance metrics (nuclei, somata) — :func:`pairwise_iou`, :func:`matching`,
  :func:`matching_dataset`, :func:`dsb_score`, :func:`dsb_score_dataset`;
- volume metrics for dense EM neuron segmentation — :func:`voi`, :func:`adapted_rand`,
  :func:`adapted_rand_error`, :func:`cremi_score`, :func:`segmentation_scores`.

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

__all__ = [
    "DSB_THRESHOLDS",
    "Contingency",
    "Matching",
    "adapted_rand",
    "adapted_rand_error",
    "contingency",
    "cremi_score",
    "dice",
    "dice_per_class",
    "dsb_score",
    "dsb_score_dataset",
    "matching",
    "matching_dataset",
    "pairwise_iou",
    "pixel_iou",
    "segmentation_scores",
    "voi",
]

#: Thresholds of the Kaggle Data Science Bowl 2018 score: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


# --------------------------------------------------------------------------------------------
# validation helpers (also used by neuroseg.instances)
# --------------------------------------------------------------------------------------------


def _as_labels(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as an integer array (a view when possible), or raise TypeError."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        finite = bool(np.isfinite(arr).all())
        if not finite or not bool((arr == np.trunc(arr)).all()):
            what = "NaN or infinite values" if not finite else "non-integer values"
            raise TypeError(
                f"{name} must be an integer label array; got dtype {arr.dtype} with {what}"
            )
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an integer label array; got dtype {arr.dtype}")


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"shape mismatch: {name_a} has shape {a.shape} but {name_b} has shape {b.shape}"
        )


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
        labels = (np.arange(span, dtype=np.int64) + int(lo)).astype(x.dtype)
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
    a = _as_labels(a, "a")
    b = _as_labels(b, "b")
    _check_same_shape(a, b, "a", "b")
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


def _pair_iou(c: Contingency) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    _, _, iou = _pair_iou(c)
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
    _check_same_shape(t, p, "true_mask", "pred_mask")
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
    _check_same_shape(t, p, "true_mask", "pred_mask")
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


# --------------------------------------------------------------------------------------------
# instance matching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matching:
    """Result of matching predicted to true instances at one IoU threshold.

    Attributes
    ----------
    threshold : float
        A pair is a hit when its IoU is strictly greater than this.
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched true objects.
    precision, recall, f1 : float
        ``tp/(tp+fp)``, ``tp/(tp+fn)``, ``2tp/(2tp+fp+fn)``.
    accuracy : float
        ``tp/(tp+fp+fn)``, the per-threshold "average precision" of the DSB 2018 score.
    mean_matched_iou : float
        Mean IoU of the matched pairs (0.0 when nothing matched).
    n_true, n_pred : int
        Number of true and predicted objects.
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    mean_matched_iou: float
    n_true: int
    n_pred: int


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"IoU threshold must be in [0, 1]; got {threshold}")
    return t


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if both_empty:
        return 1.0
    return 0.0 if den == 0 else num / den


def _iou_pairs(true: npt.ArrayLike, pred: npt.ArrayLike):
    """(row, col, iou, n_true, n_pred) of all overlapping object pairs (0 = background)."""
    true = _as_labels(true, "true")
    pred = _as_labels(pred, "pred")
    _check_same_shape(true, pred, "true", "pred")
    c = contingency(true, pred, ignore_a=0, ignore_b=0)
    ri, ci, iou = _pair_iou(c)
    return ri, ci, iou, int(c.a_labels.size), int(c.b_labels.size)


def _assign(ri: np.ndarray, ci: np.ndarray, iou: np.ndarray, threshold: float) -> tuple[int, float]:
    """Number of hits and their summed IoU under a one-to-one assignment."""
    hit = iou > threshold
    if threshold >= 0.5:
        # IoU > 0.5 with two disjoint objects is impossible (|A∩B| + |A∩C| would exceed |A|),
        # so the hits already form a one-to-one matching: no assignment problem to solve.
        return int(np.count_nonzero(hit)), float(iou[hit].sum())
    ri, ci, w = ri[hit], ci[hit], iou[hit]
    if w.size == 0:
        return 0, 0.0
    rows, r = np.unique(ri, return_inverse=True)
    cols, k = np.unique(ci, return_inverse=True)
    # Maximise the number of hits first, then their total IoU: every hit is worth more than
    # the largest possible IoU total of any matching (min(rows, cols) < big).
    big = min(rows.size, cols.size) + 1.0
    weight = np.zeros((rows.size, cols.size))
    weight[r, k] = big + w
    ious = np.zeros_like(weight)
    ious[r, k] = w
    sr, sc = linear_sum_assignment(weight, maximize=True)
    sel = weight[sr, sc] > 0
    return int(np.count_nonzero(sel)), float(ious[sr[sel], sc[sel]].sum())


def _make_matching(threshold: float, tp: int, iou_sum: float, n_true: int, n_pred: int) -> Matching:
    fp, fn = n_pred - tp, n_true - tp
    empty = n_true == 0 and n_pred == 0
    return Matching(
        threshold=threshold,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, tp + fp, empty),
        recall=_ratio(tp, tp + fn, empty),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, empty),
        accuracy=_ratio(tp, tp + fp + fn, empty),
        mean_matched_iou=_ratio(iou_sum, tp, empty),
        n_true=n_true,
        n_pred=n_pred,
    )


def matching(true: npt.ArrayLike, pred: npt.ArrayLike, *, threshold: float = 0.5) -> Matching:
    """Match predicted to true instances one-to-one and count hits.

    True and predicted objects (label 0 is background in both) are paired one-to-one by
    the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`) over the pairs
    whose IoU is **strictly greater** than ``threshold`` (the DSB 2018 convention; StarDist
    counts ``IoU >= threshold``, so an IoU of exactly 0.5 is a hit there but not here). The
    assignment maximises the number of hits, then their total IoU. For ``threshold >= 0.5``
    the hits are unique anyway (an object cannot have IoU > 0.5 with two disjoint objects).

    Parameters
    ----------
    true, pred : array_like of int
        Instance label images of the same shape.
    threshold : float, optional
        IoU threshold in [0, 1].

    Returns
    -------
    Matching
        Counts and scores. Edge cases: both images without objects gives precision, recall,
        f1, accuracy and mean_matched_iou of 1.0 (nothing to find, nothing wrong); when only
        one of them is empty every score is 0.0. In general a ratio with a zero denominator
        is 0.0.

    Examples
    --------
    >>> true = np.array([[1, 1, 0, 2]])
    >>> pred = np.array([[1, 1, 3, 0]])
    >>> m = matching(true, pred)
    >>> m.tp, m.fp, m.fn, m.precision, m.recall, m.accuracy
    (1, 1, 1, 0.5, 0.5, 0.3333333333333333)
    """
    t = _check_threshold(threshold)
    ri, ci, iou, n_true, n_pred = _iou_pairs(true, pred)
    tp, s = _assign(ri, ci, iou, t)
    return _make_matching(t, tp, s, n_true, n_pred)


def _check_pairs(trues: Sequence, preds: Sequence) -> None:
    if len(trues) != len(preds):
        raise ValueError(
            f"trues and preds must have the same length; got {len(trues)} and {len(preds)}"
        )
    if len(trues) == 0:
        raise ValueError("trues and preds are empty: nothing to score")


def matching_dataset(
    trues: Sequence[npt.ArrayLike],
    preds: Sequence[npt.ArrayLike],
    *,
    threshold: float = 0.5,
    by_image: bool = True,
) -> Matching:
    """Aggregate :func:`matching` over a set of images.

    Parameters
    ----------
    trues, preds : sequence of array_like of int
        True and predicted instance label images, pairwise of the same shape (images may
        differ in shape from each other).
    threshold : float, optional
        IoU threshold (hit when IoU > threshold).
    by_image : bool, optional
        If True, precision, recall, f1, accuracy and mean_matched_iou are the means of the
        per-image values (every image weighs the same). If False, tp, fp and fn are pooled
        over all images and the ratios are computed once from the totals (every object
        weighs the same; mean_matched_iou is then the mean over all matched pairs). In both
        cases tp, fp, fn, n_true and n_pred are totals.

    Returns
    -------
    Matching

    Examples
    --------
    >>> trues = [np.array([[1, 1]]), np.array([[1, 2]])]
    >>> preds = [np.array([[1, 1]]), np.array([[0, 0]])]
    >>> matching_dataset(trues, preds).accuracy  # mean of 1.0 and 0.0
    0.5
    >>> matching_dataset(trues, preds, by_image=False).accuracy  # 1 / (1 + 0 + 2)
    0.3333333333333333
    """
    _check_pairs(trues, preds)
    t = _check_threshold(threshold)
    ms = [matching(a, b, threshold=t) for a, b in zip(trues, preds, strict=True)]
    tp = sum(m.tp for m in ms)
    n_true = sum(m.n_true for m in ms)
    n_pred = sum(m.n_pred for m in ms)
    if not by_image:
        iou_sum = sum(m.mean_matched_iou * m.tp for m in ms)
        return _make_matching(t, tp, iou_sum, n_true, n_pred)

    def mean(field: str) -> float:
        return float(np.mean([getattr(m, field) for m in ms]))

    return Matching(
        threshold=t,
        tp=tp,
        fp=n_pred - tp,
        fn=n_true - tp,
        precision=mean("precision"),
        recall=mean("recall"),
        f1=mean("f1"),
        accuracy=mean("accuracy"),
        mean_matched_iou=mean("mean_matched_iou"),
        n_true=n_true,
        n_pred=n_pred,
    )


def dsb_score(
    true: npt.ArrayLike,
    pred: npt.ArrayLike,
    *,
    thresholds: npt.ArrayLike = DSB_THRESHOLDS,
) -> float:
    """Kaggle Data Science Bowl 2018 score of one image.

    The mean over ``thresholds`` (default 0.50, 0.55, ..., 0.95) of
    ``tp / (tp + fp + fn)``, where a hit needs IoU **strictly greater** than the threshold.
    The IoU of all object pairs is computed once and reused for every threshold. An image
    with no objects in either labelling scores 1.0, one with objects in only one of them 0.0.

    Parameters
    ----------
    true, pred : array_like of int
        Instance label images of the same shape (0 = background).
    thresholds : array_like of float, optional
        IoU thresholds in [0, 1]; default :data:`DSB_THRESHOLDS`, i.e.
        ``np.arange(0.5, 1.0, 0.05)`` rounded to two decimals.

    Returns
    -------
    float

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]])
    >>> pred = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]])  # IoU 3/4
    >>> dsb_score(true, pred)  # hits at 0.50, 0.55, 0.60, 0.65, 0.70: 5 of 10 thresholds
    0.5
    """
    ts = [_check_threshold(t) for t in np.atleast_1d(np.asarray(thresholds, float))]
    if not ts:
        raise ValueError("thresholds is empty")
    ri, ci, iou, n_true, n_pred = _iou_pairs(true, pred)
    acc = [_make_matching(t, *_assign(ri, ci, iou, t), n_true, n_pred).accuracy for t in ts]
    return float(np.mean(acc))


def dsb_score_dataset(
    trues: Sequence[npt.ArrayLike],
    preds: Sequence[npt.ArrayLike],
    *,
    thresholds: npt.ArrayLike = DSB_THRESHOLDS,
) -> float:
    """Mean :func:`dsb_score` over images (the DSB 2018 leaderboard score).

    Parameters
    ----------
    trues, preds : sequence of array_like of int
        True and predicted instance label images.
    thresholds : array_like of float, optional
        IoU thresholds.

    Returns
    -------
    float

    Examples
    --------
    >>> dsb_score_dataset([np.array([[1, 1]]), np.array([[1, 0]])],
    ...                   [np.array([[1, 1]]), np.array([[0, 0]])])
    0.5
    """
    _check_pairs(trues, preds)
    return float(
        np.mean([dsb_score(a, b, thresholds=thresholds) for a, b in zip(trues, preds, strict=True)])
    )


# --------------------------------------------------------------------------------------------
# volume metrics (dense neuron segmentation)
# --------------------------------------------------------------------------------------------


def _joint_table(
    seg: npt.ArrayLike, gt: npt.ArrayLike, ignore_gt: int | Iterable[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seg index, gt index, count) of the pairs on voxels whose gt label is not ignored."""
    seg = _as_labels(seg, "seg")
    gt = _as_labels(gt, "gt")
    _check_same_shape(seg, gt, "seg", "gt")
    c = contingency(seg, gt, ignore_b=ignore_gt)
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
    split = -float(np.sum(p * np.log2(counts / gt_size[gi])))  # H(seg | gt)
    merge = -float(np.sum(p * np.log2(counts / seg_size[si])))  # H(gt | seg)
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
    seg: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    ignore_gt: int | Iterable[int] = (0,),
) -> tuple[float, float]:
    """Variation of information, split into its split and merge parts, in bits.

    ``split = H(seg | gt)`` (over-segmentation: a true neuron cut into pieces) and
    ``merge = H(gt | seg)`` (under-segmentation: neurons fused); VOI = split + merge.

    Voxels whose ground-truth label is in ``ignore_gt`` are excluded entirely. The predicted
    label 0 is **not** special: it is one ordinary segment (so leaving voxels unlabelled in
    ``seg`` fuses them, which costs merge error).

    Parameters
    ----------
    seg, gt : array_like of int
        Predicted and ground-truth segmentations of the same shape.
    ignore_gt : int or iterable of int, optional
        Ground-truth labels to exclude (default 0).

    Returns
    -------
    split, merge : float
        Conditional entropies in bits (log base 2). Both 0.0 when every voxel is ignored.

    Notes
    -----
    ``skimage.metrics.variation_of_information(gt, seg, ignore_labels=(0,))`` returns the same
    pair ``[H(seg|gt), H(gt|seg)]``, also in bits. Its ``ignore_labels`` default is ``()``
    (nothing ignored), and it ignores labels of its *first* argument only.

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> voi(np.ones((2, 2), int), gt)  # two neurons merged: 1 bit of merge error
    (0.0, 1.0)
    """
    return _voi_from_table(*_joint_table(seg, gt, ignore_gt))


def adapted_rand(
    seg: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    ignore_gt: int | Iterable[int] = (0,),
) -> tuple[float, float, float]:
    """Adapted Rand error with Rand precision and recall, as defined for SNEMI3D.

    With ``n_ij`` the voxels in segment ``i`` of ``seg`` and ``j`` of ``gt``, ``s_i`` and
    ``t_j`` the segment sizes (all on non-ignored voxels)::

        precision = sum n_ij**2 / sum s_i**2     (low when seg merges neurons)
        recall    = sum n_ij**2 / sum t_j**2     (low when seg splits neurons)
        error     = 1 - 2 * precision * recall / (precision + recall)

    Voxels whose ground-truth label is in ``ignore_gt`` are excluded entirely; the predicted
    label 0 is one ordinary segment.

    Parameters
    ----------
    seg, gt : array_like of int
        Predicted and ground-truth segmentations of the same shape.
    ignore_gt : int or iterable of int, optional
        Ground-truth labels to exclude (default 0).

    Returns
    -------
    error, precision, recall : float
        When every voxel is ignored: (0.0, 1.0, 1.0).

    Notes
    -----
    Differences from ``skimage.metrics.adapted_rand_error(gt, seg)`` (which also ignores
    ground-truth label 0 by default): scikit-image counts pairs of *distinct* voxels
    (``sum n_ij**2 - n`` etc.), whereas the sums of squares here include each voxel paired
    with itself, as in the SNEMI3D definition; the difference vanishes for large segments.
    scikit-image 0.26 also returns precision and recall in the opposite order to this function
    (its "precision" is ``sum n_ij**2 / sum t_j**2``; scikit-image issue #6485).

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> adapted_rand(np.ones((2, 2), int), gt)  # merge: precision (4+4)/16, recall 8/8
    (0.33333333333333337, 0.5, 1.0)
    """
    return _rand_from_table(*_joint_table(seg, gt, ignore_gt))


def adapted_rand_error(
    seg: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    ignore_gt: int | Iterable[int] = (0,),
) -> float:
    """Adapted Rand error (SNEMI3D); the first value of :func:`adapted_rand`.

    Parameters
    ----------
    seg, gt : array_like of int
        Predicted and ground-truth segmentations of the same shape.
    ignore_gt : int or iterable of int, optional
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
    return adapted_rand(seg, gt, ignore_gt=ignore_gt)[0]


def cremi_score(
    seg: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    ignore_gt: int | Iterable[int] = (0,),
) -> float:
    """CREMI score: ``sqrt((voi_split + voi_merge) * adapted_rand_error)``; lower is better.

    Parameters
    ----------
    seg, gt : array_like of int
        Predicted and ground-truth segmentations of the same shape.
    ignore_gt : int or iterable of int, optional
        Ground-truth labels whose voxels are excluded (default 0).

    Returns
    -------
    float

    Examples
    --------
    >>> gt = np.array([[1, 1], [2, 2]])
    >>> round(cremi_score(np.ones((2, 2), int), gt), 4)  # sqrt(1 * 1/3)
    0.5774
    """
    return segmentation_scores(seg, gt, ignore_gt=ignore_gt)["cremi"]


def segmentation_scores(
    seg: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    ignore_gt: int | Iterable[int] = (0,),
) -> dict[str, float]:
    """VOI split/merge, adapted Rand error and CREMI score from one contingency table.

    Parameters
    ----------
    seg, gt : array_like of int
        Predicted and ground-truth segmentations of the same shape.
    ignore_gt : int or iterable of int, optional
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
    table = _joint_table(seg, gt, ignore_gt)
    split, merge = _voi_from_table(*table)
    arand = _rand_from_table(*table)[0]
    return {
        "voi_split": split,
        "voi_merge": merge,
        "arand": arand,
        "cremi": float(np.sqrt((split + merge) * arand)),
    }
