"""Tests of neuroseg.data.resample: shapes, round trips, anti-aliasing and the pixel-size check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neuroseg.data.resample import (
    PixelSizeWarning,
    check_pixel_size,
    resample_image,
    resample_labels,
    resampled_shape,
)
from neuroseg.measure.overlap import pixel_iou


def _discs(shape=(203, 257)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for i, (cy, cx, r) in enumerate([(50, 60, 30), (140, 80, 40), (100, 190, 45)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = i
    return labels


# --------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, px, target, expected",
    [
        ((100, 80), 0.1, 0.2, (50, 40)),
        ((101, 81), 0.1, 0.2, (51, 41)),  # 50.5 rounds up
        ((100, 80), 0.2, 0.1, (200, 160)),
        ((10, 10), 0.01, 1.0, (1, 1)),  # never empty
        ((64, 64), 0.13, 0.13, (64, 64)),
    ],
)
def test_output_shape(shape, px, target, expected):
    assert resampled_shape(shape, pixel_size=px, target_pixel_size=target) == expected
    img = np.zeros(shape, np.uint8)
    assert resample_image(img, pixel_size=px, target_pixel_size=target).shape == expected
    assert resample_labels(img, pixel_size=px, target_pixel_size=target).shape == expected


def test_image_dtype_channels_and_values():
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    out = resample_image(rgb, pixel_size=0.05, target_pixel_size=0.1)
    assert out.shape == (20, 30, 3) and out.dtype == np.float32
    assert out.max() > 1.5  # values kept in their range, not rescaled to [0, 1]
    const = np.full((30, 30), 7, np.uint16)
    up = resample_image(const, pixel_size=0.2, target_pixel_size=0.1, order=3)
    assert up.dtype == np.float32 and np.allclose(up, 7)
    same = resample_image(const, pixel_size=0.1, target_pixel_size=0.1)
    assert same.dtype == np.float32 and np.array_equal(same, const)


def test_downsampling_is_antialiased():
    # a 1-pixel checkerboard has no content at the coarser pixel size: it must become flat
    # grey, not a coarser checkerboard or a flat black/white image
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    out = resample_image(board, pixel_size=0.1, target_pixel_size=0.3)
    assert out.shape == (21, 21)
    assert abs(out.mean() - 0.5) < 0.05
    assert out.std() < 0.1


def test_labels_nearest_neighbour_keeps_dtype_and_values():
    lab = _discs()
    lab[0, 0] = 60000
    out = resample_labels(lab, pixel_size=0.1, target_pixel_size=0.23)
    assert out.dtype == np.uint16
    assert set(np.unique(out)) <= set(np.unique(lab))
    up = resample_labels(lab, pixel_size=0.1, target_pixel_size=0.05)
    assert np.array_equal(up[::2, ::2], lab)  # exact factor 2: each pixel becomes a 2x2 block
    assert np.array_equal(up[1::2, 1::2], lab)


def test_labels_round_trip_shape_and_iou():
    lab = _discs()
    coarse = resample_labels(lab, pixel_size=0.1, target_pixel_size=0.3)
    assert coarse.shape == (68, 86)
    back = resample_labels(coarse, pixel_size=0.3, target_pixel_size=0.1, shape=lab.shape)
    assert back.shape == lab.shape
    assert pixel_iou(lab > 0, back > 0) > 0.95
    for i in (1, 2, 3):
        assert pixel_iou(lab == i, back == i) > 0.95
    # without shape= the rounding may not return to the same shape
    plain = resample_labels(coarse, pixel_size=0.3, target_pixel_size=0.1)
    assert plain.shape == (204, 258)


def test_image_round_trip_with_shape():
    lab = _discs()
    img = (lab > 0).astype(np.float32)
    coarse = resample_image(img, pixel_size=0.1, target_pixel_size=0.2)
    back = resample_image(coarse, pixel_size=0.2, target_pixel_size=0.1, shape=lab.shape)
    assert back.shape == lab.shape
    assert pixel_iou(lab > 0, back > 0.5) > 0.95


@pytest.mark.parametrize("bad", [0, -1, np.nan, np.inf])
def test_bad_pixel_size(bad):
    with pytest.raises(ValueError, match="pixel_size"):
        resample_image(np.zeros((4, 4)), pixel_size=bad, target_pixel_size=0.1)
    with pytest.raises(ValueError, match="target_pixel_size"):
        resample_labels(np.zeros((4, 4), int), pixel_size=0.1, target_pixel_size=bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        resample_labels(np.zeros((4, 4, 4), int), pixel_size=1, target_pixel_size=2)
    with pytest.raises(TypeError, match="integer"):
        resample_labels(np.zeros((4, 4)), pixel_size=1, target_pixel_size=2)
    with pytest.raises(ValueError, match="image must be"):
        resample_image(np.zeros(4), pixel_size=1, target_pixel_size=2)
    with pytest.raises(ValueError, match="shape"):
        resample_labels(np.zeros((4, 4), int), pixel_size=1, target_pixel_size=2, shape=(0, 3))


# --------------------------------------------------------------------------------------------
# check_pixel_size
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("px", [0.1, 0.12, 0.08, 0.15, 1 / 15])
def test_check_pixel_size_close_is_silent(px):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_pixel_size(px, 0.1) == pytest.approx(px / 0.1)


@pytest.mark.parametrize("px", [0.16, 0.2, 0.3, 0.05, 0.034])
def test_check_pixel_size_far_warns(px):
    with pytest.warns(PixelSizeWarning) as rec:
        check_pixel_size(px, 0.1)
    msg = str(rec[0].message)
    assert f"{px:g} µm" in msg and "0.1 µm" in msg and "resample_image" in msg
    with pytest.raises(ValueError, match="resample_image"):
        check_pixel_size(px, 0.1, strict=True)


@pytest.mark.parametrize("px", [0.31, 1.0, 0.03, 0.001])
def test_check_pixel_size_very_far_refuses(px):
    with pytest.raises(ValueError) as err:
        check_pixel_size(px, 0.1)
    msg = str(err.value)
    assert f"{px:g} µm" in msg and "0.1 µm" in msg and "resample_image" in msg
    with pytest.warns(PixelSizeWarning):  # allowed: only a warning
        check_pixel_size(px, 0.1, max_ratio=None)


def test_check_pixel_size_custom_limits_and_validation():
    with pytest.warns(PixelSizeWarning):
        check_pixel_size(0.11, 0.1, tolerance=1.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_pixel_size(0.5, 0.1, tolerance=6, max_ratio=None)
    with pytest.raises(ValueError, match="tolerance"):
        check_pixel_size(0.1, 0.1, tolerance=0.5)
    with pytest.raises(ValueError, match="max_ratio"):
        check_pixel_size(0.1, 0.1, tolerance=2, max_ratio=1.5)
    with pytest.raises(ValueError, match="model_pixel_size"):
        check_pixel_size(0.1, 0)
