"""The accuracy-speed front of the two routes, and the verdict computed from it.

A *front table* has one row per (route, setting, z spacing, test volume), with the columns
of :data:`COLUMNS`: the scores of ``30``/``35``'s protocol (CREMI, VOI split and merge,
adapted Rand; lower is better), the end-to-end seconds per megavoxel of the setting on that
volume, and what its training cost (wall seconds, FLOPs).

The verdict (:func:`verdict`), per test volume and z spacing:

- the **best 3D setting**: the lowest 3D CREMI, with its seconds per megavoxel;
- the **fastest 2D setting within 5 %** of that CREMI (``cremi_2d <= 1.05 * cremi_3d``), and
  its speed-up ``s_per_mvox_3d / s_per_mvox_2d`` (null when no 2D setting gets there);
- the **best 2D CREMI** (any time) and the **2D CREMI at equal time**: the best 2D CREMI
  among the 2D settings no slower than the best 3D setting (``s_per_mvox_2d <=
  s_per_mvox_3d``; null when every 2D setting is slower). Both are given in every case, so
  that the distance is always visible;
- ``hypothesis_met``: some 2D setting is within 5 % and at least 3x faster.

The Pareto front of a route (:func:`pareto_front`) is its settings that no other setting of
the route beats on both CREMI and time (lower-or-equal on both, lower on one).

Examples
--------
>>> t = pd.DataFrame({"route": ["3d", "2d", "2d"], "setting": ["a", "b", "c"],
...                   "z_nm": 40.0, "volume": "v", "cremi": [0.50, 0.52, 0.45],
...                   "s_per_mvox": [2.0, 0.5, 3.0]})
>>> v = verdict(t)[0]
>>> v["fastest_2d_within_setting"], v["speedup"]
('b', 4.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "NUMERIC",
    "ROUTES",
    "check_front_table",
    "front_figure",
    "pareto_front",
    "train_flops",
    "verdict",
]

#: The columns of ``45_front_2d_vs_3d_<device>.csv``.
COLUMNS = ("route", "setting", "z_nm", "volume", "cremi", "voi_split", "voi_merge", "arand",
           "s_per_mvox", "train_seconds", "train_flops")
#: The columns that must be finite, non-negative numbers.
NUMERIC = ("z_nm", "cremi", "voi_split", "voi_merge", "arand", "s_per_mvox", "train_seconds",
           "train_flops")
ROUTES = ("2d", "3d")


def check_front_table(table: pd.DataFrame, *, columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """``table`` checked as a front table: every column of ``columns``, routes ``"2d"`` /
    ``"3d"``, numbers finite and non-negative (``s_per_mvox`` positive), one row per
    (route, setting, z_nm, volume). Returns its columns in the order of ``columns``.

    Examples
    --------
    >>> check_front_table(pd.DataFrame({"route": ["4d"]}), columns=("route",))
    Traceback (most recent call last):
    ...
    ValueError: route must be one of ('2d', '3d'); got ['4d']
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"a front table is a DataFrame; got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the front table lacks the columns {missing} (needs {list(columns)})")
    t = table[list(columns)].copy()
    if "route" in t:
        bad = sorted(set(t["route"]) - set(ROUTES))
        if bad:
            raise ValueError(f"route must be one of {ROUTES}; got {bad}")
    for col in NUMERIC:
        if col not in t:
            continue
        values = pd.to_numeric(t[col], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"{col} must be finite, non-negative numbers; got {t[col].tolist()}")
        t[col] = values
    if "s_per_mvox" in t and np.any(t["s_per_mvox"].to_numpy() <= 0):
        raise ValueError("s_per_mvox must be positive")
    keys = [c for c in ("route", "setting", "z_nm", "volume") if c in t]
    if len(keys) == 4 and t.duplicated(keys).any():
        raise ValueError(f"the front table has more than one row for some {keys}")
    return t


def pareto_front(rows: pd.DataFrame, *, score: str = "cremi", cost: str = "s_per_mvox") -> pd.DataFrame:
    """The rows no other row beats on both ``score`` and ``cost`` (lower is better on both),
    sorted by ``cost``.

    Examples
    --------
    >>> r = pd.DataFrame({"cremi": [0.5, 0.4, 0.6, 0.4], "s_per_mvox": [1.0, 2.0, 3.0, 2.5]})
    >>> pareto_front(r).index.tolist()
    [0, 1]
    """
    s = rows[score].to_numpy(float)
    c = rows[cost].to_numpy(float)
    keep = []
    for i in range(len(rows)):
        beaten = (s <= s[i]) & (c <= c[i]) & ((s < s[i]) | (c < c[i]))
        keep.append(not beaten.any())
    return rows[np.asarray(keep, bool)].sort_values([cost, score], kind="stable")


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else float(x)


def verdict(table: pd.DataFrame, *, within: float = 0.05, speedup_target: float = 3.0) -> list[dict]:
    """The verdict of the front table, one record per (volume, z_nm); see the module docstring.

    Parameters
    ----------
    table : DataFrame
        At least ``route, setting, z_nm, volume, cremi, s_per_mvox``.
    within : float
        How close (a fraction of the best 3D CREMI) counts as reaching it.
    speedup_target : float
        The speed-up the hypothesis asks for.

    Returns
    -------
    list of dict with keys ``volume, z_nm, best_3d_setting, best_3d_cremi, best_3d_s_per_mvox,
    fastest_2d_within_setting, fastest_2d_within_cremi, fastest_2d_within_s_per_mvox, speedup,
    best_2d_setting, best_2d_cremi, best_2d_s_per_mvox, equal_time_2d_setting,
    equal_time_2d_cremi, equal_time_2d_s_per_mvox, hypothesis_met`` (None where there is no
    such setting).
    """
    t = check_front_table(table, columns=("route", "setting", "z_nm", "volume", "cremi", "s_per_mvox"))
    out = []
    for (volume, z_nm), g in t.groupby(["volume", "z_nm"], sort=True):
        d3 = g[g["route"] == "3d"].sort_values(["cremi", "s_per_mvox"], kind="stable")
        d2 = g[g["route"] == "2d"]
        rec: dict = {"volume": str(volume), "z_nm": float(z_nm)}
        if d3.empty or d2.empty:
            raise ValueError(f"{volume} at {z_nm:g} nm needs rows of both routes")
        b3 = d3.iloc[0]
        rec.update(best_3d_setting=str(b3["setting"]), best_3d_cremi=float(b3["cremi"]),
                   best_3d_s_per_mvox=float(b3["s_per_mvox"]))
        near = d2[d2["cremi"] <= b3["cremi"] * (1.0 + within) + 1e-12]
        near = near.sort_values(["s_per_mvox", "cremi"], kind="stable")
        if len(near):
            f = near.iloc[0]
            rec.update(fastest_2d_within_setting=str(f["setting"]),
                       fastest_2d_within_cremi=float(f["cremi"]),
                       fastest_2d_within_s_per_mvox=float(f["s_per_mvox"]),
                       speedup=float(b3["s_per_mvox"] / f["s_per_mvox"]))
        else:
            rec.update(fastest_2d_within_setting=None, fastest_2d_within_cremi=None,
                       fastest_2d_within_s_per_mvox=None, speedup=None)
        b2 = d2.sort_values(["cremi", "s_per_mvox"], kind="stable").iloc[0]
        rec.update(best_2d_setting=str(b2["setting"]), best_2d_cremi=float(b2["cremi"]),
                   best_2d_s_per_mvox=float(b2["s_per_mvox"]))
        eq = d2[d2["s_per_mvox"] <= b3["s_per_mvox"]].sort_values(["cremi", "s_per_mvox"], kind="stable")
        if len(eq):
            e = eq.iloc[0]
            rec.update(equal_time_2d_setting=str(e["setting"]), equal_time_2d_cremi=float(e["cremi"]),
                       equal_time_2d_s_per_mvox=float(e["s_per_mvox"]))
        else:
            rec.update(equal_time_2d_setting=None, equal_time_2d_cremi=None,
                       equal_time_2d_s_per_mvox=None)
        rec["hypothesis_met"] = bool(rec["speedup"] is not None and rec["speedup"] >= speedup_target)
        out.append(rec)
    return out


_COLOURS = {"2d": "#0072B2", "3d": "#D55E00"}
_NAMES = {"2d": "2D + linking", "3d": "3D affinities"}


def front_figure(table: pd.DataFrame, *, z_nm: float, title: str = ""):
    """CREMI against end-to-end seconds per megavoxel at one z spacing, one panel per test
    volume: every setting of both routes, each route's Pareto front drawn as a line. Returns
    ``(figure, caption)``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    t = check_front_table(table, columns=("route", "setting", "z_nm", "volume", "cremi", "s_per_mvox"))
    t = t[np.isclose(t["z_nm"], float(z_nm))]
    if t.empty:
        raise ValueError(f"no row at z_nm={z_nm:g}")
    volumes = list(dict.fromkeys(t["volume"]))
    fig, axes = plt.subplots(1, len(volumes), figsize=(4.8 * len(volumes), 3.8), squeeze=False)
    for ax, vol in zip(axes[0], volumes):
        g = t[t["volume"] == vol]
        for route in ROUTES:
            r = g[g["route"] == route]
            if r.empty:
                continue
            ax.scatter(r["s_per_mvox"], r["cremi"], color=_COLOURS[route], alpha=0.6, s=25)
            for _, row in r.iterrows():
                ax.annotate(str(row["setting"]), (row["s_per_mvox"], row["cremi"]), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
            f = pareto_front(r)
            ax.plot(f["s_per_mvox"], f["cremi"], drawstyle="steps-post", marker="o",
                    color=_COLOURS[route], label=f"{_NAMES[route]} (front)")
        ax.set_xscale("log")
        lo, hi = float(g["s_per_mvox"].min()) / 1.15, float(g["s_per_mvox"].max()) * 1.15
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if lo <= t <= hi]
        ax.set_xlim(lo, hi)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("end to end, seconds per megavoxel")
        ax.set_ylabel("CREMI score (lower is better)")
        ax.set_title(f"{vol}, {z_nm:g} nm z")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    caption = (f"Accuracy against speed at {z_nm:g} nm z spacing: every setting of the 2D route "
               "(2D segments + linking) and of the 3D route (3D affinities + agglomeration), "
               "CREMI score (lower is better) against end-to-end seconds per megavoxel (log "
               "scale); the line of each route is its Pareto front (the settings no other "
               "setting of the route beats on both).")
    return fig, caption


def train_flops(model, input_shape: Sequence[int], samples: int) -> float:
    """Training FLOPs of a network: 3 x the FLOPs of one forward pass on one sample of
    ``input_shape`` (channels first, no batch axis; the backward pass costs about twice the
    forward) x the ``samples`` seen in training (validation not counted).

    Examples
    --------
    >>> import torch
    >>> train_flops(torch.nn.Conv2d(1, 2, 3, padding=1, bias=False), (1, 4, 4), 10)
    17280.0
    """
    from neuroseg.measure.timing import count_flops

    if int(samples) != samples or samples < 0:
        raise ValueError(f"samples must be a non-negative integer; got {samples}")
    return 3.0 * float(count_flops(model, (1, *[int(s) for s in input_shape]))) * int(samples)
