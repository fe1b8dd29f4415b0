"""Tests of neuroseg.report.verify: which metrics are compared, the within rule, a real re-run."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from neuroseg import paths
from neuroseg.report import verify


def test_quality_metrics_skip_times_counts_and_text(tmp_path):
    (tmp_path / "10_x.json").write_text(json.dumps({
        "test_ap50": 0.8, "train_seconds": 12.0, "n_test_images": 81, "device": "cpu",
        "best_epoch": 36, "nested": {"cremi": 0.3, "peak_mb": 5.0}, "nan": float("nan"),
        "flag": True}))
    (tmp_path / "20_y.json").write_text(json.dumps({"test_ap50": 0.1}))
    assert verify.quality_metrics(tmp_path, "10") == {"10_x:test_ap50": 0.8, "10_x:nested.cremi": 0.3}


def test_within_uses_the_larger_of_three_sd_and_the_tolerance():
    committed = {"s:test_ap50": 0.80, "s:test_cremi": 0.30}
    fresh = {"s:test_ap50": 0.77, "s:test_cremi": 0.34}
    table = verify.compare("s", committed, fresh)
    assert table.set_index("metric")["within"].to_dict() == {"s:test_ap50": False, "s:test_cremi": True}
    # a measured spread of 0.015 allows 0.045: the AP difference of 0.03 is then within
    table = verify.compare("s", committed, fresh, sd={"s:test_ap50": 0.015})
    assert table.set_index("metric")["within"].to_dict() == {"s:test_ap50": True, "s:test_cremi": True}
    assert list(table.columns) == verify.COLUMNS


def test_record_replaces_the_steps_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path))
    a = verify.compare("10", {"10:test_ap50": 0.8}, {"10:test_ap50": 0.8}, machine_name="m")
    b = verify.compare("20", {"20:test_iou": 0.5}, {"20:test_iou": 0.45}, machine_name="m")
    out = verify.record(a, profile="quick")
    verify.record(b, profile="quick")
    verify.record(a.assign(fresh=0.79), profile="quick")
    table = pd.read_csv(out, dtype={"step": str})
    assert table["step"].tolist() == ["10", "20"]
    assert table["fresh"].tolist() == [0.79, 0.45]


def test_a_parameter_the_notebook_lacks_is_refused():
    from neuroseg import pipeline

    with pytest.raises(ValueError, match="has no parameters"):
        pipeline.run_notebook("10_nucleus_pretraining", "quick", overrides={"sed": 1})


def test_unknown_step_is_refused():
    with pytest.raises(ValueError, match="unknown step"):
        verify.verify("77_nothing", profile="quick")


@pytest.mark.slow
def test_the_quick_nucleus_step_comes_back_from_scratch_on_this_machine():
    """After `make reproduce PROFILE=quick` (what `make test` runs first): re-training the quick
    nucleus model from nothing in a temporary folder gives every quality metric within its
    tolerance, in fact equal (same machine, same threads), and touches nothing committed."""
    if not (paths.metrics_dir("quick") / "10_nucleus_pretraining.json").exists() or not (
            paths.runs_dir("quick") / "10_nucleus_pretraining.outputs.json").exists():
        pytest.skip("run `make reproduce PROFILE=quick` first")
    before = (paths.metrics_dir("quick") / "10_nucleus_pretraining.json").read_bytes()
    table = verify.verify("10_nucleus_pretraining", profile="quick")
    assert len(table) >= 10 and table["within"].all(), table
    assert (table["fresh"] == table["committed"]).all(), table[table["fresh"] != table["committed"]]
    assert (paths.metrics_dir("quick") / "10_nucleus_pretraining.json").read_bytes() == before
    assert not any(math.isnan(v) for v in table["fresh"])
    assert not list(paths.artifacts_dir("quick").parent.glob(".verify-*"))  # cleaned up
    # another seed: a spread over two runs, the committed one first
    spread = verify.seed_spread("10_nucleus_pretraining", [1], profile="quick")
    assert list(spread.columns) == verify.SEED_COLUMNS and len(spread) == len(table)
    assert (spread["seeds"] == "0 1").all()
    assert spread["sd"].notna().all() and (spread["sd"] >= 0).all()
    with pytest.raises(ValueError, match="own seed"):
        verify.seed_spread("10_nucleus_pretraining", [0], profile="quick")


def test_a_fresh_run_gets_only_what_the_steps_before_it_wrote(tmp_path, monkeypatch):
    """The temporary copy holds splits, parameters, executed notebooks and the recorded outputs
    of the steps before (for 10: 00's), not other steps' outputs (60's gigabytes of tracking)."""
    import json

    monkeypatch.setenv("NEUROSEG_ARTIFACTS", str(tmp_path / "art"))
    art = paths.artifacts_dir("quick")
    for rel in ("splits/dsb.json", "params/10_nucleus_pretraining.yml", "models/from00/weights.pt",
                "tracking/huge.tif", "models/other/weights.pt"):
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_text(rel)
    (art / "runs").mkdir()
    (art / "runs" / "00_data_preparation.outputs.json").write_text(json.dumps(
        {"outputs": [str(art / "models/from00/weights.pt"), "reports/quick/metrics/x.json"]}))
    verify.copy_upstream("10_nucleus_pretraining", "quick", tmp_path / "copy")
    got = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert got == ["models/from00/weights.pt", "params/10_nucleus_pretraining.yml",
                   "runs/00_data_preparation.outputs.json", "splits/dsb.json"]
    # a step before it without a record: everything is copied
    (art / "runs" / "00_data_preparation.outputs.json").unlink()
    verify.copy_upstream("10_nucleus_pretraining", "quick", tmp_path / "all")
    assert (tmp_path / "all" / "tracking" / "huge.tif").is_file()
