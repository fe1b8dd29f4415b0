"""Data augmentation for microscopy images with (instance) label images.

Conventions shared by every function here:

- ``image`` is a floating-point array of shape ``(C, *spatial)`` or ``(*spatial)``; in the
  second case it is treated as one channel and returned in the same shape.
- ``labels`` is an integer (or bool) array of shape ``spatial``, a tuple/list of such arrays
  (several targets, all transformed identically and returned in a container of the same
  type), or None.
- The spatial dimensionality (2 or 3) comes from ``labels`` when given, else from the keyword
  ``ndim``; without either, a 2-D image is 2D and a 4-D image is ``(C, Z, Y, X)``, and a 3-D
  image is ambiguous (``ndim`` is then required).
- Randomness comes only from the ``rng`` argument (a :class:`numpy.random.Generator`): the
  same generator state gives the same result.
- Inputs are never modified; outputs are new C-contiguous arrays with the input dtypes.
- Geometric transforms resample labels with nearest-neighbour lookup, so no new label
  values appear and instance IDs are kept.

- :func:`random_flip_rotate` — random mirroring and 90° rotations.
- :func:`elastic_deform` — Simard-style smooth random elastic deformation.
- :func:`random_intensity` — random blur, contrast, brightness, gamma and noise.
- :class:`Augmenter` — the three above, configurable and applied in that order.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["Augmenter", "elastic_deform", "random_flip_rotate", "random_intensity"]

Labels = NDArray[Any] | tuple[NDArray[Any], ...] | list[NDArray[Any]]
Range = tuple[float, float] | None


# --------------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------------


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _split_labels(labels: Labels | None) -> tuple[list[np.ndarray], type | None]:
    """Labels as a list of arrays plus the container type to return (None for one array)."""
    if labels is None:
        return [], None
    if isinstance(labels, np.ndarray):
        arrays, container = [labels], None
    elif isinstance(labels, tuple | list):
        if not labels:
            raise ValueError("labels is an empty sequence; pass None for no labels")
        arrays, container = list(labels), type(labels)
    else:
        raise TypeError(
            "labels must be a numpy array, a tuple/list of arrays, or None, "
            f"got {type(labels).__name__}"
        )
    for index, array in enumerate(arrays):
        name = "labels" if container is None else f"labels[{index}]"
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise TypeError(f"{name} must have an integer or bool dtype, got {array.dtype}")
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"all label arrays must have the same shape; labels[0] has {arrays[0].shape}, "
                f"{name} has {array.shape}"
            )
    return arrays, container


def _restore_labels(arrays: list[np.ndarray], container: type | None) -> Labels | None:
    if not arrays:
        return None
    if container is None:
        return arrays[0]
    return container(arrays)


def _prepare(
    image: Any, labels: Labels | None, ndim: int | None, *, float_image: bool
) -> tuple[np.ndarray, bool, list[np.ndarray], type | None, int]:
    """Validate inputs; return image as (C, *spatial), squeeze flag, labels, container, ndim."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if float_image and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"image must have a floating-point dtype (normalise it first), got {image.dtype}"
        )
    arrays, container = _split_labels(labels)
    if ndim is not None:
        if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral):
            raise TypeError(f"ndim must be 2 or 3, got {ndim!r}")
        ndim = int(ndim)
    if arrays:
        label_ndim = arrays[0].ndim
        if ndim is not None and ndim != label_ndim:
            raise ValueError(f"ndim={ndim} contradicts the labels' shape {arrays[0].shape}")
        ndim = label_ndim
    if ndim is None:
        if image.ndim == 2:
            ndim = 2
        elif image.ndim == 4:
            ndim = 3
        else:
            raise ValueError(
                f"cannot tell the spatial dimensionality of an image of shape {image.shape}: "
                "pass ndim=2 (channels first) or ndim=3 (one channel), or pass labels"
            )
    if ndim not in (2, 3):
        raise ValueError(f"spatial dimensionality must be 2 or 3, got {ndim}")
    if image.ndim == ndim:
        image_c, squeeze = image[np.newaxis], True
    elif image.ndim == ndim + 1:
        image_c, squeeze = image, False
    else:
        raise ValueError(
            f"image of shape {image.shape} does not fit {ndim}D data: expected (C, *spatial) "
            f"or (*spatial) with {ndim} spatial axes"
        )
    if arrays and image_c.shape[1:] != arrays[0].shape:
        raise ValueError(
            f"image spatial shape {image_c.shape[1:]} differs from labels shape {arrays[0].shape}"
        )
    return image_c, squeeze, arrays, container, ndim


def _resolve_axes(axes: Any, ndim: int, name: str = "axes") -> tuple[int, ...]:
    if isinstance(axes, numbers.Integral) and not isinstance(axes, bool):
        axes = (axes,)
    if not isinstance(axes, Sequence) or isinstance(axes, str):
        raise TypeError(f"{name} must be a sequence of spatial axis indices, got {axes!r}")
    resolved = []
    for axis in axes:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"{name} must hold integers, got {axis!r}")
        if not -ndim <= axis < ndim:
            raise ValueError(f"{name} entry {axis} is out of range for {ndim} spatial axes")
        resolved.append(int(axis) % ndim)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"{name} {tuple(axes)!r} names an axis twice")
    return tuple(sorted(resolved))


def _finish_image(image_c: np.ndarray, squeeze: bool, dtype: np.dtype) -> np.ndarray:
    out = image_c[0] if squeeze else image_c
    return np.array(out, dtype=dtype, order="C", copy=True)


def _check_range(name: str, value: Any, *, minimum: float | None = None, strict: bool = False):
    if value is None:
        return None
    if not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be a (low, high) pair or None, got {value!r}")
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(
            f"{name} must be a finite (low, high) pair with low <= high, got {value!r}"
        )
    if minimum is not None and (low < minimum or (strict and low == minimum)):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} values must be {relation} {minimum}, got {value!r}")
    return low, high


def _check_probability(name: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


# --------------------------------------------------------------------------------------------
# flips and rotations
# --------------------------------------------------------------------------------------------


def random_flip_rotate(
    image: NDArray[Any],
    labels: Labels | None = None,
    *,
    rng: np.random.Generator,
    axes: Sequence[int] = (-2, -1),
    rotate: bool = True,
    ndim: int | None = None,
) -> tuple[NDArray[Any], Labels | None]:
    """Randomly mirror along spatial ``axes`` and rotate by a multiple of 90°.

    Each axis in ``axes`` is flipped with probability 1/2. If ``rotate``, the last two spatial
    axes are rotated by k·90° with k uniform in {0, 1, 2, 3} when they have equal size, else
    k in {0, 2} (so the shape never changes). Image and labels get the same transform.

    Parameters
    ----------
    image : ndarray
        ``(C, *spatial)`` or ``(*spatial)``, any dtype.
    labels : ndarray or tuple/list of ndarray, optional
        Integer label image(s) of shape ``spatial``.
    rng : numpy.random.Generator
        Source of randomness.
    axes : sequence of int
        Spatial axes (negative counts from the end) that may be flipped.
    rotate : bool
        Whether to also rotate in the plane of the last two spatial axes.
    ndim : {2, 3}, optional
        Spatial dimensionality, needed only without labels for a 3-D image.

    Returns
    -------
    image, labels
        New C-contiguous arrays (``labels`` None if not given).

    Examples
    --------
    >>> img, lab = random_flip_rotate(np.zeros((1, 4, 4)), np.zeros((4, 4), int),
    ...                               rng=np.random.default_rng(0))
    >>> img.shape, lab.shape
    ((1, 4, 4), (4, 4))
    """
    rng = _check_rng(rng)
    image_c, squeeze, arrays, container, ndim = _prepare(image, labels, ndim, float_image=False)
    flip_axes = _resolve_axes(axes, ndim)
    spatial = image_c.shape[1:]
    flips = tuple(axis for axis in flip_axes if rng.random() < 0.5)
    k = 0
    if rotate:
        k = int(rng.integers(4)) if spatial[-2] == spatial[-1] else 2 * int(rng.integers(2))

    def transform(array: np.ndarray, offset: int) -> np.ndarray:
        if flips:
            array = np.flip(array, axis=tuple(axis + offset for axis in flips))
        if k:
            array = np.rot90(array, k, axes=(offset + ndim - 2, offset + ndim - 1))
        return array

    out_image = _finish_image(transform(image_c, 1), squeeze, image.dtype)
    out_labels = [np.array(transform(a, 0), order="C", copy=True) for a in arrays]
    return out_image, _restore_labels(out_labels, container)


# --------------------------------------------------------------------------------------------
# elastic deformation
# --------------------------------------------------------------------------------------------


def _reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Map integer indices into [0, size) by half-sample reflection (scipy's 'reflect')."""
    if size == 1:
        return np.zeros_like(index)
    index = np.mod(index, 2 * size)
    return np.where(index >= size, 2 * size - 1 - index, index)


def elastic_deform(
    image: NDArray[np.floating],
    labels: Labels | None = None,
    *,
    rng: np.random.Generator,
    alpha: float = 34.0,
    sigma: float | Sequence[float] = 4.0,
    axes: Sequence[int] | None = None,
    order: int = 1,
    ndim: int | None = None,
    scale: float = 1.0,
) -> tuple[NDArray[np.floating], Labels | None]:
    """Random smooth elastic deformation (Simard et al., 2003), optionally with a zoom.

    For each deformed axis a displacement field is drawn uniformly from (-1, 1) per pixel,
    smoothed with a Gaussian of standard deviation ``sigma`` pixels (zero outside the array)
    and scaled by ``alpha``. The image is resampled with spline interpolation of ``order``
    (mode ``"reflect"``), the labels with nearest-neighbour lookup (same reflection), so label
    values are only moved, never mixed or created.

    With ``axes`` a subset of the spatial axes (e.g. ``(1, 2)``, y-x of a z-y-x stack), the
    displacement along the other axes is zero and the field does not vary along them: every
    z-slice gets the same in-plane deformation, and structures stay aligned across slices.

    Parameters
    ----------
    image : ndarray
        Floating-point ``(C, *spatial)`` or ``(*spatial)``.
    labels : ndarray or tuple/list of ndarray, optional
        Integer label image(s) of shape ``spatial``.
    rng : numpy.random.Generator
        Source of randomness.
    alpha : float
        Displacement scale (pixels per unit of the smoothed noise).
    sigma : float or sequence of float
        Smoothing in pixels (> 0), one value or one per spatial axis.
    axes : sequence of int, optional
        Spatial axes to deform (default: all).
    order : int
        Spline order for the image, 0 to 5 (1 = linear).
    ndim : {2, 3}, optional
        Spatial dimensionality, needed only without labels for a 3-D image.
    scale : float
        Zoom about the centre along the deformed axes, applied with the same resampling:
        ``scale > 1`` magnifies (objects get larger), ``scale < 1`` shrinks (the border is
        filled by reflection). 1 (default) leaves the size alone.

    Returns
    -------
    image, labels
        New arrays with the input dtypes (``labels`` None if not given).

    Examples
    --------
    >>> lab = np.zeros((32, 32), np.uint16); lab[8:24, 8:24] = 5
    >>> img, out = elastic_deform(lab[None] / 5.0, lab, rng=np.random.default_rng(0))
    >>> img.shape, sorted(np.unique(out).tolist())
    ((1, 32, 32), [0, 5])
    """
    rng = _check_rng(rng)
    image_c, squeeze, arrays, container, ndim = _prepare(image, labels, ndim, float_image=True)
    deform_axes = _resolve_axes(tuple(range(ndim)) if axes is None else axes, ndim)
    if not deform_axes:
        raise ValueError("axes must name at least one spatial axis to deform")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        sigmas = (float(sigma),) * ndim
    elif isinstance(sigma, Sequence) and len(sigma) == ndim:
        sigmas = tuple(float(s) for s in sigma)
    else:
        raise ValueError(f"sigma must be a number or {ndim} numbers, got {sigma!r}")
    if not all(s > 0 and math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or not 0 <= order <= 5:
        raise ValueError(f"order must be an integer from 0 to 5, got {order!r}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (
        scale > 0 and math.isfinite(scale)
    ):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")

    spatial = image_c.shape[1:]
    field_shape = tuple(s if a in deform_axes else 1 for a, s in enumerate(spatial))
    field_sigma = tuple(sigmas[a] if a in deform_axes else 0.0 for a in range(ndim))
    coords = []
    for axis, size in enumerate(spatial):
        shape = [1] * ndim
        shape[axis] = size
        grid = np.arange(size, dtype=np.float64).reshape(shape)
        if axis in deform_axes and scale != 1.0:
            centre = (size - 1) / 2
            grid = centre + (grid - centre) / float(scale)
        if axis in deform_axes:
            noise = rng.uniform(-1.0, 1.0, size=field_shape)
            grid = grid + alpha * ndi.gaussian_filter(noise, field_sigma, mode="constant")
        coords.append(np.broadcast_to(grid, spatial))
    coordinates = np.stack(coords)

    work_dtype = image.dtype if image.dtype in (np.float32, np.float64) else np.float64
    out_image = np.empty(image_c.shape, dtype=work_dtype)
    for channel in range(image_c.shape[0]):
        ndi.map_coordinates(
            image_c[channel].astype(work_dtype, copy=False),
            coordinates,
            output=out_image[channel],
            order=order,
            mode="reflect",
        )

    out_labels = []
    if arrays:
        index = tuple(
            _reflect_index(np.floor(c + 0.5).astype(np.intp), size)
            for c, size in zip(coordinates, spatial, strict=True)
        )
        out_labels = [np.ascontiguousarray(a[index]) for a in arrays]
    return _finish_image(out_image, squeeze, image.dtype), _restore_labels(out_labels, container)


# --------------------------------------------------------------------------------------------
# intensity
# --------------------------------------------------------------------------------------------


def random_intensity(
    image: NDArray[np.floating],
    *,
    rng: np.random.Generator,
    blur_sigma: Range = (0.0, 1.0),
    contrast: Range = (0.75, 1.25),
    brightness: Range = (-0.1, 0.1),
    gamma: Range = (0.8, 1.25),
    noise_std: Range = (0.0, 0.05),
    p: float = 0.5,
    ndim: int | None = None,
) -> NDArray[np.floating]:
    """Random intensity changes for an image normalised roughly to [0, 1].

    In this order, each applied with probability ``p`` and with its value drawn uniformly from
    its ``(low, high)`` range (None disables it):

    1. Gaussian blur of std ``blur_sigma`` pixels over the spatial axes (channels not mixed);
    2. contrast: ``(x - mean) * c + mean`` per channel;
    3. brightness (or darkening): ``x + b``;
    4. gamma: ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g`` with lo, hi the channel's min
       and max (keeps the range, works for any offset);
    5. additive Gaussian noise of std ``noise_std``.

    Parameters
    ----------
    image : ndarray
        Floating-point ``(C, *spatial)`` or ``(*spatial)``.
    rng : numpy.random.Generator
        Source of randomness.
    blur_sigma, contrast, brightness, gamma, noise_std : (float, float) or None
        Ranges of the parameters.
    p : float
        Probability of applying each change.
    ndim : {2, 3}, optional
        Spatial dimensionality, needed only for a 3-D image (``(C, Y, X)`` or ``(Z, Y, X)``).

    Returns
    -------
    ndarray
        New array, same shape and dtype.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    >>> out = random_intensity(img, rng=np.random.default_rng(1), p=1.0)
    >>> out.shape, out.dtype
    ((16, 16), dtype('float32'))
    """
    rng = _check_rng(rng)
    image_c, squeeze, _, _, ndim = _prepare(image, None, ndim, float_image=True)
    blur_sigma = _check_range("blur_sigma", blur_sigma, minimum=0.0)
    contrast = _check_range("contrast", contrast, minimum=0.0)
    brightness = _check_range("brightness", brightness)
    gamma = _check_range("gamma", gamma, minimum=0.0, strict=True)
    noise_std = _check_range("noise_std", noise_std, minimum=0.0)
    p = _check_probability("p", p)

    x = image_c.astype(np.float64, copy=True)
    spatial_axes = tuple(range(1, ndim + 1))

    def draw(value_range: tuple[float, float] | None) -> float | None:
        if value_range is None or not rng.random() < p:
            return None
        return float(rng.uniform(*value_range))

    sigma = draw(blur_sigma)
    if sigma:
        x = ndi.gaussian_filter(x, (0.0,) + (sigma,) * ndim, mode="reflect")
    factor = draw(contrast)
    if factor is not None:
        mean = x.mean(axis=spatial_axes, keepdims=True)
        x = (x - mean) * factor + mean
    offset = draw(brightness)
    if offset is not None:
        x = x + offset
    exponent = draw(gamma)
    if exponent is not None:
        low = x.min(axis=spatial_axes, keepdims=True)
        span = x.max(axis=spatial_axes, keepdims=True) - low
        safe = np.where(span > 0, span, 1.0)
        x = np.where(span > 0, low + span * ((x - low) / safe) ** exponent, x)
    std = draw(noise_std)
    if std:
        x = x + rng.normal(0.0, std, size=x.shape)
    return _finish_image(x, squeeze, image.dtype)


# --------------------------------------------------------------------------------------------
# pipeline
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Augmenter:
    """Flip/rotate, elastic deformation and intensity changes, applied in that order.

    Parameters
    ----------
    elastic : bool
        Enable :func:`elastic_deform` (applied with probability ``elastic_p``).
    alpha, sigma : float
        Elastic deformation strength and smoothness (see :func:`elastic_deform`).
    elastic_p : float
        Probability of deforming a sample.
    flip_rotate : bool
        Enable :func:`random_flip_rotate`.
    intensity : bool
        Enable :func:`random_intensity` (default ranges; each change with ``intensity_p``).
    elastic_axes : tuple of int, optional
        Spatial axes to deform (default all; ``(1, 2)`` for in-plane only on z-y-x stacks).
    flip_axes : tuple of int
        Spatial axes that may be flipped.
    intensity_p : float
        Probability of each intensity change.
    scale_range : (float, float), optional
        Random zoom factor range, drawn log-uniformly per sample and applied with the
        elastic deformation (:func:`elastic_deform`'s ``scale``; a sample that is not
        deformed is only zoomed). ``None`` (default): no zoom, and no random draw.

    Examples
    --------
    >>> aug = Augmenter(elastic_p=1.0)
    >>> lab = np.zeros((32, 32), np.int32); lab[4:20, 6:30] = 3
    >>> img, out = aug(lab[None] / 3.0, lab, rng=np.random.default_rng(0))
    >>> img.shape, out.dtype
    ((1, 32, 32), dtype('int32'))
    """

    elastic: bool = True
    alpha: float = 34.0
    sigma: float = 4.0
    elastic_p: float = 0.5
    flip_rotate: bool = True
    intensity: bool = True
    elastic_axes: tuple[int, ...] | None = None
    flip_axes: tuple[int, ...] = (-2, -1)
    intensity_p: float = 0.5
    scale_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("elastic", "flip_rotate", "intensity"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        _check_probability("elastic_p", self.elastic_p)
        _check_probability("intensity_p", self.intensity_p)
        if (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, numbers.Real)
            or not (self.alpha >= 0)
        ):
            raise ValueError(f"alpha must be a non-negative number, got {self.alpha!r}")
        if isinstance(self.sigma, numbers.Real) and not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma!r}")
        if isinstance(self.sigma, list):
            object.__setattr__(self, "sigma", tuple(self.sigma))
        if self.elastic_axes is not None:
            object.__setattr__(self, "elastic_axes", tuple(self.elastic_axes))
        object.__setattr__(self, "flip_axes", tuple(self.flip_axes))
        if self.scale_range is not None:
            lo, hi = (float(v) for v in self.scale_range)
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range!r}")
            object.__setattr__(self, "scale_range", (lo, hi))

    @classmethod
    def none(cls) -> Augmenter:
        """An augmenter that changes nothing (returns copies of its inputs).

        Examples
        --------
        >>> img, _ = Augmenter.none()(np.ones((4, 4)), None, rng=np.random.default_rng(0))
        >>> float(img.sum())
        16.0
        """
        return cls(elastic=False, flip_rotate=False, intensity=False)

    def __call__(
        self,
        image: NDArray[np.floating],
        labels: Labels | None = None,
        *,
        rng: np.random.Generator,
        ndim: int | None = None,
    ) -> tuple[NDArray[np.floating], Labels | None]:
        """Augment one sample; returns ``(image, labels)`` as new arrays."""
        rng = _check_rng(rng)
        _, _, arrays, container, ndim = _prepare(image, labels, ndim, float_image=False)
        image = np.array(image, order="C", copy=True)
        labels = _restore_labels([np.array(a, order="C", copy=True) for a in arrays], container)
        if self.flip_rotate:
            image, labels = random_flip_rotate(
                image, labels, rng=rng, axes=self.flip_axes, ndim=ndim
            )
        deform = self.elastic and rng.random() < self.elastic_p
        scale = 1.0
        if self.scale_range is not None:
            lo, hi = self.scale_range
            scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if deform or scale != 1.0:
            image, labels = elastic_deform(
                image,
                labels,
                rng=rng,
                alpha=self.alpha if deform else 0.0,
                sigma=self.sigma,
                axes=self.elastic_axes,
                ndim=ndim,
                scale=scale,
            )
        if self.intensity:
            image = random_intensity(image, rng=rng, p=self.intensity_p, ndim=ndim)
        return image, labels
