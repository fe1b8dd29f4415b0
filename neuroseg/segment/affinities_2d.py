"""The 2D route's affinity segmenter: in-plane affinities per slice, then a mutex watershed.

The boundary route (:mod:`neuroseg.segment.volume_2d`) cuts a boundary map with a seeded
watershed. This is the other 2D segmenter, built like the 3D route
(:mod:`neuroseg.segment.affinities`) but in the plane: a 2D U-Net predicts, for every pixel,
one affinity per in-plane *offset* (the nearest ``(-1, 0), (0, -1)`` and longer ones out to
about 80 nm, :func:`offsets_2d`), and a mutex watershed (:func:`mutex_watershed_2d`) turns
each slice's affinities into 2D segments. All slices go to ``mwatershed`` in one call, with
the offsets lifted to ``(0, dy, dx)``: no edge joins two slices, so each slice is segmented on
its own, batched. The 2D segments are what the linking (:func:`neuroseg.linking.rules.link_slices`,
the learned linker) takes.

The network is a model folder whose ``meta`` holds ``"target": "affinities_2d"``, its
``offsets`` and its pixel size; it is trained on the slices of EM volumes with
:func:`train_affinities_2d` (class-balanced BCE on validity-masked targets, as the 3D route).

Examples
--------
>>> labels = np.array([[[1, 1, 2, 2]], [[3, 3, 3, 4]]])
>>> offs = offsets_2d(pixel_nm=10, ranges_nm=(20,))
>>> affs = affinities_2d_from_labels(labels, offsets=offs)
>>> mutex_watershed_2d(affs, offsets=offs).tolist()
[[[1, 1, 2, 2]], [[3, 3, 3, 4]]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from neuroseg.segment.affinities import (
    affinities_from_labels,
    affinity_target,
    check_offsets,
    mutex_watershed,
)

__all__ = [
    "TARGET_2D",
    "affinities_2d_from_labels",
    "affinity_network_2d",
    "mutex_watershed_2d",
    "offsets_2d",
    "predict_affinities_2d",
    "segments_2d_affinities",
    "train_affinities_2d",
]

TARGET_2D = "affinities_2d"


def offsets_2d(*, pixel_nm: float = 10.0, ranges_nm: Sequence[float] = (40.0, 80.0)) -> list[tuple[int, int]]:
    """The nearest in-plane offsets, then one pair per range in ``ranges_nm`` (at least 2
    pixels each), all pointing back (-y, -x).

    Examples
    --------
    >>> offsets_2d(pixel_nm=10)
    [(-1, 0), (0, -1), (-4, 0), (0, -4), (-8, 0), (0, -8)]
    """
    if not np.isfinite(pixel_nm) or pixel_nm <= 0:
        raise ValueError(f"pixel_nm must be a positive number; got {pixel_nm}")
    out = [(-1, 0), (0, -1)]
    for r in ranges_nm:
        k = max(2, int(round(float(r) / float(pixel_nm))))
        for o in ((-k, 0), (0, -k)):
            if o not in out:
                out.append(o)
    return out


def _lift(offsets: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    return [(0, int(o[0]), int(o[1])) for o in check_offsets(offsets, 2)]


def affinities_2d_from_labels(labels: npt.ArrayLike, *, offsets: Sequence[Sequence[int]]) -> np.ndarray:
    """In-plane affinities of every slice of a (z, y, x) label stack, (K, z, y, x) uint8.

    Examples
    --------
    >>> affinities_2d_from_labels([[[1, 1]], [[1, 2]]], offsets=[(0, -1)])[0].tolist()
    [[[0, 1]], [[0, 0]]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (z, y, x) stack; got shape {labels.shape}")
    return affinities_from_labels(labels, offsets=_lift(offsets))


def mutex_watershed_2d(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]],
    threshold: float = 0.5,
    min_size: int = 0,
    strides: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """2D segments of every slice from in-plane affinities, by a mutex watershed per slice.

    Each slice is cut on its own, so its segments do not depend on the other slices given
    with it (a stack cut at once breaks ties between equal affinities, common in bf16 outputs,
    differently by stack, and was 2.6x slower on 32 slices of 250 x 250 pixels).

    Parameters
    ----------
    affs : array (K, z, y, x)
        Affinities in [0, 1], one channel per in-plane offset.
    offsets : sequence of (dy, dx)
        The offset of each channel; the nearest two, ``(-1, 0)`` and ``(0, -1)`` (or their
        opposites), must be among them.
    threshold : float
        Edges above it join, below it forbid a join (see
        :func:`neuroseg.segment.affinities.mutex_watershed`).
    min_size : int
        Segments of fewer pixels are dissolved into the nearest larger one of the same slice.
    strides : sequence of (dy, dx), optional
        Per offset, to thin out the long-range edges.

    Returns
    -------
    ndarray of uint32, shape (z, y, x): segment IDs ``1..N`` unique over the volume, every
    segment within one slice (nothing is linked across z), no background.
    """
    affs = np.asarray(affs)
    if affs.ndim != 4:
        raise ValueError(f"affinities must be (channels, z, y, x); got shape {affs.shape}")
    lifted = _lift(offsets)
    if not any(o == (0, -1, 0) or o == (0, 1, 0) for o in lifted) or not any(
            o == (0, 0, -1) or o == (0, 0, 1) for o in lifted):
        raise ValueError(f"the offsets must hold the nearest in-plane offsets; got {list(offsets)}")
    strides3 = None if strides is None else [(1, int(s[0]), int(s[1])) for s in strides]
    affs = np.asarray(affs, np.float32)
    out = np.zeros(affs.shape[1:], np.uint32)
    base = 0
    for z in range(affs.shape[1]):
        seg = mutex_watershed(affs[:, z:z + 1], offsets=lifted, threshold=threshold,
                              min_size=min_size, resolution=(1.0, 1.0, 1.0), strides=strides3)
        seg = seg.astype(np.uint32)
        seg[seg > 0] += np.uint32(base)
        base = max(base, int(seg.max()))
        out[z] = seg[0]
    return out


def affinity_network_2d(
    *,
    offsets: Sequence[Sequence[int]] | None = None,
    pixel_nm: float = 10.0,
    depth: int = 3,
    base_features: int = 16,
    norm: str = "batch",
    seed: int = 0,
):
    """A fresh 2D U-Net with one in-plane affinity channel per offset (default
    :func:`offsets_2d`); ``meta`` records the target, the offsets and the pixel size."""
    import torch

    from neuroseg.nets.scale import pixel_size_meta
    from neuroseg.nets.unet import UNet

    offsets = check_offsets(offsets or offsets_2d(pixel_nm=pixel_nm), 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(ndim=2, in_channels=1, out_channels=len(offsets), depth=depth,
                   base_features=base_features, norm=norm)
    net.meta = {
        "target": TARGET_2D,
        "offsets": [list(o) for o in offsets],
        **pixel_size_meta((float(pixel_nm), float(pixel_nm)), "nm", ndim=2),
        "normalisation": "slice percentiles 1-99.8",
    }
    return net


def _slices(volumes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every slice of ``(raw, gt)`` volumes, normalised on its own, with its connected 2D
    pieces of the true IDs (a neuron in two pieces in a slice is two segments there)."""
    from neuroseg.data.images import normalize
    from neuroseg.data.labels import connected_components_per_slice

    if isinstance(volumes, tuple) and len(volumes) == 2 and isinstance(volumes[0], np.ndarray):
        volumes = [volumes]
    images, labels = [], []
    for k, (raw, gt) in enumerate(volumes):
        raw, gt = np.asarray(raw), np.asarray(gt)
        if raw.shape != gt.shape or raw.ndim != 3:
            raise ValueError(f"volume {k}: raw {raw.shape} and gt {gt.shape} must be one (z, y, x) shape")
        pieces = connected_components_per_slice(gt)
        for z in range(raw.shape[0]):
            if pieces[z].any():
                images.append(normalize(raw[z].astype(np.float32))[None].astype(np.float32))
                labels.append(pieces[z])
    if not images:
        raise ValueError("no training slice with labels")
    return images, labels


def train_affinities_2d(
    network,
    train,
    val=None,
    *,
    folder: str | os.PathLike,
    crop: Sequence[int] = (128, 128),
    epochs: int = 20,
    samples_per_epoch: int = 128,
    val_crops: int = 16,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: str = "balanced_bce",
    elastic: tuple[float, float, float] = (34.0, 4.0, 0.5),
    precision: str = "auto",
    channels_last: bool = False,
    time_budget: float | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Train a 2D affinity network on the slices of ``(raw, gt)`` volumes; write ``folder``.

    Crops of single slices (flips, rotations, elastic deformation, intensity changes), the
    target :func:`neuroseg.segment.affinities.affinity_target` of the 2D pieces of the true
    IDs (validity mask included). Training runs with :func:`neuroseg.nets.train.fit`
    (``time_budget`` in seconds ends it early, see :class:`neuroseg.nets.train.TrainConfig`);
    returns the model with the kept weights and the history.
    """
    from neuroseg.nets.augment import Augmenter
    from neuroseg.nets.folder import load_model
    from neuroseg.nets.loaders import CropDataset
    from neuroseg.nets.train import TrainConfig, fit

    meta = dict(network.meta or {})
    if meta.get("target") != TARGET_2D:
        raise ValueError("train_affinities_2d needs a network from affinity_network_2d()")
    offsets = [tuple(o) for o in meta["offsets"]]
    crop = tuple(int(c) for c in crop)
    target_fn = partial(affinity_target, offsets=offsets)
    images, labels = _slices(train)
    alpha, sigma, p = elastic
    data = CropDataset(images, labels, crop=crop, target_fn=target_fn,
                       augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p),
                       samples_per_epoch=samples_per_epoch, seed=seed)
    val_data = None
    if val is not None:
        vi, vl = _slices(val)
        val_data = CropDataset(vi, vl, crop=crop, target_fn=target_fn, augmenter=Augmenter.none(),
                               samples_per_epoch=val_crops, seed=seed + 1, fixed=True)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         loss=loss, seed=seed, precision=precision, channels_last=channels_last,
                         time_budget=time_budget)
    meta["crop"] = list(crop)
    history = fit(network, data, val_data, config=config, folder=folder, resume="if_compatible",
                  meta=meta, progress=progress)
    return load_model(folder), pd.DataFrame(history)


def _check_model(model) -> dict:
    from neuroseg.nets.unet import ModelError

    meta = getattr(model, "meta", None) or {}
    if meta.get("target") != TARGET_2D or getattr(model, "config", {}).get("ndim") != 2:
        raise ModelError("the 2D affinity segmenter needs a 2D affinity model (meta target "
                         f"'affinities_2d'); this one predicts {meta.get('target')!r}")
    return meta


def _volume_offsets(model, resolution) -> tuple[list[tuple[int, int]], list[int]]:
    """The model's offsets on the volume's pixel grid (scaled and rounded when the volume's
    pixel size differs from the model's), and the channels they come from (of two offsets
    that round to one, the first)."""
    from neuroseg.nets.scale import model_pixel_size

    offsets = [tuple(int(v) for v in o) for o in model.meta["offsets"]]
    px = model_pixel_size(model.meta)
    if resolution is None or px is None or px.unit != "nm":
        return offsets, list(range(len(offsets)))
    factor = float(px.size[-1]) / float(resolution[-1])
    out, keep = [], []
    for k, o in enumerate(offsets):
        new = tuple(int(np.sign(v) * max(1, round(abs(v) * factor))) if v else 0 for v in o)
        if new not in out:
            out.append(new)
            keep.append(k)
    return out, keep


def predict_affinities_2d(
    model,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    device: str | None = None,
    percentiles: np.ndarray | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """In-plane affinities of every slice of a (z, y, x) volume, slices batched.

    Each slice is normalised on its own (or by ``percentiles``, see
    :func:`neuroseg.nets.scale.slices_at_model_scale`) and resampled to the model's pixel size
    (when ``resolution`` gives the volume's, in nm), as in training. Returns the affinities
    (K, z, y, x) float32 at the volume's size, and the offsets on the volume's grid.
    """
    from neuroseg.data.readers import check_volume
    from neuroseg.nets.predict import on_device, predict_stack
    from neuroseg.nets.scale import back_to_volume_scale, slices_at_model_scale

    _check_model(model)
    raw = check_volume(raw)
    x, size = slices_at_model_scale(model, raw, resolution=resolution, percentiles=percentiles)
    prob = predict_stack(on_device(model, device), x[:, None], batch_size=batch_size, progress=progress)
    affs = np.ascontiguousarray(np.moveaxis(back_to_volume_scale(prob, size), 1, 0), np.float32)
    offsets, keep = _volume_offsets(model, resolution)
    if len(keep) != affs.shape[0]:
        affs = np.ascontiguousarray(affs[keep])
    return affs, offsets


def segments_2d_affinities(
    model,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
    device: str | None = None,
    percentiles: np.ndarray | None = None,
) -> np.ndarray:
    """2D segments of every slice by the affinity segmenter: :func:`predict_affinities_2d`,
    then :func:`mutex_watershed_2d` with the model's stored post-processing
    (``meta["postprocess"]``: ``threshold``, ``min_size``), overridable. Returns uint32
    (z, y, x) IDs unique over the volume, nothing linked across z."""
    affs, offsets = predict_affinities_2d(model, raw, resolution=resolution, batch_size=batch_size,
                                          progress=progress, device=device, percentiles=percentiles)
    post = {"threshold": 0.5, "min_size": 0, **dict(model.meta.get("postprocess") or {})}
    if threshold is not None:
        post["threshold"] = float(threshold)
    if min_size is not None:
        post["min_size"] = int(min_size)
    return mutex_watershed_2d(affs, offsets=offsets, threshold=float(post["threshold"]),
                              min_size=int(post["min_size"]))
