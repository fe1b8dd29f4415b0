"""Tracking over time with the slice-linking code: time read as z.

A time-lapse of 2D segments is a (t, y, x) label stack, exactly what :func:`link_slices` takes
for a volume; the WEBKNOSSOS post makes the same point. What differs is the answer wanted: not
3D objects but *tracks* with a lineage, where an object may vanish for a frame or two (a gap)
and one object may continue into two (a division). :func:`track` therefore keeps the
candidate pairs and scorers of slice linking (overlap IoU, or the learned linker's calibrated
probability) and decides with the three steps of a LAP tracker (Jaqaman et al. 2008):

1. frame to frame: one-to-one assignment (Hungarian) between frames ``t`` and ``t + 1``,
   maximising the summed score of pairs at or above ``threshold``;
2. gap closing: a track end and a track start up to ``max_gap`` frames later, one-to-one;
3. splitting: a segment that starts a track, scored at or above ``division_threshold`` with a
   segment of the previous frame (or, with ``division_distance``, close to it), becomes its
   second daughter when that segment continues, and two such segments become both daughters
   of one that does not; kept only when both daughters last ``min_daughter_frames`` frames
   (an over-split nucleus for a frame is not a division).

The result follows the Cell Tracking Challenge: a new track after a gap or a division, with
its parent recorded (:func:`neuroseg.data.ctc.write_result` writes it). ``method="laptrack"``
runs the peer tracker ``laptrack`` (LAP on centroids) on the same segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from neuroseg.checks import check_unit_interval
from neuroseg.data.ctc import LINEAGE_COLUMNS, check_lineage
from neuroseg.linking.graph import Segments, check_labels, check_max_gap, paint, pair_table

__all__ = ["METHODS", "Tracks", "track"]

METHODS = ("overlap", "learned", "laptrack")


@dataclass(frozen=True)
class Tracks:
    """A tracking result.

    Attributes
    ----------
    labels : ndarray of uint32, (t, y, x)
        Every segment painted with its track ID (1..N); 0 = background.
    lineage : DataFrame
        ``track, begin, end, parent`` (the CTC ``res_track.txt``).
    links : DataFrame
        The candidate pairs (``z_a, z_b, id_a, id_b`` as in slice linking, frames for z) with
        ``score`` and ``kind``: ``"link"``, ``"gap"``, ``"division"`` or ``""`` (not taken).
    """

    labels: np.ndarray
    lineage: pd.DataFrame
    links: pd.DataFrame

    @property
    def divisions(self) -> int:
        """Number of tracks that divide (have two daughters)."""
        counts = self.lineage.parent[self.lineage.parent > 0].value_counts()
        return int((counts >= 2).sum())


def _assign(a: np.ndarray, b: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Rows of a one-to-one assignment maximising the summed score (all rows are candidates)."""
    from scipy.optimize import linear_sum_assignment

    if score.size == 0:
        return np.zeros(0, np.int64)
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    cost = np.full((ua.size, ub.size), 1e6)
    row_of = np.full((ua.size, ub.size), -1, np.int64)
    order = np.argsort(-score, kind="stable")  # the best row of a repeated pair wins
    for k in order[::-1]:
        cost[ia[k], ib[k]] = -score[k]
        row_of[ia[k], ib[k]] = k
    r, c = linear_sum_assignment(cost)
    chosen = row_of[r, c]
    return np.sort(chosen[(chosen >= 0) & (cost[r, c] < 1e6)])


def _decide(
    pairs: pd.DataFrame, na: np.ndarray, nb: np.ndarray, n: int, *, threshold: float,
    max_gap: int, divisions: bool, division_threshold: float, min_daughter_frames: int,
    frame_of: np.ndarray, division_distance: float | None = None,
) -> np.ndarray:
    """``kind`` of every candidate pair (see the module docstring). Pairs whose centroids lie
    within ``division_distance`` are candidates for a daughter whatever their score."""
    score = np.nan_to_num(pairs["score"].to_numpy(float), nan=-1.0)
    near = (pairs["distance"].to_numpy() <= division_distance if division_distance is not None
            else np.zeros(len(pairs), bool))
    gap = (pairs["z_b"] - pairs["z_a"]).to_numpy()
    kind = np.full(len(pairs), "", dtype=object)
    succ = np.zeros(n, np.int64)
    pred = np.zeros(n, np.int64)

    ok = (gap == 1) & (score >= threshold)
    for t in np.unique(pairs["z_a"].to_numpy()[ok]):
        rows = np.flatnonzero(ok & (pairs["z_a"].to_numpy() == t))
        for k in rows[_assign(na[rows], nb[rows], score[rows])]:
            kind[k] = "link"
            succ[na[k]] += 1
            pred[nb[k]] += 1

    if max_gap > 1:
        rows = np.flatnonzero((gap > 1) & (score >= threshold))
        rows = rows[(succ[na[rows]] == 0) & (pred[nb[rows]] == 0)]
        # shorter gaps first: a slightly lower score one frame later beats a jump of two
        adjusted = score[rows] - 1e-3 * gap[rows]
        for k in rows[_assign(na[rows], nb[rows], adjusted)]:
            kind[k] = "gap"
            succ[na[k]] += 1
            pred[nb[k]] += 1

    if divisions:
        rows = np.flatnonzero((gap == 1) & ((score >= division_threshold) | near) & (kind == ""))
        # overlapping candidates by score first, then the near ones by distance; a segment
        # that continues gets a second daughter, one that does not gets two or none
        order = np.lexsort((pairs["distance"].to_numpy()[rows], -score[rows]))
        by_mother: dict[int, list[int]] = {}
        for k in rows[order]:
            by_mother.setdefault(int(na[k]), []).append(int(k))
        for a, ks in by_mother.items():
            free = [k for k in ks if pred[nb[k]] == 0]
            need = 2 - succ[a]
            if need < 1 or len(free) < need:
                continue
            for k in free[:need]:
                kind[k] = "division"
                succ[a] += 1
                pred[nb[k]] += 1
        if min_daughter_frames > 1:
            kind = _drop_short_divisions(kind, na, nb, n, frame_of, min_daughter_frames)
    return kind


def _successors(kind: np.ndarray, na: np.ndarray, nb: np.ndarray, n: int) -> list[list[int]]:
    nxt: list[list[int]] = [[] for _ in range(n)]
    for k in np.flatnonzero(kind != ""):
        nxt[na[k]].append(int(nb[k]))
    return nxt


def _drop_short_divisions(kind, na, nb, n, frame_of, min_frames: int) -> np.ndarray:
    """Undo divisions whose daughters do not both last ``min_frames`` frames."""
    kind = kind.copy()
    nxt = _successors(kind, na, nb, n)

    def lasts(node: int) -> int:  # frames the daughter's line lasts, up to min_frames
        start, cur = frame_of[node], node
        while len(nxt[cur]) == 1 and frame_of[cur] - start + 1 < min_frames:
            cur = nxt[cur][0]
        return int(frame_of[cur] - start + 1)

    for k in np.flatnonzero(kind == "division"):
        a = na[k]
        if any(lasts(d) < min_frames for d in nxt[a]):
            kind[k] = ""
    return kind


def _build(labels: np.ndarray, segs: Segments, kind, na, nb, frame_of) -> tuple[np.ndarray, pd.DataFrame]:
    """Track IDs and the CTC lineage from the taken pairs."""
    n = segs.n
    nxt = _successors(kind, na, nb, n)
    has_pred = np.zeros(n, bool)
    for k in np.flatnonzero(kind != ""):
        has_pred[nb[k]] = True
    track_of = np.full(n, -1, np.int64)
    rows: list[list[int]] = []
    # a track starts at a node without predecessor, or after a gap or a division
    starts = [(int(frame_of[i]), i, 0) for i in range(n) if not has_pred[i]]
    starts.sort()
    queue = list(starts)
    while queue:
        queue.sort()
        frame, node, parent = queue.pop(0)
        tid = len(rows) + 1
        cur = node
        while True:
            track_of[cur] = tid
            nx = nxt[cur]
            if len(nx) == 1 and frame_of[nx[0]] == frame_of[cur] + 1:
                cur = nx[0]
                continue
            break
        rows.append([tid, int(frame_of[node]), int(frame_of[cur]), parent])
        queue.extend((int(frame_of[c]), c, tid) for c in nx)
    obj = track_of.copy()
    out = paint(labels, segs, obj - 1 if n else obj)
    lineage = pd.DataFrame(rows, columns=list(LINEAGE_COLUMNS), dtype=np.int64)
    return out, check_lineage(lineage, n_frames=labels.shape[0])


def _centroids(labels: np.ndarray, segs: Segments) -> np.ndarray:
    """(y, x) centroid of every node, in pixels."""
    from scipy import ndimage as ndi

    out = np.zeros((segs.n, 2))
    for t, ids in enumerate(segs.ids):
        if ids.size:
            c = ndi.center_of_mass(np.ones(labels[t].shape), labels[t], ids)
            out[segs.offsets[t] : segs.offsets[t + 1]] = np.asarray(c)
    return out


def _laptrack_kinds(
    segs, centres: np.ndarray, *, max_gap: int, max_distance: float, divisions: bool,
) -> np.ndarray:
    """Run laptrack on the segments' centroids (pixels); the edges (node pairs) it took."""
    from laptrack import LapTrack

    frame_of = np.repeat(np.arange(len(segs.ids)), np.diff(segs.offsets))
    coords = [centres[frame_of == t] for t in range(len(segs.ids))]
    cut = float(max_distance) ** 2
    lt = LapTrack(
        cutoff=cut,
        gap_closing_cutoff=cut if max_gap > 1 else False,
        gap_closing_max_frame_count=max(1, max_gap),
        splitting_cutoff=cut if divisions else False,
        merging_cutoff=False,
    )
    tree = lt.predict(coords)
    edges = []
    for (f1, i1), (f2, i2) in tree.edges():
        a, b = (segs.offsets[f1] + i1, segs.offsets[f2] + i2)
        edges.append((a, b) if f1 < f2 else (b, a))
    return np.asarray(edges, np.int64).reshape(-1, 2)


def track(
    labels: npt.ArrayLike,
    *,
    raw: npt.ArrayLike | None = None,
    method: str = "overlap",
    linker=None,
    resolution: Sequence[float] | None = None,
    max_gap: int = 2,
    threshold: float | None = None,
    divisions: bool = True,
    division_threshold: float | None = None,
    min_daughter_frames: int = 1,
    division_distance: float | None = None,
    max_distance: float = 15.0,
) -> Tracks:
    """Track 2D segments through time: links, gaps of up to ``max_gap - 1`` frames, divisions.

    Parameters
    ----------
    labels : array_like of int, (t, y, x)
        2D segments per frame (IDs per frame or global), 0 = background. Not modified.
    raw : array_like, (t, y, x), optional
        The images; the learned linker needs them.
    method : {"overlap", "learned", "laptrack"}
        ``"overlap"``: a pair's score is the IoU of the two segments; ``"learned"``: the
        calibrated probability of ``linker`` (an :class:`~neuroseg.linking.learned.AffinityLinker`
        with a calibration for these frames); ``"laptrack"``: the peer LAP tracker on the
        segments' centroids.
    resolution : (t, y, x), optional
        Passed to the linker (its calibration is chosen by the first value); default 1 per
        axis.
    max_gap : int
        Largest frame distance of a link: 1 = no gaps, 2 = a gap of one missing frame.
    threshold : float in [0, 1], optional
        Smallest score of a link; default 0.1 (IoU) or the linker's calibrated threshold.
    divisions : bool
        Whether one segment may continue into two.
    division_threshold : float in [0, 1], optional
        Smallest score of a second daughter (default ``threshold``).
    min_daughter_frames : int
        A division is kept only when both daughters last this many frames.
    division_distance : float, optional
        Also take as a second daughter a segment that does not overlap the dividing one but
        whose centroid lies within this many pixels of it (daughters of a division often land
        beside their mother's outline). Default: overlapping segments only.
    max_distance : float
        laptrack's largest step, in pixels (for links, gaps and divisions alike).

    Returns
    -------
    Tracks

    Examples
    --------
    >>> frames = np.zeros((3, 1, 6), np.uint16)
    >>> frames[0, 0, 1:5] = 1                           # one object ...
    >>> frames[1, 0, 1:3], frames[1, 0, 3:5] = 1, 2     # ... divides
    >>> frames[2, 0, 1:3], frames[2, 0, 3:5] = 1, 2
    >>> t = track(frames, min_daughter_frames=2)
    >>> t.lineage.values.tolist(), t.divisions
    ([[1, 0, 0, 0], [2, 1, 2, 1], [3, 1, 2, 1]], 1)
    """
    if np.ndim(labels) != 3:
        raise ValueError(f"labels must be a (t, y, x) stack; got shape {np.shape(labels)}")
    arr = check_labels(labels)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    max_gap = check_max_gap(max_gap)
    if int(min_daughter_frames) < 1:
        raise ValueError(f"min_daughter_frames must be >= 1; got {min_daughter_frames}")
    res = (1.0,) * 3 if resolution is None else tuple(float(r) for r in resolution)
    if len(res) != 3 or not all(np.isfinite(res)) or min(res) <= 0:
        raise ValueError(f"resolution must be three positive numbers (t, y, x); got {resolution}")
    segs = Segments.of(arr)
    pairs, na, nb = pair_table(arr, segs, max_gap)
    frame_of = np.repeat(np.arange(arr.shape[0]), np.diff(segs.offsets))
    centres = _centroids(arr, segs)
    near = np.zeros(len(pairs), bool)
    if division_distance is not None and divisions and method != "laptrack":
        if not (np.isfinite(division_distance) and division_distance > 0):
            raise ValueError(f"division_distance must be a positive number of pixels; got {division_distance}")
        pairs, na, nb, near = _with_near_pairs(pairs, na, nb, segs, frame_of, centres,
                                               float(division_distance))
    pairs = pairs.assign(distance=np.hypot(*(centres[na] - centres[nb]).T) if len(pairs) else 0.0)

    if method == "laptrack":
        edges = _laptrack_kinds(segs, centres, max_gap=max_gap, max_distance=max_distance,
                                divisions=divisions)
        pairs, na, nb, kind = _with_edges(pairs.drop(columns="distance"), na, nb, edges, segs,
                                          frame_of)
        pairs = pairs.assign(score=np.nan,
                             distance=np.hypot(*(centres[na] - centres[nb]).T) if len(pairs) else 0.0)
    else:
        if method == "overlap":
            score = np.where(near, np.nan, pairs["iou"].to_numpy(float))
            default = 0.1
        else:
            if linker is None:
                raise ValueError("method='learned' needs linker= (neuroseg.linking.learned.load_linker)")
            if raw is None:
                raise ValueError("method='learned' needs raw= (the frames the segments come from)")
            raw = np.asarray(raw)
            if raw.shape != arr.shape:
                raise ValueError(f"raw {raw.shape} and labels {arr.shape} differ in shape")
            if linker.active is None:
                linker = linker.calibrated_for(res)
            score = np.full(len(pairs), np.nan)
            score[~near] = linker.score_pairs(arr, raw, pairs[~near], resolution=res)
            default = linker.threshold
        threshold = default if threshold is None else check_unit_interval(threshold, "threshold")
        division_threshold = threshold if division_threshold is None else check_unit_interval(
            division_threshold, "division_threshold")
        pairs = pairs.assign(score=score)
        kind = _decide(pairs, na, nb, segs.n, threshold=threshold, max_gap=max_gap,
                       divisions=divisions, division_threshold=division_threshold,
                       min_daughter_frames=int(min_daughter_frames), frame_of=frame_of,
                       division_distance=division_distance if divisions else None)
    out, lineage = _build(arr, segs, kind, na, nb, frame_of)
    links = pairs[["z_a", "z_b", "id_a", "id_b", "iou", "distance", "score"]].assign(
        kind=kind.astype(str))
    return Tracks(labels=out, lineage=lineage, links=links.reset_index(drop=True))


def _with_near_pairs(pairs, na, nb, segs, frame_of, centres, distance: float):
    """Add the pairs of consecutive frames that do not overlap but whose centroids lie within
    ``distance`` pixels; return the table, node indices and the mask of the added rows."""
    from scipy.spatial.distance import cdist

    have = set(zip(na.tolist(), nb.tolist()))
    add = []
    for t in range(len(segs.ids) - 1):
        a = np.arange(segs.offsets[t], segs.offsets[t + 1])
        b = np.arange(segs.offsets[t + 1], segs.offsets[t + 2])
        if not (a.size and b.size):
            continue
        i, j = np.nonzero(cdist(centres[a], centres[b]) <= distance)
        add += [(int(a[x]), int(b[y])) for x, y in zip(i, j) if (a[x], b[y]) not in have]
    near = np.zeros(len(pairs) + len(add), bool)
    near[len(pairs):] = True
    pairs, na, nb = _append_pairs(pairs, na, nb, add, segs, frame_of)
    return pairs, na, nb, near


def _append_pairs(pairs, na, nb, add, segs, frame_of):
    """The candidate table and node indices with the node pairs ``add`` appended as pairs
    that do not overlap (IoU, overlap and sizes 0)."""
    if not add:
        return pairs, na, nb
    ids = np.concatenate(segs.ids)
    extra = pd.DataFrame({
        "z_a": [int(frame_of[a]) for a, _ in add], "z_b": [int(frame_of[b]) for _, b in add],
        "id_a": [ids[a] for a, _ in add], "id_b": [ids[b] for _, b in add],
        "iou": 0.0, "overlap": 0, "size_a": 0, "size_b": 0,
    })
    pairs = pd.concat([pairs, extra[pairs.columns]], ignore_index=True)
    na = np.concatenate([na, [a for a, _ in add]]).astype(np.int64)
    nb = np.concatenate([nb, [b for _, b in add]]).astype(np.int64)
    return pairs, na, nb


def _with_edges(pairs, na, nb, edges, segs, frame_of):
    """The candidate table with laptrack's edges marked (and added where they do not overlap)."""
    index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(na, nb))}
    kind = np.full(len(pairs), "", dtype=object)
    out_deg = np.bincount(edges[:, 0], minlength=segs.n) if edges.size else np.zeros(segs.n, int)
    extra = []
    for a, b in edges:
        gap = frame_of[b] - frame_of[a]
        label = "division" if out_deg[a] > 1 else ("link" if gap == 1 else "gap")
        k = index.get((int(a), int(b)))
        if k is None:
            extra.append((a, b, label))
        else:
            kind[k] = label
    pairs, na, nb = _append_pairs(pairs, na, nb, [(a, b) for a, b, _ in extra], segs, frame_of)
    kind = np.concatenate([kind, np.array([lab for _, _, lab in extra], dtype=object)])
    return pairs, na, nb, kind
