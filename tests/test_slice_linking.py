"""The slice-linking experiment's helpers: error maps, z subsampling, the protocol's volumes."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data.catalogue import require
from neuroseg.data.em_slices import FIB25
from neuroseg.data.em_volumes import GALA, EMVolume, load_volumes
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.readers import read_cremi
from neuroseg.experiments import slice_linking
from neuroseg.experiments.data_preparation import FIB25_SPLIT_X, make_splits, save_splits
from neuroseg.measure.error_map import error_map
from neuroseg.nets.unet import build_unet
from neuroseg.segment.volume_2d import segments_2d

# --------------------------------------------------------------------------------------------
# error_map
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seg", "gt", "expected"),
    [
        # a perfect segmentation (other IDs): nothing wrong
        ([3, 3, 7, 7], [1, 1, 2, 2], [0, 0, 0, 0]),
        # neuron 1 split into 1 (main) and 2
        ([1, 2, 3, 3], [1, 1, 2, 2], [0, 1, 0, 0]),
        # segment 1 merges neuron 1 (main) and neuron 2
        ([1, 1, 1], [1, 1, 2], [0, 0, 2]),
        # voxel 2: neuron 3's minority piece (split) inside segment 1, whose main neuron is 1
        ([1, 1, 1, 2, 2, 2, 2], [1, 1, 3, 3, 3, 3, 3], [0, 0, 3, 0, 0, 0, 0]),
        # segment 2 is a minority piece of neuron 1 (split) whose main neuron is 2 (merge)
        (
            [1, 1, 1, 2, 2, 2, 3, 3, 3, 3],
            [1, 1, 1, 1, 2, 2, 2, 2, 2, 2],
            [0, 0, 0, 3, 1, 1, 0, 0, 0, 0],
        ),
        # ground truth 0 is ignored: it neither counts as wrong nor as segment 1's neuron
        ([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 2, 2], [0, 0, 0, 0, 0, 0]),
        ([1, 2, 1, 2], [0, 0, 5, 5], [0, 0, 0, 1]),
        # everything ignored
        ([1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0]),
    ],
)
def test_error_map_golden(seg, gt, expected):
    out = error_map(np.array([gt]), np.array([seg]))
    assert out.dtype == np.uint8
    assert out.tolist() == [expected]


def test_error_map_tie_for_largest_segment():
    # neuron 2 is half in segment 1, half in segment 2: exactly one half is its main piece.
    # (The docstring's example says [[0, 0, 2, 0]] here, which would make both halves main.)
    out = error_map(np.array([[1, 1, 2, 2]]), np.array([[1, 1, 1, 2]]))[0]
    assert out[:2].tolist() == [0, 0]
    assert out[2] & 2  # segment 1's main neuron is 1: voxel 2 is a merge voxel
    assert (out[2] & 1) + (out[3] & 1) == 1  # one of the two halves is a split voxel
    assert not out[3] & 2


def test_error_map_3d_keeps_shape_and_inputs():
    gt = np.zeros((2, 3, 4), np.uint64)
    gt[:, :, :2] = 1
    gt[:, :, 2:] = 2
    seg = gt.astype(np.uint32).copy()
    seg[1, :, 1:3] = 9  # the second slice: a segment across both neurons, minority of each
    before = seg.copy(), gt.copy()
    out = error_map(gt, seg)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert not out[0].any()
    # segment 9 (6 voxels): 3 of neuron 1, 3 of neuron 2 -> one of them (tie) is its main
    # neuron; each of its voxels is a split voxel (neither neuron's main segment)
    assert ((out[1][:, 1:3] & 1) == 1).all()
    assert (out[1][:, 1:3] >= 2).any()
    assert not (out[1][:, [0, 3]]).any()
    np.testing.assert_array_equal(seg, before[0])
    np.testing.assert_array_equal(gt, before[1])


# --------------------------------------------------------------------------------------------
# EMVolume.subsampled
# --------------------------------------------------------------------------------------------


def _volume(nz: int = 12) -> EMVolume:
    raw = np.broadcast_to(np.arange(nz, dtype=np.uint8)[:, None, None], (nz, 3, 4)).copy()
    gt = raw.astype(np.uint64) + 100
    return EMVolume("toy", raw, gt, (10.0, 8.0, 8.0), {"dataset": "toy", "part": "test"})


def test_subsampled_takes_every_kth_slice():
    vol = _volume()
    sub = vol.subsampled(40)
    assert sub.name == "toy"
    assert sub.raw[:, 0, 0].tolist() == [0, 4, 8]
    assert sub.gt[:, 0, 0].tolist() == [100, 104, 108]
    assert sub.resolution == (40.0, 8.0, 8.0)
    assert sub.region == {"dataset": "toy", "part": "test", "z_step": 4, "z_offset": 0}
    assert vol.region == {"dataset": "toy", "part": "test"}  # the original is untouched
    assert vol.raw.shape == (12, 3, 4) and vol.resolution == (10.0, 8.0, 8.0)


@pytest.mark.parametrize(("offset", "zs"), [(1, [1, 5, 9]), (3, [3, 7, 11])])
def test_subsampled_offset(offset, zs):
    sub = _volume().subsampled(40.0, offset=offset)
    assert sub.raw[:, 0, 0].tolist() == zs
    assert sub.gt[:, 0, 0].tolist() == [z + 100 for z in zs]
    assert sub.region["z_offset"] == offset and sub.region["z_step"] == 4


def test_subsampled_at_native_spacing_is_the_volume():
    vol = _volume()
    sub = vol.subsampled(10)
    np.testing.assert_array_equal(sub.raw, vol.raw)
    np.testing.assert_array_equal(sub.gt, vol.gt)
    assert sub.resolution == vol.resolution


@pytest.mark.parametrize("z_nm", [25, 15, 5, 0, 41])
def test_subsampled_needs_a_multiple_of_the_spacing(z_nm):
    with pytest.raises(ValueError, match="not a multiple"):
        _volume().subsampled(z_nm)


# --------------------------------------------------------------------------------------------
# segments_for
# --------------------------------------------------------------------------------------------


def test_segments_for_oracle_and_errors():
    gt = np.zeros((2, 6, 6), np.uint64)
    gt[:, :, :3] = 5
    gt[1, :, 4:] = 5  # slice 1: neuron 5 in two pieces
    vol = EMVolume("toy", np.zeros(gt.shape, np.uint8), gt, (10.0, 10.0, 10.0), {})
    seg = slice_linking.segments_for(vol, "oracle")
    np.testing.assert_array_equal(seg, connected_components_per_slice(gt))
    assert [len(np.unique(s)) - 1 for s in seg] == [1, 2]
    with pytest.raises(ValueError, match="need the 2D EM model"):
        slice_linking.segments_for(vol, "predicted")
    with pytest.raises(ValueError, match="'oracle' or 'predicted'"):
        slice_linking.segments_for(vol, "truth")


def test_segments_for_predicted_uses_the_volume_resolution():
    net = build_unet({"ndim": 2, "depth": 2, "base_features": 4}, seed=0).eval()
    net.meta = {"target": "boundaries", "pixel_nm": 10.0, "postprocess": {"threshold": 0.5}}
    raw = np.random.default_rng(0).integers(0, 255, (2, 16, 16), dtype=np.uint8)
    vol = EMVolume("toy", raw, np.zeros(raw.shape, np.uint64), (40.0, 20.0, 20.0), {})
    seg = slice_linking.segments_for(vol, "predicted", net)
    assert seg.shape == raw.shape and seg.dtype == np.uint32
    expected = segments_2d(net, raw, resolution=(40.0, 20.0, 20.0))
    np.testing.assert_array_equal(seg, expected)


# --------------------------------------------------------------------------------------------
# the real volumes
# --------------------------------------------------------------------------------------------


@pytest.mark.data
def test_load_volumes_follows_the_split(data_root, outputs):
    save_splits(make_splits(seed=0))
    vols = load_volumes(max_slices=8, max_yx=32)
    assert list(vols) == ["train", "val", "fib25_test", "gala"]
    fib = read_cremi(require(FIB25) / "sample2.h5")
    expected = {
        "train": (np.s_[0:8, 0:32, 0:32], "train", [0, 200], [0, 125]),
        "val": (np.s_[200:208, 0:32, 0:32], "val", [200, 250], [0, 125]),
        "fib25_test": (np.s_[0:8, 0:32, 125:157], "test", None, [125, 250]),
    }
    for key, (sl, part, z, x) in expected.items():
        vol = vols[key]
        assert vol.raw.shape == vol.gt.shape == (8, 32, 32), key
        assert vol.resolution == (10.0, 10.0, 10.0)
        assert vol.region["part"] == part and vol.region["dataset"] == FIB25
        assert vol.region["z"] == z and vol.region["x"] == x
        np.testing.assert_array_equal(vol.raw, fib.raw[sl])
        np.testing.assert_array_equal(vol.gt, fib.labels[sl])
    assert vols["val"].name == "fib25_val" and vols["train"].name == "fib25_train"
    # the three FIB-25 parts are disjoint: train and val split z below x = 125, test is x >= 125
    train, val, test = (vols[k].region for k in ("train", "val", "fib25_test"))
    assert train["z"][1] <= val["z"][0]
    assert max(train["x"][1], val["x"][1]) <= test["x"][0] == FIB25_SPLIT_X
    gala = vols["gala"]
    assert gala.raw.shape == gala.gt.shape == (8, 32, 32)
    assert gala.region == {"dataset": GALA, "part": "test"}
    # the subsampled validation part keeps its place in the split
    sub = vols["val"].subsampled(40, offset=1)
    np.testing.assert_array_equal(sub.raw, fib.raw[201:208:4, 0:32, 0:32])


@pytest.mark.data
def test_load_volumes_needs_the_split(data_root, outputs):
    with pytest.raises(FileNotFoundError, match="00_data_preparation"):
        load_volumes(max_slices=2, max_yx=8)
