"""Train / validation / test splits, made once by a seed and reused by every later step.

A split is a small JSON file in ``artifacts/<profile>/splits/<dataset>.json``::

    {"dataset": "...", "seed": 0, "method": "...", "parts": {"train": [...], "val": [...],
     "test": [...]}}

Parts hold either item IDs (images, samples, slices) or regions of a volume
(``{"z": [start, stop], "y": [...], "x": [...]}``, half-open, ``null`` = whole axis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from neuroseg import paths
from neuroseg.data.readers import Sample
from neuroseg.io import read_json, write_json

PARTS = ("train", "val", "test")


def split_ids(
    ids: Sequence,
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int,
    strata: Sequence | None = None,
) -> dict[str, list]:
    """Shuffle ``ids`` with ``seed`` and cut them into train / val / test.

    With ``strata`` (one key per id), each stratum is split on its own in the same
    proportions, so rare kinds of images appear in every part. Each part is sorted.

    Examples
    --------
    >>> parts = split_ids(list("abcdefghij"), fractions=(0.6, 0.2, 0.2), seed=0)
    >>> [len(parts[p]) for p in ("train", "val", "test")]
    [6, 2, 2]
    """
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    if strata is not None and len(strata) != len(ids):
        raise ValueError(f"strata must have one entry per id ({len(strata)} for {len(ids)} ids)")
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for i, key in enumerate(strata if strata is not None else [0] * len(ids)):
        groups.setdefault(key, []).append(ids[i])
    out: dict[str, list] = {p: [] for p in PARTS}
    for key in sorted(groups, key=str):
        members = sorted(groups[key], key=str)
        order = rng.permutation(len(members))
        n = len(members)
        n_test = int(round(fractions[2] * n))
        n_val = int(round(fractions[1] * n))
        if n >= 3:  # every part gets at least one member of a stratum with >= 3
            n_test = max(n_test, 1 if fractions[2] > 0 else 0)
            n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        shuffled = [members[i] for i in order]
        out["test"] += shuffled[:n_test]
        out["val"] += shuffled[n_test : n_test + n_val]
        out["train"] += shuffled[n_test + n_val :]
    return {p: sorted(v, key=str) for p, v in out.items()}


def make_split(dataset: str, parts: Mapping[str, list], *, seed: int, method: str) -> dict:
    """Build a split record and check that its parts do not overlap (ID parts)."""
    missing = [p for p in PARTS if p not in parts]
    if missing:
        raise ValueError(f"split of {dataset!r} lacks parts {missing}")
    seen: dict = {}
    for part in PARTS:
        for item in parts[part]:
            if isinstance(item, Mapping):
                continue
            if item in seen:
                raise ValueError(f"{dataset}: {item!r} is in both {seen[item]} and {part}")
            seen[item] = part
    return {"dataset": dataset, "seed": int(seed), "method": method, "parts": dict(parts)}


def save_split(split: dict, *, profile: str | None = None):
    """Write a split to the artifacts (atomically); return the path."""
    return write_json(split, paths.splits_dir(profile) / f"{split['dataset']}.json")


def load_split(dataset: str, *, profile: str | None = None) -> dict:
    """Read a split written by the data-preparation notebook.

    Raises ``FileNotFoundError`` saying which notebook makes it when it does not exist.
    """
    path = paths.splits_dir(profile) / f"{dataset}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no split for {dataset!r}; run notebooks/00_data_preparation.ipynb "
            "(`make reproduce`) first"
        )
    split = read_json(path)
    for key in ("dataset", "parts"):
        if key not in split:
            raise ValueError(f"{path}: split file lacks {key!r}")
    return split


def region_slices(region: Mapping[str, Sequence[int] | None], axes: str = "zyx") -> tuple:
    """Turn a region dict ``{"z": [a, b], ...}`` into a tuple of slices in ``axes`` order.

    Examples
    --------
    >>> region_slices({"z": None, "y": [0, 2], "x": [5, 9]})
    (slice(None, None, None), slice(0, 2, None), slice(5, 9, None))
    """
    out = []
    for ax in axes:
        bounds = region.get(ax)
        out.append(slice(None) if bounds is None else slice(int(bounds[0]), int(bounds[1])))
    return tuple(out)


def training_subset(samples: Sequence[Sample], n: int | None, *, seed: int) -> list[Sample]:
    """``n`` of the samples drawn without replacement with ``seed`` (all when n is None).

    Examples
    --------
    >>> items = [Sample(id=str(i), image=np.zeros((2, 2)), labels=np.zeros((2, 2), int)) for i in range(5)]
    >>> [s.id for s in training_subset(items, 2, seed=0)] == [s.id for s in training_subset(items, 2, seed=0)]
    True
    """
    if n is None or n >= len(samples):
        return list(samples)
    rng = np.random.default_rng([seed, n])
    picks = np.sort(rng.choice(len(samples), size=n, replace=False))
    return [samples[i] for i in picks]
