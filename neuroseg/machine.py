"""The machine a result is made on, and the threads it uses: set explicitly, recorded always.

A training run from scratch gives the same bytes only on the same machine with the same
threads: the CPU's instruction set picks oneDNN's kernels (AMX, AVX-512 or AVX2 for bf16), and
the number of threads changes the order of floating-point sums. So the pipeline sets the
threads from a parameter (:func:`set_threads`) and every model folder records
:func:`describe` (in its ``env.json``).

torch is imported only when a function needs it, so ``neuroseg.machine`` stays light.

Examples
--------
>>> facts = describe("cpu")
>>> sorted(facts)[:4]
['cores', 'cpu', 'cpu_capability', 'cpu_flags']
"""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["CPU_FLAGS", "cpu_flags", "cpu_model", "describe", "one_line", "set_threads"]

#: CPU features that select different numerical kernels (recorded when present).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of :data:`CPU_FLAGS` this CPU has."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS if f in present]
    return []


def set_threads(threads: int) -> int:
    """Use ``threads`` CPU threads in torch (and in the OpenMP/MKL pools of child processes).

    Returns the number now in use. Raises ``ValueError`` for anything but a positive int.
    """
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer; got {threads!r}")
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return torch.get_num_threads()


def _onednn_version() -> str | None:
    import torch

    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            parts = line.split()
            version = next((p for p in parts if p.startswith("v") and p[1:2].isdigit()), None)
            return version
    return None


def describe(device: str | None = None) -> dict[str, Any]:
    """What a numerical result depends on besides the code and the data."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    facts = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn": _onednn_version(),
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
    }
    return facts


def one_line(device: str | None = None) -> str:
    """:func:`describe` as one line, for a table's ``machine`` column.

    >>> "cores" in one_line() and "torch" in one_line()
    True
    """
    facts = describe(device)
    return (f"{facts['cpu']} ({facts['cores']} cores, {facts['threads']} threads; "
            f"{' '.join(facts['cpu_flags']) or 'no listed flags'}; torch {facts['torch']})")
