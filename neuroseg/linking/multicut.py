"""The ``"multicut"`` linking rule: micro-SAM's way of joining 2D segments into 3D objects.

micro-SAM (``micro_sam.multi_dimensional_segmentation.merge_instance_segmentation_3d``) links
the 2D segments of a stack by a multicut on the slice-overlap graph:

1. every segment is a node; every pair of segments ``a`` (slice ``z``) and ``b`` (slice
   ``z + 1``) that overlap is an edge, whose evidence is the fraction of ``a`` that ``b``
   covers, ``p = |a ∩ b| / |a|``;
2. ``p`` is clipped to ``[0.001, 0.999]`` and turned into an edge weight
   ``w = logit(p) - logit(t)`` (positive: the two are rewarded for being joined; negative:
   for being cut). micro-SAM's weights, ``1 - log((1 - p) / p)``, are exactly these with
   ``t = 1 / (1 + e)`` (:data:`MICRO_SAM_THRESHOLD`, about 0.269), its default boundary
   bias ``beta = 0.5`` adding nothing;
3. the multicut (the partition of the nodes that maximises the summed weight of the edges
   inside objects) is solved with the decomposition solver and Kernighan-Lin inside it
   (``elf.segmentation.multicut.multicut_decomposition`` on ``bioimage-cpp``), as
   micro-SAM does; each part is one 3D object.

This module holds the rule (:func:`multicut_keep`); :func:`neuroseg.linking.rules.link_slices`
offers it as ``method="multicut"`` on its candidate pairs, with ``threshold`` as ``t``.
Unlike the other rules it has no gap-by-gap step: all candidate pairs up to ``max_gap`` enter
one multicut (``max_gap=1``, the default, is micro-SAM's graph).

Examples
--------
>>> na, nb = np.array([0, 1]), np.array([1, 2])
>>> multicut_keep(na, nb, np.array([0.9, 0.05]), 0.25, 3).tolist()
[True, False]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from neuroseg.checks import native_call

__all__ = ["MICRO_SAM_THRESHOLD", "P_CLIP", "covered_fraction", "edge_weights", "multicut_keep"]

#: The threshold at which :func:`edge_weights` equals micro-SAM's weights (``1 / (1 + e)``).
MICRO_SAM_THRESHOLD = 1.0 / (1.0 + math.e)
#: Probabilities are clipped to ``[P_CLIP, 1 - P_CLIP]`` before the logit (as elf does).
P_CLIP = 0.001


def covered_fraction(pairs: pd.DataFrame) -> np.ndarray:
    """The evidence of each candidate pair: the fraction of ``a`` that ``b`` covers,
    ``overlap / size_a`` (micro-SAM's normalised overlap, seen from the upper slice).

    Examples
    --------
    >>> covered_fraction(pd.DataFrame({"overlap": [2, 1], "size_a": [4, 1]})).tolist()
    [0.5, 1.0]
    """
    overlap = pairs["overlap"].to_numpy(np.float64)
    size = pairs["size_a"].to_numpy(np.float64)
    return np.divide(overlap, size, out=np.zeros_like(overlap), where=size > 0)


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = (1.0 - 2 * P_CLIP) * np.asarray(p, np.float64) + P_CLIP
    return np.log(q / (1.0 - q))


def edge_weights(score: np.ndarray, threshold: float) -> np.ndarray:
    """Multicut weights of pairs with evidence ``score`` in [0, 1]: ``logit(score) -
    logit(threshold)``, the score mapped linearly onto ``[0.001, 0.999]`` first (as elf
    does) and the threshold clipped to it (positive joins).

    Examples
    --------
    >>> w = edge_weights(np.array([0.5]), MICRO_SAM_THRESHOLD)   # micro-SAM: 1 - log(1)
    >>> round(float(w[0]), 6)
    1.0
    """
    t = min(max(float(threshold), P_CLIP), 1.0 - P_CLIP)
    return _logit(score) - math.log(t / (1.0 - t))


def multicut_keep(
    na: np.ndarray, nb: np.ndarray, score: np.ndarray, threshold: float, n_nodes: int,
    *, threads: int = 1,
) -> np.ndarray:
    """Which pairs ``(na[i], nb[i])`` end up inside one object of the multicut.

    Parameters
    ----------
    na, nb : ndarray of int
        Node indices (``0 .. n_nodes - 1``) of the two segments of every candidate pair.
    score : ndarray of float
        The evidence of every pair in [0, 1] (:func:`covered_fraction`).
    threshold : float
        The evidence at which an edge's weight is 0 (:func:`edge_weights`).
    n_nodes : int
        Number of segments.
    threads : int
        Threads of the decomposition solver.

    Returns
    -------
    ndarray of bool, one per pair: True where both segments are in one part.
    """
    na = np.asarray(na, np.int64)
    nb = np.asarray(nb, np.int64)
    score = np.asarray(score, np.float64)
    if not (na.shape == nb.shape == score.shape):
        raise ValueError("na, nb and score must have one value per pair")
    if na.size == 0:
        return np.zeros(0, bool)
    if na.min() < 0 or max(na.max(), nb.max()) >= n_nodes or np.any(na == nb):
        raise ValueError(f"pairs must join two different nodes in 0..{n_nodes - 1}")
    if not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1:
        raise ValueError("multicut scores must be finite and in [0, 1]")
    import bioimage_cpp as bic
    from elf.segmentation import multicut as mc

    # one edge per node pair (the largest evidence when a pair occurs twice, e.g. both ways)
    lo, hi = np.minimum(na, nb), np.maximum(na, nb)
    uv, inverse = np.unique(np.stack([lo, hi], 1), axis=0, return_inverse=True)
    best = np.full(len(uv), -1.0)
    np.maximum.at(best, inverse.ravel(), score)
    weights = np.ascontiguousarray(edge_weights(best, threshold), np.float64)
    graph = bic.graph.UndirectedGraph.from_edges(int(n_nodes), np.ascontiguousarray(uv, np.uint64))
    parts = native_call(mc.multicut_decomposition, graph, weights, n_threads=int(threads),
                        what="multicut linking (elf.segmentation.multicut.multicut_decomposition)")
    parts = np.asarray(parts, np.int64)
    return parts[na] == parts[nb]
