"""Tests of the 3D route's fragments + waterz path and of the choice by CREMI and time."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.measure.voi_rand import voi
from neuroseg.segment.affinities import METHODS, affinities_from_labels, agglomerate
from neuroseg.segment.choose import choose, choose_agglomeration, pick
from neuroseg.segment.fragments import fragment_boundary, fragments, waterz_agglomerate

OFFSETS = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, -6, 0), (0, 0, -6)]


def _blocks(shape=(6, 36, 36), seed=0) -> np.ndarray:
    """Dense labels of wide blocks, moved a little from slice to slice: every piece of every
    slice has an inside (no piece thinner than the boundary)."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    out = np.zeros(shape, np.uint32)
    for k in range(z):
        cy, cx = 18 + rng.integers(-2, 3), 12 + rng.integers(-2, 3)
        out[k, :cy, :cx], out[k, :cy, cx:] = 1, 2
        out[k, cy:, : 2 * cx], out[k, cy:, 2 * cx:] = 3, 4
    return out


def _same(a, b) -> bool:
    split, merge = voi(a, b)
    return split == pytest.approx(0, abs=1e-12) and merge == pytest.approx(0, abs=1e-12)


def test_perfect_affinities_through_fragments_and_waterz_give_back_the_labels(capfd):
    labels = _blocks()
    affs = affinities_from_labels(labels, offsets=OFFSETS).astype(np.float32)
    frags = fragments(affs, offsets=OFFSETS)
    assert frags.dtype == np.uint64 and frags.min() >= 1
    # fragments never cross a true boundary, and are unique per slice
    for f in np.unique(frags):
        assert np.unique(labels[frags == f]).size == 1
        assert np.unique(np.nonzero(frags == f)[0]).size == 1
    segs = waterz_agglomerate(affs, frags, [0.2, 0.5, 0.8], offsets=OFFSETS)
    assert len(segs) == 3
    for seg in segs:
        assert _same(labels, seg)
    assert _same(labels, agglomerate(affs, method="waterz", offsets=OFFSETS, threshold=0.5))
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""  # waterz's progress is silenced


def test_every_post_processing_gives_back_the_labels_of_perfect_affinities():
    labels = _blocks(seed=1)
    affs = affinities_from_labels(labels, offsets=OFFSETS).astype(np.float32)
    for method in METHODS:
        assert _same(labels, agglomerate(affs, method=method, offsets=OFFSETS)), method


def test_fragments_in_3d_and_the_boundary_map():
    labels = _blocks(seed=2)
    affs = affinities_from_labels(labels, offsets=OFFSETS).astype(np.float32)
    frags = fragments(affs, offsets=OFFSETS, per_slice=False)
    for f in np.unique(frags):
        assert np.unique(labels[frags == f]).size == 1
    b = fragment_boundary(affs, offsets=OFFSETS, axes=(2,))
    cut = labels[:, :, 1:] != labels[:, :, :-1]
    assert np.all(b[:, :, 1:][cut] == 1) and np.all(b[:, :, :-1][cut] == 1)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a, f: (a * np.nan, f), ValueError, "NaN"),
        (lambda a, f: (a * 2, f), ValueError, r"\[0, 1\]"),
        (lambda a, f: (a[:, :1], f), ValueError, "shape"),
        (lambda a, f: (a, f.astype(np.float32)), TypeError, "integers"),
        (lambda a, f: (a, -f.astype(np.int64)), ValueError, "2\\*\\*63"),
        (lambda a, f: (a[:2], f), ValueError, "offsets"),
    ],
)
def test_waterz_input_is_checked_before_the_native_call(change, error, match):
    labels = _blocks((2, 16, 16))
    affs = affinities_from_labels(labels).astype(np.float32)
    frags = fragments(affs)
    a, f = change(affs, frags)
    offsets = [(-1, 0, 0), (0, -1, 0), (0, 0, -1)][: a.shape[0]]
    with pytest.raises(error, match=match):
        waterz_agglomerate(a, f, [0.5], offsets=offsets)
    with pytest.raises(ValueError, match="threshold"):
        waterz_agglomerate(affs, frags, [1.5])
    with pytest.raises(ValueError, match="threshold"):
        waterz_agglomerate(affs, frags, [])


def test_waterz_takes_noncontiguous_float64_affinities():
    labels = _blocks((3, 20, 20))
    affs = np.asfortranarray(affinities_from_labels(labels).astype(np.float64))
    seg = waterz_agglomerate(affs, fragments(affs), [0.5])[0]
    assert _same(labels, seg)


def test_choose_prefers_the_fastest_within_tolerance():
    table_scores = {"slow": (0.40, 5.0), "fast": (0.403, 0.5), "bad": (0.9, 0.01)}
    evaluate = lambda c: {"cremi": table_scores[c["m"]][0], "s_per_mvox": table_scores[c["m"]][1]}  # noqa: E731
    chosen, table = choose([{"m": m} for m in table_scores], evaluate, tolerance=0.01)
    assert chosen == {"m": "fast"} and table["chosen"].sum() == 1
    chosen, _ = choose([{"m": m} for m in table_scores], evaluate, tolerance=0.0)
    assert chosen == {"m": "slow"}
    with pytest.raises(ValueError, match="no candidate"):
        choose([], evaluate)
    with pytest.raises(ValueError, match="tolerance"):
        pick(table, tolerance=-1)


def test_choose_agglomeration_on_noisy_affinities():
    labels = _blocks(seed=3)
    rng = np.random.default_rng(0)
    affs = affinities_from_labels(labels, offsets=OFFSETS).astype(np.float32)
    noisy = np.clip(affs * 0.8 + 0.1 + rng.normal(0, 0.05, affs.shape), 0, 1).astype(np.float32)
    candidates = [{"method": "cc", "threshold": 0.5}, {"method": "mws", "threshold": 0.5},
                  {"method": "waterz", "threshold": 0.5}]
    chosen, table = choose_agglomeration([(noisy, labels, (40.0, 10.0, 10.0))], candidates,
                                         offsets=OFFSETS)
    assert chosen in candidates
    assert list(table["method"]) == ["cc", "mws", "waterz"]
    assert {"cremi", "voi_split", "voi_merge", "arand", "s_per_mvox", "chosen"} <= set(table)
    best = table.loc[table["chosen"], "cremi"].iloc[0]
    assert best <= table["cremi"].min() * 1.01 + 1e-12
