"""U-Net models, layer freezing for transfer learning, and the on-disk model folder format.

- :class:`UNet` — a 2D or 3D U-Net with per-level (optionally anisotropic) pooling factors,
  batch/group/no normalisation, logits output of the same spatial size as the input.
- :func:`build_unet` — build a :class:`UNet` from a config dict with a seed, so that the same
  seed gives identical initial weights without touching torch's global random state.
- :func:`conv_layers`, :func:`freeze_all_but_last`, :func:`trainable_parameter_names`,
  :func:`replace_head` — helpers for fine-tuning a pretrained network.
- :func:`save_model`, :func:`load_model`, :func:`read_model_meta` — a model folder
  (StarDist-like) holding ``config.json``, ``weights.pt``, ``env.json`` and, written by the
  trainer, ``history.csv``.

Problems with a model folder raise :class:`ModelError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import copy
import datetime
import json
import operator
import os
import platform
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CONFIG_FILE",
    "ENV_FILE",
    "WEIGHTS_FILE",
    "ModelError",
    "UNet",
    "build_unet",
    "conv_layers",
    "freeze_all_but_last",
    "load_model",
    "read_model_meta",
    "replace_head",
    "save_model",
    "trainable_parameter_names",
    "widen_input",
]

PathLike = str | os.PathLike

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
ENV_FILE = "env.json"
MODEL_TYPE = "UNet"
FORMAT_VERSION = 1

_NORMS = ("batch", "group", None)
_AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}
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


class ModelError(ValueError):
    """A model folder is missing, malformed, or does not match its architecture."""


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def _as_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool ({value!r})")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if result < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {result}")
    return result


def _group_count(channels: int) -> int:
    """Largest number of groups <= 8 that divides ``channels``."""
    for groups in range(min(8, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1  # pragma: no cover - channels >= 1 always has divisor 1


def _make_norm(norm: str | None, ndim: int, channels: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels) if ndim == 2 else nn.BatchNorm3d(channels)
    return nn.GroupNorm(_group_count(channels), channels)


def _conv_class(ndim: int) -> type[nn.Module]:
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class _ConvBlock(nn.Module):
    """Two (3x3[x3] conv -> norm -> ReLU) layers, padding 1 (same size)."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, norm: str | None):
        super().__init__()
        conv = _conv_class(ndim)
        bias = norm is None  # a following normalisation layer makes a conv bias redundant
        self.conv1 = conv(in_channels, out_channels, 3, padding=1, padding_mode="zeros", bias=bias)
        self.norm1 = _make_norm(norm, ndim, out_channels)
        self.act1 = nn.ReLU()
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, padding_mode="zeros", bias=bias)
        self.norm2 = _make_norm(norm, ndim, out_channels)
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x)))


class _UpBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, then a :class:`_ConvBlock`."""

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        factor: tuple[int, ...],
        norm: str | None,
    ):
        super().__init__()
        up = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
        self.up = up(in_channels, out_channels, kernel_size=factor, stride=factor)
        self.block = _ConvBlock(ndim, 2 * out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.up(x)], dim=1))


def _normalise_pool_factors(
    pool_factors: Sequence[int | Sequence[int]] | None, *, ndim: int, depth: int
) -> list[list[int]]:
    if pool_factors is None:
        return [[2] * ndim for _ in range(depth - 1)]
    if isinstance(pool_factors, str | bytes) or not isinstance(pool_factors, Sequence):
        raise TypeError(
            "pool_factors must be a sequence of ints or of per-axis int sequences, "
            f"got {type(pool_factors).__name__}"
        )
    if len(pool_factors) != depth - 1:
        raise ValueError(
            f"pool_factors must have depth - 1 = {depth - 1} entries (one per pooling step), "
            f"got {len(pool_factors)}: {list(pool_factors)!r}"
        )
    result = []
    for level, factor in enumerate(pool_factors):
        if isinstance(factor, Sequence) and not isinstance(factor, str | bytes):
            if len(factor) != ndim:
                raise ValueError(
                    f"pool_factors[{level}] must have {ndim} entries (one per spatial axis), "
                    f"got {list(factor)!r}"
                )
            result.append(
                [_as_int(f"pool_factors[{level}][{i}]", f, minimum=1) for i, f in enumerate(factor)]
            )
        else:
            result.append([_as_int(f"pool_factors[{level}]", factor, minimum=1)] * ndim)
    return result


class UNet(nn.Module):
    """2D or 3D U-Net returning per-pixel logits of the same spatial size as its input.

    Each of the ``depth`` resolution levels has two (3x3[x3] conv, norm, ReLU) layers; the
    encoder max-pools between levels by ``pool_factors``, the decoder upsamples with a
    transposed convolution of the same factors, concatenates the skip connection and applies
    two more conv layers. A final 1x1[x1] convolution (``head``) maps to ``out_channels``
    logits (no activation). Convolutions are zero-padded.

    Parameters
    ----------
    ndim : {2, 3}
        Number of spatial dimensions.
    in_channels, out_channels : int
        Input channels and output channels (logits).
    depth : int
        Number of resolution levels; 1 means no pooling at all.
    base_features : int
        Feature channels at the first level; level ``i`` has
        ``base_features * feature_growth**i``.
    norm : {"batch", "group", None}
        Normalisation after each 3x3 conv: BatchNorm, GroupNorm (with the largest number of
        groups <= 8 that divides the channel count), or none (then the convs have a bias).
    pool_factors : sequence of int or of per-axis int sequences, optional
        ``depth - 1`` pooling factors, one per pooling step (outermost first); an int pools
        all axes by that factor. ``[(1, 2, 2), (1, 2, 2), (2, 2, 2)]`` pools only y-x at the
        first two levels (anisotropic stacks). Default 2 everywhere.
    feature_growth : int
        Factor by which the number of features grows per level.

    Attributes
    ----------
    config : dict
        The constructor arguments, JSON-serialisable (see :meth:`from_config`).
    required_multiple : tuple of int
        Per spatial axis, the number the input size must be a multiple of.
    meta : dict
        Free metadata (set by :func:`load_model`; saved by :func:`save_model`).

    Examples
    --------
    >>> net = UNet(ndim=2, depth=2, base_features=4)
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    >>> UNet(ndim=3, depth=3, pool_factors=[(1, 2, 2), (2, 2, 2)]).required_multiple
    (2, 4, 4)
    """

    def __init__(
        self,
        *,
        ndim: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        base_features: int = 16,
        norm: str | None = "batch",
        pool_factors: Sequence[int | Sequence[int]] | None = None,
        feature_growth: int = 2,
    ):
        super().__init__()
        ndim = _as_int("ndim", ndim, minimum=2)
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        in_channels = _as_int("in_channels", in_channels, minimum=1)
        out_channels = _as_int("out_channels", out_channels, minimum=1)
        depth = _as_int("depth", depth, minimum=1)
        base_features = _as_int("base_features", base_features, minimum=1)
        feature_growth = _as_int("feature_growth", feature_growth, minimum=1)
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS!r}, got {norm!r}")
        factors = _normalise_pool_factors(pool_factors, ndim=ndim, depth=depth)

        self._config: dict[str, Any] = {
            "ndim": ndim,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "depth": depth,
            "base_features": base_features,
            "norm": norm,
            "pool_factors": factors,
            "feature_growth": feature_growth,
        }
        self.meta: dict[str, Any] = {}
        features = [base_features * feature_growth**level for level in range(depth)]

        # Registration order equals forward order (encoders, then decoders bottom-up, then
        # the head), so that ``conv_layers`` can list convolutions input -> output.
        self.encoders = nn.ModuleList(
            _ConvBlock(ndim, in_channels if level == 0 else features[level - 1], f, norm)
            for level, f in enumerate(features)
        )
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d
        self.pools = nn.ModuleList(pool(kernel_size=tuple(f), stride=tuple(f)) for f in factors)
        self.decoders = nn.ModuleList(
            _UpBlock(ndim, features[level + 1], features[level], tuple(factors[level]), norm)
            for level in reversed(range(depth - 1))
        )
        self.head = _conv_class(ndim)(features[0], out_channels, kernel_size=1)

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict (a fresh copy)."""
        return copy.deepcopy(self._config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UNet:
        """Build a (randomly initialised) network from :attr:`config`.

        Examples
        --------
        >>> net = UNet(ndim=2, depth=2, base_features=4)
        >>> UNet.from_config(net.config).config == net.config
        True
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        known = set(cls._config_keys())
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"unknown UNet config keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**dict(config))

    @staticmethod
    def _config_keys() -> tuple[str, ...]:
        return (
            "ndim",
            "in_channels",
            "out_channels",
            "depth",
            "base_features",
            "norm",
            "pool_factors",
            "feature_growth",
        )

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return self._config["ndim"]

    @property
    def required_multiple(self) -> tuple[int, ...]:
        """Per spatial axis, the product of the pooling factors (input sizes must divide)."""
        multiple = [1] * self.ndim
        for factor in self._config["pool_factors"]:
            multiple = [m * f for m, f in zip(multiple, factor, strict=True)]
        return tuple(multiple)

    # -- forward -----------------------------------------------------------------------------

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"UNet input must be a torch.Tensor, got {type(x).__name__}")
        names = _AXIS_NAMES[self.ndim]
        expected = "(N, C, " + ", ".join(n.upper() for n in names) + ")"
        if x.ndim != self.ndim + 2:
            raise ValueError(
                f"a {self.ndim}D UNet expects input of shape {expected} ({self.ndim + 2} dims), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self._config["in_channels"]:
            raise ValueError(
                f"UNet expects {self._config['in_channels']} input channel(s) (dim 1 of "
                f"{expected}), got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        for axis, (size, multiple) in enumerate(
            zip(x.shape[2:], self.required_multiple, strict=True)
        ):
            if size % multiple:
                raise ValueError(
                    f"spatial axis {axis} ({names[axis]}, tensor dim {axis + 2}) has size {size}, "
                    f"which is not a multiple of {multiple} (the product of the pooling factors "
                    f"along that axis); pad or crop the input (input shape {tuple(x.shape)})"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(N, out_channels, *spatial)`` for input ``(N, C, *spatial)``."""
        self._check_input(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for decoder in self.decoders:
            x = decoder(x, skips.pop())
        return self.head(x)


def build_unet(config: Mapping[str, Any], *, seed: int) -> UNet:
    """Build a :class:`UNet` whose initial weights depend only on ``seed``.

    Torch's global random state is saved and restored around the construction, so calling this
    does not change what later random draws give.

    Examples
    --------
    >>> cfg = {"ndim": 2, "depth": 2, "base_features": 4}
    >>> a, b = build_unet(cfg, seed=1), build_unet(cfg, seed=1)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    seed = _as_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return UNet.from_config(config)


# --------------------------------------------------------------------------------------------
# freezing and heads
# --------------------------------------------------------------------------------------------


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
    k = _as_int("k", k, minimum=1)
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
    out_channels = _as_int("out_channels", out_channels, minimum=1)
    seed = _as_int("seed", seed, minimum=0)
    new = copy.deepcopy(model)
    old_head = new.head
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        head = _conv_class(new.ndim)(old_head.in_channels, out_channels, kernel_size=1)
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
    in_channels = _as_int("in_channels", in_channels, minimum=1)
    new = copy.deepcopy(model)
    old_conv = new.encoders[0].conv1
    old = old_conv.in_channels
    source = torch.arange(in_channels) % old
    shares = torch.bincount(source, minlength=old).clamp(min=1).to(old_conv.weight.dtype)
    conv = _conv_class(new.ndim)(
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


# --------------------------------------------------------------------------------------------
# model folders
# --------------------------------------------------------------------------------------------


def _git_revision() -> str | None:
    """``git rev-parse HEAD`` run from this package's directory, or None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = result.stdout.strip()
    if result.returncode != 0 or len(revision) not in (40, 64):
        return None
    return revision


def _model_device(model: nn.Module) -> str:
    for tensor in model.parameters():
        return str(tensor.device)
    return "cpu"


def _environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "neuroseg": getattr(sys.modules.get("neuroseg"), "__version__", None),
        "platform": platform.platform(),
        "device": device,
        "device_name": None,
        "git_revision": _git_revision(),
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available():
            env["device_name"] = torch.cuda.get_device_name(dev)
    except (RuntimeError, ValueError, AssertionError):
        pass
    return env


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def _write_file(path: Path, writer: Callable[[Any], None]) -> None:
    with open(path, "xb") as handle:
        writer(handle)
        handle.flush()
        os.fsync(handle.fileno())


def save_model(
    model: UNet,
    folder: PathLike,
    *,
    meta: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> Path:
    """Write ``model`` to a model folder: ``config.json``, ``weights.pt`` and ``env.json``.

    ``config.json`` is ``{"format_version": 1, "model": "UNet", "unet": model.config,
    "meta": meta}``; ``weights.pt`` is the state dict (CPU tensors); ``env.json`` records the
    Python, torch and numpy versions, platform, device, git revision of the package's
    repository (or null) and a UTC timestamp.

    Writing is atomic: a new folder is built under a temporary name next to ``folder`` and
    renamed; in an existing folder every file is first written under a temporary name and then
    moved into place with ``os.replace``. Other files already in the folder (``history.csv``,
    checkpoints) are kept.

    Parameters
    ----------
    model : UNet
        The network.
    folder : path-like
        The model folder (created with its parents if missing).
    meta : dict, optional
        JSON-serialisable metadata (target type, normalisation, pixel size, training crop...).
        Default: ``model.meta``.
    device : str, optional
        Device the model was trained on, for ``env.json``. Default: the parameters' device.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(UNet(ndim=2, depth=2, base_features=4), Path(tmp) / "m")
    ...     sorted(p.name for p in path.iterdir())
    ['config.json', 'env.json', 'weights.pt']
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    folder = Path(folder)
    if meta is None:
        meta = getattr(model, "meta", None) or {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cuda:0', got {type(device).__name__}")

    document = {
        "format_version": FORMAT_VERSION,
        "model": MODEL_TYPE,
        "unet": model.config,
        "meta": dict(meta),
    }
    try:
        config_bytes = (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError(f"meta must be JSON-serialisable (finite numbers): {error}") from None
    env = _environment(device if device is not None else _model_device(model))
    env_bytes = (json.dumps(env, indent=2) + "\n").encode("utf-8")
    state = {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()}

    writers: dict[str, Callable[[Any], None]] = {
        WEIGHTS_FILE: lambda handle: torch.save(state, handle),
        ENV_FILE: lambda handle: handle.write(env_bytes),
        CONFIG_FILE: lambda handle: handle.write(config_bytes),  # last: marks a complete model
    }

    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = _temp_name(folder)
        staging.mkdir()
        try:
            for name, writer in writers.items():
                _write_file(staging / name, writer)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    if not folder.is_dir():
        raise ModelError(f"{folder} exists and is not a directory")
    staged: dict[str, Path] = {}
    try:
        for name, writer in writers.items():
            staged[name] = _temp_name(folder / name)
            _write_file(staged[name], writer)
        for name, temp in staged.items():
            os.replace(temp, folder / name)
    except BaseException:
        for temp in staged.values():
            temp.unlink(missing_ok=True)
        raise
    return folder


def _read_config(folder: PathLike) -> tuple[Path, dict[str, Any]]:
    folder = Path(folder)
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} is not a directory")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing: {folder} is not a (complete) model folder")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise ModelError(f"{path} cannot be read: {error}") from None
    if not isinstance(document, dict):
        raise ModelError(f"{path} must hold a JSON object, got {type(document).__name__}")
    model_type = document.get("model")
    if model_type != MODEL_TYPE:
        raise ModelError(f"{path}: unknown model type {model_type!r} (expected {MODEL_TYPE!r})")
    if not isinstance(document.get("unet"), dict):
        raise ModelError(f"{path}: 'unet' must be an object holding the UNet config")
    meta = document.setdefault("meta", {})
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: 'meta' must be an object, got {type(meta).__name__}")
    return path, document


def _few(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_model(folder: PathLike, *, map_location: str | torch.device = "cpu") -> UNet:
    """Rebuild the exact model saved by :func:`save_model`, in eval mode.

    Weights are read with ``torch.load(..., weights_only=True)``. The returned model's
    ``meta`` attribute holds the saved metadata.

    Raises
    ------
    ModelError
        Naming the file, for a missing folder, missing ``config.json`` or ``weights.pt``,
        invalid JSON, an unknown model type or config, an unreadable weights file, or weights
        that do not match the architecture (missing/unexpected keys, shape mismatches).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(UNet(ndim=2, depth=2, base_features=4), Path(tmp) / "m",
    ...                       meta={"target": "foreground"})
    ...     load_model(path).meta
    {'target': 'foreground'}
    """
    config_path, document = _read_config(folder)
    try:
        # the random initial weights are overwritten below; keep torch's global random
        # state untouched, as build_unet does
        with torch.random.fork_rng(devices=[]):
            model = UNet.from_config(document["unet"])
    except (TypeError, ValueError) as error:
        raise ModelError(f"{config_path}: invalid UNet config: {error}") from None

    weights_path = config_path.with_name(WEIGHTS_FILE)
    if not weights_path.is_file():
        raise ModelError(f"{weights_path} is missing")
    try:
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
    except Exception as error:  # any failure means an unusable file; details stay chained
        raise ModelError(
            f"{weights_path} cannot be loaded as a weights file (corrupt, truncated, or not a "
            f"plain state dict): torch.load(weights_only=True) raised {type(error).__name__}"
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{weights_path} does not hold a state dict of named tensors")

    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} (file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)})"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys: {_few(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_few(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatch: {_few(mismatched)}")
        raise ModelError(
            f"{weights_path}: weights do not match the architecture in {config_path} "
            f"({'; '.join(problems)})"
        )
    model.load_state_dict(state, strict=True)
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    model.meta = copy.deepcopy(document["meta"])
    return model.eval()


def read_model_meta(folder: PathLike) -> dict[str, Any]:
    """The ``meta`` dict of a model folder's ``config.json`` (without loading weights).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(UNet(ndim=2, depth=1, base_features=4), Path(tmp) / "m",
    ...                       meta={"pixel_size_nm": [4, 4]})
    ...     read_model_meta(path)
    {'pixel_size_nm': [4, 4]}
    """
    return _read_config(folder)[1]["meta"]
