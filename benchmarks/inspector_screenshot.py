"""Screenshot of the slice-linking inspector as JupyterLab shows it, for ``reports/``.

Runs ``notebooks/30_slice_linking.ipynb`` in JupyterLab (headless, 127.0.0.1) in Debian's
Chromium, exactly as ``tests/test_inspector_browser.py`` does, and saves a PNG of the
inspector's output. The profile is ``full`` when its artifacts exist (``make reproduce``),
else ``quick``; the notebook reuses the profile's trained models (a few minutes on 2 CPU
cores for ``full``) and writes nothing outside a temporary folder but the PNG.

Usage::

    NEUROSEG_DATA=../shared/data .venv/bin/python benchmarks/inspector_screenshot.py \\
        [OUT.png] [--profile full|quick] [--z STEPS] [--object K]

``OUT.png`` defaults to ``reports/figures/30_link_inspector.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inspector_browser as ib  # noqa: E402

DEFAULT_OUT = ib.REPO_ROOT / "reports" / "figures" / "30_link_inspector.png"


def default_profile() -> str:
    """``full`` when its artifacts for notebook 30 exist, else ``quick``."""
    return "full" if ib.missing_artifacts("full") is None else "quick"


def take(
    out: Path, *, profile: str, z_steps: int = 0, obj: int = 0, timeout: float = 1800.0
) -> Path:
    """Run the notebook in JupyterLab, set the inspector, save its screenshot at ``out``.

    ``z_steps`` presses of ArrowRight on the z slider, then the ``obj``-th object of the
    dropdown is selected (0: none).
    """
    for reason in (ib.missing_browser(), ib.missing_data(), ib.missing_artifacts(profile)):
        if reason is not None:
            raise SystemExit(f"cannot take the screenshot: {reason}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neuroseg-inspector-") as tmp:
        work = ib.prepare(Path(tmp), profile)
        with ib.jupyter_lab(work) as lab, ib.chromium_page() as page:
            ib.open_notebook(page, lab, work.notebook.name)
            ib.run_all(page, timeout=timeout)
            state = ib.settled_state(page)
            if z_steps:
                state = ib.press_slider(page, "z", "ArrowRight", times=z_steps)
            if obj:
                select = ib.inspector(page).locator(".widget-dropdown select").first
                options = select.locator("option").all_text_contents()
                if obj >= len(options):
                    raise SystemExit(f"--object {obj}: the dropdown has {options}")
                select.select_option(index=obj)
                deadline = time.perf_counter() + 60
                while ib.read_state(page).left_sha == state.left_sha:  # the outline is drawn
                    if time.perf_counter() > deadline:
                        raise TimeoutError("the pictures did not change after selecting an object")
                    time.sleep(0.3)
                state = ib.settled_state(page)
            ib.log(f"{profile} profile, z={state.z}, threshold={state.threshold}: {state.info}")
            ib.screenshot(page, out)
    ib.log(f"done in {time.perf_counter() - started:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--profile", choices=("full", "quick"), default=None,
                        help="artifacts to use (default: full if they exist, else quick)")
    parser.add_argument("--z", type=int, default=0, help="steps of the z slider (default 0)")
    parser.add_argument("--object", type=int, default=0,
                        help="select the K-th object of the dropdown (default 0: none)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed to run the notebook (default 1800)")
    args = parser.parse_args(argv)
    take(args.out, profile=args.profile or default_profile(), z_steps=args.z, obj=args.object,
         timeout=args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
