"""The slice-linking inspector on another tool's masks, in JupyterLab, in a real browser.

Synthetic masks numbered from 1 in every slice (three objects; one is numbered differently in
the last slice, one leaves after two slices) go through ``LinkInspector.from_masks`` in a
scratch notebook (``benchmarks/masks_inspector.py``); the test checks that the pictures carry
a scale bar, that the link table shows each pair's score and decision, and that the z slider
moves the view. No data and no trained model. Without Chromium or Playwright it is skipped,
except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import inspector_browser as ib  # noqa: E402
import masks_inspector as mi  # noqa: E402

pytestmark = [pytest.mark.slow]


def tool_masks() -> tuple[np.ndarray, np.ndarray]:
    masks = np.zeros((4, 48, 64), np.uint16)
    masks[:, 4:20, 4:24] = 1
    masks[:, 26:44, 30:60] = 2
    masks[3, 26:44, 30:60] = 1  # the tool numbered them the other way round here
    masks[3, 4:20, 4:24] = 2
    masks[:2, 30:40, 4:16] = 3  # leaves after slice 1
    rng = np.random.default_rng(0)
    raw = (rng.random(masks.shape) * 0.2 + (masks > 0) * 0.6).astype(np.float32)
    return masks, raw


def test_the_inspector_opens_on_another_tools_masks(tmp_path: Path) -> None:
    reason = ib.missing_browser()
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    masks, raw = tool_masks()
    shot = tmp_path / "inspector.png"
    first, moved = mi.show(ib.Workdir(tmp_path / "work", "quick", mi.NAME), masks, raw,
                           resolution=(40, 8, 8), z_steps=2, shot=shot, timeout=300)
    assert first.z == "0" and "3 objects here, 3 in the volume" in first.info, first.info
    rows = first.rows
    assert {"score", "linked"} <= set(rows[0]) and len(rows) == 3, rows
    assert all(r["linked"] == "True" for r in rows), rows
    assert moved.z == "2" and moved.left_sha != first.left_sha
    assert "2 objects here" in moved.info, moved.info
    assert shot.stat().st_size > 1000
