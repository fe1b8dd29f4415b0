"""Compare two report folders (``reports/quick`` of two runs) value by value.

Used to show that a change of code layout changed no result: every metric must be equal,
except the fields that measure time or memory, and every figure byte-identical. Prints one
line per difference and a summary; exits 1 when anything but time and memory differs.

    python benchmarks/compare_reports.py OLD_REPORTS NEW_REPORTS
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from neuroseg.report.verify import flatten

#: Fields that measure time or memory (and the figures and pages drawn from them).
TIMING = re.compile(
    r"seconds|s_per_mvox|peak_|_mb$|mfu|tflops|median|q25|q75|share_|speedup|ratio"
    r"|(^|\.)(2d_inference|2d_instances|linking|3d_inference|agglomeration)$"  # stage seconds
)
#: A measured time inside a sentence (the timing claim of the results page).
TIME_IN_TEXT = re.compile(r"time \d+(\.\d+)?")
#: Choices the speed work of ``40_timing_2d_vs_3d`` makes from measured times: a change is
#: kept when it was faster, so two runs on one machine may keep different ones.
TIMED_CHOICES = re.compile(r"(^|\.)(precision|speed|speed_2d|speed_3d|kept|difference)$")


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both NaN
    return a == b


def compare_json(old: Path, new: Path) -> list[str]:
    a = flatten(json.loads(old.read_text()), lists=True)
    b = flatten(json.loads(new.read_text()), lists=True)
    out = []
    for key in sorted(set(a) | set(b)):
        if TIMING.search(key) or TIMED_CHOICES.search(key):
            continue
        if key not in a or key not in b or not _same(a[key], b[key]):
            out.append(f"{new.name}: {key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return out


def compare_csv(old: Path, new: Path) -> list[str]:
    a, b = pd.read_csv(old), pd.read_csv(new)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"{new.name}: columns or rows differ ({a.shape} -> {b.shape})"]
    out = []
    for col in a.columns:
        if TIMING.search(str(col)) or TIMED_CHOICES.search(str(col)):
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_string_dtype(x) and pd.api.types.is_string_dtype(y):
            x = x.str.replace(TIME_IN_TEXT, "time <t>", regex=True)
            y = y.str.replace(TIME_IN_TEXT, "time <t>", regex=True)
        same = (x == y) | (x.isna() & y.isna())
        for i in same.index[~same]:
            out.append(f"{new.name}: row {i} {col}: {x[i]!r} -> {y[i]!r}")
    return out


def compare(old_root: Path, new_root: Path) -> tuple[list[str], list[str]]:
    """(differences in results, differences only in timing figures and pages)."""
    results, timing_only = [], []
    old_files = {p.relative_to(old_root) for p in old_root.rglob("*") if p.is_file()}
    new_files = {p.relative_to(new_root) for p in new_root.rglob("*") if p.is_file()}
    for rel in sorted(old_files ^ new_files):
        results.append(f"{rel}: only in {'old' if rel in old_files else 'new'}")
    for rel in sorted(old_files & new_files):
        old, new = old_root / rel, new_root / rel
        if old.read_bytes() == new.read_bytes():
            continue
        if rel.suffix == ".json":
            results += compare_json(old, new)
        elif rel.suffix == ".csv":
            results += compare_csv(old, new)
        else:
            # figures and pages that show times differ with the times; everything else must not
            (timing_only if TIMING.search(rel.stem) or "timing" in rel.stem
             or rel.stem.startswith("40_") or rel.name == "README.md" else results).append(
                f"{rel}: bytes differ")
    return results, timing_only


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    results, timing_only = compare(args.old, args.new)
    for line in timing_only:
        print(f"timing only: {line}")
    for line in results:
        print(f"DIFFERS: {line}")
    print(f"{len(results)} result difference(s); {len(timing_only)} file(s) that show times differ")
    return 1 if results else 0


if __name__ == "__main__":
    sys.exit(main())
