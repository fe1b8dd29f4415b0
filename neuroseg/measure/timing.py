"""Honest wall-clock and memory measurements.

- :func:`measure` runs a function once and reports its wall-clock seconds and the peak of the
  process's resident memory above what it held when the call started (sampled every few
  milliseconds in a background thread, so it sees memory from numpy, torch and C libraries
  alike, which :mod:`tracemalloc` would not).
- :func:`benchmark` warms up, then repeats a call and reports the median and spread of its
  wall-clock time with what the number depends on: device, precision, threads, library
  versions, peak CPU memory (RSS) and peak CUDA memory.
- :func:`count_flops` counts a network's floating-point operations
  (:class:`torch.utils.flop_counter.FlopCounterMode`, 2 per multiply-add), and
  :func:`model_flop_utilisation` relates achieved FLOP/s to the device's peak.

On a CUDA device the GPU is synchronised before the clock starts and before it stops, so
queued kernels are counted where they run (as :mod:`torch.utils.benchmark` does). Benchmarks
live in notebooks; tests check behaviour, not timings.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from neuroseg.machine import cpu_model

__all__ = [
    "PEAK_TFLOPS",
    "Measured",
    "Timing",
    "benchmark",
    "count_flops",
    "device_label",
    "device_name",
    "environment",
    "measure",
    "model_flop_utilisation",
    "peak_flops",
]


@dataclass(frozen=True)
class Measured:
    """What :func:`measure` returns: the call's ``result``, ``seconds`` and ``peak_mb``."""

    result: Any
    seconds: float
    peak_mb: float


def _synchronise() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(fn: Callable[..., Any], *args, interval: float = 0.002, **kwargs) -> Measured:
    """Call ``fn(*args, **kwargs)`` once; return its result, seconds and peak extra memory.

    ``peak_mb`` is the largest resident set size (MiB) seen during the call minus the size at
    its start, sampled every ``interval`` seconds (a short spike between samples can be
    missed; the value is a lower bound of the true peak).

    Examples
    --------
    >>> import numpy as np
    >>> m = measure(lambda: np.ones(10_000_000).sum())
    >>> m.result, m.seconds > 0, m.peak_mb >= 0
    (np.float64(10000000.0), True, True)
    """
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
        _synchronise()
        seconds = time.perf_counter() - t0
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return Measured(result=result, seconds=seconds, peak_mb=(peak[0] - start_rss) / 2**20)


# --------------------------------------------------------------------------------------------
# repeated timings
# --------------------------------------------------------------------------------------------


class _RSSWatch:
    """Peak resident memory above the start, sampled in a thread (see :func:`measure`)."""

    def __init__(self, interval: float = 0.002):
        self.process = psutil.Process()
        self.interval = interval
        self.start = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.done.wait(self.interval)

    def __enter__(self) -> _RSSWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def device_name(device: str | None = None) -> str:
    """A readable name of ``device`` ("cuda", "cuda:1", "cpu"; default: CUDA if present):
    the GPU's name, or the CPU model and its core count."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def environment(device: str | None = None) -> dict[str, Any]:
    """What a timing depends on besides the code: device, threads and library versions."""
    import numpy
    import torch

    dev = str(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": numpy.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("connected-components-3d", "mwatershed", "scipy", "scikit-image"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            pass
    if torch.cuda.is_available():
        versions["cuda"] = torch.version.cuda
    return {"device": dev, "device_name": device_name(dev), "threads": torch.get_num_threads(),
            "versions": versions}


@dataclass(frozen=True)
class Timing:
    """What :func:`benchmark` returns (besides the call's result).

    ``times`` are the repeats' seconds; ``median``, ``q25`` and ``q75`` summarise them.
    ``peak_rss_mb`` is the process's resident memory above the start (a lower bound, sampled);
    ``cuda_max_allocated_mb`` PyTorch's peak CUDA allocation (None on CPU).
    """

    name: str
    times: tuple[float, ...]
    warmup: int
    precision: str
    peak_rss_mb: float
    cuda_max_allocated_mb: float | None
    env: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(statistics.median(self.times))

    @property
    def q25(self) -> float:
        return float(_quantile(self.times, 0.25))

    @property
    def q75(self) -> float:
        return float(_quantile(self.times, 0.75))

    def to_dict(self) -> dict[str, Any]:
        """Flat record for a table or JSON (times as a list)."""
        d = asdict(self)
        env = d.pop("env")
        d["times"] = list(self.times)
        return {**d, "median": self.median, "q25": self.q25, "q75": self.q75,
                "repeats": len(self.times), **env}


def _quantile(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _default_sync(device: str) -> Callable[[], None]:
    import torch

    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def benchmark(
    fn: Callable[..., Any],
    *args,
    name: str = "",
    warmup: int = 1,
    repeats: int = 5,
    device: str | None = None,
    precision: str = "fp32",
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] | None = None,
    **kwargs,
) -> tuple[Timing, Any]:
    """Time ``fn(*args, **kwargs)``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Each timed call is bracketed by ``sync()`` (default: ``torch.cuda.synchronize`` on a CUDA
    ``device``, nothing on CPU): the device is idle when the clock starts and has finished
    the call's work when it stops. ``precision`` is recorded, not applied (the call applies
    it). ``clock`` and ``sync`` can be replaced (tests). Returns the :class:`Timing` and the
    last call's result.

    Examples
    --------
    >>> ticks = iter(range(100))
    >>> t, out = benchmark(lambda: 7, repeats=3, clock=lambda: float(next(ticks)))
    >>> out, t.times, t.median
    (7, (1.0, 1.0, 1.0), 1.0)
    """
    import torch

    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1; got {warmup} and {repeats}")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = sync or _default_sync(dev)
    cuda = torch.device(dev).type == "cuda"
    result = None
    for _ in range(warmup):
        result = fn(*args, **kwargs)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    with _RSSWatch() as watch:
        for _ in range(repeats):
            sync()
            t0 = clock()
            result = fn(*args, **kwargs)
            sync()
            times.append(clock() - t0)
    cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None
    timing = Timing(name=name, times=tuple(float(t) for t in times), warmup=int(warmup),
                    precision=precision, peak_rss_mb=watch.peak_mb, cuda_max_allocated_mb=cuda_mb,
                    env=environment(dev))
    return timing, result


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------

#: Dense (no sparsity) peak tensor throughput in TFLOP/s from NVIDIA's data sheets, by a
#: substring of ``torch.cuda.get_device_name`` and precision.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM / HBM3
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
}


def peak_flops(name: str, precision: str) -> float | None:
    """The device's peak FLOP/s at ``precision`` (:data:`PEAK_TFLOPS`), None when unknown
    (CPUs among them).

    Examples
    --------
    >>> peak_flops("NVIDIA H100 80GB HBM3", "bf16")
    989400000000000.0
    >>> peak_flops("Intel Xeon", "fp32") is None
    True
    """
    for key, table in PEAK_TFLOPS.items():  # the more specific names come first
        if key in name and precision in table:
            return table[precision] * 1e12
    return None


def count_flops(model, inputs) -> int:
    """Floating-point operations of one forward pass of ``model`` on ``inputs`` (a tensor or
    a shape), counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add
    is 2).

    Examples
    --------
    >>> import torch
    >>> count_flops(torch.nn.Conv2d(1, 2, 3, padding=1, bias=False), (1, 1, 4, 4))
    576
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = inputs if isinstance(inputs, torch.Tensor) else torch.zeros(tuple(inputs))
    try:
        x = x.to(next(model.parameters()).device)
    except StopIteration:
        pass
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_flop_utilisation(flops: float, seconds: float, peak: float | None) -> float | None:
    """Achieved FLOP/s (``flops / seconds``) as a fraction of ``peak``; None without a peak."""
    if peak is None or not seconds > 0:
        return None
    return float(flops / seconds / peak)


def device_label(device: str | None = None) -> str:
    """A file-name-safe device tag for result files such as ``40_timing_<device>.json``: ``cpu`` or the GPU's name
    (e.g. ``nvidia_h100_80gb_hbm3``)."""
    import re

    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "_", device_name(str(dev)).lower()).strip("_")
