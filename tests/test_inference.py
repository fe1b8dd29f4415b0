"""Tiled prediction and the user-facing segment_2d."""

import numpy as np
import pytest
import torch

import neuroseg
from neuroseg.data import synthetic
from neuroseg.nets.predict import predict
from neuroseg.nets.unet import build_unet
from neuroseg.segment.image_2d import prepare_image


def _model(ndim=2, out_channels=2, depth=2, pool=None):
    config = {"ndim": ndim, "in_channels": 1, "out_channels": out_channels, "depth": depth,
              "base_features": 4}
    if pool is not None:
        config["pool_factors"] = pool
    model = build_unet(config, seed=0)
    model.eval()
    return model


def test_whole_image_prediction_matches_the_network():
    model = _model()
    image = np.random.default_rng(0).random((1, 32, 48), dtype=np.float32)
    out = predict(model, image, tile=None)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(image[None])))[0].numpy()
    assert out.shape == (2, 32, 48)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_tiled_equals_whole_away_from_seams_and_close_at_seams():
    model = _model()
    image = synthetic.nuclei_2d((96, 96), n=12, seed=3)[0][None]
    whole = predict(model, image, tile=None)
    tiled = predict(model, image, tile=(48, 48), overlap=16, batch_size=3)
    assert tiled.shape == whole.shape
    # inside a tile's core (far from every tile border) the tile sees exactly what the whole
    # image does up to the network's reach; the blend there is dominated by that tile
    assert np.abs(tiled - whole).mean() < 0.01
    assert np.abs(tiled - whole).max() < 0.2


def test_tiled_3d_anisotropic():
    model = _model(ndim=3, pool=[(1, 2, 2)])
    volume = np.random.default_rng(1).random((1, 6, 40, 40), dtype=np.float32)
    whole = predict(model, volume, tile=None)
    tiled = predict(model, volume, tile=(6, 24, 24), overlap=(0, 8, 8))
    assert tiled.shape == (2, 6, 40, 40)
    assert np.abs(tiled - whole).mean() < 0.02


def test_odd_sizes_are_padded_and_cropped_back():
    model = _model(depth=3)
    image = np.random.default_rng(2).random((1, 37, 51), dtype=np.float32)
    assert predict(model, image, tile=None).shape == (2, 37, 51)
    assert predict(model, image, tile=(20, 20), overlap=4).shape == (2, 37, 51)


def test_predict_rejects_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="channels"):
        predict(model, np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="spatial"):
        predict(model, np.zeros((16, 16), np.float32))
    bad = np.zeros((1, 16, 16), np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(model, bad)


@pytest.mark.parametrize(
    "make",
    [
        lambda img: (img * 255).astype(np.uint8),
        lambda img: (img * 4000).astype(np.uint16),
        lambda img: img.astype(np.float64) * 7 - 2,
        lambda img: np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=-1),
        lambda img: np.concatenate(
            [np.repeat(img[..., None], 3, -1), np.ones(img.shape + (1,))], -1
        ).astype(np.float32),
    ],
    ids=["uint8", "uint16", "float64", "rgb", "rgba"],
)
def test_segment_2d_accepts_any_dtype_and_rgb(make):
    model = _model()
    model.meta = {"target": "fg_contour"}
    image, _ = synthetic.nuclei_2d((50, 70), seed=0)
    labels = neuroseg.segment_2d(model, make(image), tile=32, overlap=8)
    assert labels.shape == (50, 70) and labels.dtype == np.uint32


def test_segment_2d_same_result_for_rescaled_input():
    model = _model()
    model.meta = {"target": "fg_contour", "postprocess": {"fg_threshold": 0.5}}
    image, _ = synthetic.nuclei_2d((48, 48), seed=1)
    a, pa = neuroseg.segment_2d(model, image, return_probabilities=True)
    b, pb = neuroseg.segment_2d(model, image * 1000 + 5, return_probabilities=True)
    np.testing.assert_allclose(pa, pb, atol=1e-4)


def test_segment_2d_needs_a_known_target():
    model = _model(out_channels=3)
    model.meta = {"target": "affinities"}
    with pytest.raises(ValueError, match="predicts 'affinities'"):
        neuroseg.segment_2d(model, np.zeros((16, 16)))


def test_segment_2d_rejects_non_numeric():
    model = _model()
    with pytest.raises(TypeError, match="numeric"):
        neuroseg.segment_2d(model, np.array([["a", "b"], ["c", "d"]]))


def test_invert_flips_the_normalised_image():
    image, _ = synthetic.nuclei_2d((32, 32), seed=2)
    plain = prepare_image(image)
    inverted = prepare_image(image, invert=True)
    np.testing.assert_allclose(plain + inverted, 1.0, atol=1e-6)
