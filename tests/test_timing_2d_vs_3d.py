"""Tests of the 2D-vs-3D timing study helpers (neuroseg.experiments.timing_2d_vs_3d)."""

import numpy as np
import pandas as pd
import pytest

from neuroseg.experiments.timing_2d_vs_3d import (
    ROUTES,
    accuracy_table,
    device_label,
    keep_change,
    result_record,
    scaled_volume,
    speed_figure,
    summary,
    targets,
    try_changes,
)
from neuroseg.nets.speed import Speed


def _stages(times: dict[str, float], mvox: float = 2.0, device_name: str = "cpu") -> pd.DataFrame:
    rows = []
    for stage, t in times.items():
        route = "2d" if stage in ROUTES["2d"] else "3d"
        rows.append({"route": route, "stage": stage, "megavoxels": mvox, "median": t,
                     "s_per_mvox": t / mvox, "device_name": device_name})
    return pd.DataFrame(rows)


def test_summary_ratio_shares_and_per_megavoxel():
    stages = _stages({"2d_inference": 2.0, "2d_instances": 1.0, "linking": 1.0,
                      "3d_inference": 6.0, "agglomeration": 2.0})
    s = summary(stages)
    assert s["2d_seconds"] == 4.0 and s["3d_seconds"] == 8.0
    assert s["2d_s_per_mvox"] == 2.0 and s["3d_s_per_mvox"] == 4.0
    assert s["ratio_3d_over_2d"] == 2.0
    assert s["share_linking"] == 0.25 and s["share_2d_inference"] == 0.5
    assert s["share_3d_inference"] == 0.75 and s["share_agglomeration"] == 0.25
    assert s["megavoxels"] == 2.0


def test_scaled_volume_sizes_and_mirroring():
    raw = np.arange(2 * 4 * 6).reshape(2, 4, 6)
    small = scaled_volume(raw, 0.25)
    assert small.shape == (2, 2, 3)
    np.testing.assert_array_equal(small, raw[:, :2, :3])
    big = scaled_volume(raw, 2.0)
    assert big.shape == (2, 4, 12)
    np.testing.assert_array_equal(big[:, :, :6], raw)
    np.testing.assert_array_equal(big[:, :, 6:], raw[:, :, ::-1])  # mirrored: no seam jump
    assert scaled_volume(raw, 1.0).shape == raw.shape
    assert scaled_volume(raw, 1.5).shape == (2, 4, 9)
    with pytest.raises(ValueError, match="positive"):
        scaled_volume(raw, 0)


def test_accuracy_table_reads_the_learned_predicted_row_and_the_3d_summary():
    table = pd.DataFrame([
        {"volume": "v", "z_nm": 40.0, "segments": "predicted", "method": "learned", "cremi": 0.5},
        {"volume": "v", "z_nm": 40.0, "segments": "oracle", "method": "learned", "cremi": 0.1},
        {"volume": "v", "z_nm": 40.0, "segments": "predicted", "method": "overlap", "cremi": 0.7},
    ])
    acc = accuracy_table(table, {"v_40nm_cremi": 0.3}, volume="v", z_nm=40.0)
    assert acc == {"cremi_2d": 0.5, "cremi_3d": 0.3}
    assert accuracy_table(None, None, volume="v", z_nm=40.0) == {
        "cremi_2d": None, "cremi_3d": None}
    assert accuracy_table(table, {}, volume="v", z_nm=10.0) == {
        "cremi_2d": None, "cremi_3d": None}


def test_targets_verdicts():
    summaries = {"40nm": {"ratio_3d_over_2d": 3.5, "share_linking": 0.2}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "mfu": None}])}
    accuracy = {"40nm": {"cremi_2d": 0.4, "cremi_3d": 0.5}}
    v = targets(summaries, flops, accuracy).set_index("target")["met"]
    assert v["3D / 2D time >= 3"] is True
    assert v["2D CREMI <= 3D CREMI"] is True
    assert v["2D inference MFU >= 0.40"] is None  # unknown peak (CPU): no verdict
    assert v["linking share of 2D route < 0.10"] is False
    accuracy = {"40nm": {"cremi_2d": 0.6, "cremi_3d": 0.5}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "mfu": 0.45}])}
    v = targets(summaries, flops, accuracy).set_index("target")["met"]
    assert not v["2D CREMI <= 3D CREMI"] and v["2D inference MFU >= 0.40"]


def test_result_record_is_flat_and_names_the_device():
    summaries = {"40nm": {"ratio_3d_over_2d": 2.0, "2d_s_per_mvox": 1.0}}
    accuracy = {"40nm": {"cremi_2d": 0.4, "cremi_3d": 0.5}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "flops_per_voxel": 10.0, "mfu": None}])}
    speed_table = pd.DataFrame([
        {"step": 0, "route": "2d", "seconds": 4.0, "kept": True},
        {"step": 1, "route": "2d", "seconds": 2.0, "kept": True},
        {"step": 2, "route": "2d", "seconds": 1.0, "kept": False},
        {"step": 0, "route": "3d", "seconds": 3.0, "kept": True},
    ])
    rec = result_record(device="cpu", volume="v", warmup=1, repeats=3,
                                     summaries=summaries, accuracy=accuracy, flops=flops,
                                     speed_2d=Speed(precision="bf16"),
                                     speed_table=speed_table)
    assert rec["precision"] == "bf16" and rec["speed_2d"] == "bf16, batch 8"
    # the gain of the last kept change, not of a faster rejected one
    assert rec["speed_work_2d_speedup"] == 2.0 and rec["speed_work_3d_speedup"] == 1.0
    assert rec["device"] == "cpu" and "device_name" in rec and "version_torch" in rec
    assert rec["40nm_ratio_3d_over_2d"] == 2.0 and rec["40nm_cremi_3d"] == 0.5
    assert rec["40nm_2d_inference_flops_per_voxel"] == 10.0 and rec["40nm_2d_inference_mfu"] is None
    assert not any(isinstance(v, dict | list) for v in rec.values())


def test_device_label_on_cpu():
    assert device_label("cpu") == "cpu"


def test_keep_change_golden():
    keep = keep_change
    assert keep(0.96, 1.0, 0.0) is True  # 4 % faster, same outputs
    assert keep(0.98, 1.0, 0.0) is False  # within the 3 % noise margin
    assert keep(0.5, 1.0, 0.02) is False  # faster but outputs changed beyond 0.01
    assert keep(0.5, 1.0, 0.02, tolerance=0.05) is True
    assert keep(float("nan"), 1.0, 0.0) is False and keep(0.5, 1.0, float("nan")) is False


def _fake_runners(calls):
    """Seconds from the speed: bf16 halves them, channels-last costs 10 %, batch 2 saves
    1 %, compile fails; bf16 changes the 3D output by 0.5, the 2D one by 0.001."""

    def runner(route):
        def run(speed):
            calls.append((route, speed))
            if speed.compile:
                raise RuntimeError("no compiler")
            t = 1.0 if route == "2d" else 4.0
            t *= 0.5 if speed.precision == "bf16" else 1.0
            t *= 1.1 if speed.channels_last else 1.0
            t *= 0.99 if speed.batch_size == 2 else 1.0
            out = (0.5 if route == "3d" else 0.001) if speed.precision == "bf16" else 0.0
            return {f"{route}_inference": t * 0.75, "other": t * 0.25}, out
        return run

    return {"2d": runner("2d"), "3d": runner("3d")}


def test_try_changes_keeps_what_helps_one_change_at_a_time():
    calls = []
    changes = [{"precision": "bf16"}, {"channels_last": True}, {"compile": True}, {"batch_size": 2}]
    table, s2, s3 = try_changes(
        _fake_runners(calls), {"2d": Speed(batch_size=8), "3d": Speed(batch_size=1)},
        changes, difference=lambda route, out, ref: abs(out - ref), megavoxels=2.0,
    )
    assert s2 == Speed(precision="bf16", batch_size=8)
    assert s3 == Speed(batch_size=1)  # bf16 changed its outputs too much
    t = table.set_index(["step", "route"])
    assert list(table["step"].unique()) == [0, 1, 2, 3, 4]
    assert t.loc[(1, "2d"), "kept"] and not t.loc[(1, "3d"), "kept"]
    assert t.loc[(1, "2d"), "speedup_vs_baseline"] == pytest.approx(2.0)
    assert t.loc[(1, "3d"), "difference"] == pytest.approx(0.5)
    assert not t.loc[(2, "2d"), "kept"]  # channels-last is slower
    assert t.loc[(3, "2d"), "error"] == "RuntimeError: no compiler" and not t.loc[(3, "2d"), "kept"]
    assert not t.loc[(4, "2d"), "kept"]  # 1 % is within the noise margin
    assert t.loc[(0, "2d"), "s_per_mvox"] == pytest.approx(0.5)
    # each change is tried on the best so far: channels-last on top of bf16 (2D), on fp32 (3D)
    tried = [s for r, s in calls if r == "2d" and s.channels_last]
    assert tried == [Speed(precision="bf16", channels_last=True, batch_size=8)]
    tried = [s for r, s in calls if r == "3d" and s.channels_last]
    assert tried == [Speed(channels_last=True, batch_size=1)]


def test_try_changes_baseline_failure_is_raised():
    def broken(speed):
        raise ValueError("bad model")

    with pytest.raises(ValueError, match="bad model"):
        try_changes({"2d": broken}, {"2d": Speed()}, [],
                                 difference=lambda *a: 0.0)


def test_speed_figure_draws_each_route(tmp_path):
    calls = []
    table, _, _ = try_changes(
        _fake_runners(calls), {"2d": Speed(), "3d": Speed(batch_size=1)},
        [{"precision": "bf16"}, {"compile": True}], difference=lambda r, o, ref: abs(o - ref))
    fig = speed_figure(table, title="fake")
    assert len(fig.axes) == 2 and all(len(ax.patches) == 3 for ax in fig.axes)
    import matplotlib.pyplot as plt
    plt.close(fig)
