"""Shared fixtures: isolated output folders and the real-data switch.

Tests marked ``@pytest.mark.data`` read the real datasets through ``$NEUROSEG_DATA`` only;
they are skipped (with the reason) when it is unset or not a directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_skip_reason() -> str | None:
    value = os.environ.get("NEUROSEG_DATA")
    if not value:
        return "NEUROSEG_DATA is not set (point it at the datasets, e.g. ../shared/data)"
    if not Path(value).expanduser().is_dir():
        return f"NEUROSEG_DATA={value!r} is not a directory"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _data_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> dict[str, Path]:
    """Point artifacts and reports at ``tmp_path`` and clear the profile variable."""
    roots = {"artifacts": tmp_path / "artifacts", "reports": tmp_path / "reports"}
    monkeypatch.setenv("NEUROSEG_ARTIFACTS", str(roots["artifacts"]))
    monkeypatch.setenv("NEUROSEG_REPORTS", str(roots["reports"]))
    monkeypatch.delenv("NEUROSEG_PROFILE", raising=False)
    return roots


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data folder (only in tests marked ``data``; skipped without it)."""
    reason = _data_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return Path(os.environ["NEUROSEG_DATA"]).expanduser().resolve()
