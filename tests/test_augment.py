"""Tests for neuroseg.nets.augment: label/image alignment, reproducibility, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from neuroseg.nets.augment import Augmenter, elastic_deform, random_flip_rotate, random_intensity


def _tiles(shape: tuple[int, int], tile: int = 8) -> np.ndarray:
    """Instance labels: a grid of tile x tile squares with distinct, scattered IDs."""
    rows, cols = np.indices(shape) // tile
    ids = rows * (shape[1] // tile + 1) + cols
    return (ids * 7 + 3).astype(np.uint16)


def _intensity_of(labels: np.ndarray) -> np.ndarray:
    """A deterministic intensity per label value (distinct for our IDs)."""
    return ((labels.astype(np.float64) * 0.37) % 1.0).astype(np.float32)


def _interior(labels: np.ndarray, size: int = 5) -> np.ndarray:
    """Pixels whose size x size neighbourhood holds a single label."""
    return ndi.maximum_filter(labels, size=size) == ndi.minimum_filter(labels, size=size)


def _aligned_fraction(image: np.ndarray, labels: np.ndarray) -> float:
    mask = _interior(labels)
    assert mask.mean() > 0.15
    return float(np.isclose(image[mask], _intensity_of(labels)[mask], atol=1e-5).mean())


def test_elastic_deform_keeps_ids_and_alignment():
    labels = _tiles((64, 64))
    image = _intensity_of(labels)[np.newaxis]
    labels_in, image_in = labels.copy(), image.copy()

    out_image, out_labels = elastic_deform(image, labels, rng=np.random.default_rng(0))

    np.testing.assert_array_equal(labels, labels_in)  # inputs not mutated
    np.testing.assert_array_equal(image, image_in)
    assert out_image.shape == image.shape and out_image.dtype == np.float32
    assert out_labels.shape == labels.shape and out_labels.dtype == np.uint16
    assert set(np.unique(out_labels)) <= set(np.unique(labels))
    assert (out_labels != labels).mean() > 0.05  # it really deformed
    assert _aligned_fraction(out_image[0], out_labels) > 0.95
    # the check has teeth: labels deformed by another field are not aligned with the image
    _, other_labels = elastic_deform(image, labels, rng=np.random.default_rng(1))
    assert _aligned_fraction(out_image[0], other_labels) < 0.9


def test_elastic_deform_reproducible_and_multi_target():
    labels = _tiles((32, 32))
    semantic = (labels % 2).astype(np.int64)
    image = _intensity_of(labels)
    a_img, (a_lab, a_sem) = elastic_deform(image, (labels, semantic), rng=np.random.default_rng(4))
    b_img, (b_lab, b_sem) = elastic_deform(image, (labels, semantic), rng=np.random.default_rng(4))
    c_img, _ = elastic_deform(image, (labels, semantic), rng=np.random.default_rng(5))
    assert a_img.shape == image.shape  # no channel axis in, none out
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    np.testing.assert_array_equal(a_sem, b_sem)
    assert not np.array_equal(a_img, c_img)
    np.testing.assert_array_equal(a_sem, a_lab % 2)  # both targets moved identically
    assert a_sem.dtype == np.int64


def test_elastic_deform_in_plane_only_for_3d():
    plane = _tiles((24, 24), tile=6)
    volume = np.broadcast_to(plane, (5, 24, 24)).copy()
    image = _intensity_of(volume)[np.newaxis]
    out_image, out_labels = elastic_deform(
        image, volume, rng=np.random.default_rng(2), alpha=60.0, axes=(1, 2)
    )
    assert (out_labels[0] != plane).mean() > 0.05
    for z in range(1, volume.shape[0]):  # constant along z stays constant along z
        np.testing.assert_array_equal(out_labels[z], out_labels[0])
        np.testing.assert_allclose(out_image[0, z], out_image[0, 0])
    # slice-specific IDs never move to another slice (no displacement along z)
    stacked = volume + (1000 * np.arange(5))[:, None, None]
    _, out = elastic_deform(
        stacked.astype(np.float32), stacked, rng=np.random.default_rng(2), alpha=200.0
    )
    _, out_inplane = elastic_deform(
        stacked.astype(np.float32),
        stacked,
        rng=np.random.default_rng(2),
        alpha=200.0,
        axes=(-2, -1),
    )
    for z in range(5):
        assert set(np.unique(out_inplane[z])) <= set(np.unique(stacked[z]))
    # a full 3D deformation does move content across slices
    assert any(not set(np.unique(out[z])) <= set(np.unique(stacked[z])) for z in range(5))


def test_elastic_deform_argument_errors():
    image = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(ValueError, match="ndim"):
        elastic_deform(image, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        elastic_deform(image, ndim=2, rng=0)
    with pytest.raises(TypeError, match="floating"):
        elastic_deform(image.astype(np.uint8), ndim=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="labels shape"):
        elastic_deform(image, np.zeros((8, 8), int), rng=np.random.default_rng(0))


def test_random_flip_rotate_exact_alignment_and_coverage():
    labels = np.arange(36, dtype=np.int32).reshape(6, 6)  # no symmetry: all 8 results differ
    image = np.stack([_intensity_of(labels), _intensity_of(labels) * 2])
    labels_in = labels.copy()
    seen = set()
    for seed in range(40):
        out_image, out_labels = random_flip_rotate(image, labels, rng=np.random.default_rng(seed))
        assert out_image.flags.c_contiguous and out_labels.flags.c_contiguous
        np.testing.assert_array_equal(out_image[0], _intensity_of(out_labels))
        np.testing.assert_array_equal(out_image[1], _intensity_of(out_labels) * 2)
        seen.add(out_labels.tobytes())
    assert len(seen) == 8  # 4 rotations x mirror
    np.testing.assert_array_equal(labels, labels_in)

    rect = np.arange(24, dtype=np.int32).reshape(4, 6)  # non-square: flips only, shape kept
    shapes, seen = set(), set()
    for seed in range(40):
        _, out = random_flip_rotate(rect.astype(np.float32), rect, rng=np.random.default_rng(seed))
        shapes.add(out.shape)
        seen.add(out.tobytes())
    assert shapes == {(4, 6)} and len(seen) == 4


def test_random_flip_rotate_reproducible_3d():
    volume = np.arange(4 * 6 * 6, dtype=np.int64).reshape(4, 6, 6)
    image = volume.astype(np.float64)
    a = random_flip_rotate(image, volume, rng=np.random.default_rng(7), axes=(0, 1, 2))
    b = random_flip_rotate(image, volume, rng=np.random.default_rng(7), axes=(0, 1, 2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], a[1].astype(np.float64))
    results = {
        random_flip_rotate(image, volume, rng=np.random.default_rng(s), axes=(0, 1, 2))[1].tobytes()
        for s in range(30)
    }
    assert len(results) > 8  # z-flips add to the 8 in-plane variants


def test_random_intensity():
    image = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    image_in = image.copy()
    a = random_intensity(image, rng=np.random.default_rng(1), p=1.0, ndim=2)
    b = random_intensity(image, rng=np.random.default_rng(1), p=1.0, ndim=2)
    assert a.shape == image.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, image)
    np.testing.assert_array_equal(image, image_in)
    unchanged = random_intensity(image, rng=np.random.default_rng(1), p=0.0, ndim=2)
    np.testing.assert_array_equal(unchanged, image)
    assert unchanged is not image


def test_random_intensity_blur_does_not_mix_channels():
    image = np.zeros((2, 16, 16), np.float64)
    image[1] = np.random.default_rng(0).random((16, 16))
    out = random_intensity(
        image,
        rng=np.random.default_rng(0),
        blur_sigma=(1.0, 1.0),
        contrast=None,
        brightness=None,
        gamma=None,
        noise_std=None,
        p=1.0,
        ndim=2,
    )
    assert np.all(out[0] == 0)
    assert out[1].std() < image[1].std()  # blurred
    with pytest.raises(ValueError, match="ndim"):
        random_intensity(image, rng=np.random.default_rng(0))


def test_augmenter_none_is_identity():
    labels = _tiles((16, 16), tile=4)
    image = _intensity_of(labels)[np.newaxis]
    out_image, out_labels = Augmenter.none()(image, labels, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_labels, labels)
    assert out_image is not image and out_labels is not labels
    assert out_image.dtype == image.dtype and out_labels.dtype == labels.dtype


def test_augmenter_geometric_pipeline_keeps_alignment():
    labels = _tiles((48, 48))
    image = _intensity_of(labels)[np.newaxis]
    augment = Augmenter(intensity=False, elastic_p=1.0)
    out_image, out_labels = augment(image, labels, rng=np.random.default_rng(3))
    again, _ = augment(image, labels, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(out_image, again)
    assert set(np.unique(out_labels)) <= set(np.unique(labels))
    assert _aligned_fraction(out_image[0], out_labels) > 0.95
    with pytest.raises(ValueError, match="elastic_p"):
        Augmenter(elastic_p=1.5)
