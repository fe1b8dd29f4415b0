"""Image intensities: percentile normalisation and grey conversion of network inputs.
"""

from __future__ import annotations

import numpy as np


def normalize(image: np.ndarray, *, pmin: float = 1.0, pmax: float = 99.8, axis=None) -> np.ndarray:
    """Percentile normalisation to roughly [0, 1] (float32); constant images map to 0.

    Examples
    --------
    >>> normalize(np.array([[0, 50], [100, 100]]), pmin=0, pmax=100).tolist()
    [[0.0, 0.5], [1.0, 1.0]]
    """
    image = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    lo = np.percentile(image, pmin, axis=axis, keepdims=axis is not None)
    hi = np.percentile(image, pmax, axis=axis, keepdims=axis is not None)
    scale = np.maximum(hi - lo, 1e-6)
    return ((image - lo) / scale).astype(np.float32)


def to_grey(image: np.ndarray) -> np.ndarray:
    """(Y, X) grey image from grey (Y, X) or colour (Y, X, 3|4), as float32 (no rescaling)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    raise ValueError(f"expected a 2D grey or RGB image, got shape {image.shape}")
