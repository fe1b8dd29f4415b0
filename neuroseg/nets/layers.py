"""Layer surgery for fine-tuning: conv layers in order, freezing, a new head, a wider input.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from neuroseg.nets.unet import UNet, as_int, conv_class

_CONV_TYPES = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


_NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
)


def conv_layers(model: nn.Module) -> list[nn.Module]:
    """All convolution and transposed-convolution modules, in input -> output order.

    For a :class:`UNet` the order is the order in which ``forward`` runs them (encoder, then
    for each decoder level the upsampling conv and its two convs, then the 1x1 head last). For
    other modules it is registration order.

    Examples
    --------
    >>> convs = conv_layers(UNet(ndim=2, depth=2, base_features=4))
    >>> len(convs), convs[-1].kernel_size
    (8, (1, 1))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, _CONV_TYPES)]


def freeze_all_but_last(model: nn.Module, k: int | None) -> nn.Module:
    """Leave only the last ``k`` conv layers (and the norms right after them) trainable.

    Conv layers are counted from the output: the 1x1 head is layer 1. A normalisation layer
    that directly follows a trainable conv stays trainable; every other parameter gets
    ``requires_grad = False``. ``k=None`` makes every parameter trainable again.

    This sets ``requires_grad`` on the model's parameters **in place** (torch modules are
    stateful) and returns the same model for chaining. It does not change train/eval mode:
    BatchNorm running statistics of frozen layers still update in training mode unless those
    layers are put in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        Usually a :class:`UNet`.
    k : int or None
        Number of conv layers to keep trainable, ``1 <= k <= len(conv_layers(model))``.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Examples
    --------
    >>> net = freeze_all_but_last(UNet(ndim=2, depth=2, base_features=4), 1)
    >>> trainable_parameter_names(net)
    ['head.weight', 'head.bias']
    """
    convs = conv_layers(model)
    if k is None:
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if not convs:
        raise ValueError("model has no convolution layers to leave trainable")
    k = as_int("k", k, minimum=1)
    if k > len(convs):
        raise ValueError(f"k={k} is larger than the number of conv layers ({len(convs)})")

    trainable = {id(m): m for m in convs[-k:]}
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    for module, following in zip(leaves, leaves[1:], strict=False):
        if id(module) in trainable and isinstance(following, _NORM_TYPES):
            trainable[id(following)] = following

    for param in model.parameters():
        param.requires_grad_(False)
    for module in trainable.values():
        for param in module.parameters():
            param.requires_grad_(True)
    return model


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters with ``requires_grad`` set, in registration order.

    Examples
    --------
    >>> len(trainable_parameter_names(UNet(ndim=2, depth=1, base_features=4)))
    8
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, param in model.named_parameters() if param.requires_grad]


def replace_head(model: UNet, out_channels: int, *, seed: int = 0) -> UNet:
    """A deep copy of ``model`` with a freshly initialised 1x1 head of ``out_channels``.

    The new head's weights depend only on ``seed`` (torch's global random state is left
    unchanged); all other weights are copied. ``model`` is not modified. ``config`` is updated;
    ``meta`` is copied unchanged.

    Examples
    --------
    >>> net = replace_head(UNet(ndim=2, depth=2, base_features=4), 3)
    >>> net(torch.zeros(1, 1, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    out_channels = as_int("out_channels", out_channels, minimum=1)
    seed = as_int("seed", seed, minimum=0)
    new = copy.deepcopy(model)
    old_head = new.head
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        head = conv_class(new.ndim)(old_head.in_channels, out_channels, kernel_size=1)
    new.head = head.to(device=old_head.weight.device, dtype=old_head.weight.dtype)
    new._config["out_channels"] = out_channels
    return new


def widen_input(model: UNet, in_channels: int) -> UNet:
    """A deep copy of ``model`` whose first convolution takes ``in_channels`` channels.

    The first layer's trained filters are shared out over the new channels: new channel ``c``
    gets the weights of old channel ``c % old`` divided by how many new channels share that
    old one. A network trained on one grey image, given the same image in every channel,
    therefore computes exactly what it computed before; it is the starting point for a
    network that sees several images at once (two neighbouring EM slices, for linking).
    ``model`` is not modified; ``config`` is updated, ``meta`` copied.

    Examples
    --------
    >>> net = UNet(ndim=2, depth=2, base_features=4).eval()
    >>> wide = widen_input(net, 2).eval()
    >>> x = torch.rand(1, 1, 8, 8)
    >>> torch.allclose(net(x), wide(torch.cat([x, x], 1)), atol=1e-6)
    True
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    in_channels = as_int("in_channels", in_channels, minimum=1)
    new = copy.deepcopy(model)
    old_conv = new.encoders[0].conv1
    old = old_conv.in_channels
    source = torch.arange(in_channels) % old
    shares = torch.bincount(source, minlength=old).clamp(min=1).to(old_conv.weight.dtype)
    conv = conv_class(new.ndim)(
        in_channels, old_conv.out_channels, old_conv.kernel_size, padding=old_conv.padding,
        padding_mode=old_conv.padding_mode, bias=old_conv.bias is not None,
    ).to(device=old_conv.weight.device, dtype=old_conv.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(old_conv.weight[:, source] / shares[source].view(1, -1, *[1] * new.ndim))
        if old_conv.bias is not None:
            conv.bias.copy_(old_conv.bias)
    conv.weight.requires_grad_(old_conv.weight.requires_grad)
    new.encoders[0].conv1 = conv
    new._config["in_channels"] = in_channels
    return new
