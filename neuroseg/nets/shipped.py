"""Trained models that ship with the package, loadable by name.

``pip install`` brings them as package data (``neuroseg/models/<name>/``: ``config.json``,
``weights.pt`` in half precision, ``history.csv``, ``env.json``), so a researcher can segment
without training first::

    >>> import neuroseg
    >>> neuroseg.list_models()[["name", "task"]]          # doctest: +SKIP
    >>> model = neuroseg.load_model("nucleus")             # doctest: +SKIP

``registry.json`` beside them lists each one: its task, the pixel size it expects, the
validation score of the shipped (half-precision) weights, on which data, and the command that
rebuilds it. :func:`export_model` writes a model folder into the registry (``make
export-models`` runs it on freshly trained models, see :mod:`neuroseg.report.export_models`);
:func:`shipped_table` is ``reports/metrics/shipped_models.csv``.

Half precision halves the files; the weights are read back into a float32 network, so the
shipped model computes in whatever precision the caller asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "REGISTRY_FILE",
    "export_model",
    "list_models",
    "load_model",
    "read_registry",
    "shipped_folder",
    "shipped_table",
    "shipped_dir",
]

REGISTRY_FILE = "registry.json"
#: The columns of ``reports/metrics/shipped_models.csv``.
TABLE_COLUMNS = ("name", "task", "file", "bytes", "sha256", "pixel_size", "val_metric", "val_value")
#: What every registry entry holds.
FIELDS = ("name", "task", "pixel_size", "pixel_unit", "val_metric", "val_value", "val_data",
          "val_split", "rebuild", "source", "bytes", "sha256")


def shipped_dir() -> Path:
    """The folder of the shipped models: ``NEUROSEG_MODELS`` if set (for tests and exports to
    another place), else the package's ``neuroseg/models``."""
    env = os.environ.get("NEUROSEG_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def read_registry(folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The registry's entries (an empty list where nothing is shipped yet)."""
    path = Path(folder or shipped_dir()) / REGISTRY_FILE
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); reinstall neuroseg or run "
                         "`make export-models`") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "name" in e for e in entries):
        raise ValueError(f"{path} must hold a list of model entries with a 'name' each")
    return entries


def list_models(folder: str | os.PathLike | None = None):
    """The shipped models as a table: name, task, input pixel size, validation score (of the
    shipped half-precision weights, on ``val_data``), size, and the command that rebuilds it.

    Examples
    --------
    >>> import tempfile
    >>> list(list_models(tempfile.mkdtemp()).columns)[:4]
    ['name', 'task', 'pixel_size', 'val_metric']
    """
    import pandas as pd

    entries = read_registry(folder)
    columns = ["name", "task", "pixel_size", "val_metric", "val_value", "val_data", "bytes", "rebuild"]
    rows = [{**{k: e.get(k) for k in columns},
             "pixel_size": _size_text(e.get("pixel_size"), e.get("pixel_unit"))} for e in entries]
    return pd.DataFrame(rows, columns=columns)


def _size_text(size, unit) -> str | None:
    if not size:
        return None
    return " x ".join(f"{float(s):g}" for s in size) + f" {unit or ''}".rstrip()


def shipped_folder(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The folder of the shipped model ``name``; a clear error lists the shipped names."""
    root = Path(folder or shipped_dir())
    names = [e["name"] for e in read_registry(root)]
    if name not in names:
        shown = ", ".join(names) if names else "none (run `make export-models`)"
        raise FileNotFoundError(f"no shipped model named {name!r}; shipped: {shown}. "
                                "Or pass the path of a model folder.")
    return root / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_model(
    source: str | os.PathLike,
    name: str,
    *,
    task: str,
    val_metric: str,
    val_value: float,
    val_data: str,
    rebuild: str,
    val_split: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    origin: str | None = None,
    dest: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Copy the model folder ``source`` into the shipped models as ``name``, in half precision.

    The folder is built beside its final place and swapped in whole
    (:func:`neuroseg.io.atomic_folder`), then the registry entry (:data:`FIELDS`) is written,
    also atomically.
    ``val_split`` (JSON: how and on what ``val_value`` was measured, so that it can be measured
    again) goes into the entry and the model's meta; ``meta`` is merged into the model's meta.
    ``origin`` names where the model came from in the registry (default: ``source``).
    Returns the entry.

    Examples
    --------
    >>> import tempfile, torch
    >>> from neuroseg.nets.folder import save_model
    >>> from neuroseg.nets.unet import UNet
    >>> tmp = Path(tempfile.mkdtemp())
    >>> src = save_model(UNet(ndim=2, depth=2, base_features=4), tmp / "m",
    ...                  meta={"target": "foreground", "pixel_size": {"size": [1, 1], "unit": "um"}})
    >>> e = export_model(src, "tiny", task="nuclei", val_metric="AP@0.5", val_value=0.5,
    ...                  val_data="none", rebuild="make 10_nucleus_pretraining", dest=tmp / "shipped")
    >>> e["pixel_size"], load_model("tiny", shipped=tmp / "shipped").meta["target"]
    ([1.0, 1.0], 'foreground')
    """
    import shutil

    import torch

    from neuroseg.io import atomic_folder, write_json
    from neuroseg.nets.folder import WEIGHTS_FILE, load_model, save_model

    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"a shipped model's name is letters, digits, '_' and '-'; got {name!r}")
    root = Path(dest or shipped_dir())
    model = load_model(source)
    model.meta = {**(model.meta or {}), **dict(meta or {}), "shipped_as": name,
                  "weights_precision": "float16", "val_split": dict(val_split or {})}
    target = root / name
    with atomic_folder(target, keep_existing=False) as tmp:
        save_model(model, tmp, meta=model.meta)
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
        torch.save(half, tmp / WEIGHTS_FILE)
        for extra in Path(source).iterdir():  # history.csv, a linker's calibrations.pt
            if extra.is_file() and extra.name not in ("config.json", WEIGHTS_FILE, "env.json"):
                shutil.copy2(extra, tmp / extra.name)
    size = model.meta.get("pixel_size") or {}
    entry = {"name": name, "task": task, "pixel_size": [float(s) for s in size.get("size", [])],
             "pixel_unit": size.get("unit"), "val_metric": val_metric, "val_value": float(val_value),
             "val_data": val_data, "val_split": dict(val_split or {}), "rebuild": rebuild,
             "source": origin or str(source),
             "bytes": (target / WEIGHTS_FILE).stat().st_size, "sha256": _sha256(target / WEIGHTS_FILE)}
    entries = [e for e in read_registry(root) if e["name"] != name] + [entry]
    write_json(sorted(entries, key=lambda e: e["name"]), root / REGISTRY_FILE)
    return entry


def load_model(name_or_folder: str | os.PathLike, *, device: str | None = None,
               shipped: str | os.PathLike | None = None):
    """A trained model by the name of a shipped one (:func:`list_models`) or by its folder.

    A name is looked up among the shipped models (in ``shipped``, default :func:`shipped_dir`);
    anything else is a model folder (:func:`neuroseg.nets.folder.load_model`). ``device``:
    where the weights go, ``"cpu"`` (the default), ``"cuda"``, ``"cuda:1"``...; the calls that
    run a model take their own ``device=``.

    Examples
    --------
    >>> load_model("no_such_model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no shipped model named 'no_such_model'; shipped: ...
    """
    from neuroseg.nets.folder import load_model as load_folder

    path = Path(name_or_folder)
    is_name = isinstance(name_or_folder, str) and not path.exists() and len(path.parts) == 1
    folder = shipped_folder(str(name_or_folder), shipped) if is_name else path
    return load_folder(folder, map_location=device or "cpu")


def shipped_table(folder: str | os.PathLike | None = None, *, relative_to: str | os.PathLike | None = None):
    """``reports/metrics/shipped_models.csv``: one row per shipped model with
    :data:`TABLE_COLUMNS`; ``file`` is the weights file's path relative to ``relative_to``
    (the repository) where given. Each hash is checked against the file on disk."""
    import pandas as pd

    from neuroseg.nets.folder import WEIGHTS_FILE

    root = Path(folder or shipped_dir())
    rows = []
    for e in read_registry(root):
        path = root / e["name"] / WEIGHTS_FILE
        if not path.is_file() or _sha256(path) != e["sha256"]:
            raise ValueError(f"{path} is missing or does not match its registry hash; "
                             "run `make export-models` again")
        file = path.resolve()
        if relative_to is not None:
            file = file.relative_to(Path(relative_to).resolve())
        rows.append({"name": e["name"], "task": e["task"], "file": str(file), "bytes": e["bytes"],
                     "sha256": e["sha256"], "pixel_size": _size_text(e["pixel_size"], e["pixel_unit"]),
                     "val_metric": e["val_metric"], "val_value": e["val_value"]})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
