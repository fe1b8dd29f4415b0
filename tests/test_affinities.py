"""Tests of neuroseg.segment.affinities: targets, agglomeration, the affinity network and the 3D call.

Everything is synthetic and tiny: label volumes grown by a seeded watershed from random
seeds (numpy rng, seeded), 3D U-Nets of depth 2 with 2-4 base features, volumes of at most
4 x 48 x 48 voxels.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy import ndimage
from scipy.sparse.csgraph import connected_components as csgraph_components
from skimage.segmentation import watershed

from neuroseg.nets.folder import load_model
from neuroseg.nets.train import TrainConfig, _balanced_weights, loss_fn
from neuroseg.nets.unet import ModelError, UNet
from neuroseg.segment import affinities
from neuroseg.segment.affinities import (
    NEAREST,
    affinities_from_labels,
    affinity_target,
    agglomerate,
    boundary_map,
    connected_components,
    mutex_watershed,
    valid_mask,
)
from neuroseg.segment.volume_3d import (
    affinity_network,
    predict_affinities,
    segment_volume_3d,
    train_affinities,
)

ANISO = (40.0, 10.0, 10.0)
POSITIVE = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
LONG = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (-2, 0, 0), (0, -4, 0), (0, 0, -4)]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _synthetic_labels(shape, n, seed) -> np.ndarray:
    """Dense IDs 1..n: a seeded watershed of random seeds on the distance to the seeds.

    Watershed regions grow through neighbours from one seed each, so every ID is one
    connected object (6- or 4-connectivity); on the distance relief they are Voronoi-like
    cells, not single voxels.
    """
    rng = np.random.default_rng(seed)
    markers = np.zeros(shape, np.int32)
    markers.flat[rng.choice(int(np.prod(shape)), n, replace=False)] = np.arange(1, n + 1)
    relief = ndimage.distance_transform_edt(markers == 0)
    return watershed(relief, markers).astype(np.int64)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the IDs of a and b correspond one to one (a bijection between IDs)."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == np.unique(a).size == np.unique(b).size


def _consecutive(labels: np.ndarray) -> bool:
    return labels.dtype == np.uint32 and np.array_equal(
        np.unique(labels), np.arange(1, int(labels.max()) + 1)
    )


def _reference_components(affs, offsets, threshold) -> np.ndarray:
    """Connected components of the unit-offset edges above ``threshold``, with scipy."""
    shape = affs.shape[1:]
    index = np.arange(int(np.prod(shape))).reshape(shape)
    rows, cols = [], []
    for k, o in enumerate(offsets):
        if sum(abs(v) for v in o) != 1:
            continue
        src = tuple(slice(max(-v, 0), n - max(v, 0)) for n, v in zip(shape, o))
        dst = tuple(slice(max(v, 0), n + min(v, 0)) for n, v in zip(shape, o))
        edge = affs[(k, *src)] > threshold
        rows.append(index[src][edge])
        cols.append(index[dst][edge])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(index.size,) * 2)
    return csgraph_components(graph, directed=False)[1].reshape(shape)


def _reference_with_background(labels: np.ndarray) -> np.ndarray:
    """Every 0-voxel its own segment, every connected piece of a non-zero ID one segment."""
    out = np.zeros(labels.shape, np.int64)
    zeros = np.flatnonzero(labels == 0)
    out.flat[zeros] = np.arange(1, zeros.size + 1)
    nxt = zeros.size + 1
    for i in np.unique(labels[labels > 0]):
        pieces, k = ndimage.label(labels == i)
        out[pieces > 0] = pieces[pieces > 0] + nxt - 1
        nxt += k
    return out


def _tiny_net(resolution=ANISO, *, offsets=NEAREST, base_features=2, tile=(4, 16, 16), seed=0):
    with torch.random.fork_rng(devices=[]):
        return affinity_network(
            offsets=offsets, resolution=resolution, depth=2, base_features=base_features,
            tile=tile, seed=seed,
        )


@pytest.fixture(scope="module")
def labels3d() -> np.ndarray:
    labels = _synthetic_labels((6, 20, 20), 25, seed=0)
    sizes = np.bincount(labels.ravel())[1:]
    assert labels.max() == 25 and sizes.min() >= 2, "precondition: 25 objects, none a single voxel"
    return labels


@pytest.fixture(scope="module")
def labels2d() -> np.ndarray:
    labels = _synthetic_labels((30, 30), 12, seed=3)
    assert labels.max() == 12 and np.bincount(labels.ravel())[1:].min() >= 2
    return labels


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    return np.random.default_rng(7).random((4, 16, 16)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------

CUBE = np.array([[[1, 1], [0, 2]], [[1, 0], [0, 2]]])


def test_affinities_from_labels_golden_nearest():
    out = affinities_from_labels(CUBE)
    assert out.dtype == np.uint8
    assert out.shape == (3, 2, 2, 2)
    assert out[0].tolist() == [[[0, 0], [0, 0]], [[1, 0], [0, 1]]]  # -z: 1-1 and 2-2
    assert out[1].tolist() == [[[0, 0], [0, 0]], [[0, 0], [0, 0]]]  # -y: 1-0, 2-1, 0-1, 2-0
    assert out[2].tolist() == [[[0, 1], [0, 0]], [[0, 0], [0, 0]]]  # -x: 1-1 only (0-2 no)


def test_affinities_from_labels_golden_positive_and_long_range():
    out = affinities_from_labels(CUBE, offsets=[(1, 0, 0), (0, 0, 1), (-1, -1, 0)])
    assert out.shape == (3, 2, 2, 2)
    assert out[0].tolist() == [[[1, 0], [0, 1]], [[0, 0], [0, 0]]]  # +z: last slice outside
    assert out[1].tolist() == [[[1, 0], [0, 0]], [[0, 0], [0, 0]]]  # +x: last column outside
    assert out[2].tolist() == [[[0, 0], [0, 0]], [[0, 0], [0, 0]]]  # (1,1,1)=2 vs (0,0,1)=1
    line = [[[1, 2, 1]]]
    assert affinities_from_labels(line, offsets=[(0, 0, -2)]).tolist() == [[[[0, 0, 1]]]]
    assert affinities_from_labels(line, offsets=[(0, 0, 2)]).tolist() == [[[[1, 0, 0]]]]
    assert affinities_from_labels(line, offsets=[(0, 0, -1)]).tolist() == [[[[0, 0, 0]]]]
    assert affinities_from_labels([[[7, 7, 7]]], offsets=[(0, 0, -1)]).tolist() == [[[[0, 1, 1]]]]
    # an offset longer than the volume: no neighbour inside, all 0
    assert affinities_from_labels([[[7, 7, 7]]], offsets=[(0, 0, -3), (0, 0, 5)]).sum() == 0


def test_affinities_from_labels_background_never_one():
    assert affinities_from_labels([[[0, 0, 0]]], offsets=[(0, 0, -1)]).tolist() == [[[[0, 0, 0]]]]
    assert affinities_from_labels([[[0, 5, 0]]], offsets=[(0, 0, -2)]).tolist() == [[[[0, 0, 0]]]]
    labels = np.zeros((2, 3, 4), np.int64)
    assert not affinities_from_labels(labels, offsets=LONG).any()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (3, 4, 5))
    out = affinities_from_labels(labels, offsets=LONG)
    assert not out[:, labels == 0].any()


def test_affinities_from_labels_any_integer_dtype_and_no_mutation():
    labels = CUBE.astype(np.uint16)
    before = labels.copy()
    out = affinities_from_labels(labels)
    assert np.array_equal(labels, before)
    assert np.array_equal(out, affinities_from_labels(CUBE.astype(np.uint64)))
    assert np.array_equal(out, affinities_from_labels(CUBE.tolist()))


def test_affinities_from_labels_2d():
    out = affinities_from_labels([[1, 1], [0, 0]], offsets=[(0, -1), (-1, 0)])
    assert out.tolist() == [[[0, 1], [0, 0]], [[0, 0], [0, 0]]]


def test_affinities_from_labels_bad_inputs():
    with pytest.raises(TypeError, match="integers"):
        affinities_from_labels(CUBE.astype(np.float32))
    with pytest.raises(ValueError, match="not all zero"):
        affinities_from_labels(CUBE, offsets=[(0, 0, 0)])
    with pytest.raises(ValueError, match="3 integers"):
        affinities_from_labels(CUBE, offsets=[(0, -1)])
    with pytest.raises(ValueError, match="3 integers"):
        affinities_from_labels(CUBE, offsets=[(0, 0, 0, -1)])
    with pytest.raises(ValueError, match="at least one offset"):
        affinities_from_labels(CUBE, offsets=[])


def test_valid_mask_golden():
    out = valid_mask((2, 2, 2))
    assert out.dtype == np.uint8 and out.shape == (3, 2, 2, 2)
    assert out[0].tolist() == [[[0, 0], [0, 0]], [[1, 1], [1, 1]]]
    assert out[1].tolist() == [[[0, 0], [1, 1]], [[0, 0], [1, 1]]]
    assert out[2].tolist() == [[[0, 1], [0, 1]], [[0, 1], [0, 1]]]
    offsets = [(0, 0, -2), (0, 0, 2), (0, 0, 1), (0, 0, -5)]
    assert valid_mask((1, 1, 3), offsets=offsets).tolist() == [
        [[[0, 0, 1]]], [[[1, 0, 0]]], [[[1, 1, 0]]], [[[0, 0, 0]]]
    ]
    with pytest.raises(ValueError):
        valid_mask((2, 2, 2), offsets=[(0, 0)])


def test_affinity_target_is_affinities_then_mask(labels3d):
    target = affinity_target(labels3d, offsets=LONG)
    assert target.dtype == np.float32
    assert target.shape == (2 * len(LONG), *labels3d.shape)
    expected = np.concatenate(
        [affinities_from_labels(labels3d, offsets=LONG), valid_mask(labels3d.shape, offsets=LONG)]
    ).astype(np.float32)
    assert np.array_equal(target, expected)
    # an affinity is 1 only where its edge is valid
    k = len(LONG)
    assert np.all(target[:k] <= target[k:])


# --------------------------------------------------------------------------------------------
# connected components
# --------------------------------------------------------------------------------------------


def test_connected_components_doc_examples():
    labels = np.array([[[1, 1, 2]]])
    assert connected_components(affinities_from_labels(labels)).tolist() == [[[1, 1, 2]]]
    affs = np.zeros((2, 2, 2))
    affs[1, :, 1] = 0.9
    assert connected_components(affs, offsets=[(-1, 0), (0, -1)]).tolist() == [[1, 1], [2, 2]]


@pytest.mark.parametrize("offsets", [NEAREST, POSITIVE, LONG], ids=["nearest", "positive", "long"])
def test_connected_components_of_perfect_affinities_3d(labels3d, offsets):
    affs = affinities_from_labels(labels3d, offsets=offsets).astype(np.float32)
    out = connected_components(affs, offsets=offsets, threshold=0.5)
    assert out.shape == labels3d.shape
    assert _consecutive(out)
    assert out.max() == 25
    assert _same_partition(out, labels3d)


def test_connected_components_positive_equals_negative_offsets(labels3d):
    neg = connected_components(affinities_from_labels(labels3d), offsets=NEAREST)
    pos = connected_components(affinities_from_labels(labels3d, offsets=POSITIVE), offsets=POSITIVE)
    # same voxel pairs, so the same partition; IDs are by first appearance, so equal too
    assert np.array_equal(neg, pos)


@pytest.mark.parametrize(
    "offsets", [[(-1, 0), (0, -1)], [(0, 1), (1, 0)], [(0, -3), (1, 0), (0, -1)]],
    ids=["negative", "positive", "mixed"],
)
def test_connected_components_of_perfect_affinities_2d(labels2d, offsets):
    affs = affinities_from_labels(labels2d, offsets=offsets)
    out = connected_components(affs, offsets=offsets)
    assert out.shape == labels2d.shape
    assert _consecutive(out)
    assert _same_partition(out, labels2d)


def test_connected_components_background_voxels_are_singletons(labels3d):
    rng = np.random.default_rng(5)
    labels = labels3d.copy()
    labels[rng.random(labels.shape) < 0.15] = 0
    out = connected_components(affinities_from_labels(labels), threshold=0.5)
    assert _consecutive(out)
    assert _same_partition(out, _reference_with_background(labels))
    sizes = np.bincount(out.ravel())
    assert np.all(sizes[out[labels == 0]] == 1)
    # golden
    line = np.array([[[1, 1, 0, 0, 2, 2]]])
    assert connected_components(affinities_from_labels(line)).tolist() == [[[1, 1, 2, 3, 4, 4]]]


def test_connected_components_min_size_dissolves_background(labels3d):
    rng = np.random.default_rng(6)
    labels = labels3d.copy()
    labels[rng.random(labels.shape) < 0.15] = 0
    reference = _reference_with_background(labels)
    sizes = np.bincount(reference.ravel())
    large = sizes[reference] >= 3  # voxels of pieces that are kept
    assert large.any() and (labels[~large] == 0).mean() > 0.5, "precondition: mostly 0s dissolve"
    out = connected_components(affinities_from_labels(labels), min_size=3)
    assert _consecutive(out)
    assert np.bincount(out.ravel())[1:].min() >= 3
    # the kept pieces keep their partition; every dissolved voxel joined one of them
    assert _same_partition(out[large], reference[large])
    assert out.max() == np.unique(reference[large]).size


def test_connected_components_min_size_golden():
    line = np.array([[[1, 1, 1, 2, 2, 0]]])
    assert connected_components(affinities_from_labels(line), min_size=2).tolist() == [
        [[1, 1, 1, 2, 2, 2]]
    ]
    line = np.array([[[1, 1, 0, 0, 2, 2]]])  # each 0 joins its nearest side
    assert connected_components(affinities_from_labels(line), min_size=2).tolist() == [
        [[1, 1, 1, 2, 2, 2]]
    ]
    # min_size 1 or 0 keeps everything
    line = np.array([[[1, 0, 2]]])
    for m in (0, 1):
        assert connected_components(affinities_from_labels(line), min_size=m).tolist() == [
            [[1, 2, 3]]
        ]
    # nothing larger to join: everything is kept
    assert connected_components(affinities_from_labels(line), min_size=5).tolist() == [[[1, 2, 3]]]


def test_connected_components_min_size_nearest_in_nm():
    labels = np.array([[1, 1], [3, 2], [2, 2]])  # 3 touches 1 above and 2 to the right
    offsets = [(-1, 0), (0, -1)]
    affs = affinities_from_labels(labels, offsets=offsets)
    coarse_y = connected_components(affs, offsets=offsets, min_size=2, resolution=(10.0, 1.0))
    coarse_x = connected_components(affs, offsets=offsets, min_size=2, resolution=(1.0, 10.0))
    assert coarse_y.tolist() == [[1, 1], [2, 2], [2, 2]]
    assert coarse_x.tolist() == [[1, 1], [1, 2], [2, 2]]


def test_connected_components_threshold_is_strict():
    affs = np.zeros((3, 1, 1, 3))
    affs[2] = 0.5
    assert connected_components(affs, threshold=0.5).tolist() == [[[1, 2, 3]]]
    assert connected_components(affs, threshold=np.nextafter(0.5, 0)).tolist() == [[[1, 1, 1]]]
    affs[2, 0, 0, 1] = np.nextafter(0.5, 1)
    assert connected_components(affs, threshold=0.5).tolist() == [[[1, 1, 2]]]
    f32 = np.zeros((3, 1, 1, 3), np.float32)
    f32[2] = 0.5
    assert connected_components(f32, threshold=0.5).tolist() == [[[1, 2, 3]]]


@pytest.mark.parametrize(
    "offsets",
    [NEAREST, POSITIVE, [(0, 0, -1), (1, 0, 0), (0, -2, 0), (0, -1, 0)]],
    ids=["negative", "positive", "mixed"],
)
def test_connected_components_matches_scipy_reference_3d(offsets):
    rng = np.random.default_rng(11)
    for threshold in (0.3, 0.55, 0.7):
        affs = rng.random((len(offsets), 4, 5, 6))
        out = connected_components(affs, offsets=offsets, threshold=threshold)
        assert _consecutive(out)
        assert _same_partition(out, _reference_components(affs, offsets, threshold))


@pytest.mark.parametrize("offsets", [[(-1, 0), (0, -1)], [(0, 1), (1, 0)]], ids=["neg", "pos"])
def test_connected_components_matches_scipy_reference_2d(offsets):
    rng = np.random.default_rng(12)
    for threshold in (0.4, 0.6):
        affs = rng.random((2, 7, 9)).astype(np.float32)
        out = connected_components(affs, offsets=offsets, threshold=threshold)
        assert _same_partition(out, _reference_components(affs, offsets, threshold))


def test_connected_components_bad_inputs():
    affs = np.full((3, 2, 2, 2), 0.7)
    with pytest.raises(ValueError, match="nearest-neighbour offset along axis 2"):
        connected_components(affs, offsets=[(-1, 0, 0), (0, -1, 0), (0, 0, -2)])
    with pytest.raises(ValueError, match="3 affinity channels but 2 offsets"):
        connected_components(affs, offsets=[(-1, 0, 0), (0, -1, 0)])
    with pytest.raises(ValueError, match="min_size"):
        connected_components(affs, min_size=-1)
    with pytest.raises(ValueError, match="NaN"):
        connected_components(np.full((3, 2, 2, 2), np.nan))


# --------------------------------------------------------------------------------------------
# mutex watershed and agglomerate
# --------------------------------------------------------------------------------------------


def test_mutex_watershed_doc_example():
    labels = np.array([[[1, 1, 2, 2]]])
    offs = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -2)]
    out = mutex_watershed(affinities_from_labels(labels, offsets=offs), offsets=offs)
    assert out.tolist() == [[[1, 1, 2, 2]]]


@pytest.mark.parametrize(
    "offsets",
    [LONG, [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 5, 0), (0, 0, 5)],
     [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, -3, -3), (0, 3, -3)]],
    ids=["negative", "positive", "diagonal"],
)
def test_mutex_watershed_of_perfect_affinities_3d(labels3d, offsets):
    affs = affinities_from_labels(labels3d, offsets=offsets).astype(np.float32)
    out = mutex_watershed(affs, offsets=offsets)
    assert out.shape == labels3d.shape
    assert _consecutive(out)
    assert _same_partition(out, labels3d)
    assert np.array_equal(out, agglomerate(affs, method="mws", offsets=offsets))


def test_mutex_watershed_of_perfect_affinities_2d(labels2d):
    offsets = [(-1, 0), (0, -1), (0, -3), (3, 3)]
    out = mutex_watershed(affinities_from_labels(labels2d, offsets=offsets), offsets=offsets)
    assert _same_partition(out, labels2d)


def test_mutex_watershed_min_size():
    labels = np.array([[[1, 1, 1, 2, 2, 2, 2]]])
    offs = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -2)]
    affs = affinities_from_labels(labels, offsets=offs).astype(float)
    assert mutex_watershed(affs, offsets=offs, min_size=4).tolist() == [[[1, 1, 1, 1, 1, 1, 1]]]
    out = mutex_watershed(affs, offsets=offs, min_size=3)
    assert out.dtype == np.uint32 and out.tolist() == labels.tolist()


def test_mutex_watershed_background_voxels_are_singletons():
    labels = np.array([[[1, 0, 2, 0, 3]]])
    out = mutex_watershed(affinities_from_labels(labels))
    # each voxel its own segment, as connected_components gives
    assert out.tolist() == [[[1, 2, 3, 4, 5]]]


def test_mutex_watershed_all_repulsive_gives_singletons():
    out = mutex_watershed(np.zeros((3, 1, 1, 4)))
    assert out.tolist() == [[[1, 2, 3, 4]]]


def test_mutex_watershed_bad_inputs():
    affs = np.full((3, 2, 2, 2), 0.7)
    nan = affs.copy()
    nan[1, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mutex_watershed(nan)
    inf = affs.copy()
    inf[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        mutex_watershed(inf)
    with pytest.raises(ValueError, match="3 affinity channels but 4 offsets"):
        mutex_watershed(affs, offsets=LONG[:4])
    with pytest.raises(ValueError, match="min_size must be a non-negative integer"):
        mutex_watershed(affs, min_size=-2)
    with pytest.raises(ValueError, match="min_size must be a non-negative integer"):
        mutex_watershed(affs, min_size=2.5)
    with pytest.raises(ValueError, match="channels, \\*spatial"):
        mutex_watershed(np.zeros((3, 4)), offsets=[(-1,)] * 3)
    with pytest.raises(ValueError, match="not all zero"):
        mutex_watershed(affs, offsets=[(-1, 0, 0), (0, -1, 0), (0, 0, 0)])


def test_agglomerate_dispatch_and_unknown_method(labels3d):
    affs = affinities_from_labels(labels3d).astype(np.float32)
    assert np.array_equal(agglomerate(affs, method="cc"), connected_components(affs))
    assert np.array_equal(
        agglomerate(affs, method="cc", threshold=0.2, min_size=3),
        connected_components(affs, threshold=0.2, min_size=3),
    )
    with pytest.raises(ValueError, match="method must be one of"):
        agglomerate(affs, method="watershed")
    with pytest.raises(ValueError, match="'CC'"):
        agglomerate(affs, method="CC")


def test_boundary_map_golden():
    labels = np.array([[1, 1], [3, 2], [2, 2]])
    offsets = [(-1, 0), (0, -1)]
    out = boundary_map(affinities_from_labels(labels, offsets=offsets), offsets=offsets)
    assert out.dtype == np.float32
    assert out.tolist() == [[1.0, 0.5], [1.0, 1.0], [1.0, 0.0]]


# --------------------------------------------------------------------------------------------
# the network, its loss and its training
# --------------------------------------------------------------------------------------------


def test_affinity_network_pool_factors_and_meta():
    net = _tiny_net(ANISO, offsets=LONG, tile=(8, 64, 64))
    assert net.config["pool_factors"] == [[1, 2, 2]]
    assert net.config["out_channels"] == len(LONG) and net.config["ndim"] == 3
    assert net.required_multiple == (1, 2, 2)
    assert net.meta["target"] == "affinities"
    assert net.meta["offsets"] == [list(o) for o in LONG]
    assert net.meta["pixel_size"] == {"size": [40.0, 10.0, 10.0], "unit": "nm"}
    assert net.meta["tile"] == [8, 64, 64]
    json.dumps(net.meta)  # storable in config.json
    iso = _tiny_net((10, 10, 10))
    assert iso.config["pool_factors"] == [[2, 2, 2]]
    assert iso.meta["offsets"] == [list(o) for o in NEAREST]
    with torch.random.fork_rng(devices=[]):
        deep = affinity_network(resolution=(20, 10, 10), depth=3, base_features=2)
        assert deep.config["pool_factors"] == [[1, 2, 2], [2, 2, 2]]
        assert affinity_network(resolution=(15, 10, 10), depth=3, base_features=2).config[
            "pool_factors"
        ] == [[2, 2, 2], [2, 2, 2]]
        with pytest.raises(ValueError, match="resolution"):
            affinity_network(resolution=(10, 10))
        with pytest.raises(ValueError, match="resolution"):
            affinity_network(resolution=(0, 10, 10))
        with pytest.raises(ValueError, match="not all zero"):
            affinity_network(offsets=[(0, 0, 0)])
    # same seed, same weights
    a, b = _tiny_net(seed=3), _tiny_net(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_affinity_network_backward_with_balanced_bce(labels3d):
    net = _tiny_net(ANISO, offsets=LONG, base_features=4)
    net.train()
    labels = labels3d[:4, :16, :16]
    target = torch.from_numpy(np.stack([affinity_target(labels, offsets=LONG)] * 2))
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, 4, 16, 16)).astype(np.float32))
    logits = net(x)
    assert logits.shape == (2, len(LONG), 4, 16, 16)
    loss = loss_fn(logits, target, TrainConfig(loss="balanced_bce"))
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.all(torch.isfinite(p.grad)), name
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_balanced_bce_golden():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0]).view(1, 1, 4)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 4)
    # BCE of a 1 is softplus(-x), of a 0 softplus(x); the 1s and the 0s weigh half each
    expected = 0.5 * _softplus(-2.0) + 0.5 * (_softplus(-1.0) + _softplus(0.5) + _softplus(0.0)) / 3
    loss = loss_fn(logits, target, TrainConfig(loss="balanced_bce"))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    weights = _balanced_weights(target, None).view(-1).tolist()
    assert weights == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3])
    # plain BCE for comparison: the mean
    plain = (_softplus(-2.0) + _softplus(-1.0) + _softplus(0.5) + _softplus(0.0)) / 4
    assert loss_fn(logits, target, TrainConfig(loss="bce")).item() == pytest.approx(plain, rel=1e-6)
    # a channel with a single class keeps plain weights
    ones = torch.ones(1, 1, 4)
    assert _balanced_weights(ones, None).view(-1).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_balanced_bce_golden_with_mask():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0, 30.0]).view(1, 1, 5)
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]]).view(1, 2, 5)
    expected = 0.5 * _softplus(-2.0) + 0.5 * (_softplus(-1.0) + _softplus(0.5) + _softplus(0.0)) / 3
    loss = loss_fn(logits, target, TrainConfig(loss="balanced_bce"))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss", ["balanced_bce", "bce", "bce+dice", "dice"])
def test_loss_ignores_masked_voxels(labels3d, loss):
    labels = labels3d[:4, :8, :8]
    target = torch.from_numpy(affinity_target(labels, offsets=LONG))[None]
    k = len(LONG)
    mask = target[:, k:]
    assert (mask == 0).any() and (mask == 1).any()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn((1, k, 4, 8, 8), generator=gen)
    config = TrainConfig(loss=loss)
    base = loss_fn(logits, target, config)
    wild = torch.where(mask == 0, torch.randn(logits.shape, generator=gen) * 1e4, logits)
    assert not torch.equal(wild, logits)
    assert loss_fn(wild, target, config).item() == pytest.approx(base.item(), rel=1e-6, abs=1e-7)
    # flipping the target where it does not count does not matter either
    flipped = target.clone()
    flipped[:, :k] = torch.where(mask == 0, 1 - target[:, :k], target[:, :k])
    assert loss_fn(logits, flipped, config).item() == pytest.approx(base.item(), rel=1e-6)
    # ... while a valid voxel does
    moved = logits.clone()
    idx = tuple(i[0] for i in torch.nonzero(mask[0] == 1, as_tuple=True))
    moved[(0, *idx)] += 50.0
    assert loss_fn(moved, target, config).item() != pytest.approx(base.item(), rel=1e-6)


def test_loss_wrong_target_channels():
    logits = torch.zeros(1, 2, 4)
    for channels in (1, 3, 5):
        with pytest.raises(ValueError, match=f"{channels} channels for 2 outputs"):
            loss_fn(logits, torch.zeros(1, channels, 4), TrainConfig(loss="balanced_bce"))


def test_train_affinities_one_epoch(tmp_path):
    labels = _synthetic_labels((4, 24, 24), 6, seed=4)
    raw = np.where(ndimage.morphological_gradient(labels, size=2) > 0, 0.1, 0.8)
    raw = (raw + np.random.default_rng(0).normal(0, 0.05, raw.shape)).astype(np.float32)
    net = _tiny_net(ANISO, base_features=4)
    folder = tmp_path / "affinity_unet"
    model, history = train_affinities(
        net, (raw, labels), (raw, labels), folder=folder, crop=(4, 16, 16), epochs=1,
        samples_per_epoch=2, val_crops=1, batch_size=2, progress=False,
    )
    assert (folder / "config.json").exists() and (folder / "weights.pt").exists()
    assert len(history) == 1
    assert np.isfinite(history["train_loss"]).all() and np.isfinite(history["val_loss"]).all()
    assert model.meta["target"] == "affinities"
    assert model.meta["offsets"] == [list(o) for o in NEAREST]
    assert model.meta["crop"] == [4, 16, 16]
    assert model.meta["train_config"]["loss"] == "balanced_bce"
    assert model.meta["train_config"]["precision"] == "auto"
    loaded = load_model(folder)
    assert loaded.meta["pixel_size"] == {"size": [40.0, 10.0, 10.0], "unit": "nm"}
    for p, q in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(p, q)


def test_train_affinities_in_bf16_channels_last(tmp_path):
    labels = _synthetic_labels((4, 16, 16), 3, seed=0)
    raw = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    model, history = train_affinities(
        _tiny_net(ANISO, base_features=4), (raw, labels), (raw, labels), folder=tmp_path / "a",
        crop=(4, 16, 16), epochs=1, samples_per_epoch=2, val_crops=1, batch_size=2,
        precision="bf16", channels_last=True, progress=False,
    )
    assert np.isfinite(history["train_loss"]).all()
    assert model.meta["train_config"]["precision"] == "bf16"
    assert model.meta["train_config"]["channels_last"] is True
    with pytest.raises(ValueError, match="precision"):
        train_affinities(_tiny_net(ANISO, base_features=4), (raw, labels), folder=tmp_path / "b",
                         epochs=1, precision="fp8")


def test_train_affinities_bad_inputs(tmp_path):
    net = _tiny_net()
    labels = _synthetic_labels((4, 16, 16), 3, seed=0)
    raw = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    with pytest.raises(ValueError, match="all background"):
        train_affinities(net, (raw, np.zeros_like(labels)), folder=tmp_path / "a", epochs=1)
    with pytest.raises(ValueError, match="one \\(z, y, x\\) shape"):
        train_affinities(net, (raw[:, :8], labels), folder=tmp_path / "b", epochs=1)
    plain = UNet(ndim=3, depth=2, base_features=2)
    plain.meta = {"target": "boundaries"}
    with pytest.raises(ValueError, match="affinity_network"):
        train_affinities(plain, (raw, labels), folder=tmp_path / "c", epochs=1)


# --------------------------------------------------------------------------------------------
# tiled prediction
# --------------------------------------------------------------------------------------------


def test_predict_affinities_tiled_equals_whole():
    net = _tiny_net(ANISO, base_features=4, tile=(4, 32, 32))
    assert net.config["norm"] == "batch"
    net.eval()
    mult = net.required_multiple
    rng = np.random.default_rng(1)
    raw = rng.random((4, 48, 48)).astype(np.float32)
    assert all(s % m == 0 for s, m in zip(raw.shape, mult))
    whole = predict_affinities(net, raw, tile=raw.shape)
    # tiles start at y, x = 0 and 16 (multiples of the pooling), overlapping in [16, 32)
    tiled = predict_affinities(net, raw, tile=(4, 32, 32), overlap=(0, 16, 16))
    assert whole.shape == tiled.shape == (3, 4, 48, 48)
    assert whole.dtype == tiled.dtype == np.float32
    assert np.all((whole >= 0) & (whole <= 1))
    single = np.ones(48, bool)
    single[16:32] = False  # voxels covered by one tile only are >= 16 from its inner borders
    region = single[:, None] & single[None, :]
    np.testing.assert_allclose(tiled[..., region], whole[..., region], atol=1e-5)
    np.testing.assert_allclose(tiled, whole, atol=2e-2)
    # the model's tile by default (meta["tile"]), same result
    assert np.array_equal(predict_affinities(net, raw, overlap=(0, 16, 16)), tiled)


def test_predict_affinities_checks():
    net = _tiny_net()
    with pytest.raises(ValueError, match="NaN"):
        predict_affinities(net, np.full((4, 16, 16), np.nan, np.float32))
    with pytest.raises(ValueError, match="\\(z, y, x\\)"):
        predict_affinities(net, np.zeros((16, 16), np.float32))
    plain = UNet(ndim=3, depth=2, base_features=2)
    with pytest.raises(ModelError):
        predict_affinities(plain, np.zeros((4, 16, 16), np.float32))


# --------------------------------------------------------------------------------------------
# segment_volume_3d
# --------------------------------------------------------------------------------------------


def test_segment_volume_3d_output(raw):
    net = _tiny_net()
    before = raw.copy()
    labels = segment_volume_3d(net, raw)
    assert np.array_equal(raw, before)
    assert labels.shape == raw.shape
    assert _consecutive(labels)
    assert labels.min() == 1
    labels2, affs = segment_volume_3d(net, raw, return_affinities=True)
    assert np.array_equal(labels, labels2)
    assert affs.shape == (3, *raw.shape) and affs.dtype == np.float32
    # the same as agglomerating the tiled prediction by hand
    assert np.array_equal(labels, connected_components(predict_affinities(net, raw), threshold=0.5))
    # integer raw works and is not modified
    raw8 = (raw * 255).astype(np.uint8)
    before8 = raw8.copy()
    out8 = segment_volume_3d(net, raw8)
    assert np.array_equal(raw8, before8) and out8.shape == raw.shape


def test_segment_volume_3d_refuses_other_models_and_bad_raw(raw):
    boundary = _tiny_net()
    boundary.meta = {**boundary.meta, "target": "boundaries"}
    with pytest.raises(ModelError, match="'boundaries'"):
        segment_volume_3d(boundary, raw)
    flat = UNet(ndim=2, depth=2, base_features=2)
    flat.meta = {"target": "affinities"}
    with pytest.raises(ModelError):
        segment_volume_3d(flat, raw)
    no_meta = UNet(ndim=3, depth=2, base_features=2)
    with pytest.raises(ModelError):
        segment_volume_3d(no_meta, raw)
    net = _tiny_net()
    with pytest.raises(ValueError, match="\\(z, y, x\\)"):
        segment_volume_3d(net, raw[0])
    bad = raw.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segment_volume_3d(net, bad)
    with pytest.raises(ValueError, match="resolution"):
        segment_volume_3d(net, raw, resolution=(40.0, 10.0))


@pytest.mark.parametrize("shape", [(4, 12, 12), (3, 13, 11)])
def test_segment_volume_3d_coarser_volume_resampled(shape):
    net = _tiny_net()  # 40 x 10 x 10 nm
    raw = np.random.default_rng(2).random(shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 2x off: resampled without a warning
        labels, affs = segment_volume_3d(
            net, raw, resolution=(40.0, 20.0, 20.0), return_affinities=True
        )
    assert labels.shape == raw.shape
    assert _consecutive(labels)
    assert affs.shape[1:] == (shape[0], 2 * shape[1], 2 * shape[2])  # at the model's voxel size


def test_segment_volume_3d_far_resolution_warns():
    net = _tiny_net()
    raw = np.random.default_rng(3).random((2, 6, 6)).astype(np.float32)
    with pytest.warns(UserWarning, match="4x coarser than the model"):
        labels = segment_volume_3d(net, raw, resolution=(40.0, 40.0, 40.0))
    assert labels.shape == raw.shape and _consecutive(labels)
    with pytest.warns(UserWarning, match="2.5x coarser than the model"):
        labels = segment_volume_3d(net, raw, resolution=(100.0, 10.0, 10.0))
    assert labels.shape == raw.shape
    with pytest.warns(UserWarning, match="no pixel size given"):
        segment_volume_3d(net, raw)


def test_segment_volume_3d_postprocess_from_meta_and_overrides(monkeypatch, raw):
    calls = []
    original = affinities.agglomerate

    def spy(affs, **kwargs):
        calls.append(kwargs)
        return original(affs, **kwargs)

    monkeypatch.setattr("neuroseg.segment.volume_3d.agglomerate", spy)
    net = _tiny_net(offsets=LONG[:4])
    segment_volume_3d(net, raw)
    assert calls[-1]["method"] == "cc" and calls[-1]["threshold"] == 0.5
    assert calls[-1]["min_size"] == 0
    assert [list(o) for o in calls[-1]["offsets"]] == [list(o) for o in LONG[:4]]
    assert list(calls[-1]["resolution"]) == [40.0, 10.0, 10.0]
    net.meta = {**net.meta, "postprocess": {"method": "mws", "threshold": 0.3, "min_size": 2}}
    segment_volume_3d(net, raw)
    assert (calls[-1]["method"], calls[-1]["threshold"], calls[-1]["min_size"]) == ("mws", 0.3, 2)
    segment_volume_3d(net, raw, method="cc", threshold=0.7)
    assert (calls[-1]["method"], calls[-1]["threshold"], calls[-1]["min_size"]) == ("cc", 0.7, 2)
    segment_volume_3d(net, raw, min_size=0)
    assert (calls[-1]["method"], calls[-1]["threshold"], calls[-1]["min_size"]) == ("mws", 0.3, 0)
    assert len(calls) == 4
    with pytest.raises(ValueError, match="method must be one of"):
        segment_volume_3d(net, raw, method="nope")
