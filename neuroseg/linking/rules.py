"""The linking rules: which 2D segments of neighbouring slices are one neuron (:func:`link_slices`).

An EM volume is segmented slice by slice in 2D (e.g. with
:func:`neuroseg.segment.instances.labels_from_boundaries_stack`); :func:`link_slices` then decides
which segments of slice ``z`` and slice ``z + g`` belong to the same neuron and gives every
connected group of segments one 3D ID.

Pipeline
--------
1. **Segments.** A segment is a non-zero label of one slice, identified by ``(z, id)``. IDs
   are normally unique over the volume; when an ID occurs in several slices, every slice's
   copy is a separate segment (the same as offsetting the IDs of each slice past those of
   the slices before it). The link table always names segments by their *input* ID plus
   ``z_a``/``z_b``.
2. **Candidate pairs** (the rows of the link table): every pair of segments of slices ``z``
   and ``z + g``, ``1 <= g <= max_gap``, that overlap by at least one voxel, counted with
   :func:`neuroseg.measure.overlap.contingency` (the project's single overlap routine), with their
   IoU, overlap and sizes.
3. **Scores**: the IoU for ``"overlap"``, ``"hungarian"`` and ``"graph"``; the output of
   ``linker.score_pairs`` for ``"learned"``; the covered fraction ``overlap / size_a`` for
   ``"multicut"``.
4. **Decisions**, gap by gap (``g = 1, 2, ..., max_gap``). A pair at gap ``g`` is *eligible*
   when its score is ``>= threshold`` and, for ``g >= 2``, neither segment already has a
   link across the slices in between (``a`` has no link to slices ``z+1 .. z+g-1`` and
   ``b`` none from them). Gap pairs therefore only bridge a blank slice or a missing
   continuation; they never add a second link to a segment that is already continued. The
   method's rule then picks links among the eligible pairs of that gap:

   - ``"overlap"`` -- Cellpose's ``stitch3D`` (``stitch_threshold``) rule, see below;
   - ``"hungarian"`` -- one-to-one assignment maximising the summed IoU;
   - ``"graph"`` -- every eligible pair is a link (union-find), so a neurite may branch
     and two may join;
   - ``"learned"`` -- the same, with one constraint: two segments of one slice that touch
     each other (or are separated only by a background line up to ``2 * MUTEX_REACH`` = 4
     pixels wide, a membrane) are different neurons (else they would be one segment), so
     they may never end up in one object. The eligible pairs (all gaps) are joined in order of decreasing
     score by a mutex watershed (:func:`mwatershed.cluster`) with a mutex between every two
     touching segments of a slice; a pair whose join would violate a mutex is not linked.
     One false link can then no longer fuse two neighbouring neurons through a chain;
   - ``"multicut"`` -- micro-SAM's rule (:mod:`neuroseg.linking.multicut`): the score of a
     pair is the fraction of ``a`` that ``b`` covers, and one multicut over all candidate
     pairs (no gap-by-gap step) decides which segments are one object; a pair is linked when
     its two segments end up in one part. ``threshold`` is the evidence whose edge weight is
     0 (micro-SAM's weights are those of ``threshold = 1 / (1 + e)``, about 0.269,
     :data:`neuroseg.linking.multicut.MICRO_SAM_THRESHOLD`).
5. **3D IDs**: connected components (:func:`scipy.sparse.csgraph.connected_components`) of
   the graph of links, via :func:`relabel_from_links`; IDs are consecutive ``1..N``,
   numbered in order of each object's first segment (lowest ``z``, then lowest 2D ID).

Because the candidate pairs and their scores do not depend on the threshold, the table can
be re-decided at another threshold without recomputing any overlap (:func:`relink`), which
gives exactly what :func:`link_slices` gives at that threshold.

The "overlap" method and Cellpose
---------------------------------
Cellpose's ``stitch3D`` goes through the slices in order; for slice ``z + 1`` it computes the
IoU of every mask with every (already stitched) mask of slice ``z``, sets IoUs below
``stitch_threshold`` to 0, then keeps in every *column* (mask of slice ``z``) only its
maximum (``iou[iou < iou.max(axis=0)] = 0``) and finally gives each mask of ``z + 1`` the ID
of the row argmax, or a new ID when its row is all 0. Reproduced here on the link table:
a pair is linked when its IoU is ``>= threshold``, ``b`` is the best partner of ``a`` among
the eligible pairs of ``a``, and ``a`` is the best of the segments that chose ``b`` (ties to
the smaller 2D ID). The result is one-to-one, except that a segment of ``z`` passes its ID
to *several* segments of ``z + 1`` when they tie exactly for its best IoU (Cellpose
behaves the same; its early versions, without the column-maximum line, were
many-to-one). Differences from Cellpose: IoUs are always between 2D segments (Cellpose
measures against the stitched masks of ``z``, which differ only after such a tie), and
Cellpose never bridges gaps (``max_gap=1`` here); with ``max_gap > 1`` a segment left
without a link looks back up to ``max_gap`` slices with the same rule.

The learned linker
------------------
Any object with a ``score_pairs(labels, raw, pairs, *, resolution)`` method (see
:class:`PairScorer`) plugs in with ``method="learned"``: it receives the label volume
(read-only), ``raw`` as given, the candidate pairs (a DataFrame with the columns of
:data:`PAIR_COLUMNS`, one row per pair) and ``resolution``, and returns one score in
``[0, 1]`` per row (higher = same neuron). :class:`OverlapLinker` is a reference
implementation from overlap features alone.

``resolution`` (the (z, y, x) voxel size, e.g. in nm) does not change the overlap methods'
decisions (overlaps are counted in voxels of two slices of the same grid); it is validated,
stored in the result and passed to the linker.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from neuroseg.checks import check_resolution, native_call
from neuroseg.linking.graph import (
    LinkResult,
    Segments,
    check_labels,
    check_links,
    check_max_gap,
    components,
    paint,
    pair_table,
)
from neuroseg.linking.multicut import covered_fraction, multicut_keep

__all__ = [
    "METHODS",
    "OverlapLinker",
    "PairScorer",
    "link_slices",
    "relink",
]

#: Linking methods accepted by :func:`link_slices`.
METHODS = ("overlap", "hungarian", "graph", "learned", "multicut")


# --------------------------------------------------------------------------------------------
# public types
# --------------------------------------------------------------------------------------------


@runtime_checkable
class PairScorer(Protocol):
    """What ``method="learned"`` needs from a linker.

    ``score_pairs(labels, raw, pairs, *, resolution)`` gets the (z, y, x) label volume
    (read-only; segments are ``(z, id)``), the ``raw`` volume as passed to
    :func:`link_slices` (possibly None: a linker that needs it should raise
    :class:`ValueError`), the candidate pairs (columns :data:`PAIR_COLUMNS`) and the voxel
    size (a (z, y, x) tuple of floats, or None). It returns one score in [0, 1] per row of
    ``pairs``, in row order; higher means "same neuron".
    """

    def score_pairs(
        self,
        labels: np.ndarray,
        raw: np.ndarray | None,
        pairs: pd.DataFrame,
        *,
        resolution: tuple[float, float, float] | None,
    ) -> np.ndarray: ...


class OverlapLinker:
    """A linker that scores pairs from their overlap alone; no training, no raw data.

    ``score = overlap / min(size_a, size_b)``, the fraction of the smaller segment that the
    other covers (the maximum of ``overlap / size_a`` and ``overlap / size_b``). Unlike the
    IoU it stays high when a neurite branches or two join (the small piece lies inside the
    big one), so with ``method="learned"`` it links branches that IoU thresholds miss. It is
    the reference implementation of :class:`PairScorer`.

    Examples
    --------
    >>> pairs = pd.DataFrame({"overlap": [4, 1], "size_a": [8, 8], "size_b": [4, 2]})
    >>> OverlapLinker().score_pairs(None, None, pairs, resolution=None).tolist()
    [1.0, 0.5]
    """

    def score_pairs(
        self,
        labels: np.ndarray | None,
        raw: np.ndarray | None,
        pairs: pd.DataFrame,
        *,
        resolution: tuple[float, float, float] | None = None,
    ) -> np.ndarray:
        """Fraction of the smaller segment covered, one value per row of ``pairs``.

        Parameters
        ----------
        labels, raw : ndarray or None
            Unused.
        pairs : pandas.DataFrame
            Needs the columns ``overlap``, ``size_a`` and ``size_b``.
        resolution : tuple of float or None, optional
            Unused.

        Returns
        -------
        ndarray of float64
            Scores in [0, 1].
        """
        missing = [c for c in ("overlap", "size_a", "size_b") if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs lacks the columns {missing}")
        overlap = pairs["overlap"].to_numpy(np.float64)
        smaller = np.minimum(pairs["size_a"].to_numpy(np.float64), pairs["size_b"].to_numpy())
        return overlap / np.maximum(smaller, 1.0)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_method(method: str, allowed: Sequence[str] = METHODS) -> str:
    if method not in allowed:
        raise ValueError(f"unknown method {method!r}; choose one of {list(allowed)}")
    return method


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number in [0, 1]; got {threshold!r}")
    t = float(threshold)
    if not 0.0 <= t <= 1.0:  # also rejects NaN
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    return t


# --------------------------------------------------------------------------------------------
# decision rules: each takes the eligible pairs of one gap and returns a keep mask
# --------------------------------------------------------------------------------------------


def _rule_all(na: np.ndarray, nb: np.ndarray, score: np.ndarray) -> np.ndarray:
    return np.ones(na.size, bool)


def _rule_cellpose(na: np.ndarray, nb: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Keep the best partner of every ``a``; then every ``b`` takes its best remaining ``a``."""
    ua, ia = np.unique(na, return_inverse=True)
    best = np.full(ua.size, -np.inf)
    np.maximum.at(best, ia, score)
    cand = np.flatnonzero(score >= best[ia])
    order = cand[np.lexsort((na[cand], -score[cand], nb[cand]))]
    first = np.ones(order.size, bool)
    first[1:] = nb[order][1:] != nb[order][:-1]
    keep = np.zeros(na.size, bool)
    keep[order[first]] = True
    return keep


def _rule_hungarian(na: np.ndarray, nb: np.ndarray, score: np.ndarray) -> np.ndarray:
    """One-to-one links maximising the summed score (sparse Jonker-Volgenant, LAPJVsp).

    Every ``a`` also gets a private dummy partner, so a full matching of the ``a`` side
    always exists; edge costs ``2 - score`` (real) and ``2`` (dummy) are all non-zero, and
    the minimum-cost full matching maximises the summed score of the real links. All slice
    pairs of one gap are solved in one call (their graphs are disjoint). Pairs whose two
    segments have no other eligible pair are kept without solving anything.
    """
    ua, r = np.unique(na, return_inverse=True)
    ub, c = np.unique(nb, return_inverse=True)
    alone = (np.bincount(r)[r] == 1) & (np.bincount(c)[c] == 1)
    keep = alone.copy()
    contested = np.flatnonzero(~alone)
    if contested.size:
        keep[contested] = _assign(r[contested], c[contested], score[contested])
    return keep


def _assign(r: np.ndarray, c: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Keep mask of the maximum-score one-to-one matching of the edges ``(r, c)``."""
    ua, r = np.unique(r, return_inverse=True)
    ub, c = np.unique(c, return_inverse=True)
    nr, nc = ua.size, ub.size
    rows = np.concatenate([r, np.arange(nr)])
    cols = np.concatenate([c, nc + np.arange(nr)])
    cost = np.concatenate([2.0 - score, np.full(nr, 2.0)])
    graph = sparse.csr_array((cost, (rows, cols)), shape=(nr, nc + nr))
    mr, mc = min_weight_full_bipartite_matching(graph)
    real = mc < nc
    chosen = np.zeros(nr, np.int64) - 1
    chosen[mr[real]] = mc[real]
    return chosen[r] == c


_RULES = {
    "overlap": _rule_cellpose,
    "hungarian": _rule_hungarian,
    "graph": _rule_all,
    "learned": _rule_all,
}


#: For the mutex of ``"learned"``, each segment is grown by this many pixels into the
#: background (label 0); segments of one slice that then touch count as touching, i.e. those
#: separated by a background line up to ``2 * MUTEX_REACH`` pixels wide (a membrane).
MUTEX_REACH = 2


def _touching(labels: np.ndarray, segs: Segments) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs of segments of one slice that touch (4-neighbours) or are separated by at
    most ``2 * MUTEX_REACH`` background pixels (a boundary drawn as label 0), each pair once."""
    if (labels == 0).any():
        from skimage.segmentation import expand_labels

        labels = np.stack([expand_labels(s, distance=MUTEX_REACH) for s in labels])
    za, ia, ib = [], [], []
    for a, b in ((labels[:, :, :-1], labels[:, :, 1:]), (labels[:, :-1, :], labels[:, 1:, :])):
        m = (a != b) & (a != 0) & (b != 0)
        z = np.nonzero(m)[0]
        za.append(z)
        ia.append(np.minimum(a[m], b[m]))
        ib.append(np.maximum(a[m], b[m]))
    z = np.concatenate(za)
    if z.size == 0:
        e = np.zeros(0, np.int64)
        return e, e
    trip = np.unique(np.stack([z, np.concatenate(ia).astype(np.int64), np.concatenate(ib).astype(np.int64)]), axis=1)
    return segs.nodes(trip[0], trip[1], "a"), segs.nodes(trip[0], trip[2], "b")


def _mutex(
    na: np.ndarray, nb: np.ndarray, score: np.ndarray, keep: np.ndarray, mutex: tuple, n_nodes: int
) -> np.ndarray:
    """Of the pairs in ``keep``, those a mutex watershed accepts (highest score first, never
    joining two segments of ``mutex``)."""
    import mwatershed

    idx = np.flatnonzero(keep)
    mu, mv = mutex
    if idx.size == 0 or mu.size == 0:
        return keep
    order = idx[np.lexsort((nb[idx], na[idx], -score[idx]))]
    edges = [(False, int(u), int(v)) for u, v in zip(mu.tolist(), mv.tolist())]
    edges += [(True, int(u), int(v)) for u, v in zip(na[order].tolist(), nb[order].tolist())]
    root = np.arange(n_nodes, dtype=np.int64)
    clusters = native_call(mwatershed.cluster, edges, what="learned linking (mwatershed.cluster)")
    mapping = np.asarray(clusters, dtype=np.int64).reshape(-1, 2)
    root[mapping[:, 0]] = mapping[:, 1]
    return keep & (root[na] == root[nb])


def _decide(
    method: str,
    na: np.ndarray,
    nb: np.ndarray,
    gap: np.ndarray,
    score: np.ndarray,
    threshold: float,
    n_nodes: int,
    mutex: tuple | None = None,
) -> np.ndarray:
    """``linked`` flag of every pair, deciding gap by gap (see the module docstring); for
    ``"multicut"`` one multicut over all pairs."""
    if method == "multicut":
        return multicut_keep(na, nb, score, threshold, n_nodes)
    rule = _RULES[method]
    linked = np.zeros(na.size, bool)
    has_next = np.zeros(n_nodes, bool)  # segment already linked to a later slice
    has_prev = np.zeros(n_nodes, bool)  # segment already linked from an earlier slice
    for g in np.unique(gap):
        idx = np.flatnonzero((gap == g) & (score >= threshold))
        idx = idx[~has_next[na[idx]] & ~has_prev[nb[idx]]]
        if idx.size == 0:
            continue
        sel = idx[rule(na[idx], nb[idx], score[idx])]
        linked[sel] = True
        has_next[na[sel]] = True
        has_prev[nb[sel]] = True
    if method == "learned" and mutex is not None:
        linked = _mutex(na, nb, score, linked, mutex, n_nodes)
    return linked


# --------------------------------------------------------------------------------------------
# candidate pairs
# --------------------------------------------------------------------------------------------


def _linker_scores(linker: object, labels, raw, pairs: pd.DataFrame, resolution) -> np.ndarray:
    if not callable(getattr(linker, "score_pairs", None)):
        raise TypeError(
            f"linker must have a score_pairs(labels, raw, pairs, *, resolution) method; "
            f"got {type(linker).__name__}"
        )
    if len(pairs) == 0:
        return np.zeros(0)
    view = labels.view()
    view.flags.writeable = False
    out = linker.score_pairs(view, raw, pairs.copy(), resolution=resolution)
    scores = np.asarray(out, dtype=np.float64)
    if scores.shape != (len(pairs),):
        raise ValueError(
            f"linker.score_pairs must return one score per pair, shape ({len(pairs)},); "
            f"got shape {scores.shape}"
        )
    if not np.isfinite(scores).all() or scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(
            "linker.score_pairs must return finite scores in [0, 1]; got values in "
            f"[{np.nanmin(scores)}, {np.nanmax(scores)}]"
        )
    return scores


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def link_slices(
    labels: npt.ArrayLike,
    *,
    raw: npt.ArrayLike | None = None,
    method: str = "overlap",
    threshold: float = 0.25,
    linker: PairScorer | None = None,
    max_gap: int = 1,
    resolution: Sequence[float] | None = None,
) -> LinkResult:
    """Link the 2D segments of a (z, y, x) stack into 3D objects.

    See the module docstring for the candidate pairs, the gap rule and the methods.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        2D segments, 0 = background/boundary. IDs should be unique over the volume; an ID
        that occurs in several slices is a separate segment in each (as if the IDs of every
        slice were offset past those of the slices before it). Not modified.
    raw : array_like, optional
        Raw volume, passed unchanged to the linker (``method="learned"``); ignored by the
        other methods. Its last three axes must match ``labels.shape``.
    method : {"overlap", "hungarian", "graph", "learned", "multicut"}, optional
        ``"overlap"``: Cellpose's ``stitch3D`` rule (default, with Cellpose's default
        threshold 0.25); ``"hungarian"``: one-to-one assignment maximising the summed IoU
        of the pairs with IoU ``>= threshold``; ``"graph"``: every pair with IoU
        ``>= threshold`` is a link; ``"learned"``: every pair whose ``linker`` score is
        ``>= threshold`` is a link, unless it would join two touching segments of one slice
        (mutex watershed, see the module docstring); ``"multicut"``: micro-SAM's multicut
        on the overlap graph, ``threshold`` being the covered fraction of zero weight.
    threshold : float, optional
        Score threshold in [0, 1]; a pair can only be linked when ``score >= threshold``.
    linker : PairScorer, optional
        Required for (and only allowed with) ``method="learned"``; see :class:`PairScorer`.
        It is not called when there are no candidate pairs.
    max_gap : int, optional
        Largest slice distance of a link (>= 1). With ``max_gap=2`` a segment with no link
        to the next slice can be linked to the slice after it (bridging one blank slice or
        one missing continuation).
    resolution : sequence of 3 float, optional
        (z, y, x) voxel size, e.g. in nm. Stored in the result and passed to the linker;
        it does not change the decisions of the overlap methods.

    Returns
    -------
    LinkResult
        ``labels`` (uint32 3D IDs ``1..N``, 0 stays 0) and ``links`` (the link table).

    Raises
    ------
    TypeError
        If ``labels`` is not an integer array (floats are refused), or ``linker`` has no
        ``score_pairs`` method.
    ValueError
        If ``labels`` is not 3D or has negative labels, ``method`` is unknown,
        ``threshold`` is outside [0, 1], ``max_gap < 1``, ``resolution`` is not three
        positive numbers, ``raw`` has the wrong shape, ``method="learned"`` comes without
        ``linker`` (or ``linker`` without ``method="learned"``), or the linker returns
        scores of the wrong shape or outside [0, 1].

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 2]],
    ...                    [[3, 3, 0, 4]]])
    >>> res = link_slices(labels)
    >>> res.labels.tolist()
    [[[1, 1, 0, 2]], [[1, 1, 0, 2]]]
    >>> res.links[["id_a", "id_b", "iou", "linked"]].values.tolist()
    [[1, 3, 1.0, True], [2, 4, 1.0, True]]
    """
    arr = check_labels(labels)
    method = _check_method(method)
    t = _check_threshold(threshold)
    max_gap = check_max_gap(max_gap)
    res = check_resolution(resolution)
    if method == "learned" and linker is None:
        raise ValueError("method='learned' needs a linker with a score_pairs method")
    if method != "learned" and linker is not None:
        raise ValueError(f"a linker is only used with method='learned'; got method={method!r}")
    if raw is not None:
        raw = np.asarray(raw)
        if raw.shape[-3:] != arr.shape:
            raise ValueError(
                f"shape mismatch: raw has shape {raw.shape} but labels has shape {arr.shape}"
            )

    segs = Segments.of(arr)
    pairs, na, nb = pair_table(arr, segs, max_gap)
    if method == "learned":
        score = _linker_scores(linker, arr, raw, pairs, res)
    elif method == "multicut":
        score = covered_fraction(pairs)
    else:
        score = pairs["iou"].to_numpy(copy=True)
    gap = (pairs["z_b"] - pairs["z_a"]).to_numpy()
    mutex = _touching(arr, segs) if method == "learned" else None
    linked = _decide(method, na, nb, gap, score, t, segs.n, mutex)
    links = pairs.assign(score=score, linked=linked)
    out = paint(arr, segs, components(segs.n, na[linked], nb[linked]))
    return LinkResult(labels=out, links=links, method=method, threshold=t, resolution=res)


def relink(
    labels: npt.ArrayLike,
    links: pd.DataFrame,
    threshold: float,
    *,
    method: str = "graph",
    resolution: Sequence[float] | None = None,
) -> LinkResult:
    """Re-decide a link table at another threshold, without recomputing any overlap.

    The ``score`` column is kept; ``linked`` is recomputed by ``method``'s rule with
    ``score >= threshold``, gap by gap as in :func:`link_slices`, and the 3D IDs by
    :func:`relabel_from_links`. For the table of ``link_slices(labels, method=m, ...)``,
    ``relink(labels, table, t, method=m)`` equals ``link_slices(labels, method=m,
    threshold=t, ...)`` (for ``"learned"``: with the same linker scores).

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        The 2D segments the table refers to.
    links : pandas.DataFrame
        Link table with at least the columns ``z_a``, ``z_b``, ``id_a``, ``id_b`` and
        ``score``; other columns are kept. Not modified.
    threshold : float
        New score threshold in [0, 1].
    method : {"graph", "learned", "overlap", "hungarian", "multicut"}, optional
        Decision rule; ``"graph"`` and ``"learned"`` are the same rule (every pair with
        ``score >= threshold``); ``"multicut"`` needs the covered fractions as scores (the
        table of ``link_slices(..., method="multicut")``).
    resolution : sequence of 3 float, optional
        Voxel size to record in the result.

    Returns
    -------
    LinkResult
        New 3D labels and a copy of ``links`` with a recomputed ``linked`` column.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 1, 0]], [[2, 2, 0, 0]]])
    >>> res = link_slices(labels, method="graph", threshold=0.5)
    >>> res.labels.tolist()
    [[[1, 1, 1, 0]], [[1, 1, 0, 0]]]
    >>> relink(labels, res.links, 0.9).labels.tolist()
    [[[1, 1, 1, 0]], [[2, 2, 0, 0]]]
    """
    arr = check_labels(labels)
    check_links(links, ("z_a", "z_b", "id_a", "id_b", "score"))
    t = _check_threshold(threshold)
    method = _check_method(method)
    res = check_resolution(resolution)
    segs = Segments.of(arr)
    za = links["z_a"].to_numpy()
    zb = links["z_b"].to_numpy()
    if np.any(zb <= za):
        raise ValueError("links must have z_b > z_a in every row")
    na = segs.nodes(za, links["id_a"].to_numpy(), "a")
    nb = segs.nodes(zb, links["id_b"].to_numpy(), "b")
    score = links["score"].to_numpy(dtype=np.float64)
    mutex = _touching(arr, segs) if method == "learned" else None
    linked = _decide(method, na, nb, (zb - za).astype(np.int64), score, t, segs.n, mutex)
    new_links = links.assign(linked=linked)
    out = paint(arr, segs, components(segs.n, na[linked], nb[linked]))
    return LinkResult(labels=out, links=new_links, method=method, threshold=t, resolution=res)
