"""Where data, artifacts and reports live.

Every other module and every notebook asks this module for paths; nothing else spells
out a directory. Three roots:

``data_root()``
    The real datasets, read-only: ``$NEUROSEG_DATA`` (the Makefile points it at
    ``../shared/data`` when that exists). See ``PROVENANCE.md`` there and the README.
``artifacts_dir(profile)``
    Generated, git-ignored: splits, trained models, executed notebooks.
    ``artifacts/<profile>/`` (override the root with ``$NEUROSEG_ARTIFACTS``).
``reports_dir(profile)``
    Figures and result tables. The ``full`` profile writes the committed ``reports/``;
    every other profile writes ``reports/<profile>/`` (git-ignored), so two profiles
    never overwrite each other (override the root with ``$NEUROSEG_REPORTS``).

The profile defaults to ``$NEUROSEG_PROFILE`` or ``"full"``.

Examples
--------
>>> from neuroseg import paths
>>> paths.reports_dir("quick").name
'quick'
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository checkout this package lives in."""

PROFILES = ("quick", "full")
DEFAULT_PROFILE = "full"


class DataRootError(FileNotFoundError):
    """``NEUROSEG_DATA`` is unset or points nowhere."""


def current_profile(profile: str | None = None) -> str:
    """Return ``profile``, else ``$NEUROSEG_PROFILE``, else ``"full"``; validate it."""
    name = profile or os.environ.get("NEUROSEG_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {PROFILES}")
    return name


def data_root() -> Path:
    """Folder holding the real datasets (``$NEUROSEG_DATA``).

    Raises
    ------
    DataRootError
        If the variable is unset or the folder does not exist; the message says how to
        obtain the data.
    """
    value = os.environ.get("NEUROSEG_DATA")
    if not value:
        raise DataRootError(
            "NEUROSEG_DATA is not set. Point it at the folder holding the datasets "
            "(run `make data` to see which are needed and where they come from)."
        )
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise DataRootError(f"NEUROSEG_DATA={value!r} is not a directory")
    return root


def dataset_dir(name: str) -> Path:
    """Folder of one dataset inside :func:`data_root` (not checked for existence)."""
    return data_root() / name


def artifacts_dir(profile: str | None = None) -> Path:
    """Generated artifacts (splits, models, executed notebooks) of a profile."""
    root = Path(os.environ.get("NEUROSEG_ARTIFACTS", REPO_ROOT / "artifacts"))
    return root / current_profile(profile)


def splits_dir(profile: str | None = None) -> Path:
    """Where split files live (one JSON per dataset)."""
    return artifacts_dir(profile) / "splits"


def models_dir(profile: str | None = None) -> Path:
    """Where trained model folders live."""
    return artifacts_dir(profile) / "models"


def runs_dir(profile: str | None = None) -> Path:
    """Executed notebooks and their output manifests."""
    return artifacts_dir(profile) / "runs"


def reports_dir(profile: str | None = None) -> Path:
    """Figures and tables: ``reports/`` for ``full``, ``reports/<profile>/`` otherwise."""
    root = Path(os.environ.get("NEUROSEG_REPORTS", REPO_ROOT / "reports"))
    name = current_profile(profile)
    return root if name == DEFAULT_PROFILE else root / name


def metrics_dir(profile: str | None = None) -> Path:
    """Headline numbers: ``<reports>/metrics/<notebook>.json`` or ``.csv``."""
    return reports_dir(profile) / "metrics"


def figures_dir(profile: str | None = None) -> Path:
    """Figures (PNG for reading, PDF for papers)."""
    return reports_dir(profile) / "figures"


def notebooks_dir() -> Path:
    """The pipeline's notebooks, ``NN_name.ipynb``."""
    return REPO_ROOT / "notebooks"


def params_file(profile: str | None = None) -> Path:
    """The YAML file holding every notebook's parameters for one profile."""
    return notebooks_dir() / "params" / f"{current_profile(profile)}.yml"
