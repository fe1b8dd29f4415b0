"""Tests for neuroseg.nets.unet: U-Net shapes, freezing, heads, model folders, seeding."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from neuroseg.nets.folder import load_model, read_model_meta, save_model
from neuroseg.nets.layers import (
    conv_layers,
    freeze_all_but_last,
    replace_head,
    trainable_parameter_names,
)
from neuroseg.nets.unet import ModelError, UNet, build_unet

SMALL_2D = {"ndim": 2, "depth": 2, "base_features": 4}
ANISO_3D = {"ndim": 3, "depth": 3, "base_features": 4, "pool_factors": [(1, 2, 2), (2, 2, 2)]}


def _backward_and_check(model: nn.Module, x: torch.Tensor, out_channels: int = 1) -> None:
    out = model(x)
    assert out.shape == (x.shape[0], out_channels, *x.shape[2:])
    target = torch.rand(out.shape, generator=torch.Generator().manual_seed(0))
    ((out - target) ** 2).mean().backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    for name, param in params:
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_unet_2d_shape_and_gradients():
    model = build_unet({**SMALL_2D, "out_channels": 2}, seed=0)
    _backward_and_check(model, torch.rand(2, 1, 16, 24), out_channels=2)


def test_unet_3d_anisotropic_shape_gradients_and_divisibility():
    model = build_unet(ANISO_3D, seed=0)
    assert model.required_multiple == (2, 4, 4)
    _backward_and_check(model, torch.rand(1, 1, 4, 16, 16))
    with pytest.raises(ValueError, match=r"axis 0 \(z.*size 3.*multiple of 2"):
        model(torch.rand(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"axis 2 \(x.*size 18.*multiple of 4"):
        model(torch.rand(1, 1, 4, 16, 18))


def test_unet_rejects_wrong_channels_and_dims():
    model = UNet(**SMALL_2D, in_channels=2)
    with pytest.raises(ValueError, match="2 input channel"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="4 dims"):
        model(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="pool_factors"):
        UNet(ndim=2, depth=3, pool_factors=[2])
    with pytest.raises(ValueError, match="norm"):
        UNet(norm="layer")


@pytest.mark.parametrize("norm", ["group", None])
def test_unet_norm_variants(norm):
    model = UNet(ndim=2, depth=2, base_features=12, norm=norm)
    out = model(torch.rand(1, 1, 8, 8))
    assert out.shape == (1, 1, 8, 8)
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm | nn.BatchNorm2d)]
    if norm is None:
        assert norms == []
        assert all(c.bias is not None for c in conv_layers(model))
    else:
        assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
        for m in norms:
            assert m.num_groups <= 8 and m.num_channels % m.num_groups == 0
        assert {m.num_groups for m in norms} == {6, 8}  # 12 and 24 channels


def test_config_round_trip_is_json():
    model = UNet(**ANISO_3D)
    config = model.config
    assert config["pool_factors"] == [[1, 2, 2], [2, 2, 2]]
    assert json.loads(json.dumps(config)) == config
    assert UNet.from_config(config).config == config
    with pytest.raises(ValueError, match="unknown UNet config keys"):
        UNet.from_config({**config, "dropout": 0.1})


def test_conv_layers_are_in_forward_order():
    model = UNet(**SMALL_2D)
    convs = conv_layers(model)
    assert len(convs) == 8 and convs[-1] is model.head
    executed = []
    hooks = [c.register_forward_hook(lambda m, i, o: executed.append(m)) for c in convs]
    model(torch.rand(1, 1, 8, 8))
    for hook in hooks:
        hook.remove()
    assert [id(m) for m in executed] == [id(m) for m in convs]


def test_freeze_all_but_last():
    model = UNet(**SMALL_2D)
    assert freeze_all_but_last(model, 1) is model
    assert trainable_parameter_names(model) == ["head.weight", "head.bias"]

    freeze_all_but_last(model, 3)
    assert trainable_parameter_names(model) == [
        "decoders.0.block.conv1.weight",
        "decoders.0.block.norm1.weight",
        "decoders.0.block.norm1.bias",
        "decoders.0.block.conv2.weight",
        "decoders.0.block.norm2.weight",
        "decoders.0.block.norm2.bias",
        "head.weight",
        "head.bias",
    ]
    x = torch.rand(2, 1, 8, 8)
    model(x).mean().backward()
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)

    freeze_all_but_last(model, None)
    assert len(trainable_parameter_names(model)) == len(list(model.parameters()))
    for k in (0, 9):
        with pytest.raises(ValueError, match="k"):
            freeze_all_but_last(model, k)


def test_replace_head():
    model = build_unet(SMALL_2D, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = replace_head(model, 3, seed=5).eval()  # eval: keep BatchNorm statistics fixed
    assert new(torch.rand(1, 1, 8, 8)).shape == (1, 3, 8, 8)
    assert new.config["out_channels"] == 3 and model.config["out_channels"] == 1
    # the original is untouched
    assert model.head.out_channels == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # everything but the head is copied (not shared), the head is new and seeded
    new_state = new.state_dict()
    for key, value in before.items():
        if not key.startswith("head."):
            assert torch.equal(new_state[key], value), key
    assert new.encoders[0].conv1.weight.data_ptr() != model.encoders[0].conv1.weight.data_ptr()
    again = replace_head(model, 3, seed=5)
    assert torch.equal(again.head.weight, new.head.weight)
    assert not torch.equal(replace_head(model, 3, seed=6).head.weight, new.head.weight)


def _trained_model() -> UNet:
    model = build_unet({**SMALL_2D, "out_channels": 2}, seed=3)
    model.train()
    model(torch.rand(2, 1, 8, 8))  # moves BatchNorm running statistics off their defaults
    return model.eval()


def test_save_load_round_trip(tmp_path):
    model = _trained_model()
    meta = {"target": "boundaries", "pixel_size_nm": [4.0, 4.0], "crop": [8, 8]}
    folder = save_model(model, tmp_path / "models" / "m1", meta=meta)
    assert folder == tmp_path / "models" / "m1"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "env.json", "weights.pt"]
    assert [p.name for p in folder.parent.iterdir()] == ["m1"]  # no staging leftovers

    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "UNet" and config["unet"] == model.config and config["meta"] == meta
    env = json.loads((folder / "env.json").read_text())
    for key in ("python", "torch", "numpy", "platform", "device", "git_revision", "timestamp_utc"):
        assert key in env
    assert env["device"] == "cpu" and env["torch"] == torch.__version__
    assert read_model_meta(folder) == meta

    loaded = load_model(folder)
    assert not loaded.training and loaded.meta == meta and loaded.config == model.config
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_save_into_existing_folder_keeps_other_files(tmp_path):
    folder = save_model(_trained_model(), tmp_path / "m")
    (folder / "history.csv").write_text("epoch,loss\n0,1.0\n")
    other = build_unet({**SMALL_2D, "out_channels": 2}, seed=9)
    save_model(other, folder, meta={"round": 2})
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "env.json", "history.csv", "weights.pt"]
    loaded = load_model(folder)
    assert loaded.meta == {"round": 2}
    assert torch.equal(loaded.head.weight, other.head.weight)


def test_save_rejects_unserialisable_meta(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save_model(UNet(**SMALL_2D), tmp_path / "m", meta={"bad": object()})
    assert not (tmp_path / "m").exists()


def test_load_corrupt_weights(tmp_path):
    folder = save_model(UNet(**SMALL_2D), tmp_path / "m")
    (folder / "weights.pt").write_bytes(b"\x00not a torch file\xff" * 10)
    with pytest.raises(ModelError, match="weights.pt"):
        load_model(folder)


def test_load_weights_of_other_architecture(tmp_path):
    folder = save_model(UNet(**SMALL_2D), tmp_path / "m")
    other = save_model(UNet(ndim=2, depth=3, base_features=8), tmp_path / "other")
    (folder / "weights.pt").write_bytes((other / "weights.pt").read_bytes())
    with pytest.raises(ModelError, match=r"weights.pt.*do not match.*unexpected keys.*shape"):
        load_model(folder)


def test_load_missing_or_bad_config(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nothing")
    folder = save_model(UNet(**SMALL_2D), tmp_path / "m")
    config = folder / "config.json"
    text = config.read_text()
    config.write_text("{not json")
    with pytest.raises(ModelError, match="config.json.*not valid JSON"):
        load_model(folder)
    config.write_text(text.replace('"UNet"', '"ResNet"', 1))
    with pytest.raises(ModelError, match="unknown model type 'ResNet'"):
        load_model(folder)
    config.unlink()
    with pytest.raises(ModelError, match="config.json"):
        load_model(folder)
    with pytest.raises(ModelError, match="config.json"):
        read_model_meta(folder)


def test_build_unet_seeding():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = build_unet(SMALL_2D, seed=1), build_unet(SMALL_2D, seed=1)
    c = build_unet(SMALL_2D, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    pairs = list(zip(a.parameters(), b.parameters(), strict=True))
    assert all(torch.equal(p, q) for p, q in pairs)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


# --------------------------------------------------------------------------------------------
# widen_input
# --------------------------------------------------------------------------------------------


def _trained_looking(model: UNet) -> UNet:
    """Give BatchNorm non-trivial running statistics, so eval mode is not the identity."""
    model.train()
    with torch.no_grad():
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            model(torch.rand(2, model.config["in_channels"], 16, 16, generator=g) * 3 + 1)
    return model.eval()


@pytest.mark.parametrize("in_channels", [2, 3])
def test_widen_input_same_output_on_duplicated_input(in_channels):
    from neuroseg.nets.layers import widen_input

    source = _trained_looking(build_unet({**SMALL_2D, "out_channels": 2}, seed=0))
    source.meta = {"target": "boundaries", "pixel_nm": 10.0}
    state = {k: v.clone() for k, v in source.state_dict().items()}
    wide = widen_input(source, in_channels).eval()
    x = torch.rand(2, 1, 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source(x)
        got = wide(x.repeat(1, in_channels, 1, 1))
    assert got.shape == expected.shape == (2, 2, 16, 24)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # different channels give a different output: every channel is really used
    with torch.no_grad():
        other = wide(torch.cat([x, torch.zeros(2, in_channels - 1, 16, 24)], 1))
    assert not torch.allclose(other, expected, atol=1e-3)
    assert wide.config == {**source.config, "in_channels": in_channels}
    assert wide.encoders[0].conv1.in_channels == in_channels
    assert wide.meta == source.meta and wide.meta is not source.meta
    # the source is untouched
    assert source.config["in_channels"] == 1
    assert source.encoders[0].conv1.weight.shape[1] == 1
    for key, value in source.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        torch.testing.assert_close(source(x), expected)
    # the copy is independent: training it does not change the source
    with torch.no_grad():
        wide.head.weight.add_(1.0)
    assert torch.equal(source.head.weight, state["head.weight"])


def test_widen_input_spreads_filters_over_channels():
    from neuroseg.nets.layers import widen_input

    source = build_unet({**SMALL_2D, "norm": None}, seed=0)
    wide = widen_input(source, 3)
    old, new = source.encoders[0].conv1, wide.encoders[0].conv1
    assert new.weight.shape == (old.out_channels, 3, *old.kernel_size)
    for c in range(3):
        torch.testing.assert_close(new.weight[:, c], old.weight[:, 0] / 3)
    torch.testing.assert_close(new.bias, old.bias)
    assert new.weight.requires_grad


def test_widen_input_from_two_channels_and_folder_round_trip(tmp_path):
    from neuroseg.nets.layers import widen_input

    source = _trained_looking(build_unet({**SMALL_2D, "in_channels": 2}, seed=3))
    wide = widen_input(source, 4).eval()
    x = torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(wide(torch.cat([x, x], 1)), source(x), atol=1e-5, rtol=1e-5)
    loaded = load_model(save_model(wide, tmp_path / "wide"))
    assert loaded.config["in_channels"] == 4
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(torch.cat([x, x], 1)), wide(torch.cat([x, x], 1)))


def test_widen_input_rejects_bad_arguments():
    from neuroseg.nets.layers import widen_input

    with pytest.raises(TypeError, match="UNet"):
        widen_input(nn.Conv2d(1, 1, 3), 2)
    with pytest.raises(ValueError):
        widen_input(build_unet(SMALL_2D, seed=0), 0)
