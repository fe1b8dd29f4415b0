"""How a network is run, as opposed to what it computes: precision, memory layout, compilation.

:class:`Speed` is a small frozen record of those choices and :func:`accelerate` applies one to
a model, returning a wrapper that every prediction function of the package accepts in place
of the model (it has the model's ``config``, ``meta`` and ``required_multiple``). The speed
work of ``40_timing_2d_vs_3d`` (:func:`neuroseg.experiments.timing_2d_vs_3d.speed_work`) changes these
fields one at a time and keeps what helps.

- ``precision``: ``"fp32"`` (no autocast), ``"bf16"`` or ``"fp16"`` autocast, on CUDA and
  CPU alike; outputs are returned as float32.
- ``channels_last``: inputs and weights in channels-last (NHWC / NDHWC) memory layout.
- ``compile``: :func:`torch.compile` (needs a C++ compiler on CPU; the first calls of each
  input shape are slow while it compiles, so time it after warm-up).
- ``batch_size``: slices (2D) or tiles (3D) per network call; read by the callers.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["PRECISIONS", "Speed", "Accelerated", "accelerate"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speed:
    """How to run a network (see the module docstring).

    Examples
    --------
    >>> s = Speed()
    >>> s, s.replace(precision="bf16").label
    (Speed(precision='fp32', channels_last=False, compile=False, batch_size=8), 'bf16, batch 8')
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    batch_size: int = 8

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}; got {self.precision!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1; got {self.batch_size}")

    def replace(self, **changes: Any) -> Speed:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """Short readable description, e.g. ``"bf16, channels-last, compiled, batch 8"``."""
        parts = [self.precision]
        if self.channels_last:
            parts.append("channels-last")
        if self.compile:
            parts.append("compiled")
        parts.append(f"batch {self.batch_size}")
        return ", ".join(parts)


class Accelerated(nn.Module):
    """A network run as a :class:`Speed` says; made by :func:`accelerate`.

    ``forward`` returns float32 whatever the precision inside. ``config``, ``meta`` and
    ``required_multiple`` are the wrapped model's, so the package's prediction functions
    accept it wherever they accept the model.
    """

    def __init__(self, model: nn.Module, speed: Speed):
        super().__init__()
        self.model = model
        self.speed = speed
        self._run = torch.compile(model, dynamic=False) if speed.compile else model

    @property
    def config(self) -> dict:
        return self.model.config

    @property
    def meta(self) -> dict:
        return self.model.meta

    @property
    def required_multiple(self) -> tuple[int, ...]:
        return self.model.required_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.speed.channels_last:
            x = x.contiguous(memory_format=channels_last_format(x.ndim))
        dtype = PRECISIONS[self.speed.precision]
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.bfloat16,
                            enabled=dtype is not None):
            y = self._run(x)
        return y.float()


def channels_last_format(ndim: int) -> torch.memory_format:
    """The channels-last memory format of a 4-D (N, C, Y, X) or 5-D (N, C, Z, Y, X) tensor."""
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def _resolve(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def accelerate(model: nn.Module, speed: Speed | None = None, *,
               device: str | torch.device | None = None) -> Accelerated:
    """``model`` run as ``speed`` says (default: unchanged, fp32) on ``device`` (default: where
    its weights are). ``model`` itself is not converted or moved: a copy is made when
    channels-last or another device is asked for. The wrapper is in eval mode, as the
    prediction functions would set it.

    Examples
    --------
    >>> from neuroseg.nets.unet import UNet
    >>> net = UNet(ndim=2, depth=2, base_features=4)
    >>> fast = accelerate(net, Speed(channels_last=True))
    >>> x = torch.rand(1, 1, 16, 16)
    >>> bool(torch.allclose(fast(x), net.eval()(x), atol=1e-5)), fast.required_multiple
    (True, (2, 2))
    """
    speed = speed or Speed()
    if isinstance(model, Accelerated):
        model = model.model
    current = next((p.device for p in model.parameters()), torch.device("cpu"))
    target = current if device is None else _resolve(device)
    if speed.channels_last or target != _resolve(current):
        model = copy.deepcopy(model)
        if target != _resolve(current):
            model = model.to(device=target)
        if speed.channels_last:
            ndim = 2 + len(getattr(model, "required_multiple", (0, 0)))
            model = model.to(memory_format=channels_last_format(ndim))
    return Accelerated(model, speed).eval()
