"""Tests of neuroseg.nets.scale: one pixel-size key, older folders, prediction at the model's scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroseg.data.resample import resample_image
from neuroseg.nets import train
from neuroseg.nets.folder import load_model, save_model
from neuroseg.nets.predict import predict
from neuroseg.nets.scale import (
    PIXEL_SIZE_KEY,
    PixelSize,
    canonical_meta,
    model_pixel_size,
    pixel_size_meta,
    predict_at_model_scale,
    slices_at_model_scale,
)
from neuroseg.nets.unet import UNet, build_unet
from neuroseg.segment.axon_myelin import probabilities
from neuroseg.segment.image_2d import segment_2d
from neuroseg.segment.volume_3d import segment_volume_3d

LEGACY = [
    ({"input_scale": 2.0}, PixelSize((0.5, 0.5), "px")),
    ({"pixel_nm": 10.0}, PixelSize((10.0, 10.0), "nm")),
    ({"pixel_size_um": 0.1}, PixelSize((0.1, 0.1), "um")),
    ({"resolution_nm": [40, 10, 10]}, PixelSize((40.0, 10.0, 10.0), "nm")),
]


@pytest.mark.parametrize(("meta", "expected"), LEGACY)
def test_older_keys_read_as_the_one_key(meta, expected):
    assert model_pixel_size(meta) == expected
    canon = canonical_meta({"target": "x", **meta})
    assert set(canon) == {"target", PIXEL_SIZE_KEY}
    assert model_pixel_size(canon) == expected
    assert canonical_meta(canon) == canon  # idempotent


def test_no_pixel_size_and_bad_ones():
    assert model_pixel_size({"target": "fg_contour"}) is None
    assert model_pixel_size(UNet(ndim=2, depth=2, base_features=4)) is None
    with pytest.raises(ValueError, match="unit"):
        pixel_size_meta(1.0, "inch")
    with pytest.raises(ValueError, match="positive"):
        pixel_size_meta(0.0, "nm")


def _net(out_channels: int, *, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(ndim=2, out_channels=out_channels, depth=2, base_features=4).eval()


def test_predict_at_model_scale_resamples_in_and_back():
    net = _net(2)
    net.meta = pixel_size_meta(0.5, "px")
    image = np.random.default_rng(0).random((1, 30, 22)).astype(np.float32)
    out = predict_at_model_scale(net, image)
    # by hand: enlarge twice, predict, shrink back
    big = resample_image(image[0], pixel_size=1.0, target_pixel_size=0.5)[None]
    assert big.shape == (1, 60, 44)
    ref = predict(net, big)
    ref = np.stack([resample_image(c, pixel_size=0.5, target_pixel_size=1.0, shape=(30, 22)) for c in ref])
    np.testing.assert_array_equal(out, np.clip(ref, 0, 1))
    # a physical unit without the image's pixel size: predicted as it is
    net.meta = pixel_size_meta(10.0, "nm")
    np.testing.assert_array_equal(predict_at_model_scale(net, image), predict(net, image))


def _same_model_two_metas(tmp_path, net, old: dict, new: dict):
    save_model(net, tmp_path / "old", meta=old)
    save_model(net, tmp_path / "new", meta=new)
    return load_model(tmp_path / "old"), load_model(tmp_path / "new")


def test_folder_written_before_the_key_segments_as_before(tmp_path):
    """A nucleus-style model saved with ``input_scale`` (as before the one key) gives the same
    labels as the same weights saved with today's key, and both enlarge the image."""
    net = _net(2)
    base = {"target": "fg_contour", "postprocess": {"fg_threshold": 0.5, "seed_threshold": 0.5}}
    old, new = _same_model_two_metas(
        tmp_path, net, {**base, "input_scale": 2.0}, {**base, **pixel_size_meta(0.5, "px")})
    image = np.random.default_rng(1).random((40, 36))
    lab_old, p_old = segment_2d(old, image, tile=None, return_probabilities=True)
    lab_new, p_new = segment_2d(new, image, tile=None, return_probabilities=True)
    np.testing.assert_array_equal(p_old, p_new)
    np.testing.assert_array_equal(lab_old, lab_new)
    plain = load_model(tmp_path / "old")
    plain.meta = base
    _, p_plain = segment_2d(plain, image, tile=None, return_probabilities=True)
    assert not np.array_equal(p_plain, p_old)  # the scale is really applied


def test_older_em_and_axon_and_affinity_folders_still_work(tmp_path):
    # EM boundary model: pixel_nm
    net = _net(1)
    old, new = _same_model_two_metas(
        tmp_path / "em", net, {"target": "boundaries", "pixel_nm": 10.0},
        {"target": "boundaries", **pixel_size_meta(10.0, "nm")})
    slices = np.random.default_rng(2).random((2, 24, 24)).astype(np.float32)
    a, size_a = slices_at_model_scale(old, slices, resolution=(40, 5, 5))
    b, size_b = slices_at_model_scale(new, slices, resolution=(40, 5, 5))
    assert a.shape == (2, 12, 12) and size_a == size_b == (24, 24)
    np.testing.assert_array_equal(a, b)
    # axon/myelin model: pixel_size_um
    net = _net(3)
    old, new = _same_model_two_metas(
        tmp_path / "axon", net, {"target": "classes", "pixel_size_um": 0.1},
        {"target": "classes", **pixel_size_meta(0.1, "um")})
    image = np.random.default_rng(3).random((30, 26))
    np.testing.assert_array_equal(probabilities(old, image, pixel_size=0.12, tile=None),
                                  probabilities(new, image, pixel_size=0.12, tile=None))
    # 3D affinity model: resolution_nm
    torch.manual_seed(0)
    net3 = UNet(ndim=3, out_channels=3, depth=2, base_features=4, pool_factors=[(1, 2, 2)]).eval()
    common = {"target": "affinities", "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
              "tile": [4, 16, 16]}
    old, new = _same_model_two_metas(
        tmp_path / "aff", net3, {**common, "resolution_nm": [40, 10, 10]},
        {**common, **pixel_size_meta([40, 10, 10], "nm", ndim=3)})
    raw = np.random.default_rng(4).random((4, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(segment_volume_3d(old, raw, resolution=(40, 10, 10)),
                                  segment_volume_3d(new, raw, resolution=(40, 10, 10)))


TINY = {"ndim": 2, "in_channels": 1, "out_channels": 1, "depth": 2, "base_features": 4}


def _tiny_fit(folder, meta, *, epochs, on_epoch_end=None):
    from neuroseg.data import synthetic
    from neuroseg.nets.loaders import CropDataset

    image, labels = synthetic.nuclei_2d((48, 48), n=6, seed=0)
    target = lambda lab: (lab > 0).astype(np.float32)[None]  # noqa: E731
    data = CropDataset([image[None].astype(np.float32)], [labels], crop=(32, 32),
                       samples_per_epoch=4, target_fn=target, seed=0)
    config = train.TrainConfig(epochs=epochs, batch_size=2, lr=1e-2, seed=0, device="cpu")
    model = build_unet(TINY, seed=0)
    return train.fit(model, data, data, config=config, folder=folder, progress=False, meta=meta,
                     resume="if_compatible", on_epoch_end=on_epoch_end)


def test_a_run_recorded_under_an_older_key_is_resumed_not_restarted(tmp_path):
    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(tmp_path, {"target": "fg", "pixel_nm": 10.0}, epochs=2, on_epoch_end=stop)
    # as a version before the one key recorded it: the older key in the run's identity
    last = tmp_path / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    recorded = ckpt["run"]["meta"]
    assert recorded.pop(PIXEL_SIZE_KEY) == {"size": [10.0, 10.0], "unit": "nm"}
    recorded["pixel_nm"] = 10.0
    torch.save(ckpt, last)
    ran = []
    history = _tiny_fit(tmp_path, {"target": "fg", **pixel_size_meta(10.0, "nm")}, epochs=2,
                        on_epoch_end=lambda epoch, row: ran.append(epoch))
    assert ran == [2]  # resumed after epoch 1, not started afresh
    assert [row["epoch"] for row in history] == [1, 2]
    assert load_model(tmp_path).meta[PIXEL_SIZE_KEY] == {"size": [10.0, 10.0], "unit": "nm"}
    # another pixel size is another run: it starts afresh
    ran.clear()
    _tiny_fit(tmp_path, {"target": "fg", **pixel_size_meta(5.0, "nm")}, epochs=2,
              on_epoch_end=lambda epoch, row: ran.append(epoch))
    assert ran == [1, 2]


def test_a_block_normalised_by_its_whole_slices_percentiles_matches_the_whole_slice():
    from neuroseg.nets.scale import slice_percentiles, slices_at_model_scale

    rng = np.random.default_rng(0)
    slices = rng.gamma(2.0, 30.0, (3, 40, 50)).astype(np.float32)
    slices[:, :, 25:] *= 3.0  # the right half is brighter: a block's own percentiles differ
    model = UNet(ndim=2, depth=2, base_features=4)
    model.meta = {"target": "boundaries", "pixel_size": {"size": [10.0, 10.0], "unit": "nm"}}
    whole, _ = slices_at_model_scale(model, slices, resolution=(40, 10, 10))
    own, _ = slices_at_model_scale(model, slices[:, :, :25], resolution=(40, 10, 10))
    given, _ = slices_at_model_scale(model, slices[:, :, :25], resolution=(40, 10, 10),
                                     percentiles=slice_percentiles(slices))
    assert not np.allclose(own, whole[:, :, :25], atol=1e-3)
    np.testing.assert_allclose(given, whole[:, :, :25], atol=1e-5)
    with pytest.raises(ValueError, match="one \\(low, high\\) pair per slice"):
        slices_at_model_scale(model, slices, percentiles=np.zeros((2, 2)))
