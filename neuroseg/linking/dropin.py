"""The linker as a drop-in: another tool's 2D masks, slice by slice, joined into 3D objects.

Cellpose, StarDist or micro-SAM segment a volume slice by slice and number the masks of each
slice from 1 again; :func:`link` takes such a stack (or one whose IDs are already unique),
gives every 2D mask a unique ID, and links neighbouring slices with the rule chosen: the
learned linker of "Know Your Neighbour" when one is given, else the overlap rule that
Cellpose's ``stitch_threshold`` uses; ``method="multicut"`` is micro-SAM's rule (a multicut on
the slice-overlap graph, :mod:`neuroseg.linking.multicut`).

Examples
--------
>>> import numpy as np
>>> masks = np.array([[[1, 1, 0, 2]], [[1, 1, 0, 2]]])   # IDs restart in every slice
>>> link(masks, resolution=(40, 10, 10)).tolist()
[[[1, 1, 0, 2]], [[1, 1, 0, 2]]]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from neuroseg.checks import check_resolution
from neuroseg.linking.graph import LinkResult
from neuroseg.linking.multicut import MICRO_SAM_THRESHOLD
from neuroseg.linking.rules import link_slices

__all__ = ["link", "number_per_slice", "unique_per_slice"]


def number_per_slice(masks: npt.ArrayLike) -> np.ndarray:
    """Each slice's masks numbered 1..n in the order of their own IDs, as a 2D tool writes
    them (uint32; 0 stays background; a mask in pieces keeps one number).

    Examples
    --------
    >>> number_per_slice(np.array([[[7, 0, 7, 9]], [[4, 4, 0, 2]]])).tolist()
    [[[1, 0, 1, 2]], [[2, 2, 0, 1]]]
    """
    arr = np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be a (z, y, x) stack of 2D label images; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"masks must hold integer labels; got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError("masks hold negative labels; use 0 for background and 1, 2, ... for masks")
    out = np.zeros(arr.shape, np.uint32)
    for z in range(arr.shape[0]):
        values, inverse = np.unique(arr[z], return_inverse=True)
        out[z] = inverse.reshape(arr.shape[1:]) + (0 if values[0] == 0 else 1)
    return out


def unique_per_slice(masks: npt.ArrayLike) -> np.ndarray:
    """Every mask of every slice its own ID (1..N, slice by slice, in the order of the masks'
    own IDs): a stack whose IDs restart in every slice becomes one :func:`link` can join.
    A mask stays whole even where it is not connected in its slice (a tool's mask, or a
    mutex watershed segment, may be in pieces): the tool said it is one object.

    Examples
    --------
    >>> unique_per_slice(np.array([[[1, 0, 1, 2]], [[2, 2, 0, 1]]])).tolist()
    [[[1, 0, 1, 2]], [[4, 4, 0, 3]]]
    """
    out = number_per_slice(masks)
    counts = out.reshape(len(out), -1).max(axis=1) if out.size else np.zeros(len(out), np.uint32)
    bases = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.uint32)
    return np.where(out > 0, out + bases[:, None, None], 0).astype(np.uint32)


def link(
    masks: npt.ArrayLike,
    raw: npt.ArrayLike | None = None,
    *,
    resolution: Sequence[float],
    method: str | None = None,
    linker=None,
    threshold: float | None = None,
    max_gap: int = 1,
    return_result: bool = False,
):
    """Join a stack of 2D masks from any tool into 3D objects.

    Parameters
    ----------
    masks : array_like of int, shape (z, y, x)
        2D label images, one per slice; IDs may restart in every slice.
    raw : array_like, shape (z, y, x), optional
        The image the masks were made from; the learned linker needs it.
    resolution : sequence of 3 float
        (z, y, x) voxel size in nm. Required: the learned linker is calibrated per z spacing.
    method : {"learned", "overlap", "hungarian", "graph", "multicut"}, optional
        Default ``"learned"`` with a ``linker``, else ``"overlap"`` (Cellpose's rule);
        ``"multicut"`` is micro-SAM's ``merge_instance_segmentation_3d`` rule.
    linker : neuroseg.linking.learned.AffinityLinker, optional
        A trained linker (:func:`neuroseg.linking.learned.load_linker`).
    threshold : float, optional
        Link threshold; default the linker's calibrated one, for ``"multicut"`` micro-SAM's
        (:data:`~neuroseg.linking.multicut.MICRO_SAM_THRESHOLD`), else 0.25.
    max_gap : int
        Largest slice distance of a link (2 bridges a slice where a mask is missing).
    return_result : bool
        Return the :class:`~neuroseg.linking.graph.LinkResult` (labels and link table).

    Returns
    -------
    ndarray of uint32, shape (z, y, x)
        3D IDs 1..N; background stays 0. A stack with no mask gives a warning.
    """
    resolution = check_resolution(resolution)
    if resolution is None:
        raise ValueError("resolution=(z, y, x) in nm is required: pass the voxel size of the stack")
    # every mask of every slice its own ID, so that masks numbered from 1 in every slice are
    # told apart; a mask in pieces stays one segment
    segments = unique_per_slice(masks)
    if method is None:
        method = "learned" if linker is not None else "overlap"
    if method == "learned":
        if linker is None:
            raise ValueError(
                "method='learned' needs linker= (neuroseg.linking.learned.load_linker(folder)); "
                "without one use method='overlap'"
            )
        if raw is None:
            raise ValueError("the learned linker reads the image: pass raw= (the stack's image)")
        linker = linker.calibrated_for(resolution, segments="predicted")
        if threshold is None:
            threshold = linker.threshold
    if threshold is None:
        threshold = MICRO_SAM_THRESHOLD if method == "multicut" else 0.25
    if not segments.any():
        warnings.warn("the masks hold no object: nothing to link", UserWarning, stacklevel=2)
    result: LinkResult = link_slices(
        segments, raw=raw, method=method, threshold=threshold,
        linker=linker if method == "learned" else None, max_gap=max_gap, resolution=resolution,
    )
    return result if return_result else result.labels
