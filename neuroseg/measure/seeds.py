"""The spread of a number over training seeds: one table, one rule.

A step's headline metric trained with several seeds becomes one row of the table
``reports/metrics/seeds.csv`` (``make seeds``, whole steps from nothing) or of a step's own
``<step>_seeds.csv`` (a step that retrains only its chosen settings with other seeds, e.g.
``20_neuron_finetuning``): ``step, metric, seeds, values, mean, sd, machine``, where
``metric`` is ``<headline file>:<key>``, ``values`` the numbers in the order of ``seeds``, and
``sd`` the sample standard deviation (``ddof=1``; NaN for one seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

__all__ = ["SEED_COLUMNS", "spread_table"]

SEED_COLUMNS = ["step", "metric", "seeds", "values", "mean", "sd", "machine"]


def spread_table(step: str, runs: Mapping[int, Mapping[str, float]], *, machine: str = "") -> pd.DataFrame:
    """One row per metric of the first run: its values over ``runs`` (seed -> metrics), their
    mean and sample standard deviation. A metric a run lacks counts as NaN (and so does the
    mean and sd).

    Examples
    --------
    >>> t = spread_table("10_x", {0: {"10_x:ap": 0.80}, 1: {"10_x:ap": 0.82}, 2: {"10_x:ap": 0.78}})
    >>> t[["metric", "seeds", "values", "mean", "sd"]].round(3).values.tolist()
    [['10_x:ap', '0 1 2', '0.8 0.82 0.78', 0.8, 0.02]]
    """
    if not runs:
        raise ValueError("no runs: give at least one seed's metrics")
    seeds = list(runs)
    rows = []
    for metric in sorted(runs[seeds[0]]):
        values = [float(runs[s].get(metric, math.nan)) for s in seeds]
        series = pd.Series(values, dtype=float)
        rows.append({"step": step, "metric": metric, "seeds": " ".join(map(str, seeds)),
                     "values": " ".join(f"{v:.6g}" for v in values),
                     "mean": series.mean(skipna=False), "sd": series.std(ddof=1, skipna=False),
                     "machine": machine})
    return pd.DataFrame(rows, columns=SEED_COLUMNS)
