"""Cell Tracking Challenge measures of a tracking result, computed by ``py-ctcmetrics``.

SEG (segmentation: mean Jaccard of the annotated objects, a match needing more than half of the
reference object), DET and TRA (detection and tracking as the normalised cost of turning the
result graph into the reference, AOGM), LNK (the linking part of it alone), CHOTA (a HOTA made
for cell lineages) and the divisions: all from the package the CTC's 2024 benchmark paper
describes, reading the CTC folders :mod:`neuroseg.data.ctc` writes. Higher is better for all,
1 is perfect.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

__all__ = ["MEASURES", "seg_score", "tracking_scores"]

MEASURES = ("SEG", "DET", "TRA", "LNK", "CHOTA")


def seg_score(true, pred) -> float:
    """The CTC's SEG of one frame: mean Jaccard index of the annotated objects.

    A true object's Jaccard index with the predicted object covering more than half of it,
    or 0 when none does; NaN when the frame annotates no object.

    Examples
    --------
    >>> seg_score([[1, 1, 0, 2]], [[3, 3, 3, 0]])
    0.3333333333333333
    """
    from neuroseg.measure.overlap import contingency

    t, p = np.asarray(true), np.asarray(pred)
    if t.shape != p.shape:
        raise ValueError(f"true {t.shape} and pred {p.shape} differ in shape")
    ids = np.unique(t[t > 0])
    if not ids.size:
        return float("nan")
    c = contingency(t, p, ignore_a=0, ignore_b=0)
    size_a = dict(zip(c.a_labels.tolist(), c.a_sizes.tolist()))
    size_b = dict(zip(c.b_labels.tolist(), c.b_sizes.tolist()))
    best = dict.fromkeys(ids.tolist(), 0.0)
    for a, b, n in zip(c.a_ids.tolist(), c.b_ids.tolist(), c.counts.tolist()):
        if n > 0.5 * size_a[a]:
            best[a] = n / (size_a[a] + size_b[b] - n)
    return float(np.mean(list(best.values())))


def _check_folder(folder: Path, needed: tuple[str, ...], what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such {what} folder")
    for name in needed:
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder} is not a CTC {what} folder: {name} is missing "
                "(write one with neuroseg.data.ctc.write_result / write_ground_truth)"
            )


def tracking_scores(
    true: str | os.PathLike, pred: str | os.PathLike, *, division_tolerance: int = 1, threads: int = 1
) -> dict:
    """SEG, DET, TRA, LNK, CHOTA and division counts of a result folder against the truth.

    Parameters
    ----------
    true : path
        Ground truth in the CTC layout (``TRA/``, ``SEG/``).
    pred : path
        A result (``maskNNN.tif``, ``res_track.txt``) with as many frames as the truth.
    division_tolerance : int
        Frames by which a found division may miss the true one (the CTC's BC(i)).
    threads : int
        Processes for matching masks (1: none; deterministic either way).

    Returns
    -------
    dict
        The :data:`MEASURES` (SEG is NaN when the truth has no ``SEG`` masks), ``divisions_true`` (in the truth), ``divisions_found`` (true
        divisions the result has, within the tolerance), ``divisions_false`` and ``BC``.
    """
    true, pred = Path(true), Path(pred)
    _check_folder(true, ("TRA/man_track.txt",), "ground-truth")
    _check_folder(pred, ("res_track.txt",), "result")
    if int(division_tolerance) < 0:
        raise ValueError(f"division_tolerance must be >= 0 frames; got {division_tolerance}")
    n_true = len(list((true / "TRA").glob("man_track*.tif")))
    n_pred = len(list(pred.glob("mask*.tif")))
    if n_true != n_pred:
        raise ValueError(f"the result has {n_pred} frames, the ground truth {n_true}")
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    has_seg = any((true / "SEG").glob("man_seg*.tif")) if (true / "SEG").is_dir() else False
    metrics = ["Valid", *(m for m in MEASURES if has_seg or m != "SEG"), "BC"]
    with contextlib.redirect_stdout(io.StringIO()):
        res = evaluate_sequence(str(pred), str(true), metrics=metrics, threads=int(threads))
    i = int(division_tolerance)
    def number(key, kind=float):  # py-ctcmetrics gives None where a measure is undefined
        value = res.get(key)
        return (float("nan") if kind is float else 0) if value is None else kind(value)

    out = {m: number(m) for m in MEASURES}
    out.update({
        "divisions_true": number("gt_divisions", int),
        "divisions_found": number(f"tp_div({i})", int),
        "divisions_false": number(f"fp_div({i})", int),
        "BC": number(f"BC({i})"),
        "valid": number("Valid", int),
    })
    return out
