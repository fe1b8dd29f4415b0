"""Tests of the "multicut" linking method (micro-SAM's rule, neuroseg.linking.multicut)."""

from __future__ import annotations

import numpy as np
import pytest

import neuroseg
from neuroseg.data.synthetic import neurites_3d
from neuroseg.linking.multicut import MICRO_SAM_THRESHOLD, edge_weights, multicut_keep
from neuroseg.linking.rules import METHODS, link_slices, relink
from neuroseg.measure.voi_rand import voi


def _fresh_ids_per_slice(gt: np.ndarray) -> np.ndarray:
    """Every slice's masks numbered from 1 again, in a random order, as Cellpose or micro-SAM
    write them."""
    rng = np.random.default_rng(0)
    out = np.zeros_like(gt)
    for z, s in enumerate(gt):
        ids = np.unique(s[s > 0])
        lut = np.zeros(int(s.max()) + 1, gt.dtype)
        lut[ids] = rng.permutation(ids.size) + 1
        out[z] = lut[s]
    return out


def test_multicut_is_a_listed_method():
    assert "multicut" in METHODS


def test_multicut_gives_back_the_3d_objects():
    _, gt = neurites_3d((12, 40, 40), n=4, seed=2)
    masks = _fresh_ids_per_slice(gt)
    assert (masks != gt).any()  # precondition: the IDs say nothing across slices
    out = neuroseg.link(masks, resolution=(40, 10, 10), method="multicut")
    split, merge = voi(gt, out)
    assert split == pytest.approx(0.0, abs=1e-12) and merge == pytest.approx(0.0, abs=1e-12)
    assert np.array_equal(out > 0, gt > 0)


def test_multicut_cuts_a_weak_overlap_and_relink_agrees():
    labels = np.zeros((2, 1, 10), np.int64)
    labels[0, 0, :5], labels[0, 0, 5:] = 1, 2
    labels[1, 0, :5], labels[1, 0, 5:] = 3, 4
    labels[1, 0, 4] = 4  # 4 covers one fifth of segment 1: weak evidence
    res = link_slices(labels, method="multicut", threshold=MICRO_SAM_THRESHOLD)
    assert res.labels[0, 0, 0] == res.labels[1, 0, 0]
    assert res.labels[0, 0, 9] == res.labels[1, 0, 9]
    assert res.labels[0, 0, 0] != res.labels[0, 0, 9]
    again = relink(labels, res.links, MICRO_SAM_THRESHOLD, method="multicut")
    assert np.array_equal(again.labels, res.labels)
    # at a threshold above every evidence nothing is linked
    none = relink(labels, res.links, 1.0, method="multicut")
    assert not none.links["linked"].any()


def test_multicut_with_empty_slices_and_an_empty_stack():
    _, gt = neurites_3d((8, 32, 32), n=4, seed=1)
    masks = _fresh_ids_per_slice(gt)
    masks[3] = 0
    masks[7] = 0
    out = neuroseg.link(masks, resolution=(40, 10, 10), method="multicut")
    assert not out[3].any() and not out[7].any()
    # the objects above and below the blank slice are split there, but each part is whole
    split, merge = voi(gt[:3], out[:3])
    assert split == pytest.approx(0.0, abs=1e-12) and merge == pytest.approx(0.0, abs=1e-12)
    with pytest.warns(UserWarning, match="no object"):
        empty = neuroseg.link(np.zeros((3, 4, 4), np.uint16), resolution=(40, 10, 10), method="multicut")
    assert not empty.any()


def test_micro_sam_weights_and_bad_input():
    p = np.array([0.1, 0.5, 0.9])
    expected = 1.0 - np.log((1 - (0.998 * p + 0.001)) / (0.998 * p + 0.001))
    assert np.allclose(edge_weights(p, MICRO_SAM_THRESHOLD), expected)
    with pytest.raises(ValueError, match="two different nodes"):
        multicut_keep(np.array([0]), np.array([0]), np.array([0.5]), 0.5, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multicut_keep(np.array([0]), np.array([1]), np.array([np.nan]), 0.5, 2)
    assert multicut_keep(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 0.5, 0).size == 0
