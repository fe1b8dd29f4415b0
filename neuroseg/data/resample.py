"""Resampling between pixel sizes, and the check that a model sees the pixel size it knows.

Pixel size is a first-class parameter: a network trained on SEM images at 0.1 µm/pixel sees
axons twice as large at 0.05 µm/pixel and does not generalise to that. So images are
resampled to the model's pixel size before inference, and the predicted labels resampled back
to the image's own grid:

>>> import numpy as np
>>> image = np.zeros((101, 80), np.float32)
>>> small = resample_image(image, pixel_size=0.05, target_pixel_size=0.1)
>>> small.shape
(51, 40)
>>> labels = np.zeros(small.shape, np.uint8)
>>> resample_labels(labels, pixel_size=0.1, target_pixel_size=0.05, shape=image.shape).shape
(101, 80)

Conventions
-----------
- Pixel sizes are in µm (as in :func:`neuroseg.data.readers.read_axondeepseg`), positive and finite;
  the same size applies to both image axes (square pixels).
- Output shape along each spatial axis is ``floor(n * pixel_size / target_pixel_size + 0.5)``
  (round half up), at least 1, unless ``shape=`` gives it exactly (e.g. the original
  image's shape, to undo a resampling whose rounding lost a pixel).
- Pixel centres are aligned: output pixel ``i`` samples the input at coordinate
  ``(i + 0.5) * n_in / n_out - 0.5`` (the :func:`skimage.transform.resize` convention).
- :func:`check_pixel_size` compares an image's pixel size with a model's through the ratio
  ``r = pixel_size / model_pixel_size``, symmetric in scale (``r`` and ``1/r`` are equally far):
  within ``[1/tolerance, tolerance]`` (default 1.5) it passes silently; outside that, up to
  ``[1/max_ratio, max_ratio]`` (default 3), it emits a :class:`PixelSizeWarning` (a
  ``ValueError`` with ``strict=True``); beyond ``max_ratio`` it raises ``ValueError`` unless
  ``max_ratio=None`` (then it only warns).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from skimage.transform import resize

from neuroseg.checks import PixelSizeWarning

__all__ = [
    "DEFAULT_MAX_RATIO",
    "DEFAULT_TOLERANCE",
    "PixelSizeWarning",
    "check_pixel_size",
    "resample_image",
    "resample_labels",
    "resampled_shape",
]

#: Ratio of pixel sizes (either way round) up to which a model runs without a warning.
DEFAULT_TOLERANCE = 1.5
#: Ratio of pixel sizes (either way round) beyond which a model refuses to run.
DEFAULT_MAX_RATIO = 3.0


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def check_size(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number (µm per pixel); got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive, finite number of µm per pixel; got {value}")
    return v


def resampled_shape(
    shape: tuple[int, ...], *, pixel_size: float, target_pixel_size: float
) -> tuple[int, ...]:
    """Shape of an image of ``shape`` resampled from ``pixel_size`` to ``target_pixel_size``.

    Each axis becomes ``max(1, floor(n * pixel_size / target_pixel_size + 0.5))``.

    Examples
    --------
    >>> resampled_shape((101, 80), pixel_size=0.05, target_pixel_size=0.1)
    (51, 40)
    """
    px = check_size(pixel_size, "pixel_size")
    tgt = check_size(target_pixel_size, "target_pixel_size")
    # the small epsilon makes exact halves round up despite floating-point noise
    # (81 * 0.1 / 0.2 evaluates to 40.49999999999999)
    return tuple(max(1, math.floor(int(n) * px / tgt + 0.5 + 1e-9)) for n in shape)


def _check_out_shape(shape, ndim: int, name: str = "shape") -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of {ndim} ints; got {shape!r}") from None
    if len(out) != ndim or any(n < 1 for n in out) or any(int(n) != n for n in shape):
        raise ValueError(f"{name} must be {ndim} positive ints; got {shape!r}")
    return out


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------


def resample_image(
    image: npt.ArrayLike,
    *,
    pixel_size: float,
    target_pixel_size: float,
    order: int = 1,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resample a grey (Y, X) or multichannel (Y, X, C) image to another pixel size.

    Parameters
    ----------
    image : array_like
        2-D grey image or 3-D (Y, X, C) image (channels are not resampled). Bool, integer
        and float dtypes; values are kept as they are (no rescaling to [0, 1]).
    pixel_size : float
        The image's pixel size in µm.
    target_pixel_size : float
        The pixel size wanted, in µm.
    order : int, optional
        Spline interpolation order (0 nearest, 1 bilinear (default), 3 bicubic).
    shape : tuple of 2 ints, optional
        Exact (Y, X) output shape instead of the one derived from the pixel sizes.

    Returns
    -------
    ndarray of float32
        Shape ``(Y', X')`` or ``(Y', X', C)``; see the module conventions for ``Y', X'``.
        When the image is made smaller (``target_pixel_size > pixel_size``) it is low-pass
        filtered first (Gaussian, ``sigma = (factor - 1) / 2`` per axis, as
        :func:`skimage.transform.resize` does with ``anti_aliasing=True``) so that fine
        texture does not alias. An image already at the target pixel size (and shape) is
        returned as a float32 copy.

    Raises
    ------
    ValueError
        If a pixel size is not positive and finite, ``image`` is not 2-D or 3-D, or ``shape``
        is not two positive ints.

    Examples
    --------
    >>> resample_image(np.ones((10, 10, 3)), pixel_size=0.1, target_pixel_size=0.2).shape
    (5, 5, 3)
    """
    px = check_size(pixel_size, "pixel_size")
    tgt = check_size(target_pixel_size, "target_pixel_size")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D (Y, X) or 3-D (Y, X, C); got shape {arr.shape}")
    if not (
        arr.dtype == np.bool_
        or np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"image must hold real numbers; got dtype {arr.dtype}")
    if shape is None:
        yx = resampled_shape(arr.shape[:2], pixel_size=px, target_pixel_size=tgt)
    else:
        yx = _check_out_shape(shape, 2)
    arr = arr.astype(np.float32, copy=False)
    if yx == arr.shape[:2]:
        return arr.copy()
    out_shape = yx + arr.shape[2:]
    downsampling = any(o < i for o, i in zip(yx, arr.shape[:2], strict=True))
    out = resize(
        arr,
        out_shape,
        order=order,
        mode="reflect",
        preserve_range=True,
        anti_aliasing=downsampling and order > 0,
    )
    return out.astype(np.float32, copy=False)


def resample_labels(
    labels: npt.ArrayLike,
    *,
    pixel_size: float,
    target_pixel_size: float,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resample a 2-D label image (classes or instances) by nearest neighbour.

    Parameters
    ----------
    labels : array_like
        2-D label image (any integer or bool dtype; kept in the output).
    pixel_size : float
        The labels' pixel size in µm.
    target_pixel_size : float
        The pixel size wanted, in µm.
    shape : tuple of 2 ints, optional
        Exact output shape, e.g. the original image's shape when bringing predictions made at
        the model's pixel size back to the image (rounding can otherwise be one pixel off).

    Returns
    -------
    ndarray
        Same dtype as ``labels``; output pixel ``i`` takes the value of input pixel
        ``floor((i + 0.5) * n_in / n_out)`` along each axis, so no new label values appear.

    Examples
    --------
    >>> lab = np.array([[1, 2], [3, 4]])
    >>> resample_labels(lab, pixel_size=1.0, target_pixel_size=0.5)
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]])
    """
    px = check_size(pixel_size, "pixel_size")
    tgt = check_size(target_pixel_size, "target_pixel_size")
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be 2-D (Y, X); got shape {arr.shape}")
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"labels must be an integer or bool array; got dtype {arr.dtype}")
    if shape is None:
        out_shape = resampled_shape(arr.shape, pixel_size=px, target_pixel_size=tgt)
    else:
        out_shape = _check_out_shape(shape, 2)
    idx = [
        np.minimum(((np.arange(m) + 0.5) * (n / m)).astype(np.intp), n - 1)
        for n, m in zip(arr.shape, out_shape, strict=True)
    ]
    return arr[np.ix_(*idx)]


# --------------------------------------------------------------------------------------------
# the pixel-size check
# --------------------------------------------------------------------------------------------


def check_pixel_size(
    pixel_size: float,
    model_pixel_size: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_ratio: float | None = DEFAULT_MAX_RATIO,
    strict: bool = False,
) -> float:
    """Check that an image's pixel size is close to the one a model was trained at.

    With ``r = pixel_size / model_pixel_size`` and ``far = max(r, 1/r)``:

    - ``far <= tolerance`` (default 1.5): fine, nothing happens;
    - ``tolerance < far <= max_ratio`` (default 3): :class:`PixelSizeWarning`, or
      ``ValueError`` when ``strict=True``;
    - ``far > max_ratio``: ``ValueError`` (the model refuses); with ``max_ratio=None`` it
      only warns (or raises when ``strict=True``).

    The messages give both pixel sizes and the ratio, and say to resample the image with
    :func:`neuroseg.data.resample.resample_image`.

    Parameters
    ----------
    pixel_size : float
        The image's pixel size in µm.
    model_pixel_size : float
        The pixel size the model was trained at, in µm.
    tolerance : float, optional
        Largest ratio (>= 1, either way round) accepted silently.
    max_ratio : float or None, optional
        Largest ratio (>= ``tolerance``) accepted at all; ``None`` for no limit.
    strict : bool, optional
        Raise instead of warning for ratios between ``tolerance`` and ``max_ratio``.

    Returns
    -------
    float
        The ratio ``r = pixel_size / model_pixel_size`` (>1: the image is coarser).

    Raises
    ------
    ValueError
        As above, or for a non-positive pixel size or inconsistent limits.

    Examples
    --------
    >>> check_pixel_size(0.11, 0.1)
    1.1
    """
    px = check_size(pixel_size, "pixel_size")
    model = check_size(model_pixel_size, "model_pixel_size")
    tol = float(tolerance)
    if not tol >= 1:
        raise ValueError(f"tolerance must be >= 1 (a ratio of pixel sizes); got {tolerance}")
    limit = math.inf if max_ratio is None else float(max_ratio)
    if not limit >= tol:
        raise ValueError(f"max_ratio must be >= tolerance ({tol}); got {max_ratio}")
    ratio = px / model
    far = max(ratio, 1 / ratio)
    # a hair of slack so that e.g. 0.15 / 0.1 = 1.4999999999999998 or 1.5000000000000002 is
    # treated as exactly 1.5
    eps = 1e-9
    if far <= tol * (1 + eps):
        return round(ratio, 12)
    what = "coarser" if ratio > 1 else "finer"
    msg = (
        f"image pixel size {px:g} µm is {far:.3g}x {what} than the {model:g} µm the model was "
        f"trained at; resample the image first with neuroseg.data.resample.resample_image(image, "
        f"pixel_size={px:g}, target_pixel_size={model:g}) (and the prediction back with "
        f"resample_labels(..., shape=image.shape[:2]))"
    )
    if far > limit * (1 + eps):
        raise ValueError(f"{msg}; refusing to run beyond a ratio of {limit:g} (max_ratio)")
    if strict:
        raise ValueError(f"{msg}; strict=True refuses ratios beyond {tol:g} (tolerance)")
    warnings.warn(
        f"{msg}; results are unreliable beyond a ratio of {tol:g}",
        PixelSizeWarning,
        stacklevel=2,
    )
    return round(ratio, 12)
