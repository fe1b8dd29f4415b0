"""One 2D image to instance labels with a trained model (nuclei, somata, an EM slice)."""

from __future__ import annotations

import warnings

import numpy as np

from neuroseg.data.images import normalize, to_grey
from neuroseg.nets.predict import on_device
from neuroseg.nets.scale import predict_at_model_scale
from neuroseg.nets.unet import UNet
from neuroseg.segment import instances


def prepare_image(
    image: np.ndarray, *, channels: int = 1, invert: bool = False, channel_axis: int | None = None
) -> np.ndarray:
    """A user's 2D image (grey or RGB, any dtype) to the (C, Y, X) float32 network input.

    ``invert`` flips the normalised intensities (for dark objects on a bright background, as
    in brightfield, when the model was trained on bright objects). ``channel_axis`` says where
    the colour channels are (a (Y, X, 3|4) image is taken as RGB(A) without it); a
    (3, Y, X) array could be an RGB image with its channels first or three slices of a stack,
    so it is refused unless ``channel_axis=0`` says which.
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8)
    if image.dtype.kind not in "uif":
        raise TypeError(f"image dtype {image.dtype} is not numeric")
    if channel_axis is not None:
        if image.ndim != 3:
            raise ValueError(f"channel_axis={channel_axis} needs a 3D array; got shape {image.shape}")
        image = np.moveaxis(image, channel_axis, -1)
    elif image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    elif image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[-1] not in (3, 4):
        raise ValueError(
            f"an image of shape {image.shape} is either colour with its channels first or "
            f"{image.shape[0]} slices of a stack: pass channel_axis=0 for colour, or segment "
            "the slices one by one (or a volume with segment_volume_2d)"
        )
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
    channel_axis: int | None = None,
    device: str | None = None,
    **postprocess,
):
    """Segment a 2D image into instance labels with a trained model folder's network.

    Parameters
    ----------
    model : UNet
        From :func:`neuroseg.load_model`. Its ``meta["target"]`` says how probabilities
        become labels: ``"fg_contour"`` (nuclei, somata: seeded watershed on foreground minus
        contour, :func:`neuroseg.segment.instances.labels_from_fg_contour`) or ``"boundaries"`` (EM:
        watershed on the boundary map, :func:`neuroseg.segment.instances.labels_from_boundaries`).
        Post-processing defaults come from ``meta["postprocess"]`` and can be overridden by
        keyword. A model with a relative pixel size (:mod:`neuroseg.nets.scale`, e.g. 0.5 px)
        sees the image enlarged (here 2x) as in training;
        as in training; probabilities and labels come back at the image's own size.
    image : array (Y, X) or (Y, X, 3|4)
        Any integer or float dtype; normalised by percentiles.
    tile, overlap : tiled prediction for images larger than ``tile``.
    device : str, optional
        "cpu", "cuda", "cuda:1"; None: the GPU when there is one, else the CPU.
    channel_axis : int, optional
        Where the colour channels are; required for a (3, Y, X) array (see
        :func:`prepare_image`).
    invert : bool
        Dark nuclei on a bright background (brightfield): invert before predicting, as the
        training data preparation does (:func:`neuroseg.experiments.nucleus_pretraining.load_part`).

    Returns
    -------
    labels : uint32 array (Y, X), 0 = background
    (labels, probabilities) if ``return_probabilities``
    """
    meta = getattr(model, "meta", {}) or {}
    target = meta.get("target", "fg_contour")
    if target not in ("fg_contour", "boundaries"):
        raise ValueError(
            f"segment_2d needs a foreground/contour or boundary model, this one predicts {target!r}"
        )
    x = prepare_image(image, channels=model.config["in_channels"], invert=invert,
                      channel_axis=channel_axis)
    prob = predict_at_model_scale(
        on_device(model, device), x, tile=None if tile is None else (tile, tile), overlap=overlap
    )
    options = dict(meta.get("postprocess", {}))
    options.update(postprocess)
    if target == "fg_contour":
        labels = instances.labels_from_fg_contour(prob[0], prob[1], **options)
    else:
        labels = instances.labels_from_boundaries(prob[0], **options)
    if not labels.any():
        warnings.warn("no object found in the image: check the model, invert= and the image's "
                      "contrast", UserWarning, stacklevel=2)
    return (labels, prob) if return_probabilities else labels
