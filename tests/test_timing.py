"""neuroseg.timing.measure: one call's result, wall-clock seconds and peak extra memory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neuroseg.timing import Measured, measure


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
