"""neuroseg.measure.timing: ``measure`` (one call's result, seconds and peak extra memory), ``benchmark``
and ``Timing`` (fake clock and sync, never real timings), peak FLOP/s, FLOP counts and the
recorded environment."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import threading
import time

import numpy as np
import pytest
import torch

from neuroseg.measure.timing import (
    PEAK_TFLOPS,
    Measured,
    Timing,
    _default_sync,
    _quantile,
    benchmark,
    count_flops,
    device_name,
    environment,
    measure,
    model_flop_utilisation,
    peak_flops,
)
from neuroseg.nets.unet import UNet


def test_returns_the_result_and_passes_arguments():
    def f(a, b, *, c):
        return (a, b, c)

    m = measure(f, 1, [2], c="x")
    assert isinstance(m, Measured)
    assert m.result == (1, [2], "x")
    assert m.seconds >= 0.0 and m.peak_mb >= 0.0  # the peak starts at the call's start
    assert isinstance(m.seconds, float) and isinstance(m.peak_mb, float)


def test_measure_is_frozen():
    m = measure(lambda: 1)
    with pytest.raises(AttributeError):
        m.seconds = 0.0  # type: ignore[misc]


def test_seconds_cover_a_sleep():
    m = measure(time.sleep, 0.15)
    assert m.result is None
    assert 0.15 <= m.seconds < 5.0


def test_seconds_of_a_quick_call_are_small():
    assert measure(lambda: None).seconds < 0.5


def test_peak_memory_sees_a_large_temporary():
    def allocate():
        a = np.ones(25_000_000)  # 200 MB of float64, written (touched) by np.ones
        time.sleep(0.05)  # a few sampling intervals with the memory held
        return float(a[::1000].sum())

    m = measure(allocate)
    assert m.result == 25_000.0
    assert m.peak_mb > 100
    assert m.peak_mb < 2000


def test_peak_memory_of_a_small_call_is_small():
    m = measure(lambda: sum(range(1000)))
    assert m.peak_mb < 50


def test_exceptions_propagate_and_the_sampler_stops():
    before = threading.active_count()

    def boom():
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        measure(boom)
    assert threading.active_count() == before


# --------------------------------------------------------------------------------------------
# benchmark: call order, fake clock, arguments and what is recorded
# --------------------------------------------------------------------------------------------


def _recorder(ticks):
    """A fake clock and sync that append to one shared event list; the clock returns ``ticks``."""
    events: list = []
    values = iter(ticks)

    def clock():
        value = next(values)
        events.append(("clock", value))
        return value

    def sync():
        events.append("sync")

    return events, clock, sync


@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_benchmark_call_order_and_times_from_the_fake_clock(warmup):
    ticks = [0.0, 1.5, 10.0, 10.25, 20.0, 23.0]  # differences 1.5, 0.25, 3.0 (exact floats)
    events, clock, sync = _recorder(ticks)
    calls = iter(range(100))

    def fn():
        i = next(calls)
        events.append(("fn", i))
        return i

    timing, result = benchmark(fn, warmup=warmup, repeats=3, clock=clock, sync=sync, device="cpu")

    assert timing.times == (1.5, 0.25, 3.0)
    assert all(isinstance(t, float) for t in timing.times)
    assert timing.warmup == warmup
    assert result == warmup + 2  # the last (timed) call's result
    # untimed warm-up calls come first, before any clock reading
    assert events[:warmup] == [("fn", i) for i in range(warmup)]
    # then each repeat is bracketed: sync, clock, fn, sync, clock
    expected_tail = []
    for r in range(3):
        expected_tail += [
            "sync",
            ("clock", ticks[2 * r]),
            ("fn", warmup + r),
            "sync",
            ("clock", ticks[2 * r + 1]),
        ]
    assert events[-len(expected_tail) :] == expected_tail
    # between the warm-up and the first timed repeat only syncs happen (the code syncs once
    # after the warm-up; no fn call and no clock reading there)
    middle = events[warmup : len(events) - len(expected_tail)]
    assert all(e == "sync" for e in middle)
    assert sum(1 for e in events if isinstance(e, tuple) and e[0] == "clock") == 6
    assert sum(1 for e in events if isinstance(e, tuple) and e[0] == "fn") == warmup + 3


def test_benchmark_docstring_example():
    ticks = iter(range(100))
    t, out = benchmark(lambda: 7, repeats=3, clock=lambda: float(next(ticks)), device="cpu")
    assert out == 7
    assert t.times == (1.0, 1.0, 1.0)
    assert t.median == 1.0


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"repeats": -2}, {"warmup": -1}])
def test_benchmark_rejects_bad_counts_before_calling(kwargs):
    called = []
    with pytest.raises(ValueError, match="warmup >= 0 and repeats >= 1"):
        benchmark(lambda: called.append(1), device="cpu", sync=lambda: None, **kwargs)
    assert called == []


def test_benchmark_passes_args_and_kwargs_and_records_name_and_precision():
    seen = []

    def f(a, b, *, c, d=0):
        seen.append((a, b, c, d))
        return a + b + c + d

    events, clock, sync = _recorder(float(i) for i in range(100))
    timing, result = benchmark(
        f,
        1,
        2,
        c=3,
        d=4,
        name="adder",
        precision="bf16",
        warmup=1,
        repeats=2,
        clock=clock,
        sync=sync,
        device="cpu",
    )
    assert result == 10
    assert seen == [(1, 2, 3, 4)] * 3
    assert timing.name == "adder"
    assert timing.precision == "bf16"
    d = timing.to_dict()
    assert d["name"] == "adder" and d["precision"] == "bf16"


def test_benchmark_on_cpu_records_the_device_and_no_cuda_memory():
    ticks = iter(float(i) for i in range(100))
    # no sync given: the default on a CPU device must do nothing (and not touch CUDA)
    timing, result = benchmark(lambda: "ok", repeats=2, device="cpu", clock=lambda: next(ticks))
    assert result == "ok"
    assert timing.cuda_max_allocated_mb is None
    assert isinstance(timing.peak_rss_mb, float) and timing.peak_rss_mb >= 0.0
    d = timing.to_dict()
    assert d["device"] == "cpu"
    assert d["cuda_max_allocated_mb"] is None
    assert d["repeats"] == 2


def test_default_sync_on_cpu_does_nothing():
    sync = _default_sync("cpu")
    assert sync() is None
    assert _default_sync("cpu:0")() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the default device without CUDA")
def test_benchmark_default_device_is_cpu_without_cuda():
    ticks = iter(float(i) for i in range(100))
    timing, _ = benchmark(lambda: None, repeats=1, warmup=0, clock=lambda: next(ticks))
    assert timing.to_dict()["device"] == "cpu"
    assert timing.cuda_max_allocated_mb is None


def test_benchmark_exceptions_propagate_and_the_sampler_stops():
    before = threading.active_count()

    def boom():
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        benchmark(boom, warmup=0, repeats=2, device="cpu", sync=lambda: None)
    assert threading.active_count() == before


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _timing(times, **env) -> Timing:
    return Timing(
        name="t",
        times=tuple(times),
        warmup=1,
        precision="fp32",
        peak_rss_mb=0.0,
        cuda_max_allocated_mb=None,
        env=env,
    )


@pytest.mark.parametrize("times", [(1.0, 2.0, 3.0, 4.0), (4.0, 1.0, 3.0, 2.0)])
def test_timing_summary_golden_values(times):
    t = _timing(times)
    assert t.median == pytest.approx(2.5)
    assert t.q25 == pytest.approx(1.75)
    assert t.q75 == pytest.approx(3.25)


def test_timing_summary_of_a_single_time():
    t = _timing([0.125])
    assert t.median == t.q25 == t.q75 == 0.125
    assert isinstance(t.median, float) and isinstance(t.q25, float)


def test_timing_odd_count_golden_values():
    t = _timing([5.0, 1.0, 3.0])  # sorted 1, 3, 5
    assert t.median == 3.0
    assert t.q25 == pytest.approx(2.0)
    assert t.q75 == pytest.approx(4.0)


def test_quantile_matches_numpy_linear_interpolation():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 10):
        values = list(rng.random(n))
        for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
            assert _quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_timing_to_dict_holds_the_record():
    env = environment("cpu")
    t = _timing([1.0, 2.0, 3.0, 4.0], **env)
    d = t.to_dict()
    assert d["times"] == [1.0, 2.0, 3.0, 4.0] and isinstance(d["times"], list)
    assert d["repeats"] == 4
    assert d["median"] == pytest.approx(2.5)
    assert d["q25"] == pytest.approx(1.75) and d["q75"] == pytest.approx(3.25)
    assert d["device"] == "cpu"
    assert isinstance(d["device_name"], str) and d["device_name"]
    assert isinstance(d["threads"], int) and d["threads"] >= 1
    assert isinstance(d["versions"], dict)
    assert d["versions"]["torch"] == torch.__version__
    assert d["versions"]["numpy"] == np.__version__
    for key in ("name", "warmup", "precision", "peak_rss_mb", "cuda_max_allocated_mb"):
        assert key in d
    assert "env" not in d  # flattened
    json.dumps(d)  # a flat, JSON-ready record


def test_timing_from_benchmark_to_dict_has_the_environment():
    ticks = iter(float(i) for i in range(100))
    timing, _ = benchmark(
        lambda: None, repeats=3, device="cpu", clock=lambda: next(ticks), sync=lambda: None
    )
    d = timing.to_dict()
    assert d["times"] == [1.0, 1.0, 1.0] and d["repeats"] == 3 and d["median"] == 1.0
    assert d["device"] == "cpu"
    assert isinstance(d["device_name"], str)
    assert isinstance(d["threads"], int)
    assert {"torch", "numpy"} <= set(d["versions"])
    json.dumps(d)


def test_timing_is_frozen():
    t = _timing([1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.times = (2.0,)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# peak FLOP/s and model FLOP utilisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "precision", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4e12),
        ("NVIDIA H100 80GB HBM3", "fp32", 66.9e12),
        ("NVIDIA H100 PCIe", "bf16", 756.5e12),  # the PCIe entry, not the generic H100 one
        ("NVIDIA H100 PCIe", "tf32", 378.0e12),
        ("NVIDIA H200", "bf16", 989.4e12),
        ("NVIDIA H200", "fp16", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", "fp32", 19.5e12),
    ],
)
def test_peak_flops_known_devices(name, precision, expected):
    assert peak_flops(name, precision) == pytest.approx(expected, rel=1e-12)


def test_peak_flops_docstring_value_is_exact():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989400000000000.0


@pytest.mark.parametrize("name", ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200"])
@pytest.mark.parametrize("precision", ["fp8", "int8", "", "BF16"])
def test_peak_flops_unknown_precision_is_none(name, precision):
    assert peak_flops(name, precision) is None


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_peak_flops_of_a_cpu_is_none(precision):
    assert peak_flops("Intel Xeon", precision) is None
    assert peak_flops(device_name("cpu"), precision) is None
    assert peak_flops("", precision) is None


def test_peak_tflops_table_entries_have_the_same_precisions():
    keys = {frozenset(t) for t in PEAK_TFLOPS.values()}
    assert keys == {frozenset({"bf16", "fp16", "tf32", "fp32"})}


def test_model_flop_utilisation_golden_value():
    # 3e12 FLOPs in 2 s = 1.5e12 FLOP/s of a 6e12 FLOP/s peak
    assert model_flop_utilisation(3e12, 2.0, 6e12) == pytest.approx(0.25)
    assert isinstance(model_flop_utilisation(3e12, 2.0, 6e12), float)
    # with a table value: 989.4 TFLOP in 2 s on an H100 at bf16 is half the peak
    peak = peak_flops("NVIDIA H100 80GB HBM3", "bf16")
    assert model_flop_utilisation(989.4e12, 2.0, peak) == pytest.approx(0.5)


def test_model_flop_utilisation_none_without_peak_or_time():
    assert model_flop_utilisation(1e9, 1.0, None) is None
    assert model_flop_utilisation(1e9, 0.0, 1e12) is None
    assert model_flop_utilisation(1e9, -1.0, 1e12) is None
    assert model_flop_utilisation(1e9, float("nan"), 1e12) is None


# --------------------------------------------------------------------------------------------
# count_flops
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_count_flops_of_a_conv3d(bias):
    cin, cout = 2, 3
    conv = torch.nn.Conv3d(cin, cout, 3, padding=1, bias=bias)
    voxels = 4 * 5 * 6
    expected = 2 * cin * cout * 27 * voxels  # 2 per multiply-add; the bias is not counted
    assert expected == 38880
    assert count_flops(conv, (1, cin, 4, 5, 6)) == expected
    assert count_flops(conv, torch.zeros(1, cin, 4, 5, 6)) == expected
    assert count_flops(conv, [1, cin, 4, 5, 6]) == expected
    assert count_flops(conv, torch.Size([1, cin, 4, 5, 6])) == expected
    assert isinstance(count_flops(conv, (1, cin, 4, 5, 6)), int)


def test_count_flops_of_a_linear_layer():
    lin = torch.nn.Linear(5, 7)
    assert count_flops(lin, (3, 5)) == 2 * 3 * 5 * 7  # 210
    assert count_flops(lin, torch.ones(3, 5)) == 210


def test_count_flops_docstring_example():
    assert count_flops(torch.nn.Conv2d(1, 2, 3, padding=1, bias=False), (1, 1, 4, 4)) == 576


def test_count_flops_of_a_model_without_parameters_or_matmuls():
    assert count_flops(torch.nn.ReLU(), (2, 3)) == 0


@pytest.mark.parametrize("training", [True, False])
def test_count_flops_leaves_the_training_mode_as_it_was(training):
    net = UNet(ndim=3, depth=2, base_features=4)
    net.train(training)
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    count_flops(net, (1, 1, 4, 4, 4))
    assert seen == [False]  # counted in eval mode
    assert net.training is training
    assert all(m.training is training for m in net.modules())


@pytest.mark.parametrize("training", [True, False])
def test_count_flops_restores_the_mode_when_the_forward_fails(training):
    net = UNet(ndim=3, depth=2, base_features=4).train(training)
    with pytest.raises(ValueError, match="not a multiple"):
        count_flops(net, (1, 1, 3, 4, 4))  # 3 is not a multiple of 2
    assert net.training is training
    assert all(m.training is training for m in net.modules())


def test_count_flops_does_not_change_batchnorm_statistics():
    net = UNet(ndim=3, depth=2, base_features=4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_flops(net, torch.rand(1, 1, 4, 4, 4))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_count_flops_of_a_tiny_unet_doubles_with_the_volume():
    net = UNet(ndim=3, depth=2, base_features=4)
    m = net.required_multiple
    assert m == (2, 2, 2)
    base = (1, 1, 2 * m[0], 2 * m[1], 2 * m[2])
    flops = count_flops(net, base)
    assert isinstance(flops, int) and flops > 0
    for axis in (2, 3, 4):
        doubled = list(base)
        doubled[axis] *= 2
        assert count_flops(net, doubled) == 2 * flops
    # and four times the volume, four times the FLOPs
    assert count_flops(net, (1, 1, 4 * m[0], 2 * m[1], 4 * m[2])) == 4 * flops


# --------------------------------------------------------------------------------------------
# environment and device names
# --------------------------------------------------------------------------------------------


def test_device_name_of_the_cpu():
    name = device_name("cpu")
    assert isinstance(name, str) and name
    assert name.endswith(f"({os.cpu_count()} cores)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the default device without CUDA")
def test_device_name_default_is_the_cpu_without_cuda():
    assert device_name() == device_name("cpu")


def test_environment_on_cpu():
    env = environment("cpu")
    assert set(env) == {"device", "device_name", "threads", "versions"}
    assert env["device"] == "cpu"
    assert env["device_name"] == device_name("cpu")
    assert env["threads"] == torch.get_num_threads()
    versions = env["versions"]
    assert isinstance(versions, dict)
    assert versions["torch"] == torch.__version__
    assert versions["numpy"] == np.__version__
    assert versions["python"] == platform.python_version()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items())
    json.dumps(env)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the default device without CUDA")
def test_environment_default_device_without_cuda():
    env = environment()
    assert env["device"] == "cpu"
    assert "cuda" not in env["versions"]
