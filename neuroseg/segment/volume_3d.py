"""The 3D route through an EM volume: a 3D U-Net predicting affinities, tiled, then agglomeration."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from neuroseg.checks import check_resolution, check_scale_ratio, warn_missing_pixel_size
from neuroseg.data.images import normalize
from neuroseg.data.readers import check_volume
from neuroseg.nets.augment import Augmenter
from neuroseg.nets.folder import load_model
from neuroseg.nets.loaders import CropDataset
from neuroseg.nets.predict import on_device
from neuroseg.nets.scale import model_pixel_size, pixel_size_meta
from neuroseg.nets.unet import ModelError, UNet
from neuroseg.segment.affinities import (
    NEAREST,
    TARGET,
    affinity_target,
    agglomerate,
    check_offsets,
    relabel_by_first_appearance,
)


def affinity_network(
    *,
    offsets: Sequence[Sequence[int]] = NEAREST,
    resolution: Sequence[float] = (10.0, 10.0, 10.0),
    depth: int = 3,
    base_features: int = 8,
    pool_factors: Sequence | None = None,
    tile: Sequence[int] = (32, 128, 128),
    norm: str = "batch",
    seed: int = 0,
) -> UNet:
    """A fresh 3D U-Net with one affinity channel per offset.

    ``pool_factors`` default to isotropic 2 when z is as fine as y-x and to ``(1, 2, 2)``
    (y-x only) at the first level when z is at least twice as coarse (anisotropic stacks).
    ``meta`` records the offsets, the voxel size and the prediction tile.
    """
    offsets = check_offsets(offsets, 3)
    resolution = tuple(float(r) for r in resolution)
    if len(resolution) != 3 or min(resolution) <= 0:
        raise ValueError(f"resolution must be three positive numbers (z, y, x); got {resolution}")
    if pool_factors is None:
        first = [1, 2, 2] if resolution[0] >= 2 * resolution[1] else [2, 2, 2]
        pool_factors = [first] + [[2, 2, 2]] * (depth - 2)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
        torch.manual_seed(seed)
        net = UNet(
            ndim=3, in_channels=1, out_channels=len(offsets), depth=depth,
            base_features=base_features, pool_factors=pool_factors[: depth - 1], norm=norm,
        )
    net.meta = {
        "target": TARGET,
        "offsets": [list(o) for o in offsets],
        **pixel_size_meta(resolution, "nm", ndim=3),
        "normalisation": "volume percentiles 1-99.8",
        "tile": [int(t) for t in tile],
    }
    return net


def _as_volumes(volumes) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(volumes, tuple) and len(volumes) == 2 and isinstance(volumes[0], np.ndarray):
        volumes = [volumes]
    out = []
    for k, (raw, gt) in enumerate(volumes):
        raw, gt = np.asarray(raw), np.asarray(gt)
        if raw.shape != gt.shape or raw.ndim != 3:
            raise ValueError(f"volume {k}: raw {raw.shape} and gt {gt.shape} must be one (z, y, x) shape")
        if not gt.any():
            raise ValueError(f"volume {k}: the labels are all background")
        out.append((normalize(raw)[None].astype(np.float32), gt))
    if not out:
        raise ValueError("no training volumes")
    return out


def train_affinities(
    network: UNet,
    train,
    val=None,
    *,
    folder: str | os.PathLike,
    crop: Sequence[int] = (32, 96, 96),
    epochs: int = 20,
    samples_per_epoch: int = 96,
    val_crops: int = 16,
    batch_size: int = 2,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: str = "balanced_bce",
    elastic: tuple[float, float, float] = (34.0, 4.0, 0.5),
    precision: str = "auto",
    channels_last: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> tuple[UNet, pd.DataFrame]:
    """Train an affinity network on ``(raw, gt)`` volumes (one pair or a list); write ``folder``.

    Volumes are normalised as a whole (percentiles 1 and 99.8) and must be at the network's
    voxel size. Targets are :func:`affinity_target` of each augmented crop (flips of every
    axis, rotations in y-x, elastic deformation in y-x with ``elastic = (alpha, sigma, p)``,
    intensity changes). The loss is class-balanced BCE by default: boundary and in-object
    edges weigh equally. Training runs with :func:`neuroseg.nets.train.fit` (AdamW, cosine
    schedule), resumes a run in ``folder`` and keeps the weights of the lowest validation
    loss, which it returns with the history. ``precision`` and ``channels_last`` are
    :class:`neuroseg.nets.train.TrainConfig`'s (``"bf16"`` with ``channels_last=True`` trains
    several times faster on a CPU with bf16 units).
    """
    from neuroseg.nets.train import TrainConfig, fit

    meta = dict(network.meta or {})
    if meta.get("target") != TARGET:
        raise ValueError("train_affinities needs a network from affinity_network()")
    offsets = [tuple(o) for o in meta["offsets"]]
    crop = tuple(int(c) for c in crop)
    train = _as_volumes(train)
    target_fn = partial(affinity_target, offsets=offsets)
    alpha, sigma, p = elastic
    data = CropDataset(
        [v[0] for v in train], [v[1] for v in train], crop=crop, target_fn=target_fn,
        augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p, elastic_axes=(1, 2),
                            flip_axes=(-3, -2, -1)),
        samples_per_epoch=samples_per_epoch, seed=seed,
    )
    val_data = None
    if val is not None:
        val = _as_volumes(val)
        val_data = CropDataset(
            [v[0] for v in val], [v[1] for v in val], crop=crop, target_fn=target_fn,
            augmenter=Augmenter.none(), samples_per_epoch=val_crops, seed=seed + 1, fixed=True,
        )
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, loss=loss, seed=seed,
        precision=precision, channels_last=bool(channels_last),
    )
    meta["crop"] = list(crop)
    history = fit(
        network, data, val_data, config=config, folder=folder, resume="if_compatible", meta=meta,
        progress=progress,
    )
    return load_model(folder), pd.DataFrame(history)


def _check_affinity_model(model) -> dict:
    meta = getattr(model, "meta", None) or {}
    if meta.get("target") != TARGET or getattr(model, "config", {}).get("ndim") != 3:
        raise ModelError(
            "the 3D route needs a 3D affinity model (meta target 'affinities', e.g. "
            f"artifacts/<profile>/models/affinity_unet_40nm); this one predicts {meta.get('target')!r}"
        )
    return meta


def predict_affinities(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    tile: Sequence[int] | None = None,
    overlap: Sequence[int] | None = None,
    batch_size: int = 1,
    amp: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Affinities (K, z, y, x) float32 of a raw volume at the model's voxel size.

    The volume is normalised as a whole, then predicted tile by tile (default: the model's
    ``meta["tile"]``) with ``overlap`` (default a quarter of the tile) and linear blending
    (:func:`neuroseg.nets.predict.predict`).
    """
    from neuroseg.nets.predict import predict

    meta = _check_affinity_model(model)
    raw = check_volume(raw)
    tile = tuple(int(t) for t in (tile or meta.get("tile") or raw.shape))
    if overlap is None:
        overlap = tuple(t // 4 for t in tile)
    image = normalize(np.asarray(raw, np.float32))[None].astype(np.float32)
    return predict(
        model, image, tile=tile, overlap=overlap, batch_size=batch_size, amp=amp,
        progress=progress,
    )


def model_resolution(meta: dict) -> list[float] | None:
    """The (z, y, x) voxel size (nm) an affinity model was trained at, or None."""
    px = model_pixel_size(meta)
    if px is None:
        return None
    if px.unit != "nm" or len(px.size) != 3:
        raise ModelError(f"an affinity model's voxel size is 3 values in nm; this one has {px}")
    return list(px.size)


def _scale_factors(meta: dict, resolution: Sequence[float] | None) -> np.ndarray:
    model_res = model_resolution(meta)
    if model_res is None:
        return np.ones(3)
    if resolution is None:
        warn_missing_pixel_size(f"{tuple(float(r) for r in model_res)} nm voxels")
        return np.ones(3)
    res = np.asarray(check_resolution(resolution))
    factors = res / np.asarray(model_res, float)  # > 1: volume coarser than the model
    worst = max(factors, key=lambda f: max(f, 1.0 / f))
    check_scale_ratio(float(worst), what=f"the volume's voxel size {tuple(res.tolist())} nm",
                      reference=f"the model's {tuple(float(r) for r in model_res)} nm")
    return factors


def segment_volume_3d(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    tile: Sequence[int] | None = None,
    overlap: Sequence[int] | None = None,
    batch_size: int = 1,
    return_affinities: bool = False,
    progress: bool = False,
    device: str | None = None,
):
    """Segment a 3D EM volume the 3D way: affinities from a 3D U-Net, then agglomeration.

    Parameters
    ----------
    model : UNet
        An affinity model folder's network (:func:`neuroseg.load_model`), e.g.
        ``artifacts/<profile>/models/affinity_unet_40nm``.
    raw : array_like, shape (z, y, x)
        The EM volume (any integer or float dtype; NaN refused). Not modified.
    resolution : sequence of 3 float, optional
        The volume's (z, y, x) voxel size in nm. When it differs from the model's by more
        than 5 % on any axis the volume is resampled to the model's voxel size and the
        segments back (a warning when more than 2x off).
    method, threshold, min_size : optional
        Post-processing (see :func:`agglomerate`); default: the model's ``meta["postprocess"]``
        chosen on validation data, else ``"cc"``, 0.5, 0.
    tile, overlap, batch_size : optional
        Tiled prediction (see :func:`predict_affinities`).
    return_affinities : bool
        Also return the affinities (at the model's voxel size).
    device : str, optional
        "cpu", "cuda", "cuda:1"; None: the GPU when there is one, else the CPU.

    Returns
    -------
    ndarray of uint32, shape (z, y, x)
        Neuron IDs ``1..N`` (and the affinities with ``return_affinities``).
    """
    from scipy import ndimage


    meta = _check_affinity_model(model)
    raw = check_volume(raw)
    factors = _scale_factors(meta, resolution)
    resample = bool(np.any(np.abs(factors - 1.0) > 0.05))
    volume = ndimage.zoom(np.asarray(raw, np.float32), factors, order=1) if resample else raw
    if min(volume.shape) < 1:
        raise ValueError(f"the volume {raw.shape} is empty at the model's voxel size")
    post = {"method": "cc", "threshold": 0.5, "min_size": 0, **dict(meta.get("postprocess") or {})}
    if method is not None:
        post["method"] = method
    if threshold is not None:
        post["threshold"] = float(threshold)
    if min_size is not None:
        post["min_size"] = int(min_size)
    affs = predict_affinities(
        on_device(model, device), volume, tile=tile, overlap=overlap, batch_size=batch_size, progress=progress
    )
    labels = agglomerate(
        affs, method=post["method"], threshold=float(post["threshold"]),
        min_size=int(post["min_size"]), offsets=meta["offsets"], resolution=model_resolution(meta),
    )
    if resample:
        zoom = [n / m for n, m in zip(raw.shape, labels.shape)]
        labels = relabel_by_first_appearance(ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest"))
        if labels.shape != raw.shape:  # rounding of zoom: pad or cut to the input's shape
            labels = _fit_shape(labels, raw.shape)
    if not labels.any():
        warnings.warn("no object found in the volume: check the model, resolution= and the "
                      "image's contrast", UserWarning, stacklevel=2)
    return (labels, affs) if return_affinities else labels


def _fit_shape(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    cut = labels[tuple(slice(0, s) for s in shape)]
    pad = [(0, s - c) for s, c in zip(shape, cut.shape)]
    return np.pad(cut, pad, mode="edge") if any(p for _, p in pad) else cut
