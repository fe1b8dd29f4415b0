"""Tests of neuroseg.pipeline: the notebook list, Make rules, parameters per profile."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from neuroseg import paths, pipeline

NOTEBOOKS = pipeline.NOTEBOOKS
NAMES = pipeline.notebook_names()


def _params_yaml(profile: str) -> dict:
    return yaml.safe_load((NOTEBOOKS / "params" / f"{profile}.yml").read_text()) or {}


def _parameters_cell(name: str) -> ast.Module:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged 'parameters'"
    return ast.parse(cells[0].source)


def _assigned_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _fake_notebooks(folder, needs: dict[str, list[str]]):
    folder.mkdir(parents=True)
    for name, wanted in needs.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["neuroseg"] = {"needs": wanted}
        nbformat.write(nb, folder / f"{name}.ipynb")
    # files the glob must ignore
    nbformat.write(nbformat.v4.new_notebook(), folder / "scratch.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), folder / "5_short.ipynb")
    return folder


# --------------------------------------------------------------------------- notebook list


def test_notebook_names_are_the_sorted_numbered_notebooks():
    expected = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert pipeline.notebook_names() == expected
    assert "00_data_preparation" in expected


def test_notebook_names_ignore_other_files(tmp_path, monkeypatch):
    fake = _fake_notebooks(tmp_path / "nb", {"10_b": [], "00_a": [], "02_c": []})
    monkeypatch.setattr(pipeline, "NOTEBOOKS", fake)
    assert pipeline.notebook_names() == ["00_a", "02_c", "10_b"]


def test_notebook_needs_unknown_step_exits(tmp_path, monkeypatch):
    fake = _fake_notebooks(tmp_path / "nb", {"00_a": [], "10_b": ["00_a", "99_missing"]})
    monkeypatch.setattr(pipeline, "NOTEBOOKS", fake)
    with pytest.raises(SystemExit, match="99_missing"):
        pipeline.notebook_needs("10_b")
    assert pipeline.notebook_needs("00_a") == []


# --------------------------------------------------------------------------- deps


def _deps_text(tmp_path, monkeypatch, needs, manifests=None):
    fake = _fake_notebooks(tmp_path / "nb", needs)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", fake)
    monkeypatch.setenv("NEUROSEG_ARTIFACTS", str(tmp_path / "art"))
    runs = tmp_path / "art" / "quick" / "runs"
    runs.mkdir(parents=True)
    for name, outputs in (manifests or {}).items():
        (runs / f"{name}.outputs.json").write_text(
            json.dumps({"notebook": name, "profile": "quick", "outputs": outputs})
        )
    out = tmp_path / "art" / "quick" / "deps.mk"
    pipeline.write_deps("quick", out)
    return out, out.read_text().splitlines()


def test_write_deps_rules_from_needs(tmp_path, monkeypatch):
    needs = {"00_a": [], "10_b": ["00_a"], "20_c": ["00_a", "10_b"]}
    out, lines = _deps_text(tmp_path, monkeypatch, needs)
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "$(RUN)/10_b.ipynb: $(RUN)/00_a.digest",
        "$(RUN)/20_c.ipynb: $(RUN)/00_a.digest $(RUN)/10_b.digest",
    ]


def test_write_deps_forces_step_with_missing_output(tmp_path, monkeypatch):
    present = tmp_path / "present.json"
    present.write_text("{}")
    manifests = {
        "00_a": [str(present)],  # all outputs there: not forced
        "10_b": [str(present), str(tmp_path / "gone.csv")],  # one output deleted: forced
        "20_c": ["reports/quick/metrics/definitely_not_there_20_c.json"],  # relative to repo
    }
    needs = {"00_a": [], "10_b": ["00_a"], "20_c": []}
    _, lines = _deps_text(tmp_path, monkeypatch, needs, manifests)
    assert lines[1:] == [
        "$(RUN)/10_b.ipynb: $(RUN)/00_a.digest",
        "$(RUN)/10_b.ipynb: FORCE",
        "$(RUN)/20_c.ipynb: FORCE",
    ]


def test_write_deps_rewrites_only_on_change(tmp_path, monkeypatch):
    out, _ = _deps_text(tmp_path, monkeypatch, {"00_a": [], "10_b": ["00_a"]})
    old = out.stat().st_mtime_ns
    os.utime(out, ns=(old - 10**9, old - 10**9))
    before = out.stat().st_mtime_ns
    pipeline.write_deps("quick", out)
    assert out.stat().st_mtime_ns == before
    (tmp_path / "art" / "quick" / "runs" / "00_a.outputs.json").write_text(
        json.dumps({"outputs": [str(tmp_path / "lost.png")]})
    )
    pipeline.write_deps("quick", out)
    assert "$(RUN)/00_a.ipynb: FORCE" in out.read_text()
    assert out.stat().st_mtime_ns != before


def test_deps_of_the_real_notebooks(outputs, tmp_path):
    out = tmp_path / "deps.mk"
    pipeline.write_deps("quick", out)
    lines = out.read_text().splitlines()
    for name in NAMES:
        needs = pipeline.notebook_needs(name)
        rule = f"$(RUN)/{name}.ipynb: " + " ".join(f"$(RUN)/{n}.digest" for n in needs)
        assert (rule in lines) == bool(needs)
    assert not any("FORCE" in line for line in lines)  # no runs recorded in the tmp artifacts


# --------------------------------------------------------------------------- params


def test_digest_changes_with_the_outputs_contents_only(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSEG_ARTIFACTS", str(tmp_path / "art"))
    runs = tmp_path / "art" / "quick" / "runs"
    runs.mkdir(parents=True)
    fig, table = tmp_path / "fig.png", tmp_path / "table.csv"
    fig.write_bytes(b"png")
    table.write_text("a\n1\n")
    (runs / "00_a.outputs.json").write_text(json.dumps({"outputs": [str(fig), str(table)]}))
    (runs / "00_a.ipynb").write_text("{}")
    os.utime(runs / "00_a.ipynb", ns=(1_000_000_000_000, 1_000_000_000_000))
    out = pipeline.write_digest("00_a", "quick")
    first = out.read_text()
    # a new digest dates from the run it describes
    assert out.stat().st_mtime_ns == 1_000_000_000_000
    os.utime(out, ns=(5, 5))
    # the same bytes written again: the digest file is not touched
    fig.write_bytes(b"png")
    pipeline.write_digest("00_a", "quick")
    assert out.stat().st_mtime_ns == 5 and out.read_text() == first
    # a deleted output changes it, and so does changed content
    fig.unlink()
    assert pipeline.outputs_digest("00_a", "quick") != first.strip()
    fig.write_bytes(b"png2")
    pipeline.write_digest("00_a", "quick")
    assert out.read_text() != first and out.stat().st_mtime_ns == 1_000_000_000_000
    with pytest.raises(SystemExit, match="no record"):
        pipeline.outputs_digest("10_b", "quick")


def test_write_params_includes_profile_and_writes_only_on_change(outputs):
    name = NAMES[0]
    out = pipeline.write_params(name, "quick")
    assert out == outputs["artifacts"] / "quick" / "params" / f"{name}.yml"
    written = yaml.safe_load(out.read_text())
    assert written == {**_params_yaml("quick")[name], "profile": "quick"}
    stamp = out.stat().st_mtime_ns - 10**9
    os.utime(out, ns=(stamp, stamp))
    time.sleep(0.01)
    pipeline.write_params(name, "quick")
    assert out.stat().st_mtime_ns == stamp
    # a change (here: the file edited by hand) is overwritten
    out.write_text("seed: 12345\n")
    pipeline.write_params(name, "quick")
    assert yaml.safe_load(out.read_text()) == written
    assert sorted(p.name for p in out.parent.iterdir()) == [f"{name}.yml"]


def test_notebook_parameters_unknown_notebook_exits():
    with pytest.raises(SystemExit, match="99_nothing"):
        pipeline.notebook_parameters("99_nothing", "quick")


def test_profiles_differ_somewhere():
    """quick and full are different profiles (otherwise one of them is pointless)."""
    assert _params_yaml("quick") != _params_yaml("full")


def test_every_notebook_has_params_in_both_profiles_with_same_keys():
    quick, full = _params_yaml("quick"), _params_yaml("full")
    assert sorted(quick) == sorted(full) == NAMES
    for name in NAMES:
        assert sorted(quick[name] or {}) == sorted(full[name] or {}), name
        assert "profile" not in (quick[name] or {}), f"{name}: profile is injected, not set"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_assigns_every_yaml_key(name):
    assigned = _assigned_names(_parameters_cell(name))
    wanted = set(_params_yaml("quick")[name] or {}) | {"profile", "seed"}
    assert wanted <= assigned, f"{name}: parameters cell lacks {sorted(wanted - assigned)}"
    unknown = assigned - wanted
    assert not unknown, f"{name}: parameters {sorted(unknown)} are not in params/*.yml"


def test_assigned_names_helper():
    tree = ast.parse("a = 1\nb: int = 2\nc, d = 3, 4\n")
    assert _assigned_names(tree) == {"a", "b"}


def _tiny_notebook(folder: Path, body: str) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell('profile = "full"\nseed = 0\nfail = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    (folder / "params").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "77_tiny.ipynb")
    (folder / "params" / "quick.yml").write_text("77_tiny:\n  seed: 3\n  fail: false\n")


TINY_BODY = """
from neuroseg import io, paths
io.write_metrics("77_tiny", {"seed": seed}, profile=profile)
if fail:
    raise RuntimeError("planned failure")
"""


def test_run_notebook_records_outputs_and_removes_them_on_failure(outputs, tmp_path, monkeypatch):

    notebooks = tmp_path / "notebooks"
    _tiny_notebook(notebooks, TINY_BODY)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", notebooks)
    metrics_file = paths.metrics_dir("quick") / "77_tiny.json"
    runs = paths.runs_dir("quick")

    executed = pipeline.run_notebook("77_tiny", "quick")
    assert executed == runs / "77_tiny.ipynb" and executed.exists()
    assert json.loads(metrics_file.read_text()) == {"seed": 3}  # parameters were injected
    manifest = json.loads((runs / "77_tiny.outputs.json").read_text())
    assert any(p.endswith("77_tiny.json") for p in manifest["outputs"])

    executed.unlink()
    metrics_file.unlink()
    (notebooks / "params" / "quick.yml").write_text("77_tiny:\n  seed: 3\n  fail: true\n")
    with pytest.raises(Exception, match="planned failure"):
        pipeline.run_notebook("77_tiny", "quick")
    assert not metrics_file.exists()  # the failed step's output was removed
    assert not executed.exists()  # no executed notebook, so Make runs the step again
    assert (runs / "77_tiny.failed.ipynb").exists()
    assert not list(runs.glob(".*running*"))
