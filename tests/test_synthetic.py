"""Tests of neuroseg.data.synthetic: seeded, dense, connected test data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from neuroseg.data.synthetic import neurites_3d, nuclei_2d


def _components(mask: np.ndarray) -> int:
    return int(ndi.label(mask)[1])


# --------------------------------------------------------------------------- nuclei_2d


def test_nuclei_same_seed_same_arrays():
    a, b = nuclei_2d(seed=5), nuclei_2d(seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_nuclei_different_seed_differs():
    (ia, la), (ib, lb) = nuclei_2d(seed=0), nuclei_2d(seed=1)
    assert not np.array_equal(la, lb)
    assert not np.array_equal(ia, ib)


def test_nuclei_types_range_and_consecutive_ids():
    for seed in range(5):
        image, labels = nuclei_2d((40, 50), n=7, seed=seed)
        assert image.shape == labels.shape == (40, 50)
        assert image.dtype == np.float32 and labels.dtype == np.uint16
        assert 0.0 <= image.min() and image.max() <= 1.0
        ids = np.unique(labels[labels > 0])
        np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
        assert 1 <= len(ids) <= 7
        # nuclei are brighter than background
        assert image[labels > 0].mean() > image[labels == 0].mean() + 0.3


# --------------------------------------------------------------------------- neurites_3d


def test_neurites_same_seed_same_arrays():
    for branch in (False, True):
        ra, la = neurites_3d(seed=7, branch=branch)
        rb, lb = neurites_3d(seed=7, branch=branch)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(la, lb)


def test_neurites_different_seed_differs():
    ra, la = neurites_3d(seed=0)
    rb, lb = neurites_3d(seed=1)
    assert not np.array_equal(la, lb)
    assert not np.array_equal(ra, rb)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_neurites_dense_labels(seed):
    raw, labels = neurites_3d((8, 32, 40), n=5, seed=seed)
    assert raw.shape == labels.shape == (8, 32, 40)
    assert raw.dtype == np.float32 and labels.dtype == np.uint32
    assert labels.min() >= 1  # dense: no background
    assert set(np.unique(labels)) <= set(range(1, 6))
    assert 0.0 <= raw.min() and raw.max() <= 1.0


def test_neurites_membranes_are_dark():
    raw, labels = neurites_3d(seed=0, noise=0.0)
    boundary = np.zeros(labels.shape, bool)
    boundary[:, :, 1:] |= labels[:, :, 1:] != labels[:, :, :-1]
    boundary[:, :, :-1] |= labels[:, :, 1:] != labels[:, :, :-1]
    assert raw[boundary].mean() < raw[~boundary].mean() - 0.1


def test_neurites_connected_for_a_lucky_seed():
    """The connectivity check itself: seed 3 happens to give 8 connected neurites."""
    _, labels = neurites_3d(seed=3)
    assert [_components(labels == i) for i in range(1, 9)] == [1] * 8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neurites_each_id_connected_in_3d(seed):
    _, labels = neurites_3d(seed=seed)
    pieces = {int(i): _components(labels == i) for i in np.unique(labels)}
    assert pieces == {i: 1 for i in pieces}


def test_branch_changes_only_the_upper_half():
    nz = 16
    raw, plain = neurites_3d((nz, 48, 48), seed=6)
    raw_b, branched = neurites_3d((nz, 48, 48), seed=6, branch=True)
    np.testing.assert_array_equal(branched[: nz // 2], plain[: nz // 2])
    assert not np.array_equal(branched[nz // 2 :], plain[nz // 2 :])
    # neurite 1 gains voxels in the upper half
    assert (branched[nz // 2 :] == 1).sum() > (plain[nz // 2 :] == 1).sum()


@pytest.mark.parametrize("seed", [6, 11, 14])
def test_branch_gives_two_pieces_in_an_upper_slice(seed):
    nz = 16
    _, labels = neurites_3d((nz, 48, 48), seed=seed, branch=True)
    pieces = [_components(labels[z] == 1) for z in range(nz // 2, nz)]
    assert max(pieces) >= 2
    assert all(_components(labels[z] == 1) == 1 for z in range(nz // 2))
