"""Tests of the 2D-vs-3D timing study helpers (neuroseg.route_timing)."""

import numpy as np
import pandas as pd
import pytest

from neuroseg import route_timing


def _stages(times: dict[str, float], mvox: float = 2.0, device_name: str = "cpu") -> pd.DataFrame:
    rows = []
    for stage, t in times.items():
        route = "2d" if stage in route_timing.ROUTES["2d"] else "3d"
        rows.append({"route": route, "stage": stage, "megavoxels": mvox, "median": t,
                     "s_per_mvox": t / mvox, "device_name": device_name})
    return pd.DataFrame(rows)


def test_summary_ratio_shares_and_per_megavoxel():
    stages = _stages({"2d_inference": 2.0, "2d_instances": 1.0, "linking": 1.0,
                      "3d_inference": 6.0, "agglomeration": 2.0})
    s = route_timing.summary(stages)
    assert s["2d_seconds"] == 4.0 and s["3d_seconds"] == 8.0
    assert s["2d_s_per_mvox"] == 2.0 and s["3d_s_per_mvox"] == 4.0
    assert s["ratio_3d_over_2d"] == 2.0
    assert s["share_linking"] == 0.25 and s["share_2d_inference"] == 0.5
    assert s["share_3d_inference"] == 0.75 and s["share_agglomeration"] == 0.25
    assert s["megavoxels"] == 2.0


def test_scaled_volume_sizes_and_mirroring():
    raw = np.arange(2 * 4 * 6).reshape(2, 4, 6)
    small = route_timing.scaled_volume(raw, 0.25)
    assert small.shape == (2, 2, 3)
    np.testing.assert_array_equal(small, raw[:, :2, :3])
    big = route_timing.scaled_volume(raw, 2.0)
    assert big.shape == (2, 4, 12)
    np.testing.assert_array_equal(big[:, :, :6], raw)
    np.testing.assert_array_equal(big[:, :, 6:], raw[:, :, ::-1])  # mirrored: no seam jump
    assert route_timing.scaled_volume(raw, 1.0).shape == raw.shape
    assert route_timing.scaled_volume(raw, 1.5).shape == (2, 4, 9)
    with pytest.raises(ValueError, match="positive"):
        route_timing.scaled_volume(raw, 0)


def test_accuracy_table_reads_the_learned_predicted_row_and_the_3d_summary():
    table = pd.DataFrame([
        {"volume": "v", "z_nm": 40.0, "segments": "predicted", "method": "learned", "cremi": 0.5},
        {"volume": "v", "z_nm": 40.0, "segments": "oracle", "method": "learned", "cremi": 0.1},
        {"volume": "v", "z_nm": 40.0, "segments": "predicted", "method": "overlap", "cremi": 0.7},
    ])
    acc = route_timing.accuracy_table(table, {"v_40nm_cremi": 0.3}, volume="v", z_nm=40.0)
    assert acc == {"cremi_2d": 0.5, "cremi_3d": 0.3}
    assert route_timing.accuracy_table(None, None, volume="v", z_nm=40.0) == {
        "cremi_2d": None, "cremi_3d": None}
    assert route_timing.accuracy_table(table, {}, volume="v", z_nm=10.0) == {
        "cremi_2d": None, "cremi_3d": None}


def test_targets_verdicts():
    summaries = {"40nm": {"ratio_3d_over_2d": 3.5, "share_linking": 0.2}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "mfu": None}])}
    accuracy = {"40nm": {"cremi_2d": 0.4, "cremi_3d": 0.5}}
    v = route_timing.targets(summaries, flops, accuracy).set_index("target")["met"]
    assert v["3D / 2D time >= 3"] is True
    assert v["2D CREMI <= 3D CREMI"] is True
    assert v["2D inference MFU >= 0.40"] is None  # unknown peak (CPU): no verdict
    assert v["linking share of 2D route < 0.10"] is False
    accuracy = {"40nm": {"cremi_2d": 0.6, "cremi_3d": 0.5}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "mfu": 0.45}])}
    v = route_timing.targets(summaries, flops, accuracy).set_index("target")["met"]
    assert not v["2D CREMI <= 3D CREMI"] and v["2D inference MFU >= 0.40"]


def test_result_record_is_flat_and_names_the_device():
    summaries = {"40nm": {"ratio_3d_over_2d": 2.0, "2d_s_per_mvox": 1.0}}
    accuracy = {"40nm": {"cremi_2d": 0.4, "cremi_3d": 0.5}}
    flops = {"40nm": pd.DataFrame([{"stage": "2d_inference", "flops_per_voxel": 10.0, "mfu": None}])}
    rec = route_timing.result_record(device="cpu", precision="fp32", volume="v", warmup=1, repeats=3,
                                     summaries=summaries, accuracy=accuracy, flops=flops)
    assert rec["device"] == "cpu" and "device_name" in rec and "version_torch" in rec
    assert rec["40nm_ratio_3d_over_2d"] == 2.0 and rec["40nm_cremi_3d"] == 0.5
    assert rec["40nm_2d_inference_flops_per_voxel"] == 10.0 and rec["40nm_2d_inference_mfu"] is None
    assert not any(isinstance(v, dict | list) for v in rec.values())


def test_effective_precision_and_device_label_on_cpu():
    assert route_timing.effective_precision("bf16", "cpu") == "fp32"
    assert route_timing.device_label("cpu") == "cpu"
