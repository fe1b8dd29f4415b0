"""Transfer learning: start a new task from a trained model folder.

SomaNet's recipe is to take the network trained on nuclei and retrain only its last layers
on neurons. :func:`from_pretrained` loads a model folder (``weights_only=True``), gives it a
new output head when the new target has a different number of channels, and leaves only the
last ``layers`` convolutions trainable. :func:`from_scratch` builds the same architecture
with fresh weights, the control every transfer result is compared with.

Frozen layers stay frozen in :func:`neuroseg.nets.train.fit`: their parameters get no gradient
and their normalisation layers keep the statistics learned on the source data (they are run
in evaluation mode while the rest of the network trains).
"""

from __future__ import annotations

import os
from pathlib import Path

from neuroseg.io import sha256_file
from neuroseg.nets.folder import load_model
from neuroseg.nets.layers import conv_layers, freeze_all_but_last, replace_head, widen_input
from neuroseg.nets.unet import UNet, build_unet

__all__ = ["from_pretrained", "from_scratch", "layer_count"]


def _layers_arg(layers: int | str | None) -> int | None:
    """``layers`` as a count, or None for "all" (every layer trainable)."""
    if layers is None or layers == "all":
        return None
    if isinstance(layers, bool) or not isinstance(layers, int):
        raise TypeError(f"layers must be a positive int, 'all' or None; got {layers!r}")
    if layers < 1:
        raise ValueError(f"layers must be >= 1 (or 'all'); got {layers}")
    return layers


def layer_count(model: UNet) -> int:
    """Number of conv layers (the most ``layers`` can be).

    Examples
    --------
    >>> layer_count(UNet(ndim=2, depth=2, base_features=4))
    8
    """
    return len(conv_layers(model))


def from_pretrained(
    folder: str | os.PathLike,
    *,
    out_channels: int | None = None,
    in_channels: int | None = None,
    layers: int | str | None = "all",
    seed: int = 0,
) -> UNet:
    """A model initialised from a trained model folder, ready to fine-tune.

    Parameters
    ----------
    folder : path
        A model folder written by :func:`neuroseg.nets.folder.save_model` (for example the nucleus
        model of ``10_nucleus_pretraining``). Loaded with ``weights_only=True``; the folder is
        not modified.
    out_channels : int, optional
        Output channels of the new task. When it differs from the folder's model, the 1x1
        head is replaced by a fresh one (initialised from ``seed``); otherwise the trained
        head is kept.
    in_channels : int, optional
        Input channels of the new task. When it differs from the folder's model, the first
        convolution is widened with :func:`neuroseg.nets.layers.widen_input` (the trained filters
        shared out over the new channels).
    layers : int, "all" or None
        How many conv layers, counted from the output (the head is layer 1), stay trainable.
        ``"all"`` or None fine-tunes every layer.
    seed : int
        Seed of a new head.

    Returns
    -------
    UNet
        On the CPU, in training mode, with ``meta["transfer"]`` recording the source folder,
        whether the head was replaced and the trainable layer count.

    Examples
    --------
    >>> import tempfile
    >>> from neuroseg.nets.folder import save_model
    >>> from neuroseg.nets.layers import trainable_parameter_names
    >>> src = tempfile.mkdtemp()
    >>> _ = save_model(UNet(ndim=2, out_channels=2, depth=2, base_features=4), src)
    >>> net = from_pretrained(src, out_channels=1, layers=1)
    >>> net.config["out_channels"], trainable_parameter_names(net)
    (1, ['head.weight', 'head.bias'])
    """
    k = _layers_arg(layers)
    model = load_model(folder)
    meta = dict(model.meta)
    new_head = out_channels is not None and int(out_channels) != model.config["out_channels"]
    if new_head:
        model = replace_head(model, int(out_channels), seed=seed)
    new_input = in_channels is not None and int(in_channels) != model.config["in_channels"]
    if new_input:
        model = widen_input(model, int(in_channels))
    if k is not None and k > layer_count(model):
        raise ValueError(f"layers={k} but the model in {folder} has only {layer_count(model)} conv layers")
    freeze_all_but_last(model, k)
    meta["transfer"] = {
        "source": os.fspath(folder),
        # the source weights' digest: a changed source model makes a different training run
        "source_sha256": sha256_file(Path(folder) / "weights.pt"),
        "source_target": meta.get("target"),
        "new_head": bool(new_head),
        "trainable_layers": "all" if k is None else k,
    }
    if new_input:  # only then, so that runs recorded before this option keep their identity
        meta["transfer"]["new_input_channels"] = int(in_channels)
    model.meta = meta
    model.train()
    return model


def from_scratch(config: dict, *, seed: int) -> UNet:
    """A freshly initialised U-Net of the given architecture, every layer trainable.

    ``config`` is a :attr:`UNet.config` (e.g. ``from_pretrained(...).config``), so a scratch
    control has exactly the architecture of the transfer model it is compared with.

    Examples
    --------
    >>> net = from_scratch(UNet(ndim=2, depth=2, base_features=4).config, seed=0)
    >>> net.meta["transfer"]
    {'source': None, 'trainable_layers': 'all'}
    """
    model = build_unet(config, seed=seed)
    model.meta = {"transfer": {"source": None, "trainable_layers": "all"}}
    return model
