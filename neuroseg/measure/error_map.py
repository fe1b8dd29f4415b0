"""Where a segmentation errs: every voxel classed as right, split, merge or both."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from neuroseg.data.labels import as_labels, require_same_shape
from neuroseg.measure.overlap import contingency


def error_map(true: npt.ArrayLike, pred: npt.ArrayLike) -> np.ndarray:
    """Per-voxel error class: 0 right (or ignored), 1 split, 2 merge, 3 both.

    A voxel is a *split* voxel when its segment is not the largest segment of its true
    neuron, and a *merge* voxel when its true neuron is not the largest neuron of its
    segment (ground-truth 0 is ignored).

    Examples
    --------
    >>> gt = np.array([[1, 1, 2, 2]])
    >>> error_map(gt, np.array([[1, 2, 3, 3]])).tolist()
    [[0, 1, 0, 0]]
    >>> error_map(np.array([[1, 1, 1, 2]]), np.array([[1, 1, 1, 1]])).tolist()
    [[0, 0, 0, 2]]
    """
    gt = as_labels(true, "true")
    seg = as_labels(pred, "pred")
    require_same_shape(gt, seg, "true", "pred")
    c = contingency(seg, gt, ignore_b=0)
    s_idx = np.unique(seg, return_inverse=True)
    g_idx = np.unique(gt, return_inverse=True)
    s_ids, s_inv = s_idx
    g_ids, g_inv = g_idx
    # largest segment of each neuron, largest neuron of each segment
    order = np.lexsort((-c.counts, c.b_ids))
    b_sorted = c.b_ids[order]
    first = np.concatenate([[True], b_sorted[1:] != b_sorted[:-1]]) if order.size else np.zeros(0, bool)
    main_seg = dict(zip(b_sorted[first].tolist(), c.a_ids[order][first].tolist()))
    order = np.lexsort((-c.counts, c.a_ids))
    a_sorted = c.a_ids[order]
    first = np.concatenate([[True], a_sorted[1:] != a_sorted[:-1]]) if order.size else np.zeros(0, bool)
    main_gt = dict(zip(a_sorted[first].tolist(), c.b_ids[order][first].tolist()))
    seg_of_gt = np.array([main_seg.get(int(g), -1) for g in g_ids])
    gt_of_seg = np.array([main_gt.get(int(s), -1) for s in s_ids])
    flat_s, flat_g = seg.ravel(), gt.ravel()
    split = (seg_of_gt[g_inv.ravel()] != flat_s) & (flat_g != 0)
    merge = (gt_of_seg[s_inv.ravel()] != flat_g) & (flat_g != 0)
    return (split.astype(np.uint8) + 2 * merge.astype(np.uint8)).reshape(seg.shape)
