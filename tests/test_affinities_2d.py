"""Tests of the 2D route's affinity segmenter (neuroseg.segment.affinities_2d)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroseg.data.synthetic import neurites_3d
from neuroseg.linking.rules import link_slices
from neuroseg.measure.voi_rand import voi
from neuroseg.nets import train
from neuroseg.segment.affinities_2d import (
    affinities_2d_from_labels,
    affinity_network_2d,
    mutex_watershed_2d,
    offsets_2d,
    predict_affinities_2d,
    segments_2d_affinities,
    train_affinities_2d,
)


def _fresh_per_slice(gt: np.ndarray) -> np.ndarray:
    """Connected 2D pieces of every slice, IDs unique over the volume."""
    from neuroseg.data.labels import connected_components_per_slice

    return connected_components_per_slice(gt)


def test_perfect_2d_affinities_give_back_each_slices_labels_exactly():
    _, gt = neurites_3d((6, 40, 40), n=5, seed=4)
    pieces = _fresh_per_slice(gt)
    offsets = offsets_2d(pixel_nm=10)
    affs = affinities_2d_from_labels(pieces, offsets=offsets).astype(np.float32)
    seg = mutex_watershed_2d(affs, offsets=offsets)
    assert seg.dtype == np.uint32 and seg.shape == gt.shape
    for z in range(gt.shape[0]):  # each slice exactly: the same partition, nothing more
        split, merge = voi(pieces[z][None], seg[z][None])
        assert split == pytest.approx(0, abs=1e-12) and merge == pytest.approx(0, abs=1e-12)
    # no segment spans two slices
    for s in np.unique(seg):
        assert np.unique(np.nonzero(seg == s)[0]).size == 1
    # the linking takes them as they are
    linked = link_slices(seg, method="overlap", threshold=0.25).labels
    assert linked.shape == gt.shape


def test_min_size_stays_in_the_slice_and_bad_offsets_are_refused():
    labels = np.array([[[1, 1, 1, 2]], [[3, 3, 3, 3]]])
    offs = [(-1, 0), (0, -1)]
    seg = mutex_watershed_2d(affinities_2d_from_labels(labels, offsets=offs).astype(np.float32),
                             offsets=offs, min_size=2)
    assert seg[0].tolist() == [[1, 1, 1, 1]] and np.unique(seg[1]).size == 1 and seg[1, 0, 0] != 1
    with pytest.raises(ValueError, match="nearest"):
        mutex_watershed_2d(np.zeros((1, 1, 2, 2), np.float32), offsets=[(0, -2)])
    with pytest.raises(ValueError, match="channels, z, y, x"):
        mutex_watershed_2d(np.zeros((2, 2, 2), np.float32), offsets=offs)


def test_one_training_step_of_the_2d_affinity_network(tmp_path):
    raw, gt = neurites_3d((4, 40, 40), n=4, seed=1)
    net = affinity_network_2d(offsets=offsets_2d(pixel_nm=10, ranges_nm=(40,)), depth=2,
                              base_features=4)
    x = torch.zeros(2, 1, 32, 32)
    assert net(x).shape == (2, 4, 32, 32)
    train.seed_everything(0)
    model, history = train_affinities_2d(net, (raw, gt), (raw, gt), folder=tmp_path / "a2d",
                                         crop=(32, 32), epochs=1, samples_per_epoch=4,
                                         val_crops=2, batch_size=2, progress=False)
    assert len(history) == 1 and np.isfinite(history["train_loss"]).all()
    assert model.meta["target"] == "affinities_2d"
    affs, offsets = predict_affinities_2d(model, raw, resolution=(40, 10, 10), device="cpu")
    assert affs.shape == (4, *raw.shape) and offsets == [tuple(o) for o in model.meta["offsets"]]
    assert 0 <= affs.min() and affs.max() <= 1
    seg = segments_2d_affinities(model, raw, resolution=(40, 10, 10), device="cpu", min_size=4)
    assert seg.shape == raw.shape and seg.min() >= 1


def test_time_budget_ends_training_early_and_is_recognised_on_resume(tmp_path):
    raw, gt = neurites_3d((2, 32, 32), n=3, seed=0)
    net = affinity_network_2d(offsets=[(-1, 0), (0, -1)], depth=2, base_features=4)
    _, history = train_affinities_2d(net, (raw, gt), folder=tmp_path / "b", crop=(32, 32),
                                     epochs=50, samples_per_epoch=8, batch_size=2,
                                     time_budget=1e-6, progress=False)
    assert len(history) == 1  # the budget is spent after the first batch
    assert history["samples"].tolist() == [2]
    net = affinity_network_2d(offsets=[(-1, 0), (0, -1)], depth=2, base_features=4)
    _, again = train_affinities_2d(net, (raw, gt), folder=tmp_path / "b", crop=(32, 32),
                                   epochs=50, samples_per_epoch=8, batch_size=2,
                                   time_budget=1e-6, progress=False)
    assert len(again) == 1  # a finished budgeted run is not trained again
    with pytest.raises(ValueError, match="time_budget"):
        train.TrainConfig(time_budget=0)


def test_a_slices_segments_do_not_depend_on_the_slices_cut_with_it():
    # quantised affinities (as bf16 outputs are) tie often; each slice is cut alone all the same
    rng = np.random.default_rng(0)
    affs = (np.round(rng.random((2, 6, 24, 24)) * 16) / 16).astype(np.float32)
    whole = mutex_watershed_2d(affs, offsets=[(-1, 0), (0, -1)])
    part = mutex_watershed_2d(affs[:, 2:4], offsets=[(-1, 0), (0, -1)])
    for k in range(2):
        a, b = whole[2 + k], part[k]
        pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    ids = [set(np.unique(s)) for s in whole]
    assert all(not (ids[i] & ids[j]) for i in range(6) for j in range(i + 1, 6))  # unique over the volume
