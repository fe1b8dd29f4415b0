"""Tests of neuroseg.segment.instances: targets, decoding back to instances, per-slice components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.segmentation import find_boundaries

from neuroseg.data.labels import connected_components_per_slice
from neuroseg.measure.matching import matching
from neuroseg.measure.voi_rand import adapted_rand_error, voi
from neuroseg.segment.instances import (
    boundary_targets,
    fg_contour_targets,
    labels_from_boundaries,
    labels_from_boundaries_stack,
    labels_from_fg_contour,
    relabel_sequential,
)


def _two_touching_squares() -> np.ndarray:
    labels = np.zeros((12, 20), np.uint16)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2
    return labels


def _two_touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:40, :56]
    labels = np.zeros((40, 56), np.int32)
    labels[(yy - 20) ** 2 + (xx - 18) ** 2 <= 11**2] = 1
    labels[(yy - 20) ** 2 + (xx - 37) ** 2 <= 11**2] = 2  # overlaps disc 1: they touch
    return labels


def _voronoi_partition(shape=(48, 64), n=7, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform((4, 4), np.subtract(shape, 4), size=(n, 2))
    yy, xx = np.indices(shape)
    d = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
    return (np.argmin(d, axis=-1) + 1).astype(np.int64)


# ------------------------------------------------------------------------------------------
# foreground + contour
# ------------------------------------------------------------------------------------------


def test_fg_contour_targets_separate_touching_squares():
    labels = _two_touching_squares()
    before = labels.copy()
    t = fg_contour_targets(labels)
    assert t.shape == (2, *labels.shape) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0], labels > 0)
    # the contour is skimage's inner boundary
    np.testing.assert_array_equal(t[1], find_boundaries(labels, mode="inner"))
    # both sides of the contact are contour, so foreground minus contour has two components
    assert t[1][5, 9] == 1 and t[1][5, 10] == 1
    _, n = ndimage.label((t[0] - t[1]) > 0.5)
    assert n == 2
    np.testing.assert_array_equal(labels, before)


def test_fg_contour_targets_width_and_3d():
    labels = _two_touching_squares()
    thin = fg_contour_targets(labels)[1]
    thick = fg_contour_targets(labels, contour_width=2)[1]
    assert thick.sum() > thin.sum() and np.all(thick >= thin)
    assert np.all(thick[labels == 0] == 0)
    assert thick[5, 8] == 1 and thick[5, 7] == 0  # two pixels deep from the contact
    vol = np.stack([labels, labels, np.zeros_like(labels)])
    t3 = fg_contour_targets(vol)
    assert t3.shape == (2, 3, *labels.shape)
    np.testing.assert_array_equal(t3[1, 0], thin)  # in-plane contour only (z=0 is the edge)
    np.testing.assert_array_equal(t3[1, 1], labels > 0)  # every pixel touches background in z
    with pytest.raises(ValueError, match="contour_width"):
        fg_contour_targets(labels, contour_width=0)
    with pytest.raises(TypeError):
        fg_contour_targets(labels + 0.5)


def test_labels_from_fg_contour_recovers_touching_discs():
    labels = _two_touching_discs()
    fg, contour = fg_contour_targets(labels)
    out = labels_from_fg_contour(fg, contour)
    assert out.dtype == np.uint32 and out.shape == labels.shape
    m = matching(labels, out, threshold=0.8)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    # soft, blurred maps still give the two discs
    fg_soft = ndimage.gaussian_filter(fg, 1.0)
    contour_soft = np.clip(ndimage.gaussian_filter(contour, 1.0) * 2, 0, 1)
    out = labels_from_fg_contour(fg_soft, contour_soft)
    m = matching(labels, out, threshold=0.8)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)


def test_labels_from_fg_contour_size_filters_and_empty():
    labels = _two_touching_squares()
    labels[0, 0] = 3  # a one-pixel object
    fg, contour = fg_contour_targets(labels)
    out = labels_from_fg_contour(fg, contour, min_seed_size=1, min_size=4)
    assert out[0, 0] == 0 and set(np.unique(out).tolist()) == {0, 1, 2}
    z = np.zeros((5, 5))
    assert not labels_from_fg_contour(z, z).any()


def test_labels_from_fg_contour_validates_inputs():
    fg, contour = fg_contour_targets(_two_touching_squares())
    fg_nan = fg.copy()
    fg_nan[3, 3] = np.nan
    with pytest.raises(ValueError, match="fg_prob contains NaN"):
        labels_from_fg_contour(fg_nan, contour)
    with pytest.raises(ValueError, match="contour_prob"):
        labels_from_fg_contour(fg, contour * 2)
    with pytest.raises(ValueError, match="shape mismatch"):
        labels_from_fg_contour(fg, contour[:-1])
    assert not np.isnan(fg).any()  # input untouched


# ------------------------------------------------------------------------------------------
# boundaries (EM)
# ------------------------------------------------------------------------------------------


def test_boundary_targets_2d_and_per_slice():
    labels = np.array(
        [
            [1, 1, 1, 2, 2],
            [1, 1, 1, 2, 2],
            [1, 1, 0, 2, 2],
        ]
    )
    b = boundary_targets(labels)
    assert b.dtype == np.float32
    expected = np.array(
        [
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [0, 1, 1, 1, 0],
        ]
    )
    expected[2, 2] = 1  # label 0
    expected[1, 2] = 1  # above the 0
    np.testing.assert_array_equal(b, expected)
    # a stack: slices with different constant labels have no boundary (none across z)
    stack = np.stack([np.full((4, 4), 1), np.full((4, 4), 2)])
    assert not boundary_targets(stack).any()
    np.testing.assert_array_equal(boundary_targets(np.stack([labels, labels]))[1], b)


def test_labels_from_boundaries_recovers_stripes_exactly():
    labels = np.repeat(np.repeat(np.arange(1, 5), 6)[None], 10, axis=0)  # 4 stripes, 6 wide
    out = labels_from_boundaries(boundary_targets(labels), min_size=1)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, labels)


def test_labels_from_boundaries_recovers_partition():
    labels = _voronoi_partition()
    out = labels_from_boundaries(boundary_targets(labels))
    assert out.min() >= 1  # dense: boundaries are assigned to regions
    m = matching(labels, out, threshold=0.8)
    assert (m.tp, m.fp, m.fn) == (labels.max(), 0, 0)
    assert adapted_rand_error(labels, out) < 0.05
    assert sum(voi(labels, out)) < 0.2


def test_labels_from_boundaries_seed_distance_cuts_membrane_gap():
    prob = np.zeros((20, 41))
    prob[:, 20] = 1.0
    prob[9:11, 20] = 0.0  # a gap in the membrane
    assert labels_from_boundaries(prob).max() == 1
    out = labels_from_boundaries(prob, seed_distance=2)
    assert out.max() == 2
    assert len(np.unique(out[:, :20])) == 1 and len(np.unique(out[:, 21:])) == 1


def test_labels_from_boundaries_small_regions_are_absorbed():
    prob = np.zeros((16, 16))
    prob[:, 8] = 1.0
    prob[2:5, 2:5] = 1.0
    prob[3, 3] = 0.0  # a one-pixel region inside a membrane ring
    out = labels_from_boundaries(prob, min_size=4)
    assert out.min() >= 1 and out.max() == 2
    with pytest.raises(ValueError, match="2D"):
        labels_from_boundaries(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        labels_from_boundaries(np.full((4, 4), np.nan))
    assert not labels_from_boundaries(np.ones((4, 4))).any()  # no interior: no seeds


def test_labels_from_boundaries_stack_ids_unique_across_slices():
    a = _voronoi_partition((24, 32), 4, seed=1)
    b = _voronoi_partition((24, 32), 5, seed=2)
    stack = np.stack([boundary_targets(a), boundary_targets(b), boundary_targets(a)])
    out = labels_from_boundaries_stack(stack, min_size=4)
    assert out.dtype == np.uint32 and out.shape == stack.shape
    ids = [set(np.unique(s).tolist()) for s in out]
    assert ids[0].isdisjoint(ids[1]) and ids[1].isdisjoint(ids[2]) and ids[0].isdisjoint(ids[2])
    assert [len(s) for s in ids] == [4, 5, 4]
    np.testing.assert_array_equal(out[0] + 9, out[2])  # same slice, offset by 4 + 5
    with pytest.raises(ValueError, match="z, y, x"):
        labels_from_boundaries_stack(stack[0])


# ------------------------------------------------------------------------------------------
# per-slice connected components, relabelling
# ------------------------------------------------------------------------------------------


def test_connected_components_per_slice_splits_u_shape():
    u = np.array(
        [
            [5, 0, 0, 5],
            [5, 0, 0, 5],
            [5, 5, 5, 5],
        ]
    )
    broken = u.copy()
    broken[2, 1:3] = 0  # the bottom of the U is missing in this slice
    vol = np.stack([u, broken, u])
    before = vol.copy()
    out = connected_components_per_slice(vol)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out == 0, vol == 0)  # 0 stays 0, nothing else becomes 0
    per_slice = [set(np.unique(s[s > 0]).tolist()) for s in out]
    assert [len(s) for s in per_slice] == [1, 2, 1]
    # never linked across z: no ID occurs in two slices
    assert sum(len(s) for s in per_slice) == len(set().union(*per_slice)) == 4
    np.testing.assert_array_equal(vol, before)


def test_connected_components_per_slice_multilabel_and_4_connectivity():
    sl = np.array(
        [
            [1, 1, 2, 0],
            [1, 1, 2, 0],
            [0, 0, 0, 1],  # touches the first block only diagonally
        ]
    )
    out = connected_components_per_slice(sl[None])[0]
    assert len(np.unique(out[out > 0])) == 3
    assert out[0, 0] != out[2, 3] and out[0, 0] != out[0, 2]
    np.testing.assert_array_equal(connected_components_per_slice(sl), out)  # 2D input


def test_connected_components_per_slice_matches_skimage_per_slice():
    rng = np.random.default_rng(0)
    vol = ndimage.zoom(rng.integers(0, 4, (3, 6, 6)), (1, 3, 3), order=0)
    out = connected_components_per_slice(vol)
    offset = 0
    for z in range(vol.shape[0]):
        ref = sk_label(vol[z], background=0, connectivity=1)
        # same partition of the slice (VOI 0 both ways, with 0 as an ordinary label)
        assert voi(ref, out[z], ignore_true=()) == (0.0, 0.0)
        assert out[z].max() - offset == ref.max()
        offset = out[z].max()


def test_relabel_sequential():
    labels = np.array([[0, 9, 9], [4, 0, 2**40]], np.int64)
    out = relabel_sequential(labels)
    assert out.dtype == np.uint32
    assert out.tolist() == [[0, 2, 2], [1, 0, 3]]
    with pytest.raises(ValueError, match="negative"):
        relabel_sequential(np.array([[-1, 2]]))
