"""Atomic writing of results: JSON, CSV, figures and whole folders.

Everything the pipeline writes goes through here, so a failed or interrupted step never
leaves a half-written file behind: data is written to a temporary file in the target's
folder and then renamed over the target (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuroseg import paths


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(obj: Any, target: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars/arrays converted, NaN → null)."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
    return Path(target)


def read_json(source: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error if it is not valid JSON."""
    source = Path(source)
    try:
        return json.loads(source.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err})") from err


def write_csv(table, target: str | os.PathLike) -> Path:
    """Write a pandas DataFrame (or list of dicts) as CSV atomically, without the index."""
    import pandas as pd

    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)


def save_figure(fig, name: str, *, profile: str | None = None, formats=("png", "pdf"), dpi=150):
    """Save a matplotlib figure as ``<figures>/<name>.png`` and ``.pdf`` (atomically).

    Returns the list of written paths.
    """
    out = []
    for fmt in formats:
        target = paths.figures_dir(profile) / f"{name}.{fmt}"
        with atomic_path(target) as tmp:
            # no creation date in the file, so re-running an unchanged step changes no bytes
            metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        out.append(target)
    return out


def write_metrics(notebook: str, values, *, profile: str | None = None, suffix: str = "") -> Path:
    """Write a notebook's headline numbers to ``<reports>/metrics/<notebook><suffix>.json``.

    ``values`` is a flat mapping (written as JSON) or a table (DataFrame or list of row
    dicts; written as CSV, one row per condition).
    """
    if isinstance(values, Mapping):
        flat = {k: v for k, v in values.items()}
        nested = [k for k, v in flat.items() if isinstance(v, (Mapping, list, tuple, np.ndarray))]
        if nested:
            raise ValueError(f"metrics must be flat; nested values under {nested}")
        return write_json(flat, paths.metrics_dir(profile) / f"{notebook}{suffix}.json")
    return write_csv(values, paths.metrics_dir(profile) / f"{notebook}{suffix}.csv")
