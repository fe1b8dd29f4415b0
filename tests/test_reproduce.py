"""`make reproduce` as a user runs it: a deleted figure is rebuilt by its own step alone.

Runs on the quick chain that `make test` executes before pytest; skipped (saying why) when
that chain is missing or out of date, since then make would rightly re-run other steps too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from neuroseg import paths, pipeline

PROFILE = "quick"
STEP = "00_data_preparation"


def _make(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROFILE": PROFILE}
    return subprocess.run(
        ["make", "--no-print-directory", *args, f"PROFILE={PROFILE}"],
        cwd=pipeline.REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


def _steps_run(output: str) -> list[str]:
    return re.findall(rf"^\[pipeline\] (\S+) \(profile {PROFILE}\) \.\.\.$", output, flags=re.M)


@pytest.fixture(scope="module")
def up_to_date_chain():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    runs = paths.runs_dir(PROFILE)
    missing = [n for n in pipeline.notebook_names() if not (runs / f"{n}.digest").exists()]
    if missing:
        pytest.skip(f"the quick chain has not run ({', '.join(missing)} missing): `make test` runs it")
    # right after `make test`'s chain this runs no step; after an edit it brings the chain up
    # to date (`make -n` cannot tell: it assumes every parameter file would change)
    first = _make("reproduce")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    return runs


def test_deleted_figure_is_rebuilt_by_its_step_alone(up_to_date_chain):
    runs = up_to_date_chain
    figure = paths.figures_dir(PROFILE) / "00_datasets_overview.png"
    assert figure.exists(), f"{figure} is not among the quick chain's outputs"
    before = figure.read_bytes()
    digest = (runs / f"{STEP}.digest").read_text()
    executed = {n: (runs / f"{n}.ipynb").stat().st_mtime_ns for n in pipeline.notebook_names()}

    figure.unlink()
    result = _make("reproduce")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    # only the step that wrote the figure ran; it wrote the same bytes, so its digest did not
    # change and nothing downstream of it (every other step depends on it) ran again
    assert _steps_run(result.stdout) == [STEP]
    assert figure.read_bytes() == before
    assert (runs / f"{STEP}.digest").read_text() == digest
    for name, mtime in executed.items():
        changed = (runs / f"{name}.ipynb").stat().st_mtime_ns != mtime
        assert changed == (name == STEP), name
    # and now all is up to date again
    assert _steps_run(_make("reproduce").stdout) == []
