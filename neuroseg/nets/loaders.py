"""Training data: normalised images, random crops, augmentation and targets, reproducibly.

A :class:`CropDataset` draws ``samples_per_epoch`` random crops per epoch from a list of
images. Sample ``i`` of epoch ``e`` is generated from ``np.random.default_rng([seed, e, i])``,
so an epoch's data does not depend on what ran before it: training resumed from a
checkpoint sees exactly the crops an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from neuroseg.nets.augment import Augmenter


def random_crop(
    image: np.ndarray, labels: np.ndarray, shape: Sequence[int], *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of ``shape`` from image (C, *spatial) and labels (*spatial).

    Smaller images are padded first (image by reflection, labels with 0).
    """
    spatial = labels.shape
    pad = [max(0, s - n) for s, n in zip(shape, spatial)]
    if any(pad):
        widths = [(p // 2, p - p // 2) for p in pad]
        image = np.pad(image, [(0, 0)] + widths, mode="reflect")
        labels = np.pad(labels, widths, mode="constant")
        spatial = labels.shape
    start = [int(rng.integers(0, n - s + 1)) for s, n in zip(shape, spatial)]
    sl = tuple(slice(a, a + s) for a, s in zip(start, shape))
    return image[(slice(None), *sl)], labels[sl]


class CropDataset(torch.utils.data.Dataset):
    """Random crops of images with targets, for :func:`neuroseg.nets.train.fit`.

    Parameters
    ----------
    images : list of arrays (C, *spatial), float32, already normalised
    labels : list of integer arrays (*spatial)
    crop : spatial crop shape
    target_fn : labels crop -> target array (K, *spatial) float32
    augmenter : :class:`~neuroseg.nets.augment.Augmenter` (``Augmenter.none()`` for validation)
    samples_per_epoch : crops per epoch
    seed : seed of the sampling
    fixed : if True the crops do not change between epochs (validation)
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        *,
        crop: Sequence[int],
        target_fn: Callable[[np.ndarray], np.ndarray],
        augmenter: Augmenter | None = None,
        samples_per_epoch: int = 100,
        seed: int = 0,
        fixed: bool = False,
    ):
        if len(images) != len(labels) or not images:
            raise ValueError(f"need equally many images and labels, got {len(images)} and {len(labels)}")
        for k, (im, lab) in enumerate(zip(images, labels)):
            if im.ndim != lab.ndim + 1 or im.shape[1:] != lab.shape:
                raise ValueError(
                    f"item {k}: image shape {im.shape} (C, *spatial) does not match labels {lab.shape}"
                )
        self.images = list(images)
        self.labels = list(labels)
        self.crop = tuple(int(c) for c in crop)
        self.target_fn = target_fn
        self.augmenter = augmenter or Augmenter.none()
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.fixed = fixed
        self.epoch = 0
        sizes = np.array([lab.size for lab in self.labels], dtype=float)
        self._p = sizes / sizes.sum()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image crop (C, *crop), target (K, *crop)) as numpy arrays."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, index])
        k = int(rng.choice(len(self.images), p=self._p))
        image, labels = random_crop(self.images[k], self.labels[k], self.crop, rng=rng)
        image, labels = self.augmenter(image, labels, rng=rng)
        return np.ascontiguousarray(image, np.float32), self.target_fn(labels).astype(np.float32)

    def __getitem__(self, index: int):
        image, target = self.sample(index)
        return torch.from_numpy(image), torch.from_numpy(target)
