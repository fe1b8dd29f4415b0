"""Object contrast: mean intensity inside each object over the mean in a band around it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from neuroseg.data.readers import Sample
from neuroseg.measure.overlap import pairwise_iou


def object_contrast(image: np.ndarray, labels: np.ndarray, *, ring: int = 3) -> pd.DataFrame:
    """Mean intensity inside each object over the mean in a ``ring``-pixel band around it.

    A soma in a calcium-imaging summary image is brighter than its surroundings; a predicted
    object with the contrast of labelled somata is more likely an unlabelled soma than a
    false detection.
    """
    ids = np.unique(labels[labels > 0])
    rows = []
    for i in ids:
        obj = labels == i
        band = ndimage.binary_dilation(obj, iterations=ring) & (labels == 0)
        inside = float(image[obj].mean())
        around = float(image[band].mean()) if band.any() else float("nan")
        rows.append({"id": int(i), "size": int(obj.sum()), "inside": inside, "around": around,
                     "contrast": inside / around if around else float("nan")})
    return pd.DataFrame(rows, columns=["id", "size", "inside", "around", "contrast"])


def soma_error_table(samples: Sequence[Sample], labels: Sequence[np.ndarray], *, image: str = "mean") -> pd.DataFrame:
    """Every true and predicted soma of the test tiles: matched or not, size and contrast.

    ``kind`` is ``tp`` (predicted, matched at IoU > 0.5), ``fp`` (predicted, unmatched) or
    ``fn`` (true, unmatched); contrast is measured in the summary image ``image``.
    """
    rows = []
    for s, pred in zip(samples, labels, strict=True):
        true_ids, pred_ids, iou, _ = pairwise_iou(s.labels, pred)
        hit = iou > 0.5  # a hit at IoU > 0.5 is one-to-one (see matching)
        matched = {"pred": set(pred_ids[hit].tolist()), "true": set(true_ids[hit].tolist())}
        img = s.masks.get(image, s.image)
        for kind, lab in (("pred", pred), ("true", s.labels)):
            for rec in object_contrast(img, lab).to_dict("records"):
                found = rec["id"] in matched[kind]
                if kind == "pred":
                    rows.append({"tile": s.id, "kind": "tp" if found else "fp", **rec})
                elif not found:
                    rows.append({"tile": s.id, "kind": "fn", **rec})
    return pd.DataFrame(rows)
