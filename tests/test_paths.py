"""Tests of neuroseg.paths: profiles, the three roots and their environment overrides."""

from __future__ import annotations

import pytest

from neuroseg import paths


def test_profile_default_env_and_argument(monkeypatch):
    monkeypatch.delenv("NEUROSEG_PROFILE", raising=False)
    assert paths.current_profile() == "full"
    monkeypatch.setenv("NEUROSEG_PROFILE", "quick")
    assert paths.current_profile() == "quick"
    # an explicit argument wins over the environment
    assert paths.current_profile("full") == "full"


@pytest.mark.parametrize("name", ["fast", "Full", "quick "])
def test_unknown_profile_raises(monkeypatch, name):
    monkeypatch.delenv("NEUROSEG_PROFILE", raising=False)
    with pytest.raises(ValueError, match="unknown profile"):
        paths.current_profile(name)
    with pytest.raises(ValueError, match="unknown profile"):
        paths.artifacts_dir(name)


def test_unknown_profile_from_environment_raises(monkeypatch):
    monkeypatch.setenv("NEUROSEG_PROFILE", "nightly")
    with pytest.raises(ValueError, match="nightly"):
        paths.reports_dir()


def test_reports_dir_full_is_root_quick_is_subfolder(outputs):
    root = outputs["reports"]
    assert paths.reports_dir("full") == root
    assert paths.reports_dir("quick") == root / "quick"
    assert paths.metrics_dir("quick") == root / "quick" / "metrics"
    assert paths.figures_dir("full") == root / "figures"


def test_reports_default_root_is_repo_reports(monkeypatch):
    monkeypatch.delenv("NEUROSEG_REPORTS", raising=False)
    assert paths.reports_dir("full") == paths.REPO_ROOT / "reports"
    assert paths.reports_dir("quick") == paths.REPO_ROOT / "reports" / "quick"


def test_artifacts_override_and_subfolders(outputs):
    art = outputs["artifacts"]
    assert paths.artifacts_dir("quick") == art / "quick"
    assert paths.splits_dir("quick") == art / "quick" / "splits"
    assert paths.models_dir("full") == art / "full" / "models"
    assert paths.runs_dir("full") == art / "full" / "runs"


def test_artifacts_default_root(monkeypatch):
    monkeypatch.delenv("NEUROSEG_ARTIFACTS", raising=False)
    assert paths.artifacts_dir("quick") == paths.REPO_ROOT / "artifacts" / "quick"


def test_params_file_per_profile(monkeypatch):
    monkeypatch.delenv("NEUROSEG_PROFILE", raising=False)
    assert paths.params_file("quick") == paths.REPO_ROOT / "notebooks" / "params" / "quick.yml"
    assert paths.params_file().name == "full.yml"
    assert paths.params_file("quick").is_file() and paths.params_file("full").is_file()


def test_data_root_unset(monkeypatch):
    monkeypatch.delenv("NEUROSEG_DATA", raising=False)
    with pytest.raises(paths.DataRootError) as err:
        paths.data_root()
    message = str(err.value)
    assert "NEUROSEG_DATA" in message and "make data" in message
    # a DataRootError is a FileNotFoundError, so callers can catch either
    assert isinstance(err.value, FileNotFoundError)


def test_data_root_empty_string_counts_as_unset(monkeypatch):
    monkeypatch.setenv("NEUROSEG_DATA", "")
    with pytest.raises(paths.DataRootError, match="not set"):
        paths.data_root()


def test_data_root_not_a_directory(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("NEUROSEG_DATA", str(missing))
    with pytest.raises(paths.DataRootError, match="not a directory") as err:
        paths.data_root()
    assert str(missing) in str(err.value)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    monkeypatch.setenv("NEUROSEG_DATA", str(a_file))
    with pytest.raises(paths.DataRootError, match="not a directory"):
        paths.dataset_dir("anything")


def test_data_root_and_dataset_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROSEG_DATA", str(tmp_path))
    assert paths.data_root() == tmp_path.resolve()
    assert paths.dataset_dir("dsb") == tmp_path.resolve() / "dsb"

