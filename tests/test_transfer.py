"""Transfer learning: head replacement and layer freezing on a model folder as pretraining writes it."""

import hashlib
import shutil

import numpy as np
import pytest
import torch

from neuroseg import paths
from neuroseg.data import synthetic
from neuroseg.nets import loaders, train, transfer
from neuroseg.nets.folder import load_model, read_model_meta, save_model
from neuroseg.nets.layers import conv_layers, trainable_parameter_names
from neuroseg.nets.unet import ModelError, build_unet
from neuroseg.segment.instances import boundary_targets, fg_contour_targets

TINY = {
    "ndim": 2,
    "in_channels": 1,
    "out_channels": 2,
    "depth": 2,
    "base_features": 4,
    "norm": "batch",
}
META = {
    "target": "fg_contour",
    "outputs": ["foreground", "contour"],
    "dataset": "dsb2018_stage1_train",
}
POSTPROCESS = {"fg_threshold": 0.3, "seed_threshold": 0.93}
# the last 3 conv layers of TINY (the decoder's two convs and the head) and their norms
LAST_3 = [
    "decoders.0.block.conv1.weight",
    "decoders.0.block.norm1.weight",
    "decoders.0.block.norm1.bias",
    "decoders.0.block.conv2.weight",
    "decoders.0.block.norm2.weight",
    "decoders.0.block.norm2.bias",
    "head.weight",
    "head.bias",
]


def _crops(target_fn, *, seed=0, fixed=False):
    pairs = [synthetic.nuclei_2d((32, 32), n=4, seed=s) for s in range(3)]
    return loaders.CropDataset(
        [image[None] for image, _ in pairs],
        [labels for _, labels in pairs],
        crop=(16, 16),
        target_fn=target_fn,
        samples_per_epoch=4,
        seed=seed,
        fixed=fixed,
    )


def _config(epochs=1):
    return train.TrainConfig(epochs=epochs, batch_size=2, seed=0, device="cpu")


def _folder_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _norm_buffers(model):
    return {
        name: buffer.clone()
        for name, buffer in model.named_buffers()
        if name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def _expected_trainable(model, k):
    """Parameter names of the last k conv layers and the norm layer right after each."""
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    out = set()
    for conv in [names[id(m)] for m in conv_layers(model)][-k:]:
        out |= {f"{conv}.{p}" for p, _ in modules[conv].named_parameters()}
        parent, _, leaf = conv.rpartition(".")
        if leaf.startswith("conv"):  # convN of a block is followed by normN
            norm = f"{parent}.norm{leaf[len('conv') :]}"
            out |= {f"{norm}.{p}" for p, _ in modules[norm].named_parameters()}
    return out


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A nucleus model folder as 10_nucleus_pretraining writes it: fit, then post-processing."""
    folder = tmp_path_factory.mktemp("pretraining") / "nucleus_unet"
    model = build_unet(TINY, seed=0)
    train.fit(
        model,
        _crops(fg_contour_targets),
        _crops(fg_contour_targets, seed=1, fixed=True),
        config=_config(),
        folder=folder,
        meta=META,
        progress=False,
    )
    trained = load_model(folder)
    save_model(trained, folder, meta={**trained.meta, "postprocess": POSTPROCESS})
    return folder


@pytest.fixture(scope="module")
def source_state(pretrained):
    return load_model(pretrained).state_dict()


def test_fixture_is_a_pretraining_folder(pretrained):
    names = {str(p) for p in _folder_bytes(pretrained)}
    assert {"config.json", "weights.pt", "env.json", "history.csv"} <= names
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= names
    meta = read_model_meta(pretrained)
    assert meta["target"] == "fg_contour" and meta["postprocess"] == POSTPROCESS
    assert meta["train_config"]["epochs"] == 1
    # trained: the BatchNorm statistics moved away from their initial values
    assert not torch.equal(
        load_model(pretrained).encoders[0].norm1.running_mean, torch.zeros(4)
    )


def test_new_head_keeps_every_other_weight(pretrained, source_state):
    before = _folder_bytes(pretrained)
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=1)
    assert net.config == {**load_model(pretrained).config, "out_channels": 1}
    state = net.state_dict()
    assert state.keys() == source_state.keys()
    for name, value in source_state.items():
        if not name.startswith("head."):
            assert torch.equal(state[name], value), name
    assert state["head.weight"].shape == (1, 4, 1, 1)
    assert trainable_parameter_names(net) == ["head.weight", "head.bias"]
    assert net.training and next(net.parameters()).device.type == "cpu"
    info = net.meta["transfer"]
    assert info["new_head"] is True and info["trainable_layers"] == 1
    assert info["source"] == str(pretrained) and info["source_target"] == "fg_contour"
    out = net.eval()(torch.rand(3, 1, 16, 16))
    assert out.shape == (3, 1, 16, 16)
    out.sum().backward()
    assert _folder_bytes(pretrained) == before


def test_new_head_depends_only_on_seed(pretrained):
    a = transfer.from_pretrained(pretrained, out_channels=1, layers=1, seed=0)
    b = transfer.from_pretrained(pretrained, out_channels=1, layers=1, seed=0)
    c = transfer.from_pretrained(pretrained, out_channels=1, layers=1, seed=1)
    assert torch.equal(a.head.weight, b.head.weight) and torch.equal(a.head.bias, b.head.bias)
    assert not torch.equal(a.head.weight, c.head.weight)
    # torch's global random state plays no part
    torch.manual_seed(123)
    d = transfer.from_pretrained(pretrained, out_channels=1, layers=1, seed=0)
    assert torch.equal(a.head.weight, d.head.weight) and torch.equal(a.head.bias, d.head.bias)


@pytest.mark.parametrize("out_channels", [2, None])
def test_same_channels_keep_the_trained_head(pretrained, source_state, out_channels):
    net = transfer.from_pretrained(pretrained, out_channels=out_channels)
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source_state.items())
    assert net.config["out_channels"] == 2
    assert net.meta["transfer"]["new_head"] is False
    assert net.meta["transfer"]["trainable_layers"] == "all"
    assert net.meta["postprocess"] == POSTPROCESS  # the source meta is kept
    assert trainable_parameter_names(net) == [n for n, _ in net.named_parameters()]


def test_last_three_layers_and_their_norms_are_trainable(pretrained):
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=3)
    assert transfer.layer_count(net) == 8
    assert trainable_parameter_names(net) == LAST_3
    assert set(LAST_3) == _expected_trainable(net, 3)
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert "decoders.0.up.weight" in frozen and "encoders.1.norm2.weight" in frozen


@pytest.mark.parametrize("k", range(1, 9))
def test_any_layer_count_freezes_the_rest(pretrained, k):
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=k)
    assert set(trainable_parameter_names(net)) == _expected_trainable(net, k)
    assert net.meta["transfer"]["trainable_layers"] == k


@pytest.mark.parametrize("layers", ["all", None])
def test_all_layers_trainable(pretrained, layers):
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=layers)
    assert all(p.requires_grad for p in net.parameters())
    assert net.meta["transfer"]["trainable_layers"] == "all"


@pytest.mark.parametrize(
    "layers, error, message",
    [
        (0, ValueError, "layers must be >= 1"),
        (-1, ValueError, "layers must be >= 1"),
        (2.5, TypeError, "layers must be a positive int"),
        (True, TypeError, "layers must be a positive int"),
        ("3", TypeError, "layers must be a positive int"),
        (9, ValueError, "only 8 conv layers"),
    ],
)
def test_bad_layer_counts(pretrained, layers, error, message):
    with pytest.raises(error, match=message):
        transfer.from_pretrained(pretrained, out_channels=1, layers=layers)


def test_frozen_layers_and_their_statistics_stay_fixed_in_training(pretrained, tmp_path):
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=1)
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    stats = _norm_buffers(net)
    data = _crops(lambda lab: boundary_targets(lab)[None])
    history = train.fit(net, data, config=_config(epochs=2), folder=tmp_path / "ft", progress=False)
    assert len(history) == 2
    for name, value in net.named_parameters():
        if not name.startswith("head."):
            assert torch.equal(value, params[name]), name
    assert not torch.equal(net.head.weight, params["head.weight"])
    after = _norm_buffers(net)
    assert all(torch.equal(after[k], v) for k, v in stats.items())
    saved = load_model(tmp_path / "ft").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in stats.items())
    assert saved.keys() == net.state_dict().keys()


def test_trainable_norms_update_their_statistics_frozen_ones_do_not(pretrained, tmp_path):
    net = transfer.from_pretrained(pretrained, out_channels=1, layers=3)
    stats = _norm_buffers(net)
    train._train_mode(net)
    assert net.training and net.decoders[0].block.norm1.training
    assert not net.encoders[0].norm1.training and not net.encoders[1].norm2.training
    data = _crops(lambda lab: boundary_targets(lab)[None])
    train.fit(net, data, config=_config(), folder=tmp_path / "ft", progress=False)
    after = _norm_buffers(net)
    for name, value in stats.items():
        changed = not torch.equal(after[name], value)
        assert changed == name.startswith("decoders.0.block."), name


def test_all_layers_update_every_norm(pretrained, tmp_path):
    """The counterpart: with nothing frozen, BatchNorm statistics do change in training."""
    net = transfer.from_pretrained(pretrained, out_channels=1, layers="all")
    stats = _norm_buffers(net)
    data = _crops(lambda lab: boundary_targets(lab)[None])
    train.fit(net, data, config=_config(), folder=tmp_path / "ft", progress=False)
    after = _norm_buffers(net)
    for name, value in stats.items():
        assert not torch.equal(after[name], value), name


def test_source_digest_follows_the_weights(pretrained, tmp_path):
    digest = hashlib.sha256((pretrained / "weights.pt").read_bytes()).hexdigest()
    net = transfer.from_pretrained(pretrained, out_channels=1)
    assert net.meta["transfer"]["source_sha256"] == digest
    same = shutil.copytree(pretrained, tmp_path / "same")
    assert transfer.from_pretrained(same).meta["transfer"]["source_sha256"] == digest
    changed = shutil.copytree(pretrained, tmp_path / "changed")
    model = load_model(changed)
    with torch.no_grad():
        model.encoders[0].conv1.weight.add_(0.01)
    save_model(model, changed)
    other = transfer.from_pretrained(changed, out_channels=1)
    assert other.meta["transfer"]["source_sha256"] != digest
    assert not torch.equal(other.encoders[0].conv1.weight, net.encoders[0].conv1.weight)


def test_from_scratch(pretrained, source_state):
    config = transfer.from_pretrained(pretrained, out_channels=1).config
    rng = torch.get_rng_state()
    a = transfer.from_scratch(config, seed=0)
    b = transfer.from_scratch(config, seed=0)
    c = transfer.from_scratch(config, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert a.config == config and a.config["out_channels"] == 1
    assert a.meta["transfer"] == {"source": None, "trainable_layers": "all"}
    assert all(p.requires_grad for p in a.parameters())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["encoders.0.conv1.weight"], sc["encoders.0.conv1.weight"])
    assert not torch.equal(sa["encoders.0.conv1.weight"], source_state["encoders.0.conv1.weight"])
    assert torch.equal(sa["encoders.0.norm1.running_mean"], torch.zeros(4))  # untrained


def test_corrupt_or_missing_source_raises_model_error(pretrained, tmp_path):
    broken = shutil.copytree(pretrained, tmp_path / "broken")
    (broken / "weights.pt").write_bytes(b"not a torch file" * 10)
    with pytest.raises(ModelError, match="weights.pt"):
        transfer.from_pretrained(broken, out_channels=1, layers=1)
    truncated = shutil.copytree(pretrained, tmp_path / "truncated")
    data = (truncated / "weights.pt").read_bytes()
    (truncated / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="weights.pt"):
        transfer.from_pretrained(truncated)
    with pytest.raises(ModelError, match="does not exist"):
        transfer.from_pretrained(tmp_path / "nowhere")


def test_quick_profile_nucleus_model():
    """The real nucleus model of the quick profile (``make test`` trains it first)."""
    folder = paths.models_dir("quick") / "nucleus_unet"
    if not (folder / "config.json").is_file():
        pytest.skip(f"no quick-profile nucleus model at {folder} (run the quick profile first)")
    source = load_model(folder)
    net = transfer.from_pretrained(folder, out_channels=1, layers=3)
    assert source.config["out_channels"] == 2 and net.config["out_channels"] == 1
    expected = _expected_trainable(net, 3)
    assert set(trainable_parameter_names(net)) == expected
    assert len(expected) == 8 and {"head.weight", "head.bias"} <= expected
    stats = _norm_buffers(net)
    train._train_mode(net)
    out = net(torch.from_numpy(np.random.default_rng(0).random((1, 1, 64, 64), np.float32)))
    assert out.shape == (1, 1, 64, 64)
    out.square().mean().backward()
    with_grad = {n for n, p in net.named_parameters() if p.grad is not None}
    assert with_grad == expected
    assert float(net.head.weight.grad.abs().sum()) > 0
    frozen_stats = {
        k for k in stats if not any(k.startswith(e.rsplit(".", 1)[0]) for e in expected)
    }
    after = _norm_buffers(net)
    assert frozen_stats and all(torch.equal(after[k], stats[k]) for k in frozen_stats)


def test_loading_a_source_leaves_torch_global_random_state_alone(pretrained):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    transfer.from_pretrained(pretrained, out_channels=1, layers=1)
    assert torch.equal(torch.rand(3), expected)
