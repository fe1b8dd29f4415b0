"""The 2D route through an EM volume: batched slice prediction, 2D segments, linking in z."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroseg.linking.graph import LinkResult
from neuroseg.nets import predict
from neuroseg.nets.scale import back_to_volume_scale, slices_at_model_scale
from neuroseg.nets.unet import UNet, build_unet
from neuroseg.segment import volume_2d

BOUNDARY_META = {"target": "boundaries", "pixel_nm": 10.0, "postprocess": {"threshold": 0.5}}


def _net(*, out_channels: int = 1, in_channels: int = 1, ndim: int = 2, meta=None):
    config = {"ndim": ndim, "in_channels": in_channels, "out_channels": out_channels,
              "depth": 2, "base_features": 4}
    net = build_unet(config, seed=0).eval()
    net.meta = dict(BOUNDARY_META if meta is None else meta)
    return net


class _MembraneNet(UNet):
    """A 2D 'boundary model' whose logits are ``20 * (input - 0.5)``: bright = membrane.

    Records the spatial shape of every input it sees.
    """

    def __init__(self):
        super().__init__(ndim=2, depth=2, base_features=4)
        self.meta = dict(BOUNDARY_META)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x):
        self._check_input(x)
        self.seen.append(tuple(x.shape[2:]))
        return 20.0 * (x - 0.5)


def _membrane_volume(nz: int = 3, size: int = 32) -> np.ndarray:
    """uint8 (z, y, x): a bright 2-pixel cross cutting every slice into four quadrants."""
    raw = np.full((nz, size, size), 50, np.uint8)
    mid = size // 2
    raw[:, mid - 1 : mid + 1, :] = 200
    raw[:, :, mid - 1 : mid + 1] = 200
    return raw


def _quadrant_centres(size: int = 32) -> list[tuple[int, int]]:
    q = size // 4
    return [(q, q), (q, 3 * q), (3 * q, q), (3 * q, 3 * q)]


# --------------------------------------------------------------------------------------------
# predict_stack
# --------------------------------------------------------------------------------------------


def test_predict_stack_equals_predict_on_each_slice():
    model = _net(out_channels=2)
    stack = np.random.default_rng(0).random((5, 1, 18, 22), dtype=np.float32)
    before = stack.copy()
    out = predict.predict_stack(model, stack, batch_size=2)
    assert out.shape == (5, 2, 18, 22) and out.dtype == np.float32
    for x, y in zip(stack, out):
        np.testing.assert_allclose(y, predict.predict(model, x, tile=None), atol=1e-6)
    np.testing.assert_array_equal(stack, before)
    assert not model.training


def test_predict_stack_batch_size_does_not_matter():
    model = _net()
    model.train()  # predict_stack switches to eval: BatchNorm must not use batch statistics
    stack = np.random.default_rng(1).random((4, 1, 16, 16), dtype=np.float32)
    one = predict.predict_stack(model, stack, batch_size=1)
    four = predict.predict_stack(model, stack, batch_size=4)
    np.testing.assert_allclose(one, four, atol=1e-6)


@pytest.mark.parametrize("activation", ["none", "softmax"])
def test_predict_stack_activations(activation):
    model = _net(out_channels=3)
    stack = np.random.default_rng(2).random((3, 1, 16, 20), dtype=np.float32)
    out = predict.predict_stack(model, stack, activation=activation)
    with torch.no_grad():
        logits = model(torch.from_numpy(stack)).numpy()
    if activation == "none":
        np.testing.assert_allclose(out, logits, atol=1e-5)
    else:
        np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(logits), 1).numpy(),
                                   atol=1e-5)


def test_predict_stack_large_slices_are_tiled():
    model = _net(out_channels=2)
    stack = np.random.default_rng(3).random((2, 1, 40, 36), dtype=np.float32)
    out = predict.predict_stack(model, stack, tile=24, overlap=8)
    assert out.shape == (2, 2, 40, 36) and out.dtype == np.float32
    for x, y in zip(stack, out):
        np.testing.assert_allclose(y, predict.predict(model, x, tile=24, overlap=8), atol=1e-6)
    whole = predict.predict_stack(model, stack, tile=64)
    assert np.abs(out - whole).mean() < 0.05


def test_predict_stack_empty_stack():
    model = _net(out_channels=2)
    assert predict.predict_stack(model, np.zeros((0, 1, 16, 16))).shape == (0, 2, 16, 16)


def test_predict_stack_rejects_bad_input():
    model = _net()
    with pytest.raises(ValueError, match="channels"):
        predict.predict_stack(model, np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, Y, X\)"):
        predict.predict_stack(model, np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, Y, X\)"):
        predict.predict_stack(model, np.zeros((1, 1, 2, 16, 16), np.float32))
    for bad_value in (np.nan, np.inf):
        bad = np.zeros((2, 1, 16, 16), np.float32)
        bad[1, 0, 3, 3] = bad_value
        with pytest.raises(ValueError, match="NaN or infinite"):
            predict.predict_stack(model, bad)
    with pytest.raises(ValueError, match="activation"):
        predict.predict_stack(model, np.zeros((1, 1, 16, 16)), activation="relu")


# --------------------------------------------------------------------------------------------
# model scale
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "shape"),
    [(None, (32, 32)), ((40, 10, 10), (32, 32)), ((40, 20, 20), (64, 64)), ((40, 5, 5), (16, 16))],
)
def test_slices_at_model_scale_and_back(resolution, shape):
    model = _net()
    raw = _membrane_volume(nz=2)
    x, size = slices_at_model_scale(model, raw, resolution=resolution)
    assert x.shape == (2, *shape) and x.dtype == np.float32 and size == (32, 32)
    assert x.min() == pytest.approx(0.0, abs=0.05) and x.max() == pytest.approx(1.0, abs=0.05)
    prob = np.stack([x, 1.0 - x], axis=1)
    back = back_to_volume_scale(prob, size)
    assert back.shape == (2, 2, 32, 32) and back.dtype == np.float32
    assert back.min() >= 0.0 and back.max() <= 1.0


def test_model_without_pixel_size_is_not_resampled():
    model = _net(meta={"target": "boundaries"})
    x, size = slices_at_model_scale(model, _membrane_volume(nz=1), resolution=(40, 20, 20))
    assert x.shape == (1, 32, 32) and size == (32, 32)


# --------------------------------------------------------------------------------------------
# boundaries_2d, segments_2d, segment_volume_2d
# --------------------------------------------------------------------------------------------


def test_boundaries_2d_with_a_tiny_unet():
    model = _net()
    raw = np.random.default_rng(4).integers(0, 255, (3, 20, 24), dtype=np.uint8)
    before = raw.copy()
    prob = volume_2d.boundaries_2d(model, raw, batch_size=2)
    assert prob.shape == (3, 20, 24) and prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    # each slice goes through the network on its own, normalised
    x = slices_at_model_scale(model, raw)[0]
    np.testing.assert_allclose(prob[1], predict.predict(model, x[1:2], tile=None)[0], atol=1e-6)
    np.testing.assert_array_equal(raw, before)


def test_segments_2d_with_a_tiny_unet_and_overrides():
    model = _net()
    raw = np.random.default_rng(5).random((3, 20, 24)).astype(np.float32)
    seg = volume_2d.segments_2d(model, raw)
    assert seg.shape == (3, 20, 24) and seg.dtype == np.uint32
    # everything below threshold 1.0: one segment per slice, numbered on over the volume
    whole = volume_2d.segments_2d(model, raw, threshold=1.0)
    assert [np.unique(s).tolist() for s in whole] == [[1], [2], [3]]
    # nothing below threshold 0.0: no seeds, no segments
    assert not volume_2d.segments_2d(model, raw, threshold=0.0).any()


def test_segments_2d_finds_the_cells_and_ids_are_unique_over_slices():
    model = _MembraneNet()
    seg = volume_2d.segments_2d(model, _membrane_volume(nz=3), min_size=4)
    assert seg.dtype == np.uint32
    ids = [set(np.unique(s).tolist()) - {0} for s in seg]
    assert [len(i) for i in ids] == [4, 4, 4]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    for z in range(3):
        assert {int(seg[z][c]) for c in _quadrant_centres()} == ids[z]


def test_segment_volume_2d_defaults_to_overlap_linking():
    model = _MembraneNet()
    raw = _membrane_volume(nz=3)
    labels = volume_2d.segment_volume_2d(model, raw)
    assert labels.shape == raw.shape and labels.dtype == np.uint32
    assert sorted(np.unique(labels).tolist()) == [1, 2, 3, 4]
    for c in _quadrant_centres():
        assert len({int(labels[z][c]) for z in range(3)}) == 1  # linked through z
    result = volume_2d.segment_volume_2d(model, raw, return_result=True, resolution=(40, 10, 10))
    assert isinstance(result, LinkResult)
    assert result.method == "overlap" and result.threshold == 0.25
    assert result.resolution == (40.0, 10.0, 10.0)
    np.testing.assert_array_equal(result.labels, labels)
    assert result.links["linked"].sum() == 8  # 4 cells x 2 slice pairs


def test_segment_volume_2d_method_threshold_and_seed_threshold():
    model = _MembraneNet()
    raw = _membrane_volume(nz=3)
    result = volume_2d.segment_volume_2d(model, raw, method="graph", threshold=1.0,
                                         return_result=True)
    assert result.method == "graph" and result.threshold == 1.0
    # seed_threshold is the watershed's threshold: 0 leaves no seeds at all
    assert not volume_2d.segment_volume_2d(model, raw, seed_threshold=0.0).any()
    with pytest.raises(ValueError, match="linker"):
        volume_2d.segment_volume_2d(model, raw, method="learned")


@pytest.mark.parametrize(("resolution", "seen"), [((40, 20, 20), (64, 64)), ((40, 5, 5), (16, 16))])
def test_segment_volume_2d_other_pixel_size_keeps_the_volume_shape(resolution, seen):
    model = _MembraneNet()
    raw = _membrane_volume(nz=3)
    labels = volume_2d.segment_volume_2d(model, raw, resolution=resolution)
    assert set(model.seen) == {seen}  # the network saw the slices at its own pixel size
    assert labels.shape == raw.shape and labels.dtype == np.uint32
    assert sorted(np.unique(labels).tolist()) == [1, 2, 3, 4]
    for c in _quadrant_centres():
        assert len({int(labels[z][c]) for z in range(3)}) == 1


def test_segment_volume_2d_with_tiny_unet_and_float_raw():
    model = _net()
    raw = np.random.default_rng(6).normal(size=(2, 20, 20))
    before = raw.copy()
    labels = volume_2d.segment_volume_2d(model, raw, resolution=(40, 20, 20), threshold=0.5)
    assert labels.shape == (2, 20, 20) and labels.dtype == np.uint32
    np.testing.assert_array_equal(raw, before)


def test_2d_route_rejects_bad_volumes():
    model = _net()
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        volume_2d.segment_volume_2d(model, np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        volume_2d.boundaries_2d(model, np.zeros((1, 1, 16, 16), np.uint8))
    bad = np.zeros((2, 16, 16), np.float32)
    bad[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        volume_2d.segment_volume_2d(model, bad)
    with pytest.raises(ValueError, match="empty"):
        volume_2d.boundaries_2d(model, np.zeros((0, 16, 16), np.uint8))
    with pytest.raises(TypeError, match="numbers"):
        volume_2d.boundaries_2d(model, np.full((2, 4, 4), "a"))


def test_2d_route_rejects_other_models():
    raw = _membrane_volume(nz=2, size=16)
    with pytest.raises(ValueError, match="2D boundary model"):
        volume_2d.segment_volume_2d(_net(out_channels=2, meta={"target": "fg_contour"}), raw)
    with pytest.raises(ValueError, match="2D boundary model"):
        volume_2d.segments_2d(_net(meta={}), raw)
    with pytest.raises(ValueError, match="2D boundary model"):
        volume_2d.boundaries_2d(_net(ndim=3), raw)


@pytest.mark.parametrize("resolution", [(40, 10, 20), (40, 20, 10)])
def test_2d_route_rejects_anisotropic_pixels(resolution):
    with pytest.raises(ValueError, match="isotropic"):
        volume_2d.segment_volume_2d(_net(), _membrane_volume(nz=2, size=16), resolution=resolution)


@pytest.mark.parametrize("resolution", [(10, 10), (40, 0, 0), (40, -10, -10)])
def test_2d_route_rejects_bad_resolution(resolution):
    with pytest.raises(ValueError, match="resolution"):
        volume_2d.boundaries_2d(_net(), _membrane_volume(nz=2, size=16), resolution=resolution)
