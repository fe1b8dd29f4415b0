"""Atomic writing of results: JSON, CSV, figures and whole folders.

Everything the pipeline writes goes through here, so a failed or interrupted step never
leaves a half-written file behind: data is written to a temporary file in the target's
folder and then renamed over the target (``os.replace`` is atomic on POSIX). A folder (a
model folder) is built as a temporary sibling and swapped into place whole
(:func:`atomic_folder`); a swap cut short by a kill is undone, and stale temporary siblings
are removed, by the next write of that folder (:func:`recover_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import uuid
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
    suffix = suffix or target.suffix or ".tmp"
    # temporary files of an earlier write of this target that a kill left behind
    stale = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    for old in target.parent.glob(f".{target.name}.*"):
        if stale.fullmatch(old.name) and old.is_file():
            old.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with _disk_full_says_so(target):
            yield tmp
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; give the usual permissions
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _disk_full_says_so(target: Path) -> Iterator[None]:
    """A full disk (or quota) while writing ``target`` says where and what to do."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OSError(
            err.errno,
            f"no space left on the device while writing {target} ({err.strerror}); nothing "
            "was written there: free some space (or point NEUROSEG_ARTIFACTS elsewhere) and "
            "run again",
        ) from err


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.{kind}"), key=lambda p: p.stat().st_mtime)


def recover_folder(target: str | os.PathLike) -> None:
    """Undo a folder swap that a kill cut short, and remove stale temporary siblings.

    A swap renames the old folder to a ``.<name>.<id>.retired`` sibling, then the new one
    (built as ``.<name>.<id>.staging``) into place. Killed between the two renames, the folder
    is missing: the retired one is put back, so ``target`` is whole (old) again.
    """
    target = Path(target)
    retired = _siblings(target, "retired") if target.parent.exists() else []
    if retired and not os.path.lexists(target):
        os.replace(retired.pop(), target)
    for stale in retired + (_siblings(target, "staging") if target.parent.exists() else []):
        shutil.rmtree(stale, ignore_errors=True)


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (same data, no copy), or copy it where links fail."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, *, keep_existing: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` whole.

    With ``keep_existing``, files and folders of an existing ``target`` that the new one does
    not contain (a model folder's ``history.csv`` and checkpoints) are carried over (hard
    links where possible). On an exception the temporary folder is removed and ``target`` is
    left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_folder(d / "model") as tmp:
    ...     _ = (tmp / "a.txt").write_text("first")
    >>> with atomic_folder(d / "model") as tmp:
    ...     _ = (tmp / "b.txt").write_text("second")
    >>> sorted(p.name for p in (d / "model").iterdir()), sorted(p.name for p in d.iterdir())
    (['a.txt', 'b.txt'], ['model'])
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a folder; move it away first")
    tag = uuid.uuid4().hex
    staging = target.parent / f".{target.name}.{tag}.staging"
    staging.mkdir()
    try:
        with _disk_full_says_so(target):
            yield staging
            if keep_existing and target.exists():
                for item in target.iterdir():
                    dest = staging / item.name
                    if os.path.lexists(dest):
                        continue
                    if item.is_dir() and not item.is_symlink():
                        shutil.copytree(item, dest, copy_function=link_or_copy, symlinks=True)
                    else:
                        link_or_copy(str(item), str(dest))
        if target.exists():
            retired = target.parent / f".{target.name}.{tag}.retired"
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in blocks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """A ``sha256sum``-format file as ``{name: lower-case SHA-256}`` (``*`` and ``./`` dropped
    from names); empty when the file is absent.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.sha256"
    >>> _ = p.write_text("ABC  ./d/f.h5")
    >>> read_sha256sums(p), read_sha256sums(p.parent / "none")
    ({'d/f.h5': 'abc'}, {})
    """
    path = Path(path)
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            out[parts[1].strip().lstrip("*").removeprefix("./")] = parts[0].lower()
    return out


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
