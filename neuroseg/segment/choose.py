"""Choosing a post-processing on validation data by accuracy *and* time.

Every candidate setting (e.g. ``{"method": "waterz", "threshold": 0.4}``) is run on the
validation volumes; its mean CREMI score and its seconds per megavoxel are measured. The
chosen one is the **fastest among those whose CREMI is within** ``tolerance`` **of the best**
(``cremi <= best * (1 + tolerance)``; ties: the first candidate). ``tolerance=0`` chooses by
CREMI alone. :func:`choose` takes any evaluation; :func:`choose_agglomeration` is the one of
the 3D route (connected components, voxel-level mutex watershed, fragments + waterz; see
:func:`neuroseg.segment.affinities.agglomerate`).

Examples
--------
>>> scores = {"a": (0.50, 2.0), "b": (0.505, 0.2), "c": (0.9, 0.1)}
>>> chosen, table = choose([{"name": k} for k in scores],
...                        lambda c: dict(zip(("cremi", "s_per_mvox"), scores[c["name"]])))
>>> chosen["name"], table["chosen"].tolist()
('b', [False, True, False])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["choose", "choose_agglomeration", "pick"]


def pick(table: pd.DataFrame, *, tolerance: float = 0.01, score: str = "cremi",
         cost: str = "s_per_mvox") -> int:
    """Index of the row with the lowest ``cost`` among those whose ``score`` (lower is
    better) is within ``tolerance`` (a fraction) of the best; ties: the first such row.
    ``tolerance=0`` is the best ``score`` alone (ties: the first row, whatever its cost), so
    that the choice does not depend on timing noise.

    Examples
    --------
    >>> pick(pd.DataFrame({"cremi": [0.5, 0.52, 0.6], "s_per_mvox": [3.0, 1.0, 0.1]}), tolerance=0.05)
    1
    """
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative fraction; got {tolerance}")
    if len(table) == 0:
        raise ValueError("no candidate to choose from")
    values = table[score].to_numpy(float)
    if not np.isfinite(values).any():
        raise ValueError(f"no candidate has a finite {score}")
    best = np.nanmin(values)
    if tolerance == 0:
        return int(table.index[int(np.nanargmin(values))])
    near = np.flatnonzero(np.isfinite(values) & (values <= best + abs(best) * tolerance + 1e-12))
    costs = table[cost].to_numpy(float)[near]
    return int(table.index[near[int(np.argmin(costs))]])


def choose(
    candidates: Sequence[Mapping],
    evaluate: Callable[[Mapping], Mapping],
    *,
    tolerance: float = 0.01,
    score: str = "cremi",
    cost: str = "s_per_mvox",
) -> tuple[dict, pd.DataFrame]:
    """Evaluate every candidate and choose one (:func:`pick`).

    Parameters
    ----------
    candidates : sequence of dict
        The settings; each becomes the first columns of its row.
    evaluate : callable
        ``evaluate(candidate)`` returns a mapping holding at least ``score`` and ``cost``.
    tolerance, score, cost
        See :func:`pick`.

    Returns
    -------
    chosen : dict
        The chosen candidate (a copy).
    table : DataFrame
        One row per candidate: its settings, what ``evaluate`` returned, ``chosen``.
    """
    candidates = [dict(c) for c in candidates]
    if not candidates:
        raise ValueError("no candidate to choose from")
    rows = [{**c, **dict(evaluate(c))} for c in candidates]
    table = pd.DataFrame(rows)
    for col in (score, cost):
        if col not in table:
            raise ValueError(f"evaluate must return {score!r} and {cost!r}; {col!r} missing")
    best = pick(table, tolerance=tolerance, score=score, cost=cost)
    table["chosen"] = table.index == best
    return dict(candidates[best]), table


def choose_agglomeration(
    prepared: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]],
    candidates: Sequence[Mapping],
    *,
    offsets: Sequence[Sequence[int]],
    tolerance: float = 0.01,
) -> tuple[dict, pd.DataFrame]:
    """The 3D route's post-processing chosen on validation volumes by CREMI and time.

    Parameters
    ----------
    prepared : sequence of (affs, gt, resolution)
        Predicted affinities of each validation volume, its true IDs and its voxel size.
    candidates : sequence of dict
        Keyword arguments of :func:`neuroseg.segment.affinities.agglomerate` (``method``,
        ``threshold``, ``min_size``, ``fragment_threshold``).
    offsets : sequence of int tuples
        The affinity channels' offsets.
    tolerance : float
        See :func:`pick`.

    Returns
    -------
    The chosen candidate and the table (mean scores over the volumes, ``seconds`` summed and
    ``s_per_mvox`` over all their voxels, ``chosen``).
    """
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.segment.affinities import agglomerate

    if not prepared:
        raise ValueError("no validation volume")
    mvox = sum(np.asarray(gt).size for _, gt, _ in prepared) / 1e6

    def evaluate(candidate: Mapping) -> dict:
        scores, seconds = [], 0.0
        for affs, gt, resolution in prepared:
            start = time.perf_counter()
            seg = agglomerate(affs, offsets=offsets, resolution=resolution, **candidate)
            seconds += time.perf_counter() - start
            scores.append(segmentation_scores(gt, seg))
        return {**pd.DataFrame(scores).mean().to_dict(), "seconds": seconds,
                "s_per_mvox": seconds / mvox}

    return choose(candidates, evaluate, tolerance=tolerance)
