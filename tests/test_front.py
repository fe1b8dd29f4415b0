"""Tests of the accuracy-speed front and its verdict (neuroseg.measure.front)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from neuroseg.measure.front import (  # noqa: E402
    COLUMNS,
    check_front_table,
    front_figure,
    pareto_front,
    train_flops,
    verdict,
)


def _table() -> pd.DataFrame:
    """A small hand-made front: at (v1, 40 nm) a 2D setting reaches the 3D CREMI 4x faster;
    at (v1, 10 nm) none does, and one 2D setting is no slower than the best 3D one."""
    rows = [
        # route, setting, z, volume, cremi, s/Mvox
        ("3d", "f8", 40, "v1", 0.60, 2.0),
        ("3d", "f16", 40, "v1", 0.50, 4.0),
        ("2d", "f8", 40, "v1", 0.70, 0.5),
        ("2d", "f16", 40, "v1", 0.52, 1.0),  # within 5 % of 0.50 (0.525), 4x faster
        ("2d", "f32", 40, "v1", 0.51, 2.0),  # within too, slower
        ("3d", "f8", 10, "v1", 0.30, 3.0),
        ("3d", "f16", 10, "v1", 0.20, 6.0),
        ("2d", "f8", 10, "v1", 0.40, 1.0),
        ("2d", "f16", 10, "v1", 0.35, 5.0),
        ("2d", "f32", 10, "v1", 0.25, 9.0),
    ]
    t = pd.DataFrame(rows, columns=["route", "setting", "z_nm", "volume", "cremi", "s_per_mvox"])
    return t.assign(voi_split=0.1, voi_merge=0.2, arand=0.3, train_seconds=60.0, train_flops=1e12)[list(COLUMNS)]


def test_golden_verdict():
    v = {(r["volume"], r["z_nm"]): r for r in verdict(_table())}
    a = v[("v1", 40.0)]
    assert a["best_3d_setting"] == "f16" and a["best_3d_cremi"] == 0.50 and a["best_3d_s_per_mvox"] == 4.0
    assert a["fastest_2d_within_setting"] == "f16" and a["speedup"] == pytest.approx(4.0)
    assert a["best_2d_setting"] == "f32" and a["best_2d_cremi"] == 0.51
    assert a["equal_time_2d_setting"] == "f32" and a["equal_time_2d_cremi"] == 0.51
    assert a["hypothesis_met"] is True
    b = v[("v1", 10.0)]
    assert b["best_3d_cremi"] == 0.20 and b["best_3d_s_per_mvox"] == 6.0
    assert b["fastest_2d_within_setting"] is None and b["speedup"] is None
    assert b["best_2d_setting"] == "f32" and b["best_2d_cremi"] == 0.25
    # equal time: the best 2D CREMI among 2D settings no slower than 6 s/Mvox
    assert b["equal_time_2d_setting"] == "f16" and b["equal_time_2d_cremi"] == 0.35
    assert b["hypothesis_met"] is False


def test_verdict_follows_the_table_when_it_changes():
    t = _table()
    t.loc[(t["z_nm"] == 40) & (t["route"] == "2d") & (t["setting"] == "f16"), "s_per_mvox"] = 2.0
    a = next(r for r in verdict(t) if r["z_nm"] == 40)
    assert a["speedup"] == pytest.approx(2.0) and a["hypothesis_met"] is False
    t.loc[t["route"] == "2d", "s_per_mvox"] = 100.0
    a = next(r for r in verdict(t) if r["z_nm"] == 40)
    assert a["equal_time_2d_setting"] is None and a["equal_time_2d_cremi"] is None


def test_pareto_front_of_each_route():
    t = _table()
    f = pareto_front(t[(t["route"] == "2d") & (t["z_nm"] == 10)])
    assert f["setting"].tolist() == ["f8", "f16", "f32"]
    g = pareto_front(pd.DataFrame({"cremi": [0.5, 0.5, 0.6], "s_per_mvox": [1.0, 2.0, 0.5]}))
    assert g.index.tolist() == [2, 0]


def test_the_table_is_checked():
    t = _table()
    assert list(check_front_table(t).columns) == list(COLUMNS)
    with pytest.raises(ValueError, match="lacks the columns"):
        check_front_table(t.drop(columns="train_flops"))
    with pytest.raises(ValueError, match="finite"):
        check_front_table(t.assign(cremi=np.nan))
    with pytest.raises(ValueError, match="more than one row"):
        check_front_table(pd.concat([t, t.iloc[:1]]))
    with pytest.raises(ValueError, match="both routes"):
        verdict(t[t["route"] == "2d"])


def test_front_figure_and_caption():
    fig, caption = front_figure(_table(), z_nm=40)
    assert len(fig.axes) == 1 and "Pareto front" in caption
    with pytest.raises(ValueError, match="no row"):
        front_figure(_table(), z_nm=20)


def test_train_flops_counts_three_forward_passes_per_sample():
    import torch

    from neuroseg.measure.timing import count_flops

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 2, 1))
    forward = count_flops(net, (1, 1, 8, 8))
    assert forward == 2 * (8 * 8 * 4 * 9 + 8 * 8 * 2 * 4)
    assert train_flops(net, (1, 8, 8), 5) == 3 * 5 * forward


def test_front_seed_spread_puts_the_fronts_own_run_first():
    from neuroseg.experiments.front_2d_vs_3d import seed_spread

    front_table = pd.DataFrame([
        {"route": "3d", "setting": "3d_f8", "z_nm": 40.0, "volume": "gala", "cremi": 0.5,
         "voi_split": 0.2, "voi_merge": 0.3, "arand": 0.1},
        {"route": "3d", "setting": "3d_f16", "z_nm": 40.0, "volume": "gala", "cremi": 9.0,
         "voi_split": 9.0, "voi_merge": 9.0, "arand": 9.0}])
    rows = pd.DataFrame([{"route": "3d", "setting": "3d_f8", "z_nm": 40.0, "volume": "gala", "seed": s,
                          "cremi": c, "voi_split": 0.2, "voi_merge": 0.3, "arand": 0.1}
                         for s, c in ((1, 0.7), (2, 0.6))])
    table = seed_spread("45_x", front_table, rows).set_index("metric")
    row = table.loc["45_x:3d_3d_f8_gala_40nm_cremi"]
    assert row["seeds"] == "0 1 2" and row["values"] == "0.5 0.7 0.6"
    assert row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.1)
    assert len(table) == 4  # the four scores of the one winner, nothing of 3d_f16
    with pytest.raises(ValueError, match="0 rows"):
        seed_spread("45_x", front_table.iloc[1:], rows)


def test_front_seed_rows_need_the_fronts_choices():
    from neuroseg.experiments.front_2d_vs_3d import seed_rows

    choices = pd.DataFrame({"route": ["3d"], "setting": ["3d_f8"], "z_nm": [40.0], "cremi": [0.5],
                            "chosen": [True], "method": ["mws"], "threshold": [0.5], "min_size": [64]})
    with pytest.raises(ValueError, match="no chosen 2D setting"):
        seed_rows({}, choices, seeds=[1], settings_2d=[], settings_3d=[{"base_features": 8}],
                  folder="unused", budget=1, train_2d={}, train_3d={}, train_linker={})
