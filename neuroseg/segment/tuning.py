"""Post-processing chosen on validation data: grid searches over watershed options.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import pandas as pd

from neuroseg.data.readers import Sample
from neuroseg.measure.matching import matching
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.segment import instances


def tune_fg_contour(
    probabilities: Sequence[np.ndarray],
    samples: Sequence[Sample],
    *,
    fg_thresholds: Sequence[float] = (0.3, 0.4, 0.5),
    seed_thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97),
) -> tuple[dict, pd.DataFrame]:
    """Grid-search the watershed thresholds on validation images (maximise mean AP at 0.5).

    Returns the best options (for :func:`neuroseg.segment.instances.labels_from_fg_contour`) and the
    whole grid as a table.
    """
    rows = []
    for fg_t, seed_t in product(fg_thresholds, seed_thresholds):
        opts = {"fg_threshold": fg_t, "seed_threshold": seed_t}
        preds = [instances.labels_from_fg_contour(p[0], p[1], **opts) for p in probabilities]
        ap = np.mean([matching(s.labels, q).accuracy for s, q in zip(samples, preds)])
        rows.append({**opts, "val_ap50": float(ap)})
    grid = pd.DataFrame(rows)
    best = grid.loc[grid.val_ap50.idxmax()]
    return {"fg_threshold": float(best.fg_threshold), "seed_threshold": float(best.seed_threshold)}, grid


EM_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


EM_SEED_DISTANCES = (0.0, 1.0, 2.0, 3.0)


def em_slice_scores(samples: Sequence[Sample], labels: Sequence[np.ndarray]) -> pd.DataFrame:
    """Per-slice VOI split/merge (bits), adapted Rand error and CREMI score of 2D segments."""
    rows = []
    for s, seg in zip(samples, labels, strict=True):
        rows.append({"id": s.id, "dataset": s.meta.get("dataset"), "z": s.meta.get("z"),
                     "segments": int(seg.max()), **segmentation_scores(s.labels, seg)})
    return pd.DataFrame(rows)


def tune_boundaries(
    probabilities: Sequence[np.ndarray],
    samples: Sequence[Sample],
    *,
    thresholds: Sequence[float] = EM_THRESHOLDS,
    seed_distances: Sequence[float] = EM_SEED_DISTANCES,
) -> tuple[dict, pd.DataFrame]:
    """Grid-search the boundary watershed on validation slices (minimise the mean VOI).

    ``probabilities`` are boundary maps (1, Y, X); the options are for
    :func:`neuroseg.segment.instances.labels_from_boundaries`. Returns the best options
    (boundary ``threshold`` and ``seed_distance``) and the whole grid as a table with the mean
    per-slice VOI (split + merge) and adapted Rand error.
    """
    rows = []
    for t, d in product(thresholds, seed_distances):
        post = {"threshold": t, "seed_distance": d}
        labels = [instances.labels_from_boundaries(p[0], **post) for p in probabilities]
        scores = em_slice_scores(samples, labels)
        rows.append({**post, "val_voi": float((scores.voi_split + scores.voi_merge).mean()),
                     "val_arand": float(scores.arand.mean())})
    grid = pd.DataFrame(rows)
    best = grid.loc[grid.val_voi.idxmin()]
    return {"threshold": float(best.threshold), "seed_distance": float(best.seed_distance)}, grid
