"""Prediction at the model's pixel size: resample in, predict, resample the output back.

A model is trained at one pixel size and stores it in its folder's ``meta`` under one key,
:data:`PIXEL_SIZE_KEY`::

    meta["pixel_size"] = {"size": [10.0, 10.0], "unit": "nm"}     # one value per spatial axis

``unit`` is ``"nm"``, ``"um"`` or ``"px"``. ``"px"`` is a size relative to the images the
model was made for, which carry no physical pixel size (DSB nuclei, neurofinder tiles):
``size`` 0.5 means the network sees every image enlarged twice.

Folders written before this key existed still load: :func:`model_pixel_size` reads their
older keys (``input_scale``, a factor: ``1 / input_scale`` px; ``pixel_nm`` and
``pixel_size_um``, square pixels; ``resolution_nm``, 3D voxels), and :func:`canonical_meta`
turns such a ``meta`` into today's, which is how a training run recorded under an old key
is still recognised as the same run.

:func:`predict_at_model_scale` is the one place that resamples an image to the model's pixel
size, predicts it (:func:`neuroseg.nets.predict.predict`) and brings the output back to the
image's own grid; :func:`to_model_scale` and :func:`from_model_scale` are its two halves for
callers that batch the prediction themselves.

Examples
--------
>>> model_pixel_size({"pixel_nm": 10.0})
PixelSize(size=(10.0, 10.0), unit='nm')
>>> canonical_meta({"target": "classes", "pixel_size_um": 0.1})
{'target': 'classes', 'pixel_size': {'size': [0.1, 0.1], 'unit': 'um'}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroseg.checks import check_resolution, check_scale_ratio, warn_missing_pixel_size
from neuroseg.data.images import normalize
from neuroseg.data.resample import resample_image
from neuroseg.nets.predict import predict
from neuroseg.nets.unet import UNet

__all__ = [
    "PIXEL_SIZE_KEY",
    "PixelSize",
    "canonical_meta",
    "from_model_scale",
    "model_pixel_size",
    "pixel_size_meta",
    "predict_at_model_scale",
    "to_model_scale",
]

#: The one ``meta`` key holding a model's pixel size.
PIXEL_SIZE_KEY = "pixel_size"
UNITS = ("nm", "um", "px")
_LEGACY_KEYS = ("input_scale", "pixel_nm", "pixel_size_um", "resolution_nm")


@dataclass(frozen=True)
class PixelSize:
    """A model's pixel size: one value per spatial axis, and the unit."""

    size: tuple[float, ...]
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"pixel size unit must be one of {UNITS}; got {self.unit!r}")
        if not self.size or not all(math.isfinite(s) and s > 0 for s in self.size):
            raise ValueError(f"pixel size must be positive, finite numbers; got {self.size}")


def pixel_size_meta(size: float | Sequence[float], unit: str, *, ndim: int = 2) -> dict:
    """The ``meta`` entry for a model trained at ``size`` (a number: square pixels)."""
    sizes = [float(size)] * ndim if isinstance(size, int | float) else [float(s) for s in size]
    PixelSize(tuple(sizes), unit)  # validates
    return {PIXEL_SIZE_KEY: {"size": sizes, "unit": unit}}


def _legacy(meta: Mapping[str, Any]) -> dict | None:
    if meta.get("resolution_nm") is not None:
        return pixel_size_meta(meta["resolution_nm"], "nm")
    if meta.get("pixel_size_um") is not None:
        return pixel_size_meta(meta["pixel_size_um"], "um")
    if meta.get("pixel_nm") is not None:
        return pixel_size_meta(meta["pixel_nm"], "nm")
    if meta.get("input_scale") is not None:
        return pixel_size_meta(1.0 / float(meta["input_scale"]), "px")
    return None


def canonical_meta(meta: Mapping[str, Any]) -> dict:
    """``meta`` with an older pixel-size key replaced by :data:`PIXEL_SIZE_KEY`."""
    out = {k: v for k, v in meta.items() if k not in _LEGACY_KEYS}
    if PIXEL_SIZE_KEY not in meta:
        out.update(_legacy(meta) or {})
    return out


def model_pixel_size(model_or_meta: Any) -> PixelSize | None:
    """The pixel size a model was trained at (from its ``meta``), or None when it has none."""
    meta = model_or_meta if isinstance(model_or_meta, Mapping) else (
        getattr(model_or_meta, "meta", None) or {})
    entry = canonical_meta(meta).get(PIXEL_SIZE_KEY)
    if entry is None:
        return None
    return PixelSize(tuple(float(s) for s in entry["size"]), str(entry["unit"]))


def _image_sizes(pixel_size: float | Sequence[float], model: PixelSize, ndim: int) -> tuple[float, ...]:
    """The image's pixel size per spatial axis (a number: square pixels), checked."""
    if len(model.size) < ndim:
        raise ValueError(f"the model's pixel size {model.size} does not cover {ndim} spatial axes")
    sizes = (pixel_size,) * ndim if isinstance(pixel_size, int | float) else pixel_size
    return check_resolution(sizes, n=ndim, name="pixel_size")


def to_model_scale(
    image: np.ndarray, *, pixel_size: float | Sequence[float], model: PixelSize | None
) -> np.ndarray:
    """Resample every channel of a (C, Y, X) image from ``pixel_size`` to the model's.

    Unchanged when the model has no pixel size or the two agree (relative 1e-6).
    """
    image = np.asarray(image)
    if model is None:
        return image
    (py, px), (my, mx) = _image_sizes(pixel_size, model, 2), model.size[-2:]
    if py != px or my != mx:
        raise ValueError("only square pixels are resampled in 2D")
    if math.isclose(px, mx, rel_tol=1e-6):
        return image
    return np.stack([resample_image(c, pixel_size=px, target_pixel_size=mx) for c in image])


def from_model_scale(
    output: np.ndarray,
    *,
    shape: Sequence[int],
    pixel_size: float | Sequence[float],
    model: PixelSize | None,
) -> np.ndarray:
    """Resample a (K, Y', X') output at the model's pixel size back to the image's (Y, X)
    ``shape``, clipped to [0, 1] (outputs are probabilities). Unchanged when no resampling
    happened on the way in."""
    output = np.asarray(output)
    if model is None or tuple(output.shape[-2:]) == tuple(shape):
        return output
    px, mx = _image_sizes(pixel_size, model, 2)[-1], model.size[-1]
    back = np.stack(
        [resample_image(c, pixel_size=mx, target_pixel_size=px, shape=tuple(shape)) for c in output]
    )
    return np.clip(back, 0.0, 1.0)


def predict_at_model_scale(
    model,
    image: np.ndarray,
    *,
    pixel_size: float | Sequence[float] | None = None,
    **predict_options,
) -> np.ndarray:
    """Predict a (C, Y, X) image at the model's pixel size; the output on the image's grid.

    ``pixel_size`` is the image's, in the unit of the model's (:func:`model_pixel_size`); for
    a model in ``"px"`` it defaults to 1 (the image is as the model's own data were). Without
    a model pixel size, or without ``pixel_size`` for a physical unit, the image is predicted
    as it is. ``predict_options`` go to :func:`neuroseg.nets.predict.predict`.

    Examples
    --------
    >>> from neuroseg.nets.unet import UNet
    >>> net = UNet(ndim=2, out_channels=2, depth=2, base_features=4)
    >>> net.meta = pixel_size_meta(0.5, "px")          # trained on images enlarged twice
    >>> predict_at_model_scale(net, np.zeros((1, 30, 20), np.float32)).shape
    (2, 30, 20)
    """
    image = np.asarray(image, np.float32)
    model_px = model_pixel_size(model)
    if model_px is not None and pixel_size is None:
        if model_px.unit != "px":
            model_px = None
        else:
            pixel_size = 1.0
    shape = image.shape[1:]
    x = to_model_scale(image, pixel_size=pixel_size, model=model_px)
    out = predict(model, x, **predict_options)
    return from_model_scale(out, shape=shape, pixel_size=pixel_size, model=model_px)


def _xy_scale(model: UNet, resolution: Sequence[float] | None) -> float:
    """Model pixel size / volume pixel size (1.0 when either is unknown)."""
    model_px = model_pixel_size(model)
    if model_px is None:
        return 1.0
    if resolution is None:
        warn_missing_pixel_size(f"{model_px.size[-1]:g} {model_px.unit} pixels")
        return 1.0
    if model_px.unit != "nm":
        raise ValueError(f"a volume's resolution is in nm; this model's pixel size is in {model_px.unit}")
    pixel_nm = model_px.size[-1]
    res = check_resolution(resolution)
    if abs(res[1] - res[2]) > 1e-6 * res[1]:
        raise ValueError(f"resolution must be isotropic in y and x; got {resolution}")
    check_scale_ratio(res[1] / pixel_nm, what=f"the volume's pixel size {res[1]:g} nm",
                      reference=f"the model's {pixel_nm:g} nm")
    return float(pixel_nm) / res[1]


def slice_percentiles(slices: np.ndarray, *, pmin: float = 1.0, pmax: float = 99.8,
                      max_pixels: int = 1_000_000) -> np.ndarray:
    """The (pmin, pmax) percentiles of each slice of a (z, y, x) stack, shape (z, 2) float64,
    from every k-th pixel of a slice larger than ``max_pixels``; for
    :func:`slices_at_model_scale`'s ``percentiles`` when the slices are parts (blocks) of
    larger ones.

    Examples
    --------
    >>> slice_percentiles(np.arange(8.0).reshape(2, 2, 2), pmin=0, pmax=100).tolist()
    [[0.0, 3.0], [4.0, 7.0]]
    """
    slices = np.asarray(slices)
    if slices.ndim != 3:
        raise ValueError(f"slices must be a (z, y, x) stack; got shape {slices.shape}")
    step = max(1, int(np.ceil(np.sqrt(slices.shape[1] * slices.shape[2] / max_pixels))))
    out = np.empty((slices.shape[0], 2))
    for z, s in enumerate(slices):
        sample = np.asarray(s[::step, ::step], np.float64)
        if not np.all(np.isfinite(sample)):
            raise ValueError(f"slice {z} contains NaN or infinite values")
        out[z] = np.percentile(sample, [pmin, pmax])
    return out


def slices_at_model_scale(
    model: UNet, slices: np.ndarray, *, resolution: Sequence[float] | None = None,
    percentiles: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Normalise each slice (percentiles 1 and 99.8) and resample it to the model's pixel size.

    ``percentiles`` (shape (N, 2)) replaces each slice's own: a block of a slice is then
    normalised as the whole slice would be (:func:`slice_percentiles` of the whole slices).
    Returns the (N, Y', X') float32 stack and the original (Y, X), for
    :func:`back_to_volume_scale`.
    """
    from neuroseg.data.resample import resample_image

    slices = np.asarray(slices)
    size = tuple(int(s) for s in slices.shape[-2:])
    scale = _xy_scale(model, resolution)
    if percentiles is not None:
        percentiles = np.asarray(percentiles, np.float64)
        if percentiles.shape != (len(slices), 2) or not np.all(np.isfinite(percentiles)):
            raise ValueError(f"percentiles must be finite, shape ({len(slices)}, 2): one (low, high) "
                             f"pair per slice; got shape {percentiles.shape}")
    out = []
    for k, s in enumerate(slices):
        image = np.asarray(s, np.float32)
        if abs(scale - 1.0) > 1e-6:
            image = resample_image(image, pixel_size=1.0, target_pixel_size=scale)
        if percentiles is None:
            out.append(normalize(image))
        else:
            lo, hi = percentiles[k]
            out.append(((image - lo) / max(hi - lo, 1e-6)).astype(np.float32))
    return np.stack(out).astype(np.float32), size


def back_to_volume_scale(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample (N, K, Y', X') probabilities back to the volume's (Y, X); clipped to [0, 1]."""
    from neuroseg.data.resample import resample_image

    if tuple(prob.shape[-2:]) == tuple(size):
        return prob
    out = np.stack(
        [
            np.stack([resample_image(c, pixel_size=1.0, target_pixel_size=1.0, shape=size) for c in p])
            for p in prob
        ]
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)
