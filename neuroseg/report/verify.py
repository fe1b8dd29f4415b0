"""Does a step come back from scratch? Re-run it in a temporary folder and compare.

``make verify STEP=10_nucleus_pretraining`` (``python -m neuroseg.report.verify STEP``) copies
the artifacts and reports of the profile into a temporary folder (hard links), removes the
step's own outputs there (its trained models, so it trains from nothing), runs the step, and
compares every numeric quality metric of its headline JSON files with the committed ones.
Times, memory and counts are not compared. A metric is *within* when

    |fresh - committed| <= max(3 * sd over seeds, the metric's absolute tolerance)

(:data:`TOLERANCES`; ``sd`` from ``reports/metrics/seeds.csv`` or the step's own
``<step>_seeds.csv`` where they record it (:func:`seed_tables`), else only
the tolerance applies). ``--record`` writes the rows to ``reports/metrics/reproducibility.csv``
(columns ``step, metric, committed, fresh, sd, within, machine``), replacing the step's earlier
rows. Exit status 1 when a metric is outside, naming it.

``--seeds 1 2`` (``make seeds STEP=...``) runs the step with those seeds the same way and writes
each metric's values, mean and sample sd over them and the committed run to
``reports/metrics/seeds.csv``: the spread that ``within`` uses.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from neuroseg import io, machine, paths, pipeline
from neuroseg.measure.seeds import SEED_COLUMNS, spread_table

#: Absolute tolerance per metric (by regular expression on its key; the first match counts).
TOLERANCES = (
    (r"ap50|accuracy|precision|recall|f1|dice|pixel_iou|iou", 0.02),
    (r"dsb_score", 0.03),
    (r"voi|arand|cremi", 0.05),
    (r"gratio|thickness|diameter", 0.01),
    (r"threshold|seed_distance", 0.2),
    (r".", 0.02),
)
#: Keys that measure time, memory or size, or name the run: not compared.
NOT_QUALITY = re.compile(
    r"seconds|s_per_mvox|peak_|_mb$|mfu|tflops|median|q25|q75|share_|speedup|ratio|^n_|epoch"
    r"|device|threads|megavoxels"
)
COLUMNS = ["step", "metric", "committed", "fresh", "sd", "within", "machine"]


def tolerance(metric: str) -> float:
    """The absolute tolerance of ``metric`` (see :data:`TOLERANCES`).

    >>> tolerance("test_ap50"), tolerance("test_cremi")
    (0.02, 0.05)
    """
    for pattern, tol in TOLERANCES:
        if re.search(pattern, metric):
            return tol
    raise AssertionError("the last pattern matches everything")


def flatten(value, prefix: str = "", *, lists: bool = False) -> dict[str, object]:
    """A nested JSON value as ``{"a.b": leaf}``; with ``lists``, list items too (``a[0]``).

    >>> flatten({"a": {"b": 1}, "c": [2, 3]}), flatten({"c": [2, 3]}, lists=True)
    ({'a.b': 1, 'c': [2, 3]}, {'c[0]': 2, 'c[1]': 3})
    """
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), lists=lists))
        return out
    if lists and isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]", lists=True))
        return out
    return {prefix: value}


def quality_metrics(metrics_dir: Path, step: str) -> dict[str, float]:
    """The numeric quality metrics of a step's headline JSON files, by ``file:key``."""
    out: dict[str, float] = {}
    for path in sorted(Path(metrics_dir).glob(f"{step}*.json")):
        for key, value in flatten(json.loads(path.read_text())).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if NOT_QUALITY.search(key) or not math.isfinite(value):
                continue
            out[f"{path.stem}:{key}"] = float(value)
    return out


def _seed_sd(step: str) -> dict[str, float]:
    table = seed_tables()
    table = table[table["step"] == step]
    return dict(zip(table["metric"], table["sd"], strict=True))


def compare(step: str, committed: dict[str, float], fresh: dict[str, float], *,
            sd: dict[str, float] | None = None, machine_name: str = "") -> pd.DataFrame:
    """One row per committed metric: the fresh value, its spread and whether it is within.

    >>> compare("10", {"10:test_ap50": 0.81}, {"10:test_ap50": 0.80}).within.tolist()
    [True]
    >>> compare("10", {"10:test_ap50": 0.81}, {}).within.tolist()
    [False]
    """
    sd = sd or {}
    rows = []
    for metric, old in sorted(committed.items()):
        new = fresh.get(metric, math.nan)
        spread = sd.get(metric, math.nan)
        limit = max(3 * spread if math.isfinite(spread) else 0.0, tolerance(metric))
        within = bool(math.isfinite(new) and abs(new - old) <= limit + 1e-12)
        rows.append({"step": step, "metric": metric, "committed": old, "fresh": new, "sd": spread,
                     "within": within, "machine": machine_name})
    return pd.DataFrame(rows, columns=COLUMNS)


def _copy_tree(src: Path, dst: Path) -> None:
    if src.exists():
        # copies, not links: a step that rewrote a file in place must not touch the original
        shutil.copytree(src, dst, copy_function=shutil.copy2, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("quick") if src.name == "reports" else None)


def copy_upstream(step: str, profile: str, dest: Path) -> None:
    """Copy into ``dest`` the artifacts ``step`` can read: splits, parameters, executed
    notebooks and the recorded outputs of the steps before it (not, say, another step's
    gigabytes of tracking results). A step before it without a record: everything."""
    artifacts = paths.artifacts_dir(profile)
    files: list[Path] = []
    for before in pipeline.upstream(step):
        manifest = paths.runs_dir(profile) / f"{before}.outputs.json"
        if not manifest.is_file():
            _copy_tree(artifacts, dest)
            return
        for rel in json.loads(manifest.read_text()).get("outputs", []):
            path = Path(rel) if Path(rel).is_absolute() else paths.REPO_ROOT / rel
            if path.is_relative_to(artifacts) and path.is_file():
                files.append(path)
    for sub in ("splits", "params", "runs"):
        _copy_tree(artifacts / sub, dest / sub)
    for path in files:
        target = dest / path.relative_to(artifacts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def machine_name() -> str:
    return machine.one_line()


def verify(step: str, *, profile: str = "full", keep: bool = False) -> pd.DataFrame:
    """Re-run ``step`` from scratch in a temporary copy of the profile; compare its metrics."""
    committed = quality_metrics(paths.metrics_dir(profile), step)
    fresh = fresh_metrics(step, profile=profile, keep=keep)
    return compare(step, committed, fresh, sd=_seed_sd(step), machine_name=machine_name())


def fresh_metrics(step: str, *, profile: str = "full", keep: bool = False,
                  overrides: dict | None = None) -> dict[str, float]:
    """The quality metrics of ``step`` run from nothing (with ``overrides`` of its parameters,
    e.g. another seed) in a temporary copy of the profile; nothing of the profile changes."""
    if step not in pipeline.notebook_names():
        raise ValueError(f"unknown step {step!r}; steps: {pipeline.notebook_names()}")
    artifacts, reports = paths.artifacts_dir(profile), paths.reports_dir(profile)
    if not quality_metrics(paths.metrics_dir(profile), step):
        raise FileNotFoundError(
            f"no headline metrics of {step} in {paths.metrics_dir(profile)}: run "
            f"`make {step} PROFILE={profile}` first")
    artifacts.parent.mkdir(parents=True, exist_ok=True)  # the temporary folder lies beside
    work = Path(tempfile.mkdtemp(prefix=f".verify-{step}-", dir=artifacts.parent))
    try:
        copies = {artifacts: work / "artifacts" / profile,
                  reports: work / "reports" / (profile if profile != paths.DEFAULT_PROFILE else "")}
        _copy_tree(reports, copies[reports])
        copy_upstream(step, profile, copies[artifacts])
        manifest = paths.runs_dir(profile) / f"{step}.outputs.json"
        own = json.loads(manifest.read_text()).get("outputs", []) if manifest.exists() else []
        for rel in own:  # the step's own outputs go from the copy: it runs from nothing
            path = paths.REPO_ROOT / rel
            original = next((o for o in copies if path.is_relative_to(o)), None)
            if original is None:
                continue
            inside = path.relative_to(original)
            if original == artifacts and inside.parts[0] == "models":  # the whole model folder
                shutil.rmtree(copies[original] / "models" / inside.parts[1], ignore_errors=True)
            else:
                (copies[original] / inside).unlink(missing_ok=True)
        with pipeline.environ({"NEUROSEG_ARTIFACTS": work / "artifacts", "NEUROSEG_REPORTS": work / "reports"}):
            pipeline.run_notebook(step, profile, overrides=overrides)
            fresh = quality_metrics(paths.metrics_dir(profile), step)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return fresh


def seed_spread(step: str, seeds: list[int], *, profile: str = "full") -> pd.DataFrame:
    """Each quality metric of ``step`` over the committed run (its own seed) and fresh runs
    with ``seeds``: the values, their mean and sample standard deviation
    (:func:`neuroseg.measure.seeds.spread_table`)."""
    own = pipeline.notebook_parameters(step, profile).get("seed")
    runs = {own: quality_metrics(paths.metrics_dir(profile), step)}
    for seed in seeds:
        if seed == own:
            raise ValueError(f"seed {seed} is the committed run's own seed; pass other seeds")
        runs[seed] = fresh_metrics(step, profile=profile, overrides={"seed": int(seed)})
    return spread_table(step, runs, machine=machine_name())


def seed_tables(metrics_dir: Path | None = None) -> pd.DataFrame:
    """Every recorded spread: ``seeds.csv`` (``make seeds``) and each step's own
    ``<step>_seeds.csv``; where both have a metric, ``seeds.csv`` (more seeds, whole step)."""
    folder = Path(metrics_dir) if metrics_dir is not None else paths.metrics_dir()
    files = [folder / "seeds.csv"] + sorted(folder.glob("[0-9][0-9]_*_seeds.csv"))
    tables = [pd.read_csv(f, dtype={"step": str}) for f in files if f.is_file()]
    if not tables:
        return pd.DataFrame(columns=SEED_COLUMNS)
    return pd.concat(tables, ignore_index=True).drop_duplicates(["step", "metric"], keep="first")


def write_step_spread(step: str, spread: pd.DataFrame, *, profile: str | None = None) -> Path:
    """Write a step's own spread table, ``<step>_seeds.csv`` (read by :func:`seed_tables`),
    and print it; returns the file."""
    out = io.write_metrics(step, spread, profile=profile, suffix="_seeds")
    with pd.option_context("display.width", 160, "display.max_rows", None):
        print(spread.drop(columns=["machine", "step"]).round(4).to_string(index=False))
    print(f"written {out}")
    return out


def record(table: pd.DataFrame, *, profile: str = "full", name: str = "reproducibility.csv") -> Path:
    """Write ``table``'s rows to ``name`` in the metrics folder, replacing its step's rows."""
    out = paths.metrics_dir(profile) / name
    steps = set(table["step"])
    old = pd.read_csv(out, dtype={"step": str}) if out.exists() else pd.DataFrame(columns=table.columns)
    both = pd.concat([old[~old["step"].isin(steps)], table], ignore_index=True)
    io.write_csv(both.sort_values(["step", "metric"], kind="stable"), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step")
    parser.add_argument("--profile", default=paths.DEFAULT_PROFILE, choices=paths.PROFILES)
    parser.add_argument("--record", action="store_true", help="write reproducibility.csv")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="instead: run the step with these seeds and write the spread of "
                             "each metric (with the committed run's) to seeds.csv")
    args = parser.parse_args(argv)
    if args.seeds:
        spread = seed_spread(args.step, args.seeds, profile=args.profile)
        with pd.option_context("display.max_rows", None, "display.width", 140):
            print(spread.drop(columns=["machine"]).to_string(index=False))
        print(f"recorded in {record(spread, profile=args.profile, name='seeds.csv')}")
        return 0
    table = verify(args.step, profile=args.profile, keep=args.keep)
    with pd.option_context("display.max_rows", None, "display.width", 140):
        print(table.drop(columns=["machine"]).to_string(index=False))
    if args.record:
        print(f"recorded in {record(table, profile=args.profile)}")
    outside = table[~table["within"]]
    for row in outside.itertuples():
        print(f"OUTSIDE: {row.metric}: committed {row.committed:.4g}, fresh {row.fresh:.4g}",
              file=sys.stderr)
    return 1 if len(outside) else 0


if __name__ == "__main__":
    raise SystemExit(main())
