"""The neurofinder two-photon field as the tiles of the recorded split, one summary image in.
"""

from __future__ import annotations

import numpy as np

from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.images import normalize
from neuroseg.data.readers import DataError, Sample, read_neurofinder

SOMA_DATASET = "neurofinder_2p_subset"
#: The field's pixel size in µm, for scale bars only: 1.15 px/µm, from the ``info.json`` of
#: Neurofinder 00.00, which this subset most likely is (not certain: PROVENANCE.md, section 10).
PIXEL_SIZE_UM = 1 / 1.15


_SUMMARIES = ("mean", "max", "std", "corr")


def soma_image(summaries: dict[str, np.ndarray], image: str) -> np.ndarray:
    """The network's input image from the neurofinder summary images.

    ``image`` is one summary (``mean``, ``max``, ``std``, ``corr``) or several joined by
    ``+`` (each normalised by percentiles, then averaged), e.g. ``"mean+corr"``.
    """
    names = image.split("+")
    unknown = [n for n in names if n not in _SUMMARIES]
    if unknown:
        raise ValueError(f"unknown summary image(s) {unknown}; choose from {_SUMMARIES}")
    missing = [n for n in names if n not in summaries]
    if missing:
        raise DataError(f"summary image(s) {missing} not in the neurofinder file")
    return np.mean([normalize(summaries[n]) for n in names], axis=0).astype(np.float32)


def load_soma_tiles(part: str, *, image: str = "mean", profile: str | None = None,
                    regions: list[dict] | None = None) -> list[Sample]:
    """The neurofinder tiles of one split part, at the native pixel size.

    The summary image is normalised over the whole field (so all tiles share one intensity
    scale) before it is cut. Each sample's ``masks`` holds the same tile of every summary
    image (for looking at false positives); ``meta`` its origin in the field and its
    ``region`` (``{"tile": ..., "y": [a, b], "x": [c, d]}``). ``regions``, when given, are
    the tiles to cut instead of the recorded split's ``part`` (what a shipped model records,
    so that its score can be checked without the split file).
    """
    if regions is None:
        regions = splits.load_split(SOMA_DATASET, profile=profile)["parts"][part]
    path = require(SOMA_DATASET) / "neurofinder_subset.h5"
    field_sample = read_neurofinder(path)
    full = soma_image(field_sample.masks, image)
    out = []
    for region in regions:
        sl = splits.region_slices(region, axes="yx")
        out.append(
            Sample(
                id=str(region["tile"]),
                image=np.ascontiguousarray(full[sl]),
                labels=np.ascontiguousarray(field_sample.labels[sl]),
                masks={k: np.ascontiguousarray(normalize(v)[sl]) for k, v in field_sample.masks.items()},
                meta={"dataset": SOMA_DATASET, "y0": sl[0].start, "x0": sl[1].start, "image": image,
                      "region": dict(region)},
            )
        )
    if not out:
        raise ValueError(f"{SOMA_DATASET}: split part {part!r} has no tiles")
    return out
