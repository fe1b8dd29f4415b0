"""Prediction with a trained U-Net over an image, a volume or a stack of slices.

- :func:`predict` — a network's output (probabilities) over an image or volume of any size,
  tile by tile with overlap; overlapping tiles are blended with a weight that falls off
  towards each tile's border, so seams do not show.
- :func:`predict_stack` — a 2D network over a stack of slices, whole slices batched.

At the model's pixel size: :mod:`neuroseg.nets.scale`. From outputs to segments:
:mod:`neuroseg.segment`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
from tqdm.auto import tqdm

from neuroseg.nets.unet import UNet


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _activate(y: torch.Tensor, activation: str) -> torch.Tensor:
    """``"sigmoid"``, ``"softmax"`` (over channels) or ``"none"`` on network outputs."""
    if activation == "sigmoid":
        return torch.sigmoid(y)
    if activation == "softmax":
        return torch.softmax(y, dim=1)
    if activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    return y


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


def on_device(model: UNet, device: str | torch.device | None = None) -> UNet:
    """``model`` on ``device`` ("cpu", "cuda", "cuda:1"; None: CUDA when there is a GPU, else
    the CPU). A model elsewhere is copied there; the one passed in is left where it was."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}") from err
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no GPU here; use 'cpu'")
    if target.type == "cuda" and (target.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                         "cuda:0 upwards; use one of them or 'cpu'")
    if _device_of(model) == target or (target.type == "cuda" and target.index is None
                                       and _device_of(model).type == "cuda"):
        return model
    return copy.deepcopy(model).to(target)  # the copy keeps the model's meta


def _check_input(x: np.ndarray, model: UNet, name: str, *, channel_axis: int) -> None:
    """The network input has the model's channels and only finite values."""
    if x.shape[channel_axis] != model.config["in_channels"]:
        raise ValueError(f"{name} has {x.shape[channel_axis]} channels, the model expects "
                         f"{model.config['in_channels']}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")


def _per_axis(value, ndim: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial axis, each at least ``minimum``; else a clear error."""
    values = (value,) * ndim if isinstance(value, int | np.integer) else tuple(value)
    what = "positive" if minimum >= 1 else f">= {minimum}"
    if len(values) != ndim or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= minimum
            for v in values):
        raise ValueError(f"{name} must be one int or {ndim} ints, each {what}; got {value!r}")
    return tuple(int(v) for v in values)


def predict(
    model: UNet,
    image: np.ndarray,
    *,
    tile: Sequence[int] | int | None = None,
    overlap: Sequence[int] | int = 32,
    batch_size: int = 4,
    activation: str = "sigmoid",
    amp: bool = True,
    progress: bool = False,
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
    progress : show a progress bar over the tiles

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
    _check_input(image, model, "image", channel_axis=0)
    spatial = image.shape[1:]
    mult = model.required_multiple
    tile = spatial if tile is None else _per_axis(tile, ndim, "tile", minimum=1)
    tile = tuple(min(t, s) for t, s in zip(tile, spatial))
    overlap = _per_axis(overlap, ndim, "overlap", minimum=0)
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
        for b in tqdm(range(0, len(corners), batch_size), desc="tiles", disable=not progress):
            batch_corners = corners[b : b + batch_size]
            tiles = []
            for c in batch_corners:
                sl = tuple(slice(a, a + t) for a, t in zip(c, tile))
                piece = image[(slice(None), *sl)]
                pad = [(0, p - t) for p, t in zip(padded_tile, tile)]
                tiles.append(np.pad(piece, [(0, 0)] + pad, mode="reflect") if any(
                    p for _, p in pad) else piece)
            x = torch.from_numpy(np.stack(tiles)).to(device)
            y = _activate(model(x).float(), activation).cpu().numpy()
            if out is None:
                out = np.zeros((y.shape[1], *spatial), np.float32)
            for c, pred in zip(batch_corners, y):
                sl = tuple(slice(a, a + t) for a, t in zip(c, tile))
                crop = pred[(slice(None), *tuple(slice(0, t) for t in tile))]
                out[(slice(None), *sl)] += crop * window
                weight[sl] += window
    return out / weight


# --------------------------------------------------------------------------------------------
# volumes, slice by slice
# --------------------------------------------------------------------------------------------


def predict_stack(
    model: UNet,
    stack: np.ndarray,
    *,
    batch_size: int = 8,
    tile: int = 512,
    overlap: int = 32,
    activation: str = "sigmoid",
    progress: bool = False,
) -> np.ndarray:
    """Predict a 2D ``model`` over a stack of inputs (N, C, Y, X), whole slices batched.

    Slices no larger than ``tile`` go through the network ``batch_size`` at a time (padded by
    reflection to the size the network needs); larger slices are predicted one by one, tiled
    with :func:`predict`.

    Returns
    -------
    array (N, K, Y, X) float32
    """
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim != 4:
        raise ValueError(f"expected a stack of shape (N, C, Y, X), got {stack.shape}")
    _check_input(stack, model, "stack", channel_axis=1)
    n, _, *spatial = stack.shape
    bar = tqdm(total=n, desc="predict", unit="slice", disable=not progress, leave=False)
    if max(spatial) > tile:
        out = []
        for x in stack:
            out.append(predict(model, x, tile=tile, overlap=overlap, activation=activation))
            bar.update(1)
        bar.close()
        return np.stack(out) if out else np.zeros((0, model.config["out_channels"], *spatial), np.float32)
    mult = model.required_multiple
    pad = [(0, int(np.ceil(s / m) * m) - s) for s, m in zip(spatial, mult)]
    device = _device_of(model)
    model.eval()
    out = np.zeros((n, model.config["out_channels"], *spatial), np.float32)
    with torch.no_grad():
        for b in range(0, n, batch_size):
            x = stack[b : b + batch_size]
            k = len(x)
            if k < batch_size:  # a short last batch is filled up: outputs must not depend on batch size
                x = np.concatenate([x, np.zeros((batch_size - k, *x.shape[1:]), x.dtype)])
            if any(p for _, p in pad):
                x = np.pad(x, [(0, 0), (0, 0), *pad], mode="reflect")
            y = model(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float()
            out[b : b + k] = _activate(y, activation).cpu().numpy()[:k, :, : spatial[0], : spatial[1]]
            bar.update(k)
    bar.close()
    return out


