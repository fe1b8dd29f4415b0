"""Label arrays: validation, uint32 conversion and the 2D pieces of a 3D labelling, slice by slice."""

from __future__ import annotations

import cc3d
import numpy as np
import numpy.typing as npt

from neuroseg.checks import native_call


def as_labels(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as an integer array (a view when possible), or raise TypeError."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        finite = bool(np.isfinite(arr).all())
        if not finite or not bool((arr == np.trunc(arr)).all()):
            what = "NaN or infinite values" if not finite else "non-integer values"
            raise TypeError(
                f"{name} must be an integer label array; got dtype {arr.dtype} with {what}"
            )
        if arr.size and float(np.abs(arr).max()) > 2.0**53:
            raise TypeError(
                f"{name} holds float labels above 2**53, where float64 cannot tell neighbouring "
                "IDs apart; store the labels as integers (e.g. uint64)"
            )
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an integer label array; got dtype {arr.dtype}")


UINT32_MAX = int(np.iinfo(np.uint32).max)


def check_labels(labels: npt.ArrayLike, name: str = "labels") -> np.ndarray:
    arr = as_labels(labels, name)
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"{name} must not contain negative labels; minimum is {arr.min()}")
    return arr


def to_uint32(labels: np.ndarray) -> np.ndarray:
    if labels.size and int(labels.max()) > UINT32_MAX:
        raise OverflowError(f"{int(labels.max())} labels do not fit in uint32")
    return labels.astype(np.uint32, copy=False)


def connected_components_per_slice(labels3d: npt.ArrayLike) -> np.ndarray:
    """Split a dense 3D labelling into its 2D connected pieces, slice by slice.

    Within each z-slice, every connected piece (4-connectivity) of every label becomes its own
    segment, so a neuron that leaves and re-enters a slice gives two 2D segments. IDs are
    unique over the whole volume and nothing is connected across z; label 0 stays 0. This is
    the "oracle" 2D segmentation that slice linking starts from.

    Parameters
    ----------
    labels3d : array_like of int, shape (z, y, x)
        Instance labels, 0 = background (a 2D array is treated as one slice).

    Returns
    -------
    ndarray of uint32
        Same shape; IDs 1..N, numbered slice by slice (z first).

    Notes
    -----
    One call to :func:`cc3d.connected_components` (6-connectivity) on a copy of the volume
    with an all-zero slice inserted between consecutive slices, which keeps the slices apart
    without a Python loop.

    Examples
    --------
    >>> labels = np.array([[[1, 0, 1],
    ...                     [1, 1, 1]],
    ...                    [[1, 0, 1],
    ...                     [0, 0, 1]]])
    >>> connected_components_per_slice(labels).tolist()
    [[[1, 0, 1], [1, 1, 1]], [[2, 0, 3], [0, 0, 3]]]
    """
    arr = check_labels(labels3d, "labels3d")
    if arr.ndim == 2:
        return connected_components_per_slice(arr[None])[0]
    if arr.ndim != 3:
        raise ValueError(f"labels3d must be (z, y, x); got shape {arr.shape}")
    nz = arr.shape[0]
    if arr.size == 0:
        return np.zeros(arr.shape, np.uint32)
    spaced = np.zeros((2 * nz - 1, *arr.shape[1:]), arr.dtype)
    spaced[::2] = arr
    cc = native_call(cc3d.connected_components, spaced, connectivity=6,
                     what="2D pieces per slice (cc3d.connected_components)")
    return to_uint32(np.ascontiguousarray(cc[::2]))


def require_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise ValueError naming both arrays when their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(
            f"shape mismatch: {name_a} has shape {a.shape} but {name_b} has shape {b.shape}"
        )
