"""The 2D route through a 3D EM volume: boundaries of every slice, 2D segments, then linking in z."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from neuroseg.data.readers import check_volume
from neuroseg.nets.predict import on_device, predict_stack
from neuroseg.nets.scale import back_to_volume_scale, slices_at_model_scale
from neuroseg.nets.unet import UNet
from neuroseg.segment import instances


def boundaries_2d(
    model: UNet,
    raw: npt.ArrayLike,
    *,
    resolution: Sequence[float] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    device: str | None = None,
    percentiles: np.ndarray | None = None,
) -> np.ndarray:
    """Boundary probabilities of every slice of a (z, y, x) EM volume, slices batched.

    Each slice is normalised on its own (or by ``percentiles``, see
    :func:`neuroseg.nets.scale.slices_at_model_scale`) and resampled to the model's pixel size
    (its ``meta["pixel_nm"]``, when ``resolution`` gives the volume's; in nm) as in training;
    the probabilities come back at the volume's own size, shape (z, y, x) float32.
    """
    raw = check_volume(raw)
    _check_boundary_model(model)
    x, size = slices_at_model_scale(model, raw, resolution=resolution, percentiles=percentiles)
    prob = predict_stack(on_device(model, device), x[:, None], batch_size=batch_size,
                         progress=progress)
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
    device: str | None = None,
    percentiles: np.ndarray | None = None,
    **postprocess,
) -> np.ndarray:
    """2D segments of every slice of a volume (the first half of the 2D route).

    A boundary model: :func:`boundaries_2d`, then
    :func:`neuroseg.segment.instances.labels_from_boundaries_stack`; an in-plane affinity
    model (``meta["target"]`` ``"affinities_2d"``, as the front's 2D winner):
    :func:`neuroseg.segment.affinities_2d.segments_2d_affinities`. Either with the model's
    stored post-processing (``meta["postprocess"]``), overridable by keyword. ``percentiles``:
    each slice's normalisation, when the slices are blocks of larger ones. Returns uint32
    (z, y, x) labels, unique over the volume, nothing linked across z.
    """
    from neuroseg.segment.affinities_2d import TARGET_2D, segments_2d_affinities

    if (getattr(model, "meta", None) or {}).get("target") == TARGET_2D:
        return segments_2d_affinities(model, raw, resolution=resolution, batch_size=batch_size,
                                      progress=progress, device=device, percentiles=percentiles,
                                      **postprocess)
    prob = boundaries_2d(model, raw, resolution=resolution, batch_size=batch_size,
                         progress=progress, device=device, percentiles=percentiles)
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
    device: str | None = None,
    **postprocess,
):
    """Segment a 3D EM volume the 2D way: 2D segments per slice, then linking in z.

    Parameters
    ----------
    model : UNet
        A 2D EM network (:func:`neuroseg.load_model`): a boundary model such as
        ``artifacts/<profile>/models/em_boundary_unet``, or an in-plane affinity model such as
        the shipped ``em_2d``.
    raw : array_like, shape (z, y, x)
        The EM volume (any integer or float dtype; NaN refused). Not modified.
    linker : neuroseg.linking.learned.AffinityLinker, optional
        A learned linker (:func:`neuroseg.linking.learned.load_linker`). With it the default method
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
    device : str, optional
        "cpu", "cuda", "cuda:1"; None: the GPU when there is one, else the CPU.
    return_result : bool, optional
        Return the :class:`neuroseg.linking.graph.LinkResult` (3D labels and link table) instead
        of the labels alone.
    **postprocess
        Overrides of the model's 2D post-processing (``threshold`` of the watershed seeds is
        spelled ``seed_threshold`` here), e.g. ``seed_distance=2.0``.

    Returns
    -------
    ndarray of uint32, shape (z, y, x)
        3D neuron IDs ``1..N`` (or the LinkResult, see ``return_result``).
    """
    from neuroseg.linking.rules import link_slices

    if "seed_threshold" in postprocess:
        postprocess["threshold"] = postprocess.pop("seed_threshold")
    labels2d = segments_2d(
        model, raw, resolution=resolution, batch_size=batch_size, progress=progress,
        device=device, **postprocess
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
    if not result.labels.any():
        warnings.warn("no object found in the volume: check the model, resolution= and the "
                      "image's contrast", UserWarning, stacklevel=2)
    return result if return_result else result.labels
