"""Every notebook as a person meets it (#28): opened in JupyterLab and run top to bottom.

    python benchmarks/notebooks_by_hand.py            # or: make notebooks-by-hand

Each notebook runs unchanged on the installed ``python3`` kernel (``nbclient``, as JupyterLab
does; :func:`neuroseg.pipeline.run_by_hand`), without ``NEUROSEG_PROFILE``, so its
``profile = None`` resolves to the quick profile and the steps it reads from run first. As on
a fresh clone, the artifacts and reports start empty: they go to a temporary folder, removed
afterwards. After each notebook ``git status`` must be what it was before. Writes
``reports/metrics/notebooks_by_hand.csv``: notebook, whether it finished, seconds (with the
steps it ran first), those steps, whether ``git status`` stayed the same, the error, the
machine and the notebook's ``threads`` parameter.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from neuroseg import io, machine, paths, pipeline

COLUMNS = ["notebook", "finished", "seconds", "ran_first", "git_status_unchanged", "error",
           "machine", "threads"]


def _git_status() -> str:
    out = subprocess.run(["git", "status", "--porcelain"], cwd=paths.REPO_ROOT,
                         capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else "(not a git checkout)"


def run_all(names: list[str], *, root: Path, timeout: int) -> pd.DataFrame:
    env = {"NEUROSEG_PROFILE": None, "CI": "true",
           "NEUROSEG_ARTIFACTS": str(root / "artifacts"), "NEUROSEG_REPORTS": str(root / "reports")}
    facts = machine.describe()
    rows = []
    for name in names:
        before = _git_status()
        try:
            result = pipeline.run_by_hand(name, timeout=timeout, env=env)
            ok, seconds, error = True, result["seconds"], ""
            first = re.search(r"running the steps it reads from first: (.*)", result["first_output"])
            ran_first = first.group(1) if first else ""
        except Exception as exc:  # noqa: BLE001  (recorded, then the next notebook)
            ok, seconds, ran_first = False, float("nan"), ""
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}"
        rows.append({"notebook": name, "finished": ok, "seconds": seconds, "ran_first": ran_first,
                     "git_status_unchanged": _git_status() == before, "error": error,
                     "machine": facts["cpu"],
                     "threads": pipeline.notebook_parameters(name, pipeline.HAND_PROFILE).get("threads")})
        print(f"{name}: {'finished' if ok else 'FAILED'} in {seconds} s {error}", flush=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks (default: all, in pipeline order)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    names = args.names or pipeline.notebook_names()
    paths.artifacts_dir().parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".by-hand-", dir=paths.artifacts_dir().parent))
    try:
        table = run_all(names, root=root, timeout=args.timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = io.write_csv(table, paths.metrics_dir("full") / "notebooks_by_hand.csv")
    print(f"wrote {out}")
    return 0 if table["finished"].all() and table["git_status_unchanged"].all() else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
