"""The pinned environment: pyproject, environment.yml and requirements.lock agree, and the
installed versions are the pinned ones."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib

import pytest
import yaml

from neuroseg.paths import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def _canonical(name: str) -> str:
    """PEP 503 normalised project name (pip freeze may write ``ImageIO`` for ``imageio``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        match = PIN.match(line.strip())
        assert match, f"{where}: {line!r} is not pinned with =="
        name, version = _canonical(match[1]), match[2]
        assert name not in out, f"{where}: {name} pinned twice"
        out[name] = version
    return out


def _pyproject_deps() -> list[str]:
    """The runtime dependencies and every extra's."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(d for group in extras.values() for d in group)]


def test_runtime_dependencies_hold_no_test_browser_or_notebook_tools():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_canonical(PIN.match(d)[1]) for d in project["dependencies"]}
    assert not runtime & {"pytest", "ruff", "playwright", "jupyterlab", "papermill"}
    assert set(project["optional-dependencies"]) == {"notebooks", "bioimageio", "dev", "browser"}


def _pyproject() -> dict[str, str]:
    return _pins(_pyproject_deps(), "pyproject.toml")


def _environment_yml() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip: list"
    lines = [x for x in pip[0] if not x.startswith("-e ")]
    return _pins(lines, "environment.yml")


def _lock() -> dict[str, str]:
    lines = [
        line for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return _pins(lines, "requirements.lock")


def test_every_direct_dependency_is_pinned_exactly():
    deps = _pyproject_deps()
    assert deps
    unpinned = [d for d in deps if not PIN.match(d.strip())]
    assert unpinned == []
    assert _pyproject()["torch"] == "2.13.0"


def test_pin_parser_rejects_ranges():
    for bad in ("numpy>=2", "numpy", "numpy==2.*,<3", "numpy ~= 2.4"):
        with pytest.raises(AssertionError):
            _pins([bad], "x")
    assert _pins(["Foo_Bar.baz==1.0+cpu"], "x") == {"foo-bar-baz": "1.0+cpu"}


def test_environment_yml_repeats_the_pins():
    assert _environment_yml() == _pyproject()


def test_environment_yml_python_matches_requires_python():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert python == ["python=3.11"]  # the tested one, inside what pyproject admits
    assert requires["requires-python"] == ">=3.11,<3.14"  # 3.12, 3.13: .ci/other_pythons resolves them


def test_every_locked_package_is_needed_by_something():
    """A pin nothing requires (as elasticdeform was) is dropped, not carried."""
    import importlib.metadata as md

    needed = {_canonical(PIN.match(d)[1]) for d in _pyproject_deps()}
    for dist in md.distributions():
        for req in dist.requires or []:
            needed.add(_canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)[0]))
    unneeded = sorted(set(_lock()) - needed - {"pip", "setuptools", "wheel"})
    assert unneeded == [], f"requirements.lock pins packages nothing requires: {unneeded}"


def test_lock_contains_every_pin_identically():
    lock = _lock()
    mismatched = {
        name: (version, lock.get(name)) for name, version in _pyproject().items()
        if lock.get(name) != version
    }
    assert mismatched == {}
    assert lock["torch"] == "2.13.0"


def test_installed_versions_match_the_pins():
    wrong = {}
    for name, pinned in _pyproject().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            wrong[name] = (pinned, None)
            continue
        if name == "torch":  # the CPU or CUDA wheel carries a local suffix: 2.13.0+cpu
            installed = installed.split("+", 1)[0]
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}


def test_installed_environment_matches_the_lock():
    wrong = {}
    for name, pinned in _lock().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed is None or installed.split("+", 1)[0] != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, "run `make install` (the .venv differs from requirements.lock)"


def test_the_citation_file_and_the_licence_agree_with_the_package():
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert citation["cff-version"] == "1.2.0" and citation["title"].startswith("neuroseg")
    assert citation["license"] == project["license"]["text"] == "BSD-3-Clause"
    assert citation["version"] == project["version"]
    assert "BSD 3-Clause" in (REPO_ROOT / "LICENSE").read_text() or "Redistribution" in (REPO_ROOT / "LICENSE").read_text()
