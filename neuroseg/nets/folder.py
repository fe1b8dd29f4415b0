"""A trained model as a folder: ``config.json``, ``weights.pt``, ``env.json``, ``history.csv``.

StarDist-like; :func:`save_model` writes one atomically, :func:`load_model` reads it back
(weights with ``weights_only=True``). Problems raise :class:`~neuroseg.nets.unet.ModelError`
naming the file.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuroseg import machine
from neuroseg.io import atomic_folder
from neuroseg.nets.unet import ModelError, UNet

PathLike = str | os.PathLike


CONFIG_FILE = "config.json"


WEIGHTS_FILE = "weights.pt"


ENV_FILE = "env.json"


MODEL_TYPE = "UNet"


FORMAT_VERSION = 1


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
        "machine": machine.describe(device),
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available():
            env["device_name"] = torch.cuda.get_device_name(dev)
    except (RuntimeError, ValueError, AssertionError):
        pass
    return env


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
    extra_files: Mapping[str, Callable[[Any], None]] | None = None,
) -> Path:
    """Write ``model`` to a model folder: ``config.json``, ``weights.pt`` and ``env.json``.

    ``config.json`` is ``{"format_version": 1, "model": "UNet", "unet": model.config,
    "meta": meta}``; ``weights.pt`` is the state dict (CPU tensors); ``env.json`` records the
    Python, torch and numpy versions, platform, device, git revision of the package's
    repository (or null) and a UTC timestamp.

    Writing is atomic per folder (:func:`neuroseg.io.atomic_folder`): the new folder is built
    under a temporary name next to ``folder`` and swapped into place whole, so a failure or a
    kill never leaves a folder with new weights and an old config. Other files already in the
    folder (``history.csv``, checkpoints) are kept.

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
    extra_files : dict, optional
        More files written with the model in the same swap: name -> ``writer(handle)`` of a
        binary file handle (e.g. a learned linker's calibrations).

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

    for name in extra_files or {}:
        if name in writers or "/" in name or name.startswith("."):
            raise ValueError(f"extra file name {name!r} is taken or not a plain file name")
    writers.update(extra_files or {})
    if os.path.lexists(folder) and not folder.is_dir():
        raise ModelError(f"{folder} exists and is not a directory")
    with atomic_folder(folder) as staging:
        for name, writer in writers.items():
            _write_file(staging / name, writer)
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
