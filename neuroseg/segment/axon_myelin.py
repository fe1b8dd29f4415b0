"""Axon and myelin classes of an SEM or TEM image, predicted at the model's pixel size.

The image is normalised, resampled to the pixel size the model was trained at
(:mod:`neuroseg.nets.scale`), predicted (softmax) and the class probabilities resampled back
to the image's grid; an image far from the model's pixel size is refused (see
:func:`segment`).
"""

from __future__ import annotations

import numpy as np

from neuroseg.data.images import normalize, to_grey
from neuroseg.data.resample import (
    check_pixel_size,
)
from neuroseg.nets.predict import on_device
from neuroseg.nets.scale import model_pixel_size, predict_at_model_scale
from neuroseg.nets.unet import ModelError, UNet


def input_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D grey or (Y, X, C); got shape {image.shape}")
    if image.dtype.kind in "f" and not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values")
    return normalize(to_grey(image))


def axon_model_pixel_size(model: UNet) -> float:
    """The pixel size (µm) an axon/myelin model was trained at; ModelError for another model."""
    meta = getattr(model, "meta", None) or {}
    px = model_pixel_size(meta)
    if meta.get("target") != "classes" or px is None or px.unit != "um":
        raise ModelError(
            "not an axon/myelin model: its meta lacks target='classes' and a pixel size in µm "
            "(train one with neuroseg.experiments.axon_myelin.train_setting)"
        )
    return px.size[-1]


def probabilities(
    model: UNet,
    image: np.ndarray,
    *,
    pixel_size: float,
    tile: int | None = 256,
    tolerance: float = 2.5,
    max_ratio: float | None = 4.0,
    progress: bool = False,
    device: str | None = None,
) -> np.ndarray:
    """Class probabilities (K, Y, X) of ``image`` on its own grid.

    The image is normalised, resampled from ``pixel_size`` (µm) to the model's pixel size,
    predicted tile by tile (softmax), and the probabilities are resampled back to the image's
    shape. See :func:`segment` for the pixel-size check.
    """
    model_px = axon_model_pixel_size(model)
    check_pixel_size(pixel_size, model_px, tolerance=tolerance, max_ratio=max_ratio)
    x = input_image(image)
    tiles = None if tile is None else (int(tile), int(tile))
    p = predict_at_model_scale(on_device(model, device), x[None], pixel_size=pixel_size,
                               tile=tiles, overlap=32,
                               activation="softmax", progress=progress)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


def segment(
    model: UNet,
    image: np.ndarray,
    *,
    pixel_size: float,
    tile: int | None = 256,
    tolerance: float = 2.5,
    max_ratio: float | None = 4.0,
    progress: bool = False,
    device: str | None = None,
) -> np.ndarray:
    """Segment an SEM/TEM image into classes (0 background, 1 myelin, 2 axon, 3 uaxon).

    Parameters
    ----------
    model : UNet
        An axon/myelin model (its ``meta`` has ``target="classes"`` and ``pixel_size_um``).
    image : array (Y, X) or (Y, X, C)
    pixel_size : float
        The image's pixel size in µm. Required: the model was trained at one pixel size
        and the image is resampled to it (and the classes back to the image's grid).
    tile : int or None
        Inference tile at the model's pixel size (None: the whole image at once).
    tolerance, max_ratio : float
        With ``r = pixel_size / model pixel size`` taken either way round: beyond
        ``tolerance`` it warns (:class:`~neuroseg.data.resample.PixelSizeWarning`: resampling that
        far loses or invents detail), beyond ``max_ratio`` the model refuses to run
        (``ValueError``); ``max_ratio=None`` only warns.
    device : str, optional
        "cpu", "cuda", "cuda:1"; None: the GPU when there is one, else the CPU.

    Returns
    -------
    ndarray of uint8, shape (Y, X)

    Examples
    --------
    >>> import tempfile
    >>> net = UNet(ndim=2, out_channels=3, depth=2, base_features=4)
    >>> net.meta = {"target": "classes", "pixel_size_um": 0.1}
    >>> segment(net, np.random.default_rng(0).random((30, 40)), pixel_size=0.12).shape
    (30, 40)
    >>> segment(net, np.zeros((30, 40)), pixel_size=0.5)
    Traceback (most recent call last):
    ...
    ValueError: image pixel size 0.5 µm is 5x coarser than the 0.1 µm ...
    """
    p = probabilities(model, image, pixel_size=pixel_size, tile=tile, tolerance=tolerance,
                      max_ratio=max_ratio, progress=progress, device=device)
    return p.argmax(0).astype(np.uint8)
