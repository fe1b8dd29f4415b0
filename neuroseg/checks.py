"""Argument checks every layer shares, and the guard around native libraries.

Bad input gets a clear error that names the argument, the value and what is expected.
Native libraries (``mwatershed`` is Rust, ``cc3d`` is C++) are validated against before they
are called; :func:`native_call` is the last line of defence, turning a native panic (a
``BaseException`` that ``except Exception`` does not catch) into a ``RuntimeError`` that
names the call and says what to report.

Examples
--------
>>> check_unit_interval(0.25, "threshold")
0.25
>>> check_unit_interval(1.5, "threshold")
Traceback (most recent call last):
...
ValueError: threshold must be a number in [0, 1]; got 1.5
"""

from __future__ import annotations

import importlib
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "MAX_SCALE_RATIO", "WARN_SCALE_RATIO", "PixelSizeWarning", "check_resolution",
    "check_scale_ratio", "check_unit_interval", "native_call", "require_extra",
    "warn_missing_pixel_size",
]

#: How far (either way round) an image's pixel size may be from a model's before it refuses.
MAX_SCALE_RATIO = 4.0


def check_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1] (a probability or a threshold on one); else an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1]; got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1]; got {value}")
    return v


def check_resolution(resolution: Any, *, n: int = 3, name: str = "resolution"
                     ) -> tuple[float, ...] | None:
    """``resolution`` as ``n`` positive, finite floats (a voxel size, e.g. (z, y, x) in nm)."""
    if resolution is None:
        return None
    what = "(z, y, x)" if n == 3 else "(y, x)" if n == 2 else f"(one per axis of {n})"
    message = f"{name} must be {n} positive numbers {what}; got {resolution!r}"
    try:
        values = tuple(float(v) for v in resolution)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if len(values) != n or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(message)
    return values


class PixelSizeWarning(UserWarning):
    """An image's pixel size is far from (or not given beside) the one a model was trained at."""


#: Beyond this ratio (either way round) resampling to a model's pixel size warns.
WARN_SCALE_RATIO = 2.0


def warn_missing_pixel_size(model_size: str, *, argument: str = "resolution=(z, y, x)") -> None:
    """Warn that no pixel size was given, so the input is taken to be at the model's."""
    warnings.warn(
        f"no pixel size given: the input is taken to be at the model's {model_size}; pass "
        f"{argument} so that it is resampled to the model's if it differs",
        PixelSizeWarning, stacklevel=3,
    )


def check_scale_ratio(
    ratio: float, *, what: str, reference: str = "the model's", limit: float = MAX_SCALE_RATIO,
    warn_at: float | None = WARN_SCALE_RATIO,
) -> float:
    """The one rule for pixel sizes far from a model's (``ratio`` = image / model size): more
    than :data:`WARN_SCALE_RATIO` either way warns (:class:`PixelSizeWarning`), more than
    ``limit`` (:data:`MAX_SCALE_RATIO`) is refused with a ``ValueError`` that says what to do.
    ``warn_at=None``: the caller warns in its own words."""
    far = max(ratio, 1.0 / ratio)
    if warn_at is not None and warn_at * (1 + 1e-9) < far <= limit * (1 + 1e-9):
        direction = "coarser" if ratio > 1 else "finer"
        warnings.warn(f"{what} is {far:.3g}x {direction} than {reference}; it is resampled, "
                      "but expect worse results", PixelSizeWarning, stacklevel=3)
    if far > limit * (1 + 1e-9):
        direction = "coarser" if ratio > 1 else "finer"
        raise ValueError(
            f"{what} is {far:.3g}x {direction} than {reference}; refusing to go beyond "
            f"{limit:g}x (check the resolution you passed, or use a model trained or calibrated "
            "nearer this voxel size)"
        )
    return ratio


def native_call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    """Call a native library's ``fn``; a panic inside it becomes a ``RuntimeError``.

    ``KeyboardInterrupt`` and ``SystemExit`` pass through unchanged; ordinary exceptions are
    re-raised as they are.
    """
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except Exception:
        raise
    except BaseException as err:  # e.g. pyo3_runtime.PanicException from a Rust library
        raise RuntimeError(
            f"{what} failed inside a native library ({type(err).__name__}: {err}); the input "
            "passed neuroseg's checks, so please report this with the input's shape and dtype"
        ) from err


def require_extra(module: str, extra: str):
    """Import ``module`` from an optional extra of the package, or say how to install it.

    Examples
    --------
    >>> require_extra("json", "notebooks").__name__
    'json'
    >>> require_extra("no_such_module_here", "notebooks")
    Traceback (most recent call last):
    ...
    ImportError: no_such_module_here is not installed: it comes with neuroseg's 'notebooks' extra (pip install -e '.[notebooks]' in the repository)
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module.split(".")[0]:
            raise
        raise ImportError(f"{module} is not installed: it comes with neuroseg's {extra!r} extra "
                          f"(pip install -e '.[{extra}]' in the repository)") from None
