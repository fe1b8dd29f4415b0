"""Prediction with a trained U-Net: tiled over large images, and the user-facing calls.

- :func:`predict` — a network's output (probabilities) over an image or volume of any size,
  tile by tile with overlap; overlapping tiles are blended with a weight that falls off
  towards each tile's border, so seams do not show.
- :func:`segment_2d` — a user's own 2D image (grey or RGB, any integer or float dtype)
  to instance labels, with a nucleus model (foreground + contour outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import torch

from . import instances
from .loaders import normalize, to_grey
from .models import UNet


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _blend_window(shape: Sequence[int], overlap: Sequence[int]) -> np.ndarray:
    """Separable weights: 1 in the middle, ramping linearly to a small value over ``overlap``."""
    w = np.ones(tuple(shape), np.float32)
    for axis, (n, o) in enumerate(zip(shape, overlap)):
        if o <= 0:
            continue
        ramp = np.ones(n, np.float32)
        edge = np.linspace(1.0 / (o + 1), 1.0, o, endpoint=False, dtype=np.float32)
        ramp[:o] = edge
        ramp[n - o :] = edge[::-1]
        w *= ramp.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return w


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def predict(
    model: UNet,
    image: np.ndarray,
    *,
    tile: Sequence[int] | int | None = None,
    overlap: Sequence[int] | int = 32,
    batch_size: int = 4,
    activation: str = "sigmoid",
    amp: bool = True,
) -> np.ndarray:
    """Predict ``model`` over ``image`` of shape (C, *spatial), tile by tile.

    Parameters
    ----------
    model : UNet
        In eval mode (set here); its device is used.
    image : array (C, *spatial), float32, normalised as in training
    tile : tile shape (int for all axes); ``None``: the whole image in one pass
    overlap : overlap between neighbouring tiles, per axis
    activation : ``"sigmoid"``, ``"softmax"`` (over channels) or ``"none"``
    amp : bf16 autocast on CUDA

    Returns
    -------
    array (K, *spatial) float32

    Notes
    -----
    Each tile (and the whole image when ``tile`` is None) is padded by reflection up to a
    multiple of the network's required input size, and the padding is cut off again.
    """
    image = np.asarray(image, dtype=np.float32)
    ndim = model.config["ndim"]
    if image.ndim != ndim + 1:
        raise ValueError(f"expected an image of shape (C, *{ndim} spatial axes), got {image.shape}")
    if image.shape[0] != model.config["in_channels"]:
        raise ValueError(
            f"image has {image.shape[0]} channels, the model expects {model.config['in_channels']}"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    spatial = image.shape[1:]
    mult = model.required_multiple
    tile = spatial if tile is None else (tile,) * ndim if isinstance(tile, int) else tuple(tile)
    tile = tuple(min(t, s) for t, s in zip(tile, spatial))
    overlap = (overlap,) * ndim if isinstance(overlap, int) else tuple(overlap)
    overlap = tuple(min(o, t // 2) for o, t in zip(overlap, tile))
    padded_tile = tuple(int(np.ceil(t / m) * m) for t, m in zip(tile, mult))
    step = tuple(max(1, t - o) for t, o in zip(tile, overlap))
    corners = list(product(*[_starts(s, t, st) for s, t, st in zip(spatial, tile, step)]))
    window = _blend_window(tile, overlap)
    out = None
    weight = np.zeros(spatial, np.float32)
    device = _device_of(model)
    model.eval()
    autocast = torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"
    )
    with torch.no_grad(), autocast:
        for b in range(0, len(corners), batch_size):
            batch_corners = corners[b : b + batch_size]
            tiles = []
            for c in batch_corners:
                sl = tuple(slice(a, a + t) for a, t in zip(c, tile))
                piece = image[(slice(None), *sl)]
                pad = [(0, p - t) for p, t in zip(padded_tile, tile)]
                tiles.append(np.pad(piece, [(0, 0)] + pad, mode="reflect") if any(
                    p for _, p in pad) else piece)
            x = torch.from_numpy(np.stack(tiles)).to(device)
            y = model(x).float()
            if activation == "sigmoid":
                y = torch.sigmoid(y)
            elif activation == "softmax":
                y = torch.softmax(y, dim=1)
            elif activation != "none":
                raise ValueError(f"unknown activation {activation!r}")
            y = y.cpu().numpy()
            if out is None:
                out = np.zeros((y.shape[1], *spatial), np.float32)
            for c, pred in zip(batch_corners, y):
                sl = tuple(slice(a, a + t) for a, t in zip(c, tile))
                crop = pred[(slice(None), *tuple(slice(0, t) for t in tile))]
                out[(slice(None), *sl)] += crop * window
                weight[sl] += window
    return out / weight


def prepare_image(image: np.ndarray, *, channels: int = 1, invert: bool = False) -> np.ndarray:
    """A user's 2D image (grey or RGB, any dtype) to the (C, Y, X) float32 network input.

    ``invert`` flips the normalised intensities (for dark objects on a bright background, as
    in brightfield, when the model was trained on bright objects).
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8)
    if image.dtype.kind not in "uif":
        raise TypeError(f"image dtype {image.dtype} is not numeric")
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (3, 4):
        image = np.moveaxis(image, 0, -1)  # channel-first input
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if channels == 1:
        grey = normalize(to_grey(image))[None]
        return 1.0 - grey if invert else grey
    if image.ndim != 3 or image.shape[-1] < channels:
        raise ValueError(f"model expects {channels} channels, image has shape {image.shape}")
    return np.stack([normalize(image[..., c]) for c in range(channels)])


def segment_2d(
    model: UNet,
    image: np.ndarray,
    *,
    tile: int | None = 256,
    overlap: int = 32,
    return_probabilities: bool = False,
    invert: bool = False,
    **postprocess,
):
    """Segment a 2D image into instance labels with a trained model folder's network.

    Parameters
    ----------
    model : UNet
        From :func:`neuroseg.load_model`. Its ``meta["target"]`` says how probabilities
        become labels: ``"fg_contour"`` (nuclei, somata: seeded watershed on foreground minus
        contour, :func:`neuroseg.instances.labels_from_fg_contour`) or ``"boundaries"`` (EM:
        watershed on the boundary map, :func:`neuroseg.instances.labels_from_boundaries`).
        Post-processing defaults come from ``meta["postprocess"]`` and can be overridden by
        keyword. ``meta["input_scale"]`` (default 1) enlarges the image before the network,
        as in training; probabilities and labels come back at the image's own size.
    image : array (Y, X) or (Y, X, 3|4)
        Any integer or float dtype; normalised by percentiles.
    tile, overlap : tiled prediction for images larger than ``tile``.
    invert : bool
        Dark nuclei on a bright background (brightfield): invert before predicting, as the
        training data preparation does (:func:`neuroseg.nuclei.load_part`).

    Returns
    -------
    labels : uint32 array (Y, X), 0 = background
    (labels, probabilities) if ``return_probabilities``
    """
    from .resample import resample_image

    meta = getattr(model, "meta", {}) or {}
    target = meta.get("target", "fg_contour")
    if target not in ("fg_contour", "boundaries"):
        raise ValueError(
            f"segment_2d needs a foreground/contour or boundary model, this one predicts {target!r}"
        )
    x = prepare_image(image, channels=model.config["in_channels"], invert=invert)
    scale = float(meta.get("input_scale", 1.0))
    if scale != 1.0:
        size = x.shape[1:]
        x = np.stack([resample_image(c, pixel_size=1.0, target_pixel_size=1.0 / scale) for c in x])
    prob = predict(model, x, tile=None if tile is None else (tile, tile), overlap=overlap)
    if scale != 1.0:
        prob = np.stack(
            [resample_image(c, pixel_size=1.0 / scale, target_pixel_size=1.0, shape=size) for c in prob]
        )
        prob = np.clip(prob, 0.0, 1.0)
    options = dict(meta.get("postprocess", {}))
    options.update(postprocess)
    if target == "fg_contour":
        labels = instances.labels_from_fg_contour(prob[0], prob[1], **options)
    else:
        labels = instances.labels_from_boundaries(prob[0], **options)
    return (labels, prob) if return_probabilities else labels
