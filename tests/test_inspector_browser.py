"""The slice-linking inspector in JupyterLab, in a real browser.

JupyterLab runs headless on 127.0.0.1 over a copy of ``notebooks/30_slice_linking.ipynb``
with the quick profile's parameters (injected by papermill, which executes nothing); Debian's
Chromium, driven by Playwright, opens it, runs every cell from the Run menu, moves the z and
threshold sliders with the keyboard and checks that the pictures and the link table follow.
A screenshot of the inspector is saved as ``inspector.png`` in the test's temporary folder.

The notebook reads the quick profile's real artifacts (``make reproduce PROFILE=quick``, which
``make test`` runs first); the linker folder it re-saves there is restored afterwards, byte
for byte (checked here). Needs also the real data (``NEUROSEG_DATA``), ``/usr/bin/chromium``
and the ``playwright`` package. Without the artifacts or the data it is skipped; without
Chromium or Playwright it is skipped too, except in CI (``CI=true``), where it fails: CI
installs both (``.ci/run``).
The helpers live in ``benchmarks/inspector_browser.py`` (shared with the screenshot script).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import inspector_browser as ib  # noqa: E402

pytestmark = [pytest.mark.data, pytest.mark.slow]

PROFILE = "quick"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def lab_page(tmp_path: Path) -> Iterator[tuple[ib.Lab, Any, ib.Workdir]]:
    """JupyterLab over the quick-profile notebook and a Chromium page; both stopped after."""
    reason = ib.missing_browser()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    reason = ib.missing_artifacts(PROFILE)
    if reason is not None:
        pytest.skip(reason)
    work = ib.prepare(tmp_path / "work", PROFILE)
    written = {part: ib.folder_digest(ib.artifacts_root() / PROFILE / part) for part in ib.WRITTEN}
    with ib.jupyter_lab(work) as lab, ib.chromium_page() as page:
        yield lab, page, work
    assert lab.process.poll() is not None, "JupyterLab is still running"
    after = {part: ib.folder_digest(ib.artifacts_root() / PROFILE / part) for part in ib.WRITTEN}
    assert after == written, "the artifacts the notebook rewrote are restored"


def _linked(state: ib.InspectorState) -> list[tuple[str, str, str]]:
    """(id_a, id_b, linked) of every row of the shown link table."""
    return [(r["id_a"], r["id_b"], r["linked"]) for r in state.rows]


def _unlinked_below_threshold(state: ib.InspectorState) -> bool:
    """No shown pair scoring below the shown threshold is linked (scores show 3 decimals)."""
    threshold = float(state.threshold)
    return all(
        r["linked"] == "False" for r in state.rows if float(r["score"]) + 5e-4 < threshold
    )


def test_inspector_follows_the_sliders_in_jupyterlab(tmp_path: Path, lab_page) -> None:
    lab, page, work = lab_page
    started = time.perf_counter()
    ib.open_notebook(page, lab, work.notebook.name)
    ib.run_all(page, timeout=600)
    start = ib.settled_state(page)
    ib.log(f"inspector at z={start.z}, threshold={start.threshold}: {start.info}")
    assert start.z == "0"
    assert start.rows, "the link table lists the candidate pairs between slices 0 and 1"
    assert _unlinked_below_threshold(start)

    # z: one step right; slice 1 moves from the right picture to the left one
    moved = ib.press_slider(page, "z", "ArrowRight")
    ib.log(f"z -> {moved.z}: {moved.info}")
    assert moved.z == "1"
    assert "slices 1 | 2:" in moved.info
    assert moved.left_src != start.left_src and moved.right_src != start.right_src
    assert moved.left_sha != start.left_sha and moved.right_sha != start.right_sha
    assert moved.left_sha == start.right_sha, "the new left picture is the old right one"
    assert moved.table_html != start.table_html
    assert moved.rows, "the link table lists the candidate pairs between slices 1 and 2"

    # threshold: to its minimum (Home) and maximum (End); the table's links follow
    lowest = ib.press_slider(page, "threshold", "Home")
    highest = ib.press_slider(page, "threshold", "End")
    ib.log(f"threshold {lowest.threshold}: {lowest.info}")
    ib.log(f"threshold {highest.threshold}: {highest.info}")
    assert (lowest.threshold, highest.threshold) == ("0.00", "1.00")
    assert lowest.z == highest.z == "1"
    assert {r["id_a"] + "-" + r["id_b"] for r in lowest.rows} == {
        r["id_a"] + "-" + r["id_b"] for r in moved.rows
    }, "a threshold re-decides the same candidate pairs"
    assert _unlinked_below_threshold(lowest) and _unlinked_below_threshold(highest)
    assert _linked(lowest) != _linked(moved) or _linked(highest) != _linked(moved)
    assert lowest.table_html != highest.table_html

    shot = ib.screenshot(page, tmp_path / "inspector.png")
    with Image.open(shot) as image:
        assert image.format == "PNG" and min(image.size) > 100
    ib.log(f"browser test took {time.perf_counter() - started:.1f} s")
