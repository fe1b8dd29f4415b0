"""Affinities: the 3D baseline's targets, network and post-processing (the WEBKNOSSOS route).

An *affinity* of a voxel ``p`` for an ``offset`` ``o`` is 1 when ``p`` and ``p + o`` carry the
same non-zero neuron ID, else 0. A 3D U-Net predicts one affinity channel per offset: the
nearest neighbours ``(-1, 0, 0), (0, -1, 0), (0, 0, -1)`` (-z, -y, -x) and, optionally,
longer ranges, which a mutex watershed uses as repulsive evidence. Segments come from the
predicted affinities by

- ``"cc"``: connected components over the nearest-neighbour edges above a threshold (the
  WEBKNOSSOS post-processing), with :func:`cc3d.color_connectivity_graph`;
- ``"mws"``: a mutex watershed over all offsets (:func:`mwatershed.agglom`): edges are taken
  in order of ``|affinity - threshold|``, above the threshold they join, below they forbid a
  join.

Both may dissolve segments smaller than ``min_size`` voxels into their nearest large
neighbour (nearest in nm when ``resolution`` is given).

The user call is :func:`segment_volume_3d`; the network is trained with
:func:`train_affinities` (class-balanced BCE on a validity-masked target, flips, rotations,
in-plane elastic deformation, intensity changes) and is a model folder whose ``meta`` holds
``"target": "affinities"``, its ``offsets``, its voxel size (``resolution_nm``), the tile of
its tiled prediction and, once chosen on validation data, its ``postprocess``.

Examples
--------
>>> labels = np.array([[[1, 1, 2]]])
>>> affinities_from_labels(labels, offsets=[(0, 0, -1)])[0].tolist()
[[[0, 1, 0]]]
>>> cut = connected_components(affinities_from_labels(labels), threshold=0.5)
>>> cut.tolist()
[[[1, 1, 2]]]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from .augment import Augmenter
from .loaders import CropDataset, normalize
from .models import ModelError, UNet, load_model

__all__ = [
    "METHODS",
    "NEAREST",
    "TARGET",
    "affinities_from_labels",
    "affinity_network",
    "affinity_target",
    "agglomerate",
    "boundary_map",
    "connected_components",
    "mutex_watershed",
    "predict_affinities",
    "segment_volume_3d",
    "train_affinities",
    "valid_mask",
]

TARGET = "affinities"
#: The nearest-neighbour offsets (-z, -y, -x).
NEAREST = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))
#: Post-processings of :func:`agglomerate`.
METHODS = ("cc", "mws")


# --------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------


def _check_offsets(offsets: Sequence[Sequence[int]], ndim: int) -> list[tuple[int, ...]]:
    out = []
    for o in offsets:
        o = tuple(int(v) for v in o)
        if len(o) != ndim or not any(o):
            raise ValueError(f"offset {o} must have {ndim} integers, not all zero")
        out.append(o)
    if not out:
        raise ValueError("need at least one offset")
    return out


def _pairs(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(src, dst)``: voxels ``p`` whose neighbour ``p + offset`` is inside, and those
    neighbours."""
    src = tuple(slice(max(-o, 0), max(n - max(o, 0), 0)) for n, o in zip(shape, offset))
    dst = tuple(slice(max(o, 0), max(n + min(o, 0), 0)) for n, o in zip(shape, offset))
    return src, dst


def affinities_from_labels(
    labels: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST
) -> np.ndarray:
    """Affinities of a label volume: 1 where ``p`` and ``p + offset`` share a non-zero ID.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x) (or any n-d shape matching the offsets)
        Dense IDs; 0 is background/boundary and never has affinity 1.
    offsets : sequence of int tuples
        One channel per offset; a neighbour outside the volume gives affinity 0.

    Returns
    -------
    ndarray of uint8, shape (len(offsets), *labels.shape)

    Examples
    --------
    >>> affinities_from_labels([[[1, 1], [0, 0]]], offsets=[(0, -1, 0), (0, 0, -1)]).tolist()
    [[[[0, 0], [0, 0]]], [[[0, 1], [0, 0]]]]
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
    offsets = _check_offsets(offsets, labels.ndim)
    out = np.zeros((len(offsets), *labels.shape), np.uint8)
    for k, o in enumerate(offsets):
        src, dst = _pairs(labels.shape, o)
        a, b = labels[src], labels[dst]
        out[(k, *src)] = (a == b) & (a != 0)
    return out


def valid_mask(shape: Sequence[int], *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """1 where the neighbour ``p + offset`` lies inside a volume of ``shape``, else 0.

    Examples
    --------
    >>> valid_mask((1, 1, 3), offsets=[(0, 0, -1)]).tolist()
    [[[[0, 1, 1]]]]
    """
    shape = tuple(int(s) for s in shape)
    offsets = _check_offsets(offsets, len(shape))
    out = np.zeros((len(offsets), *shape), np.uint8)
    for k, o in enumerate(offsets):
        src, _ = _pairs(shape, o)
        out[(k, *src)] = 1
    return out


def affinity_target(labels: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """The training target of a label crop: the affinities, then their validity mask.

    Returns float32 ``(2 K, *shape)``; :func:`neuroseg.train.loss_fn` reads a target with
    twice the network's channels as (target, mask), so edges leaving the crop do not count.
    """
    labels = np.asarray(labels)
    return np.concatenate(
        [affinities_from_labels(labels, offsets=offsets), valid_mask(labels.shape, offsets=offsets)]
    ).astype(np.float32)


# --------------------------------------------------------------------------------------------
# from affinities to segments
# --------------------------------------------------------------------------------------------


def _check_affinities(affs: npt.ArrayLike, offsets) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    affs = np.asarray(affs)
    if affs.ndim < 3:
        raise ValueError(f"affinities must be (channels, *spatial); got shape {affs.shape}")
    if not np.issubdtype(affs.dtype, np.floating) and not np.issubdtype(affs.dtype, np.integer):
        raise TypeError(f"affinities must be numbers; got dtype {affs.dtype}")
    if np.issubdtype(affs.dtype, np.floating) and not np.all(np.isfinite(affs)):
        raise ValueError("affinities contain NaN or infinite values")
    offsets = _check_offsets(offsets, affs.ndim - 1)
    if len(offsets) != affs.shape[0]:
        raise ValueError(f"{affs.shape[0]} affinity channels but {len(offsets)} offsets")
    return affs, offsets


def _nearest_channels(offsets: list[tuple[int, ...]], ndim: int) -> list[tuple[int, int]]:
    """For each axis, the channel of its unit offset and that offset's sign."""
    out = []
    for axis in range(ndim):
        for k, o in enumerate(offsets):
            if abs(o[axis]) == 1 and sum(abs(v) for v in o) == 1:
                out.append((k, o[axis]))
                break
        else:
            raise ValueError(f"no nearest-neighbour offset along axis {axis} in {offsets}")
    return out


def _relabel(labels: np.ndarray) -> np.ndarray:
    """IDs 1..N in order of first appearance in a C-order scan, as uint32."""
    flat = labels.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return (rank[inverse] + 1).astype(np.uint32).reshape(labels.shape)


def _dissolve_small(labels: np.ndarray, min_size: int, resolution) -> np.ndarray:
    """Segments below ``min_size`` voxels given to the nearest voxel of a larger one."""
    from scipy import ndimage

    labels = _relabel(labels)
    if min_size <= 1:
        return labels
    counts = np.bincount(labels.ravel())
    small = counts[labels] < min_size
    if not small.any() or small.all():
        return labels
    idx = ndimage.distance_transform_edt(
        small, sampling=resolution, return_distances=False, return_indices=True
    )
    return _relabel(labels[tuple(idx)])


def _check_min_size(min_size: int) -> int:
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer; got {min_size!r}")
    return int(min_size)


def connected_components(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]] = NEAREST,
    threshold: float = 0.5,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
) -> np.ndarray:
    """Segments: connected components of the nearest-neighbour edges with affinity > ``threshold``.

    Parameters
    ----------
    affs : array (K, z, y, x) (or (K, y, x))
        Affinities in [0, 1], one channel per offset; only the unit offsets are used.
    offsets : sequence of int tuples
        The offset of each channel; each axis needs one unit offset (-1 or +1).
    threshold : float
        An edge joins its two voxels when its affinity is above it.
    min_size : int
        Segments of fewer voxels are dissolved into the nearest larger one (0: keep all).
    resolution : sequence of float, optional
        Voxel size, for "nearest" in :paramref:`min_size` (default isotropic).

    Returns
    -------
    ndarray of uint32, IDs 1..N (every voxel belongs to a segment)

    Examples
    --------
    >>> affs = np.zeros((2, 2, 2)); affs[1, :, 1] = 0.9  # x-edges of both rows
    >>> connected_components(affs, offsets=[(-1, 0), (0, -1)]).tolist()
    [[1, 1], [2, 2]]
    """
    import cc3d

    affs, offsets = _check_affinities(affs, offsets)
    min_size = _check_min_size(min_size)
    spatial = affs.shape[1:]
    if len(spatial) not in (2, 3):
        raise ValueError(f"connected_components needs 2D or 3D affinities; got {len(spatial)}D")
    graph = np.zeros(spatial, np.uint8)
    # cc3d's bit for axis a: 1 << 2a towards +a, 1 << (2a + 1) towards -a
    for axis, (k, sign) in enumerate(_nearest_channels(offsets, len(spatial))):
        offset = tuple(sign if a == axis else 0 for a in range(len(spatial)))
        src, dst = _pairs(spatial, offset)
        edge = affs[(k, *src)] > threshold
        towards, back = (1 << (2 * axis + 1), 1 << (2 * axis)) if sign < 0 else (
            1 << (2 * axis), 1 << (2 * axis + 1))
        graph[src] |= np.where(edge, towards, 0).astype(np.uint8)
        graph[dst] |= np.where(edge, back, 0).astype(np.uint8)
    labels = cc3d.color_connectivity_graph(graph, connectivity=4 if len(spatial) == 2 else 6)
    return _dissolve_small(np.asarray(labels), min_size, resolution)


def mutex_watershed(
    affs: npt.ArrayLike,
    *,
    offsets: Sequence[Sequence[int]] = NEAREST,
    threshold: float = 0.5,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
    strides: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Segments by a mutex watershed over all offsets (:func:`mwatershed.agglom`).

    Every edge carries ``affinity - threshold``: positive edges join, negative ones forbid a
    join, and edges are taken in order of decreasing magnitude. ``strides`` (per offset)
    thin out the long-range edges (faster, less over-splitting). Other parameters as
    :func:`connected_components`.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2]]])
    >>> offs = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -2)]
    >>> mutex_watershed(affinities_from_labels(labels, offsets=offs), offsets=offs).tolist()
    [[[1, 1, 2, 2]]]
    """
    import mwatershed

    affs, offsets = _check_affinities(affs, offsets)
    min_size = _check_min_size(min_size)
    signed = np.asarray(affs, np.float64) - float(threshold)
    kwargs = {}
    if strides is not None:
        kwargs["strides"] = [list(map(int, s)) for s in strides]
    labels = np.array(mwatershed.agglom(signed, [list(o) for o in offsets], **kwargs), np.int64)
    # mwatershed labels every voxel it never joined to another with 0: each is its own segment
    alone = labels == 0
    labels[alone] = labels.max() + 1 + np.arange(int(alone.sum()))
    return _dissolve_small(labels, min_size, resolution)


def agglomerate(
    affs: npt.ArrayLike,
    *,
    method: str = "cc",
    threshold: float = 0.5,
    offsets: Sequence[Sequence[int]] = NEAREST,
    min_size: int = 0,
    resolution: Sequence[float] | None = None,
) -> np.ndarray:
    """Segments from affinities with the post-processing ``method`` (:data:`METHODS`)."""
    if method == "cc":
        fn = connected_components
    elif method == "mws":
        fn = mutex_watershed
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    return fn(affs, offsets=offsets, threshold=threshold, min_size=min_size, resolution=resolution)


def boundary_map(affs: npt.ArrayLike, *, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """1 - the mean nearest-neighbour affinity of each voxel (for display), float32."""
    affs, offsets = _check_affinities(affs, offsets)
    channels = [k for k, _ in _nearest_channels(offsets, affs.ndim - 1)]
    return (1.0 - affs[channels].astype(np.float32).mean(0)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------


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
    offsets = _check_offsets(offsets, 3)
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
        "resolution_nm": list(resolution),
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
    seed: int = 0,
    progress: bool = True,
) -> tuple[UNet, pd.DataFrame]:
    """Train an affinity network on ``(raw, gt)`` volumes (one pair or a list); write ``folder``.

    Volumes are normalised as a whole (percentiles 1 and 99.8) and must be at the network's
    voxel size. Targets are :func:`affinity_target` of each augmented crop (flips of every
    axis, rotations in y-x, elastic deformation in y-x with ``elastic = (alpha, sigma, p)``,
    intensity changes). The loss is class-balanced BCE by default: boundary and in-object
    edges weigh equally. Training runs with :func:`neuroseg.train.fit` (AdamW, cosine
    schedule), resumes a run in ``folder`` and keeps the weights of the lowest validation
    loss, which it returns with the history.
    """
    from .train import TrainConfig, fit

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
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, loss=loss, seed=seed
    )
    meta["crop"] = list(crop)
    history = fit(
        network, data, val_data, config=config, folder=folder, resume="if_compatible", meta=meta,
        progress=progress,
    )
    return load_model(folder), pd.DataFrame(history)


# --------------------------------------------------------------------------------------------
# prediction and the user call
# --------------------------------------------------------------------------------------------


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
    (:func:`neuroseg.inference.predict`).
    """
    from .inference import _check_volume, predict

    meta = _check_affinity_model(model)
    raw = _check_volume(raw)
    tile = tuple(int(t) for t in (tile or meta.get("tile") or raw.shape))
    if overlap is None:
        overlap = tuple(t // 4 for t in tile)
    image = normalize(np.asarray(raw, np.float32))[None].astype(np.float32)
    return predict(
        model, image, tile=tile, overlap=overlap, batch_size=batch_size, amp=amp,
        progress=progress,
    )


def _scale_factors(meta: dict, resolution: Sequence[float] | None) -> np.ndarray:
    model_res = meta.get("resolution_nm")
    if resolution is None or model_res is None:
        return np.ones(3)
    res = np.asarray([float(r) for r in resolution])
    if res.shape != (3,) or not np.all(res > 0):
        raise ValueError(f"resolution must be three positive numbers (z, y, x); got {resolution}")
    factors = res / np.asarray(model_res, float)  # > 1: volume coarser than the model
    if np.any(factors > 2.0) or np.any(factors < 0.5):
        warnings.warn(
            f"the volume's voxel size {tuple(res.tolist())} nm is far from the model's "
            f"{tuple(float(r) for r in model_res)} nm; it is resampled, but expect worse segments",
            stacklevel=3,
        )
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

    Returns
    -------
    ndarray of uint32, shape (z, y, x)
        Neuron IDs ``1..N`` (and the affinities with ``return_affinities``).
    """
    from scipy import ndimage

    from .inference import _check_volume

    meta = _check_affinity_model(model)
    raw = _check_volume(raw)
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
        model, volume, tile=tile, overlap=overlap, batch_size=batch_size, progress=progress
    )
    labels = agglomerate(
        affs, method=post["method"], threshold=float(post["threshold"]),
        min_size=int(post["min_size"]), offsets=meta["offsets"], resolution=meta.get("resolution_nm"),
    )
    if resample:
        zoom = [n / m for n, m in zip(raw.shape, labels.shape)]
        labels = _relabel(ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest"))
        if labels.shape != raw.shape:  # rounding of zoom: pad or cut to the input's shape
            labels = _fit_shape(labels, raw.shape)
    return (labels, affs) if return_affinities else labels


def _fit_shape(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    cut = labels[tuple(slice(0, s) for s in shape)]
    pad = [(0, s - c) for s, c in zip(shape, cut.shape)]
    return np.pad(cut, pad, mode="edge") if any(p for _, p in pad) else cut
