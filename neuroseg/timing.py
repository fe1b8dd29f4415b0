"""Honest wall-clock and memory measurements of one call.

:func:`measure` runs a function once and reports its wall-clock seconds and the peak of the
process's resident memory above what it held when the call started (sampled every few
milliseconds in a background thread, so it sees memory from numpy, torch and C libraries
alike, which :mod:`tracemalloc` would not). On a CUDA device the GPU is synchronised before
the clock stops. Benchmarks repeat calls themselves; tests check behaviour, not timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["Measured", "measure"]


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
