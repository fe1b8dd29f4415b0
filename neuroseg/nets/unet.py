"""The U-Net: 2D or 3D, per-level (optionally anisotropic) pooling, built reproducibly by seed.

- :class:`UNet` — batch/group/no normalisation, logits of the same spatial size as the input.
- :func:`build_unet` — a :class:`UNet` from a config dict with a seed, so that the same seed
  gives identical initial weights without touching torch's global random state.

Fine-tuning helpers are in :mod:`neuroseg.nets.layers`, the model folder in
:mod:`neuroseg.nets.folder`. A bad architecture or folder raises :class:`ModelError` (a
``ValueError``).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "ModelError",
    "UNet",
    "build_unet",
]


_NORMS = ("batch", "group", None)
_AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}


class ModelError(ValueError):
    """A model folder is missing, malformed, or does not match its architecture."""


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def as_int(name: str, value: Any, *, minimum: int) -> int:
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


def conv_class(ndim: int) -> type[nn.Module]:
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class _ConvBlock(nn.Module):
    """Two (3x3[x3] conv -> norm -> ReLU) layers, padding 1 (same size)."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, norm: str | None):
        super().__init__()
        conv = conv_class(ndim)
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
                [as_int(f"pool_factors[{level}][{i}]", f, minimum=1) for i, f in enumerate(factor)]
            )
        else:
            result.append([as_int(f"pool_factors[{level}]", factor, minimum=1)] * ndim)
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
        ndim = as_int("ndim", ndim, minimum=2)
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        in_channels = as_int("in_channels", in_channels, minimum=1)
        out_channels = as_int("out_channels", out_channels, minimum=1)
        depth = as_int("depth", depth, minimum=1)
        base_features = as_int("base_features", base_features, minimum=1)
        feature_growth = as_int("feature_growth", feature_growth, minimum=1)
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
        self.head = conv_class(ndim)(features[0], out_channels, kernel_size=1)

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
    seed = as_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return UNet.from_config(config)
