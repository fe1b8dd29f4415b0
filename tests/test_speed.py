"""neuroseg.nets.speed: how a network is run (precision, memory layout, compilation)."""

import numpy as np
import pytest
import torch

from neuroseg.linking.learned import AffinityLinker
from neuroseg.nets.predict import predict_stack
from neuroseg.nets.speed import Accelerated, Speed, accelerate
from neuroseg.nets.unet import UNet


def _net(ndim=2, in_channels=1, seed=0):
    torch.manual_seed(seed)
    net = UNet(ndim=ndim, in_channels=in_channels, out_channels=1, depth=2, base_features=4)
    net.meta = {"target": "boundaries", "pixel_nm": 10.0}
    return net.eval()


def test_speed_checks_its_fields():
    with pytest.raises(ValueError, match="precision"):
        Speed(precision="int8")
    with pytest.raises(ValueError, match="batch_size"):
        Speed(batch_size=0)
    s = Speed()
    assert s.replace(channels_last=True, compile=True).label == "fp32, channels-last, compiled, batch 8"
    assert s == Speed()  # replace made a copy


@pytest.mark.parametrize("ndim", [2, 3])
def test_fp32_and_channels_last_give_the_models_outputs(ndim):
    net = _net(ndim)
    x = torch.rand(2, 1, *(8,) * ndim)
    expected = net(x)
    for speed in (Speed(), Speed(channels_last=True)):
        fast = accelerate(net, speed)
        assert isinstance(fast, Accelerated)
        torch.testing.assert_close(fast(x), expected, atol=1e-5, rtol=1e-5)
    # the model itself is not converted (channels-last works on a copy)
    first = next(p for p in net.parameters() if p.ndim == ndim + 2)
    assert first.is_contiguous()


def test_bf16_runs_in_bf16_and_returns_float32():
    net = _net()
    x = torch.rand(1, 1, 16, 16)
    y = accelerate(net, Speed(precision="bf16"))(x)
    assert y.dtype == torch.float32
    diff = (y - net(x)).abs().max().item()
    assert 0 < diff < 0.1  # bf16 rounding: different, but close


def test_accelerated_model_is_a_drop_in_for_prediction_and_the_linker():
    net = _net()
    fast = accelerate(net, Speed(channels_last=True, batch_size=2))
    assert fast.config == net.config and fast.meta == net.meta
    assert fast.required_multiple == net.required_multiple
    stack = np.random.default_rng(0).random((3, 1, 20, 20), dtype=np.float32)
    np.testing.assert_allclose(predict_stack(fast, stack, batch_size=2),
                               predict_stack(net, stack), atol=1e-5)
    linker = AffinityLinker(accelerate(_net(in_channels=2), Speed()))
    assert linker.affinities(np.zeros((2, 16, 16), np.uint8), [(0, 1)]).shape == (1, 16, 16)
    # wrapping twice wraps the model once
    assert accelerate(fast, Speed()).model is fast.model


def test_compiled_model_matches_eager():
    pytest.importorskip("torch._inductor")
    net = _net()
    x = torch.rand(1, 1, 16, 16)
    try:
        y = accelerate(net, Speed(compile=True))(x)
    except Exception as err:  # no C++ compiler: the speed work records such failures
        pytest.skip(f"torch.compile does not work here: {type(err).__name__}")
    torch.testing.assert_close(y, net(x), atol=1e-4, rtol=1e-4)


def test_accelerate_copies_to_another_device_and_leaves_the_model_alone():
    net = _net()
    fast = accelerate(net, Speed(), device="meta")
    assert next(fast.parameters()).device.type == "meta"
    assert next(net.parameters()).device.type == "cpu"
    # on the model's own device, fp32 and contiguous: no copy
    assert accelerate(net, Speed(), device="cpu").model is net
