"""Tests of the routes as front settings (neuroseg.segment.front_routes) on tiny volumes."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data.em_volumes import EMVolume
from neuroseg.data.synthetic import neurites_3d
from neuroseg.segment import front_routes as fr


@pytest.fixture(scope="module")
def volumes():
    out = {}
    for k, name in enumerate(("train", "val", "test")):
        raw, gt = neurites_3d((8, 32, 32), n=4, seed=k)
        out[name] = EMVolume(name, raw.astype(np.float32), gt, (10.0, 10.0, 10.0), {})
    return out


def test_settings_are_named_and_checked():
    assert fr.RouteSetting.of({"base_features": 8}, route="3d").name == "3d_f8"
    assert fr.RouteSetting("2d", segmenter="boundaries", base_features=4).name == "2d_boundaries_f4"
    with pytest.raises(ValueError, match="route"):
        fr.RouteSetting("4d")
    with pytest.raises(ValueError, match="segmenter"):
        fr.RouteSetting("2d", segmenter="magic")
    assert fr.setting_record(fr.RouteSetting("3d"))["setting"] == "3d_f8"


OPTIONS = dict(max_epochs=1, samples_per_epoch=2, val_crops=2, batch_size=2, progress=False)


@pytest.mark.parametrize("segmenter", ["affinities", "boundaries"])
def test_a_2d_setting_trains_chooses_and_runs(volumes, tmp_path, segmenter):
    s = fr.RouteSetting("2d", segmenter=segmenter, base_features=4, depth=2)
    model, cost = fr.train_setting(s, volumes, folder=tmp_path / s.name, budget=60.0,
                                   crop=(32, 32), **OPTIONS)
    assert cost["epochs"] == 1 and cost["train_seconds"] > 0 and cost["train_flops"] > 0
    post, table = fr.choose_2d_postprocess(model, volumes["val"], z_nm=20.0,
                                           candidates=[{"threshold": 0.5}, {"threshold": 0.7}],
                                           device="cpu")
    assert post in ({"threshold": 0.5}, {"threshold": 0.7}) and table["chosen"].sum() == 1
    sub = volumes["test"].subsampled(20.0)
    stages = fr.stages_2d(model, None, resolution=sub.resolution, postprocess=post, device="cpu")
    labels, seconds = fr.run_stages(stages, sub.raw, warmup=0, repeats=1, device="cpu")
    assert labels.shape == sub.raw.shape and set(seconds) == {"2d_inference", "2d_instances"}
    # segments never span two slices
    for v in np.unique(labels[labels > 0])[:20]:
        assert np.unique(np.nonzero(labels == v)[0]).size == 1


def test_the_front_linker_trains_from_scratch_calibrates_and_links(volumes, tmp_path):
    linker, cost = fr.train_front_linker(volumes, folder=tmp_path / "linker", budget=60.0,
                                         z_steps=(1, 2), crop=32, depth=2, base_features=4,
                                         **OPTIONS)
    assert linker.network.meta["transfer"] == "scratch" and not linker.calibrations
    assert cost["epochs"] == 1 and cost["train_seconds"] > 0 and cost["train_flops"] > 0
    s = fr.RouteSetting("2d", segmenter="boundaries", base_features=4, depth=2)
    model, _ = fr.train_setting(s, volumes, folder=tmp_path / s.name, budget=60.0, crop=(32, 32),
                                **OPTIONS)
    calibrated, table = fr.calibrate_for(linker, model, volumes, z_nm=20.0, thresholds=[0.3, 0.6],
                                         device="cpu")
    assert len(calibrated.calibrations) == 1 and set(table["threshold"]) == {0.3, 0.6}
    sub = volumes["test"].subsampled(20.0)
    lk = calibrated.calibrated_for(sub.resolution, segments="predicted")
    stages = fr.stages_2d(model, lk, resolution=sub.resolution, device="cpu")
    labels, seconds = fr.run_stages(stages, sub.raw, warmup=0, repeats=1, device="cpu")
    assert labels.shape == sub.raw.shape and set(seconds) == {"2d_inference", "2d_instances", "linking"}
    # a second call finds the finished run and does not train again
    again, cost2 = fr.train_front_linker(volumes, folder=tmp_path / "linker", budget=60.0,
                                         z_steps=(1, 2), crop=32, depth=2, base_features=4,
                                         **OPTIONS)
    assert cost2 == cost


def test_a_3d_setting_trains_and_runs(volumes, tmp_path):
    s = fr.RouteSetting("3d", base_features=4, depth=2)
    with pytest.raises(ValueError, match="z_nm"):
        fr.train_setting(s, volumes, folder=tmp_path / "x", budget=1.0, crop=(4, 32, 32), **OPTIONS)
    model, cost = fr.train_setting(s, volumes, folder=tmp_path / s.name, budget=60.0, z_nm=20.0,
                                   crop=(4, 32, 32), tile=(4, 32, 32), **OPTIONS)
    assert model.meta["offsets"][:3] == [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
    assert cost["train_flops"] > 0
    sub = volumes["test"].subsampled(20.0)
    stages = fr.stages_3d(model, postprocess={"method": "waterz", "threshold": 0.5})
    labels, seconds = fr.run_stages(stages, sub.raw, warmup=0, repeats=1, device="cpu")
    assert labels.shape == sub.raw.shape and labels.min() >= 1
    assert set(seconds) == {"3d_inference", "agglomeration"}


def test_inflated_2d_weights_compute_the_2d_network_on_a_volume_constant_in_z():
    import torch

    from neuroseg.nets.unet import UNet

    torch.manual_seed(0)
    net2 = UNet(ndim=2, in_channels=1, out_channels=3, depth=3, base_features=4)
    for m in net2.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    net3 = UNet(ndim=3, in_channels=1, out_channels=3, depth=3, base_features=4,
                pool_factors=[[1, 2, 2], [1, 2, 2]])
    assert fr.inflate_2d_to_3d(net2, net3, head=True) == len(net2.state_dict())
    net2.eval()
    net3.eval()
    image = torch.rand(1, 1, 16, 16)
    volume = image[:, :, None].repeat(1, 1, 24, 1, 1)
    with torch.no_grad():
        y2 = net2(image)
        y3 = net3(volume)
    assert torch.allclose(y3[:, :, 12], y2, atol=1e-5)
    # without head=True the head keeps its own weights
    fresh = UNet(ndim=3, in_channels=1, out_channels=3, depth=3, base_features=4,
                 pool_factors=[[1, 2, 2], [1, 2, 2]])
    own = fresh.head.weight.clone()
    fr.inflate_2d_to_3d(net2, fresh)
    assert torch.equal(fresh.head.weight, own)
    assert torch.allclose(fresh.encoders[0].conv1.weight[:, :, 1] * 3, net2.encoders[0].conv1.weight)
    with pytest.raises(ValueError, match="base features"):
        fr.inflate_2d_to_3d(net2, UNet(ndim=3, in_channels=1, out_channels=3, depth=3, base_features=8))


def test_pretrained_and_better_inits(volumes, tmp_path):
    from neuroseg.nets.unet import UNet

    source = UNet(ndim=2, in_channels=1, out_channels=1, depth=2, base_features=4)
    s = fr.RouteSetting("3d", base_features=4, depth=2, init="better")
    assert s.name == "3d_f4_better"
    with pytest.raises(ValueError, match="pretrained="):
        fr.train_setting(s, volumes, folder=tmp_path / "x", budget=1.0, z_nm=20.0,
                         crop=(4, 32, 32), **OPTIONS)
    model, cost = fr.train_setting(s, volumes, folder=tmp_path / s.name, budget=60.0, z_nm=20.0,
                                   crop=(4, 32, 32), tile=(4, 32, 32), pretrained=source, **OPTIONS)
    assert cost["init"] in ("scratch", "pretrained") and np.isfinite(cost["val_loss"])
    assert (tmp_path / s.name / "scratch").is_dir() and (tmp_path / s.name / "pretrained").is_dir()
    s2 = fr.RouteSetting("2d", segmenter="boundaries", base_features=4, depth=2, init="pretrained")
    model, cost = fr.train_setting(s2, volumes, folder=tmp_path / s2.name, budget=60.0,
                                   crop=(32, 32), pretrained=source, **OPTIONS)
    assert cost["init"] == "pretrained" and model.meta["init"] == "pretrained"


def test_a_3d_setting_starting_from_2d_needs_the_2d_network_of_its_capacity(volumes, tmp_path):
    from neuroseg.experiments.front_2d_vs_3d import build_front

    with pytest.raises(ValueError, match="2D affinities network of depth 2 and 4 base features"):
        build_front(volumes, settings_2d=[], settings_3d=[{"base_features": 4, "depth": 2, "init": "better"}],
                    linker=None, z_nms=[20.0], folder=tmp_path, budget=1.0, train_2d={}, train_3d={},
                    candidates_2d={}, candidates_3d=[], test_volumes=["test"])
    assert not any(tmp_path.iterdir())  # refused before anything was trained
