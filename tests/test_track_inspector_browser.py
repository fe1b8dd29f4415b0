"""The track inspector in JupyterLab, in a real browser, on labels and coordinates only.

A scratch notebook tracks a small synthetic time-lapse (two nuclei: one moves right, one
divides at frame 3) and shows :class:`neuroseg.report.track_inspector.TrackInspector`.
JupyterLab runs headless on 127.0.0.1 and Debian's Chromium, driven by Playwright, runs every
cell from the Run menu, moves the frame slider with the keyboard and checks that the picture,
the info line and the link table follow, and that the division shows as one. It needs no data
and no trained model. Without Chromium or Playwright it is skipped, except in CI
(``CI=true``), where it fails. The JupyterLab helpers are those of the slice-linking
inspector's test (``benchmarks/inspector_browser.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import inspector_browser as ib  # noqa: E402

pytestmark = [pytest.mark.slow]

NAME = "track_inspector"
CELLS = [
    "import numpy as np\n"
    "from neuroseg.linking.tracks import track\n"
    "from neuroseg.report.track_inspector import TrackInspector",
    "segments = np.load('segments.npy')\nresult = track(segments)\nresult.lineage",
    "TrackInspector(segments, result, pixel_size_um=0.5)",
]


def synthetic_time_lapse() -> np.ndarray:
    """(6, 48, 64): nucleus 1 moves right; nucleus 2 divides between frames 2 and 3."""
    yy, xx = np.mgrid[:48, :64]
    stack = np.zeros((6, 48, 64), np.uint16)
    for t in range(6):
        stack[t][(yy - 12) ** 2 + (xx - 8 - 3 * t) ** 2 <= 25] = 1
        if t < 3:
            stack[t][(yy - 34) ** 2 + (xx - 32) ** 2 <= 49] = 2
        else:
            d = 3 + 2 * (t - 3)
            stack[t][(yy - 34) ** 2 + (xx - 32 + d) ** 2 <= 16] = 2
            stack[t][(yy - 34) ** 2 + (xx - 32 - d) ** 2 <= 16] = 3
    return stack


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def read_state(page) -> dict:
    """The frame slider's readout, the picture's bytes (hashed), the info line and the table."""
    widget = page.locator(".jp-OutputArea-output").filter(
        has=page.locator(".widget-slider", has_text="frame")).first
    return widget.evaluate(
        """async (root) => {
            const text = (el) => el ? el.innerText.trim() : '';
            const img = root.querySelector('img');
            const buf = await (await fetch(img.src)).arrayBuffer();
            const hash = await crypto.subtle.digest('SHA-256', buf);
            const html = [...root.querySelectorAll('.widget-html-content')];
            const table = html.find(h => h.querySelector('table'));
            return {
                frame: text(root.querySelector('.widget-readout')),
                sha: [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join(''),
                info: text(html.find(h => !h.querySelector('table'))),
                table: table ? table.innerHTML : '',
            };
        }"""
    )


def settled(page, frame: int, timeout: float = 60.0) -> dict:
    import time

    deadline = time.perf_counter() + timeout
    last = None
    while True:
        state = read_state(page)
        if (state["info"].startswith(f"frames {frame} | {frame + 1}:") and state == last
                and ib.kernel_status(page) == "idle"):
            return state
        last = state
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the track inspector did not settle at frame {frame}: {state}")
        time.sleep(0.3)


def test_track_inspector_follows_the_frame_slider_in_jupyterlab(tmp_path: Path) -> None:
    reason = ib.missing_browser()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    work = ib.Workdir(tmp_path / "work", "quick", NAME)
    ib.jupyter_folders(work)
    np.save(work.lab / "segments.npy", synthetic_time_lapse())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work.notebook)
    with ib.jupyter_lab(work) as lab, ib.chromium_page() as page:
        ib.open_notebook(page, lab, work.notebook.name)
        ib.run_all(page, timeout=300)
        first = settled(page, 0)
        rows = ib.parse_table(first["table"])
        assert {r["decision"] for r in rows if r["z_b"] == "1"} == {"link"}, rows
        assert {r["decision"] for r in rows if r["z_b"] == "2"} == {"not taken"}, rows
        assert "0 divisions" in first["info"]

        handle = page.locator(".widget-slider", has_text="frame").locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        divides = settled(page, 2)
        assert divides["sha"] != first["sha"]
        assert divides["table"] != first["table"]
        decisions = sorted(r["decision"] for r in ib.parse_table(divides["table"]))
        assert decisions.count("division") == 1 and decisions.count("link") == 2, decisions
        assert "1 divisions" in divides["info"]

        handle.press("End")
        last = settled(page, 4)
        assert last["frame"] == "4"
        assert "0 divisions" in last["info"]
        shot = tmp_path / "track_inspector.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 1000
