"""The slice-linking inspector on another tool's masks, in JupyterLab, in a real browser.

A scratch notebook loads a stack of 2D masks (numbered from 1 in every slice, as Cellpose,
StarDist or micro-SAM write them) and its image, and opens
``LinkInspector.from_masks(masks, raw, resolution=..., linker=...)``; JupyterLab runs headless
on 127.0.0.1 and Debian's Chromium, driven by Playwright, runs it, moves the z slider and
takes a screenshot. ``tests/test_masks_inspector_browser.py`` runs it on synthetic masks;
run as a script, it makes the screenshot for the results page on real data: the shipped
``em_2d`` network's masks of the FIB-25 test part at 40 nm, joined by the shipped
``em_linker``::

    NEUROSEG_DATA=../shared/data .venv/bin/python benchmarks/masks_inspector.py \\
        [reports/figures/70_link_inspector.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inspector_browser as ib  # noqa: E402

NAME = "masks_inspector"
DEFAULT_OUT = ib.REPO_ROOT / "reports" / "figures" / "70_link_inspector.png"


def cells(resolution, linker: str | None) -> list[str]:
    load = f"load_linker({linker!r})" if linker else "None"
    return [
        "import numpy as np\n"
        "from neuroseg.linking.learned import load_linker\n"
        "from neuroseg.report.inspector import LinkInspector",
        "masks = np.load('masks.npy')\nraw = np.load('raw.npy')\nmasks.shape, int(masks[0].max())",
        f"LinkInspector.from_masks(masks, raw, resolution={tuple(resolution)!r}, linker={load})",
    ]


def show(work: ib.Workdir, masks: np.ndarray, raw: np.ndarray, *, resolution, linker: str | None = None,
         z_steps: int = 0, shot: Path | None = None, timeout: float = 600.0):
    """Run the scratch notebook in ``work``; return the inspector's settled states (first,
    then after ``z_steps`` presses of ArrowRight) and write ``shot`` (PNG) if given."""
    ib.jupyter_folders(work)
    np.save(work.lab / "masks.npy", masks)
    np.save(work.lab / "raw.npy", raw)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells(resolution, linker)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work.notebook)
    with ib.jupyter_lab(work) as lab, ib.chromium_page() as page:
        ib.open_notebook(page, lab, work.notebook.name)
        ib.run_all(page, timeout=timeout)
        first = ib.settled_state(page)
        moved = ib.press_slider(page, "z", "ArrowRight", times=z_steps) if z_steps else first
        if shot is not None:
            ib.screenshot(page, shot)
    return first, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--z", type=int, default=3, help="steps of the z slider (default 3)")
    args = parser.parse_args(argv)
    for reason in (ib.missing_browser(), ib.missing_data()):
        if reason is not None:
            raise SystemExit(f"cannot take the screenshot: {reason}")
    import neuroseg
    from neuroseg.data import splits
    from neuroseg.data.em_volumes import fib25_region
    from neuroseg.experiments.link_your_masks import shipped_2d_masks

    test = splits.load_split("fib25_neuroproof_training_sample2", profile="full")["parts"]["test"][0]
    sub = fib25_region(test, name="fib25_test").subsampled(40.0)
    raw = sub.raw[:16, :192, :125]
    masks = shipped_2d_masks(neuroseg.load_model("em_2d"), raw, resolution=sub.resolution)
    with tempfile.TemporaryDirectory(prefix="neuroseg-masks-inspector-") as tmp:
        work = ib.Workdir(Path(tmp), "full", NAME)
        first, moved = show(work, masks, raw, resolution=sub.resolution, linker="em_linker",
                            z_steps=args.z, shot=args.out)
    ib.log(f"z={moved.z}, threshold={moved.threshold}: {moved.info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
