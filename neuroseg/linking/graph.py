"""The link graph: 2D segments as nodes, candidate pairs as edges, connected components as 3D IDs."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from neuroseg.data.labels import as_labels
from neuroseg.measure.overlap import contingency, pair_iou

#: Columns of the candidate pairs handed to a linker.
PAIR_COLUMNS = ("z_a", "z_b", "id_a", "id_b", "iou", "overlap", "size_a", "size_b")


#: Columns of the link table (:attr:`LinkResult.links`).
LINK_COLUMNS = (*PAIR_COLUMNS, "score", "linked")


_UINT32_MAX = int(np.iinfo(np.uint32).max)


@dataclass(frozen=True, eq=False)
class LinkResult:
    """3D labels and the link table of :func:`link_slices` or :func:`relink`.

    Attributes
    ----------
    labels : ndarray of uint32, shape (z, y, x)
        3D IDs ``1..N`` (consecutive); 0 stays 0.
    links : pandas.DataFrame
        One row per candidate pair, columns :data:`LINK_COLUMNS`: ``z_a < z_b`` slices,
        ``id_a``/``id_b`` input 2D IDs, ``iou``, ``overlap`` (voxels), ``size_a``/``size_b``
        (voxels), ``score`` (what the decision used) and ``linked`` (bool). Rows are sorted
        by ``z_a``, ``z_b``, ``id_a``, ``id_b``.
    method : str or None
        Method that decided the links.
    threshold : float or None
        Score threshold used.
    resolution : tuple of float or None
        (z, y, x) voxel size as given.
    """

    labels: np.ndarray
    links: pd.DataFrame
    method: str | None = None
    threshold: float | None = None
    resolution: tuple[float, float, float] | None = None

    @property
    def n_objects(self) -> int:
        """Number of 3D objects (the largest ID)."""
        return int(self.labels.max()) if self.labels.size else 0


def check_labels(labels: npt.ArrayLike, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be an integer label array; got dtype {arr.dtype}")
    arr = as_labels(arr, name)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a 3D (z, y, x) array of 2D segments; got shape {arr.shape}"
        )
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"{name} must not contain negative labels; minimum is {arr.min()}")
    return arr


def check_max_gap(max_gap: int) -> int:
    if isinstance(max_gap, bool) or not isinstance(max_gap, numbers.Integral):
        raise TypeError(f"max_gap must be an integer >= 1; got {max_gap!r}")
    if max_gap < 1:
        raise ValueError(f"max_gap must be >= 1; got {max_gap}")
    return int(max_gap)


def check_links(links: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(links, pd.DataFrame):
        raise TypeError(f"links must be a pandas DataFrame; got {type(links).__name__}")
    missing = [c for c in needed if c not in links.columns]
    if missing:
        raise ValueError(f"links lacks the columns {missing}")


def _slice_ids(s: np.ndarray) -> np.ndarray:
    """Sorted non-zero labels present in one slice."""
    flat = s.ravel()
    if flat.size == 0:
        return flat[:0]
    hi = int(flat.max())
    if hi == 0:
        return flat[:0]
    if hi <= 4 * flat.size + (1 << 16):
        present = np.bincount(flat.astype(np.intp, copy=False), minlength=hi + 1)
        return (np.flatnonzero(present[1:]) + 1).astype(flat.dtype)
    ids = np.unique(flat)
    return ids[ids != 0]


@dataclass(frozen=True)
class Segments:
    """The segments of a volume: node ``offsets[z] + i`` is ``ids[z][i]`` of slice ``z``."""

    ids: list[np.ndarray]
    offsets: np.ndarray

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def of(cls, labels: np.ndarray) -> Segments:
        ids = [_slice_ids(labels[z]) for z in range(labels.shape[0])]
        offsets = np.zeros(len(ids) + 1, np.int64)
        offsets[1:] = np.cumsum([i.size for i in ids])
        return cls(ids, offsets)

    def nodes(self, z: np.ndarray, ids: np.ndarray, side: str) -> np.ndarray:
        """Node index of each ``(z, id)``; ValueError when a segment is not in the volume."""
        z = np.asarray(z, np.int64)
        ids = np.asarray(ids)
        out = np.zeros(z.size, np.int64)
        if z.size == 0:
            return out
        nz = len(self.ids)
        bad = (z < 0) | (z >= nz)
        if bad.any():
            raise ValueError(f"links refer to slice z_{side}={int(z[bad][0])}; labels has {nz}")
        order = np.argsort(z, kind="stable")
        bounds = np.searchsorted(z[order], np.arange(nz + 1))
        for k in np.flatnonzero(np.diff(bounds)):  # loop over slices that have rows
            rows = order[bounds[k] : bounds[k + 1]]
            known = self.ids[k]
            pos = np.searchsorted(known, ids[rows])
            found = np.zeros(rows.size, bool)
            if known.size:
                found = known[np.minimum(pos, known.size - 1)] == ids[rows]
            if not found.all():
                raise ValueError(
                    f"links refer to segment id_{side}={ids[rows][~found][0]} in slice {k}, "
                    "which labels does not contain"
                )
            out[rows] = self.offsets[k] + pos
        return out


def components(n: int, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Object index (0-based) of every node; objects numbered by their lowest node."""
    if n == 0:
        return np.zeros(0, np.int64)
    graph = sparse.coo_array((np.ones(na.size, np.int8), (na, nb)), shape=(n, n)).tocsr()
    n_comp, comp = connected_components(graph, directed=False)
    first = np.full(n_comp, n, np.int64)
    np.minimum.at(first, comp, np.arange(n, dtype=np.int64))
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(n_comp)
    return rank[comp]


def paint(labels: np.ndarray, segs: Segments, obj: np.ndarray) -> np.ndarray:
    """3D label volume: every segment painted with its object index + 1."""
    if segs.n > _UINT32_MAX:
        raise OverflowError(f"{segs.n} segments do not fit in uint32")
    out = np.zeros(labels.shape, np.uint32)
    values = (obj + 1).astype(np.uint32)
    for z, ids in enumerate(segs.ids):
        if ids.size == 0:
            continue
        vals = values[segs.offsets[z] : segs.offsets[z + 1]]
        s = labels[z]
        hi = int(ids[-1])
        if hi <= 4 * s.size + (1 << 16):
            lut = np.zeros(hi + 1, np.uint32)
            lut[ids.astype(np.intp)] = vals
            out[z] = lut[s]
        else:
            pos = np.minimum(np.searchsorted(ids, s), ids.size - 1)
            out[z] = np.where(s != 0, vals[pos], 0)
    return out


def pair_table(
    labels: np.ndarray, segs: Segments, max_gap: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """All overlapping pairs up to ``max_gap``, with their node indices."""
    nz = labels.shape[0]
    parts: list[tuple[np.ndarray, ...]] = []
    for za in range(nz):
        if segs.ids[za].size == 0:
            continue
        for zb in range(za + 1, min(za + max_gap, nz - 1) + 1):
            if segs.ids[zb].size == 0:
                continue
            c = contingency(labels[za], labels[zb], ignore_a=0, ignore_b=0)
            if c.counts.size == 0:
                continue
            ri, ci, iou = pair_iou(c)
            na = segs.offsets[za] + np.searchsorted(segs.ids[za], c.a_ids)
            nb = segs.offsets[zb] + np.searchsorted(segs.ids[zb], c.b_ids)
            k = c.counts.size
            parts.append(
                (
                    np.full(k, za, np.int64),
                    np.full(k, zb, np.int64),
                    c.a_ids,
                    c.b_ids,
                    iou,
                    c.counts,
                    c.a_sizes[ri],
                    c.b_sizes[ci],
                    na,
                    nb,
                )
            )
    if parts:
        cols = [np.concatenate(p) for p in zip(*parts, strict=True)]
    else:
        e = np.zeros(0, np.int64)
        ids = labels.ravel()[:0]
        cols = [e, e, ids, ids, np.zeros(0), e, e, e, e, e]
    data = dict(zip(PAIR_COLUMNS, cols[:8], strict=True))
    data["iou"] = np.asarray(data["iou"], np.float64)
    for name in ("overlap", "size_a", "size_b"):
        data[name] = np.asarray(data[name], np.int64)
    return pd.DataFrame(data), cols[8], cols[9]


def candidate_pairs(labels: npt.ArrayLike, *, max_gap: int = 1) -> pd.DataFrame:
    """The candidate pairs of a label stack: what :func:`link_slices` decides on.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        2D segments, 0 = background (as for :func:`link_slices`). Not modified.
    max_gap : int, optional
        Largest slice distance of a pair (>= 1).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PAIR_COLUMNS`, one row per pair of segments of slices ``z_a < z_b``
        (``z_b - z_a <= max_gap``) that overlap by at least one voxel.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2]], [[3, 4, 4]]])
    >>> candidate_pairs(labels)[["id_a", "id_b", "overlap"]].values.tolist()
    [[1, 3, 1], [1, 4, 1], [2, 4, 1]]
    """
    arr = check_labels(labels)
    return pair_table(arr, Segments.of(arr), check_max_gap(max_gap))[0]


def relabel_from_links(labels: npt.ArrayLike, links: pd.DataFrame) -> np.ndarray:
    """3D IDs from a link table: connected components of its ``linked`` rows.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        The 2D segments the table refers to (as given to :func:`link_slices`).
    links : pandas.DataFrame
        Needs the columns ``z_a``, ``z_b``, ``id_a``, ``id_b`` and ``linked`` (bool). Rows
        may be any subset of pairs; segments in no linked row stay alone.

    Returns
    -------
    ndarray of uint32
        3D IDs ``1..N`` numbered in order of each object's first segment (lowest z, then
        lowest 2D ID); 0 stays 0.

    Raises
    ------
    ValueError
        If a required column is missing, or a row names a segment that ``labels`` lacks.

    Examples
    --------
    >>> labels = np.array([[[1, 2]], [[3, 4]]])
    >>> links = pd.DataFrame({"z_a": [0, 0], "z_b": [1, 1], "id_a": [1, 2],
    ...                       "id_b": [4, 4], "linked": [True, False]})
    >>> relabel_from_links(labels, links).tolist()
    [[[1, 2]], [[3, 1]]]
    """
    arr = check_labels(labels)
    check_links(links, ("z_a", "z_b", "id_a", "id_b", "linked"))
    segs = Segments.of(arr)
    linked = links["linked"].to_numpy(dtype=bool)
    rows = links[linked]
    na = segs.nodes(rows["z_a"].to_numpy(), rows["id_a"].to_numpy(), "a")
    nb = segs.nodes(rows["z_b"].to_numpy(), rows["id_b"].to_numpy(), "b")
    return paint(arr, segs, components(segs.n, na, nb))
