"""Tests of neuroseg.link: another tool's per-slice masks joined into 3D objects."""

from __future__ import annotations

import numpy as np
import pytest

import neuroseg
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.synthetic import neurites_3d
from neuroseg.measure.voi_rand import segmentation_scores


def _per_slice_masks(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    """What a 2D tool gives: every slice's masks numbered 1..n again, in its own order."""
    rng = np.random.default_rng(seed)
    out = np.zeros(gt.shape, np.int32)
    for z, s in enumerate(gt):
        ids = np.unique(s[s > 0])
        lut = np.zeros(int(s.max()) + 1, np.int32)
        lut[ids] = rng.permutation(len(ids)) + 1
        out[z] = lut[s]
    return out


def test_link_gives_back_the_3d_objects_from_fresh_ids_per_slice():
    _, gt = neurites_3d((8, 32, 32), n=4, seed=1)
    masks = _per_slice_masks(gt)
    assert len(np.unique(masks[masks > 0])) < len(np.unique(gt[gt > 0])) * masks.shape[0]
    out = neuroseg.link(masks, resolution=(40, 10, 10))
    scores = segmentation_scores(gt, out)
    assert scores["voi_split"] == pytest.approx(0.0, abs=1e-9)
    assert scores["voi_merge"] == pytest.approx(0.0, abs=1e-9)
    assert out.dtype == np.uint32 and out.max() == len(np.unique(gt[gt > 0]))


def test_masks_are_not_modified_and_ids_become_unique():
    masks = np.array([[[1, 1, 0, 2]], [[2, 2, 0, 1]]])
    before = masks.copy()
    assert connected_components_per_slice(masks).tolist() == [[[1, 1, 0, 2]], [[3, 3, 0, 4]]]
    neuroseg.link(masks, resolution=(40, 10, 10))
    assert np.array_equal(masks, before)


def test_link_needs_a_resolution_and_a_linker_for_learned():
    masks = np.array([[[1, 1]], [[1, 1]]])
    with pytest.raises(ValueError, match="resolution"):
        neuroseg.link(masks, resolution=None)
    with pytest.raises(ValueError, match="linker="):
        neuroseg.link(masks, resolution=(40, 10, 10), method="learned")


def test_empty_masks_warn():
    with pytest.warns(UserWarning, match="no object"):
        out = neuroseg.link(np.zeros((2, 4, 4), int), resolution=(40, 10, 10))
    assert not out.any()


def test_a_missing_mask_is_bridged_with_max_gap_2():
    masks = np.zeros((3, 4, 4), int)
    masks[0, 1:3, 1:3] = 1
    masks[2, 1:3, 1:3] = 5  # the tool missed it in slice 1
    assert neuroseg.link(masks, resolution=(40, 10, 10))[2].max() == 2
    assert neuroseg.link(masks, resolution=(40, 10, 10), max_gap=2)[2].max() == 1


def test_device_moves_a_copy_and_refuses_a_missing_gpu():
    import torch

    from neuroseg.nets.predict import on_device
    from neuroseg.nets.unet import UNet

    net = UNet(ndim=2, depth=2, base_features=4)
    net.meta = {"target": "fg_contour"}
    assert on_device(net, "cpu") is net
    if not torch.cuda.is_available():
        assert on_device(net, None) is net
        with pytest.raises(ValueError, match="no GPU"):
            on_device(net, "cuda")
    with pytest.raises(ValueError, match="device must be"):
        on_device(net, "gpu0")


def test_three_slices_are_not_taken_for_rgb_and_empty_results_warn():
    import torch

    from neuroseg.nets.unet import UNet
    from neuroseg.segment.image_2d import prepare_image, segment_2d

    stack = np.random.default_rng(0).random((3, 16, 16))
    with pytest.raises(ValueError, match="channel_axis=0"):
        prepare_image(stack)
    assert prepare_image(stack, channel_axis=0).shape == (1, 16, 16)
    assert prepare_image(np.zeros((16, 16, 3))).shape == (1, 16, 16)  # (Y, X, 3) is colour
    torch.manual_seed(0)
    net = UNet(ndim=2, out_channels=2, depth=2, base_features=4)
    net.meta = {"target": "fg_contour", "postprocess": {"fg_threshold": 1.0, "seed_threshold": 1.0}}
    with pytest.warns(UserWarning, match="no object found"):
        assert not segment_2d(net, np.zeros((16, 16)), device="cpu").any()


def test_a_mask_in_pieces_stays_one_object():
    """A tool's mask (or a mutex watershed segment) may be in pieces in its slice: it is one
    object, so the pieces are not split apart before linking."""
    masks = np.zeros((3, 4, 8), int)
    masks[:, 0:2, 0:2] = 1
    masks[:, 2:4, 5:8] = 1  # the same mask, not connected to the first part
    masks[:, 0:2, 4:6] = 2
    out = neuroseg.link(masks, resolution=(40, 10, 10))
    assert out.max() == 2 and len(np.unique(out[:, 0:2, 0:2])) == 1
    assert out[0, 0, 0] == out[2, 3, 7]
