"""Tests of neuroseg.io: atomic writes, JSON conversion, metrics files and figures."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from neuroseg import io, paths


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_success_replaces_target(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing visible until the body succeeds
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _siblings(target.parent) == ["out.txt"]


def test_atomic_path_failure_keeps_old_target_and_cleans_up(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["out.json"]


def test_atomic_path_failure_without_old_target(tmp_path):
    target = tmp_path / "never.csv"
    with pytest.raises(KeyError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("x")
            raise KeyError("k")
    assert _siblings(tmp_path) == []


def test_atomic_path_keeps_suffix(tmp_path):
    with io.atomic_path(tmp_path / "f.h5") as tmp:
        assert tmp.suffix == ".h5"
        tmp.write_bytes(b"")
    with io.atomic_path(tmp_path / "g", suffix=".png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"")
    assert _siblings(tmp_path) == ["f.h5", "g"]


def test_write_json_converts_numpy_and_nan(tmp_path):
    obj = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "nan": float("nan"),
        "npnan": np.float64("nan"),
        "inf": np.inf,
        "arr": np.array([[1, 2], [3, 4]], dtype=np.uint8),
        "farr": np.array([1.5, np.nan]),
        "tuple": (np.int32(1), 2.0),
        7: "int key",
        "path": tmp_path / "x",
    }
    target = io.write_json(obj, tmp_path / "o.json")
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "nan": None,
        "npnan": None,
        "inf": None,
        "arr": [[1, 2], [3, 4]],
        "farr": [1.5, None],
        "tuple": [1, 2.0],
        "7": "int key",
        "path": str(tmp_path / "x"),
    }
    assert type(back["i"]) is int and type(back["b"]) is bool
    assert io.read_json(target) == back


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        io.read_json(bad)


def test_write_metrics_mapping_writes_json_in_profile_metrics_dir(outputs):
    target = io.write_metrics("00_x", {"a": np.float64(1.25), "b": np.nan}, profile="quick")
    assert target == outputs["reports"] / "quick" / "metrics" / "00_x.json"
    assert target == paths.metrics_dir("quick") / "00_x.json"
    assert json.loads(target.read_text()) == {"a": 1.25, "b": None}


def test_write_metrics_full_profile_goes_to_reports_root(outputs):
    target = io.write_metrics("00_x", {"a": 1}, profile="full", suffix="_extra")
    assert target == outputs["reports"] / "metrics" / "00_x_extra.json"
    assert target.exists()


def test_write_metrics_default_profile_from_environment(outputs, monkeypatch):
    monkeypatch.setenv("NEUROSEG_PROFILE", "quick")
    target = io.write_metrics("00_x", {"a": 1})
    assert target.parent == outputs["reports"] / "quick" / "metrics"


@pytest.mark.parametrize(
    "value",
    [{"inner": 1}, [1, 2], (1, 2), np.array([1.0, 2.0])],
    ids=["dict", "list", "tuple", "array"],
)
def test_write_metrics_rejects_nested(outputs, value):
    with pytest.raises(ValueError, match="flat") as err:
        io.write_metrics("00_x", {"ok": 1, "bad": value}, profile="quick")
    assert "bad" in str(err.value)
    assert not (outputs["reports"] / "quick" / "metrics" / "00_x.json").exists()


def test_write_metrics_table_writes_csv(outputs):
    frame = pd.DataFrame({"model": ["a", "b"], "score": [0.5, 0.75]})
    target = io.write_metrics("10_y", frame, profile="quick", suffix="_table")
    assert target == outputs["reports"] / "quick" / "metrics" / "10_y_table.csv"
    with target.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"model": "a", "score": "0.5"}, {"model": "b", "score": "0.75"}]


def test_write_metrics_list_of_rows_writes_csv_without_index(outputs):
    rows = [{"k": 1, "v": 2.5}, {"k": 2, "v": math.nan}]
    target = io.write_metrics("10_y", rows, profile="full")
    assert target.suffix == ".csv"
    assert target.read_text().splitlines() == ["k,v", "1,2.5", "2,"]


def test_save_figure_writes_png_and_pdf(outputs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    try:
        written = io.save_figure(fig, "00_test_fig", profile="quick", dpi=20)
    finally:
        plt.close(fig)
    folder = outputs["reports"] / "quick" / "figures"
    assert written == [folder / "00_test_fig.png", folder / "00_test_fig.pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"
    assert _siblings(folder) == ["00_test_fig.pdf", "00_test_fig.png"]


def test_atomic_write_has_the_same_mode_as_a_plain_write(tmp_path):
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = io.write_json({"a": 1}, tmp_path / "atomic.json")
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode), oct(mode)
