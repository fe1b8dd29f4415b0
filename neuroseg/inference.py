"""Prediction with a trained U-Net: tiled over large images, and the user-facing calls.

- :func:`predict` — a network's output (probabilities) over an image or volume of any size,
  tile by tile with overlap; overlapping tiles are blended with a weight that falls off
  towards each tile's border, so seams do not show.
- :func:`segment_2d` — a user's own 2D image (grey or RGB, any integer or float dtype)
  to instance labels, with a nucleus model (foreground + contour outputs).
- :func:`segment_volume_2d` — a 3D EM volume the 2D way: boundaries of all slices (batched,
  :func:`predict_stack`), 2D segments per slice, then linking across z
  (:func:`neuroseg.linking.link_slices`, e.g. with a learned linker).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import numpy.typing as npt
import torch
from tqdm.auto import tqdm

from . import instances
from .loaders import normalize, to_grey
from .models import UNet


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
    if stack.shape[1] != model.config["in_channels"]:
        raise ValueError(
            f"stack has {stack.shape[1]} channels, the model expects {model.config['in_channels']}"
        )
    if not np.all(np.isfinite(stack)):
        raise ValueError("stack contains NaN or infinite values")
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
            if any(p for _, p in pad):
                x = np.pad(x, [(0, 0), (0, 0), *pad], mode="reflect")
            y = model(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float()
            out[b : b + batch_size] = _activate(y, activation).cpu().numpy()[:, :, : spatial[0], : spatial[1]]
            bar.update(len(x))
    bar.close()
    return out


def _check_volume(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ValueError(f"raw must be a (z, y, x) volume; got shape {raw.shape}")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise TypeError(f"raw must hold numbers; got dtype {raw.dtype}")
    if min(raw.shape) == 0:
        raise ValueError(f"raw is empty (shape {raw.shape})")
    if np.issubdtype(raw.dtype, np.floating) and not np.all(np.isfinite(raw)):
        raise ValueError("raw contains NaN or infinite values")
    return raw


def _xy_scale(model: UNet, resolution: Sequence[float] | None) -> float:
    """Model pixel size / volume pixel size (1.0 when either is unknown)."""
    pixel_nm = (getattr(model, "meta", {}) or {}).get("pixel_nm")
    if resolution is None or pixel_nm is None:
        return 1.0
    res = [float(r) for r in resolution]
    if len(res) != 3 or min(res) <= 0:
        raise ValueError(f"resolution must be three positive numbers (z, y, x); got {resolution}")
    if abs(res[1] - res[2]) > 1e-6 * res[1]:
        raise ValueError(f"resolution must be isotropic in y and x; got {resolution}")
    return float(pixel_nm) / res[1]


def slices_at_model_scale(
    model: UNet, slices: np.ndarray, *, resolution: Sequence[float] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Normalise each slice (percentiles 1 and 99.8) and resample it to the model's pixel size.

    Returns the (N, Y', X') float32 stack and the original (Y, X), for
    :func:`back_to_volume_scale`.
    """
    from .resample import resample_image

    slices = np.asarray(slices)
    size = tuple(int(s) for s in slices.shape[-2:])
    scale = _xy_scale(model, resolution)
    out = []
    for s in slices:
        image = np.asarray(s, np.float32)
        if abs(scale - 1.0) > 1e-6:
            image = resample_image(image, pixel_size=1.0, target_pixel_size=scale)
        out.append(normalize(image))
    return np.stack(out).astype(np.float32), size


def back_to_volume_scale(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample (N, K, Y', X') probabilities back to the volume's (Y, X); clipped to [0, 1]."""
    from .resample import resample_image

    if tuple(prob.shape[-2:]) == tuple(size):
        return prob
    out = np.stack(
        [
            np.stack([resample_image(c, pixel_size=1.0, target_pixel_size=1.0, shape=size) for c in p])
            for p in prob
        ]
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def boundaries_2d(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """Boundary probabilities of every slice of a (z, y, x) EM volume, slices batched.

    Each slice is normalised on its own and resampled to the model's pixel size (its
    ``meta["pixel_nm"]``, when ``resolution`` gives the volume's; in nm) as in training; the
    probabilities come back at the volume's own size, shape (z, y, x) float32.
    """
    raw = _check_volume(raw)
    _check_boundary_model(model)
    x, size = slices_at_model_scale(model, raw, resolution=resolution)
    prob = predict_stack(model, x[:, None], batch_size=batch_size, progress=progress)
    return back_to_volume_scale(prob, size)[:, 0]


def _check_boundary_model(model: UNet) -> None:
    target = (getattr(model, "meta", {}) or {}).get("target")
    if target != "boundaries" or model.config["ndim"] != 2:
        raise ValueError(
            f"the 2D route needs a 2D boundary model (meta target 'boundaries', e.g. "
            f"artifacts/<profile>/models/em_boundary_unet); this one predicts {target!r}"
        )


def segments_2d(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    **postprocess,
) -> np.ndarray:
    """2D segments of every slice of a volume (the first half of the 2D route).

    :func:`boundaries_2d`, then :func:`neuroseg.instances.labels_from_boundaries_stack` with
    the model's stored post-processing (``meta["postprocess"]``), overridable by keyword.
    Returns uint32 (z, y, x) labels, unique over the volume, nothing linked across z.
    """
    prob = boundaries_2d(model, raw, resolution=resolution, batch_size=batch_size, progress=progress)
    options = dict(model.meta.get("postprocess", {}))
    options.update(postprocess)
    return instances.labels_from_boundaries_stack(prob, **options)


def segment_volume_2d(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    linker=None,
    method: str | None = None,
    threshold: float | None = None,
    resolution: Sequence[float] | None = None,
    max_gap: int = 1,
    batch_size: int = 8,
    return_result: bool = False,
    progress: bool = False,
    **postprocess,
):
    """Segment a 3D EM volume the 2D way: boundaries per slice, 2D segments, linking in z.

    Parameters
    ----------
    model : UNet
        A 2D boundary model folder's network (:func:`neuroseg.load_model`), e.g.
        ``artifacts/<profile>/models/em_boundary_unet``.
    raw : array_like, shape (z, y, x)
        The EM volume (any integer or float dtype; NaN refused). Not modified.
    linker : neuroseg.linker.AffinityLinker, optional
        A learned linker (:func:`neuroseg.linking.load_linker`). With it the default method
        is ``"learned"`` and the default threshold is the linker's, calibrated for the
        volume's z spacing (``resolution[0]``) on predicted segments.
    method : {"overlap", "hungarian", "graph", "learned"}, optional
        Default ``"learned"`` with a linker, else ``"overlap"``.
    threshold : float, optional
        Link threshold (default: the linker's calibrated one, else 0.25).
    resolution : sequence of 3 float, optional
        (z, y, x) voxel size in nm. Slices are resampled to the model's pixel size, and the
        linker picks its calibration for this z spacing.
    max_gap : int, optional
        Largest slice distance of a link.
    return_result : bool, optional
        Return the :class:`neuroseg.linking.LinkResult` (3D labels and link table) instead
        of the labels alone.
    **postprocess
        Overrides of the model's 2D post-processing (``threshold`` of the watershed seeds is
        spelled ``seed_threshold`` here), e.g. ``seed_distance=2.0``.

    Returns
    -------
    ndarray of uint32, shape (z, y, x)
        3D neuron IDs ``1..N`` (or the LinkResult, see ``return_result``).
    """
    from .linking import link_slices

    if "seed_threshold" in postprocess:
        postprocess["threshold"] = postprocess.pop("seed_threshold")
    labels2d = segments_2d(
        model, raw, resolution=resolution, batch_size=batch_size, progress=progress, **postprocess
    )
    if method is None:
        method = "learned" if linker is not None else "overlap"
    if method == "learned" and linker is not None:
        linker = linker.calibrated_for(resolution, segments="predicted")
        if threshold is None:
            threshold = linker.threshold
    if threshold is None:
        threshold = 0.25
    result = link_slices(
        labels2d,
        raw=raw,
        method=method,
        threshold=threshold,
        linker=linker if method == "learned" else None,
        max_gap=max_gap,
        resolution=resolution,
    )
    return result if return_result else result.labels
