"""Instance matching: true and predicted objects paired above an IoU threshold.

Precision, recall, F1, accuracy (tp / (tp + fp + fn)) and the DSB 2018 score, for nuclei and
somata. Truth first, prediction second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from neuroseg.data.labels import as_labels, require_same_shape
from neuroseg.measure.overlap import contingency, pair_iou

#: Thresholds of the Kaggle Data Science Bowl 2018 score: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


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
    true = as_labels(true, "true")
    pred = as_labels(pred, "pred")
    require_same_shape(true, pred, "true", "pred")
    c = contingency(true, pred, ignore_a=0, ignore_b=0)
    ri, ci, iou = pair_iou(c)
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
