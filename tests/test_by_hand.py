"""Notebooks opened by hand (#28): ``profile = None`` resolves to a profile, its parameters and
the steps it reads from, and a hand run never writes into the committed ``reports/``."""

from __future__ import annotations

import subprocess

import pytest

from neuroseg import paths, pipeline


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """Empty artifacts, the real (committed) reports folder, no profile chosen."""
    monkeypatch.setenv("NEUROSEG_ARTIFACTS", str(tmp_path / "artifacts"))
    for name in ("NEUROSEG_REPORTS", "NEUROSEG_PROFILE"):  # set first, so that undo restores
        monkeypatch.setenv(name, "")  # what was there (hand_parameters sets NEUROSEG_REPORTS)
        monkeypatch.delenv(name)
    ran = []
    monkeypatch.setattr(pipeline, "run_notebook", lambda name, profile, **kw: ran.append((name, profile)))
    return ran


def test_under_papermill_nothing_changes(fresh):
    assert pipeline.hand_parameters("10_nucleus_pretraining", "full") == {}
    assert fresh == []


def test_by_hand_the_quick_profile_and_its_parameters_and_the_steps_it_reads_from(fresh, capsys):
    params = pipeline.hand_parameters("20_neuron_finetuning", None)
    assert params == pipeline.notebook_parameters("20_neuron_finetuning", "quick")
    assert params["profile"] == "quick"
    assert fresh == [("00_data_preparation", "quick"), ("10_nucleus_pretraining", "quick")]
    out = capsys.readouterr().out
    assert "opened by hand: profile 'quick'" in out and "00_data_preparation" in out


def test_steps_that_have_run_are_not_run_again(fresh):
    runs = paths.runs_dir("quick")
    runs.mkdir(parents=True)
    (runs / "00_data_preparation.ipynb").write_text("{}")
    pipeline.hand_parameters("20_neuron_finetuning", None)
    assert fresh == [("10_nucleus_pretraining", "quick")]


def test_the_full_profile_by_hand_writes_beside_the_committed_reports(fresh, monkeypatch):
    monkeypatch.setenv("NEUROSEG_PROFILE", "full")
    committed = paths.REPO_ROOT / "reports"
    before = sorted(p.name for p in (committed / "metrics").iterdir())
    params = pipeline.hand_parameters("00_data_preparation", None)
    assert params["profile"] == "full"
    reports = paths.reports_dir("full")
    assert reports == paths.artifacts_dir("full") / "by_hand" / "reports"
    assert not reports.resolve().is_relative_to(committed.resolve())
    # later steps read the committed tables: a copy is there
    assert sorted(p.name for p in (reports / "metrics").iterdir()) == before
    assert not list(reports.parent.glob(".*"))  # no temporary folder left


def test_the_full_profile_refuses_to_train_its_missing_steps_by_hand(fresh, monkeypatch):
    monkeypatch.setenv("NEUROSEG_PROFILE", "full")
    with pytest.raises(RuntimeError, match=r"make 10_nucleus_pretraining PROFILE=full"):
        pipeline.hand_parameters("20_neuron_finetuning", None)
    assert fresh == []


def test_an_unknown_profile_is_named(fresh, monkeypatch):
    monkeypatch.setenv("NEUROSEG_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast' is no profile"):
        pipeline.hand_parameters("00_data_preparation", None)


def test_upstream_is_transitive_and_in_order():
    assert pipeline.upstream("00_data_preparation") == []
    up = pipeline.upstream("90_figures")
    assert up == sorted(up) and "00_data_preparation" in up and "90_figures" not in up
    for step in up:
        assert set(pipeline.upstream(step)) <= set(up)


def _git_status() -> str:
    out = subprocess.run(["git", "status", "--porcelain"], cwd=paths.REPO_ROOT,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return out.stdout


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", ["00_data_preparation", "70_link_your_masks"])
def test_a_notebook_runs_by_hand_on_the_real_kernel_and_leaves_git_status_alone(name, tmp_path):
    """As a person runs it in JupyterLab: the committed notebook, unchanged, top to bottom on
    the installed kernel; fresh artifacts and reports, as on a fresh clone (the steps it reads
    from run first). ``make notebooks-by-hand`` does this for every notebook."""
    before = _git_status()
    result = pipeline.run_by_hand(name, timeout=900, env={
        "NEUROSEG_PROFILE": None, "CI": "true",
        "NEUROSEG_ARTIFACTS": str(tmp_path / "artifacts"), "NEUROSEG_REPORTS": str(tmp_path / "reports")})
    assert result["first_output"].startswith(f"{name} opened by hand: profile 'quick'")
    assert _git_status() == before
    assert any((tmp_path / "reports" / "quick").rglob("*.*")) or any((tmp_path / "artifacts").rglob("*.*"))
