"""Migration measures of tracked somata or nuclei: speed, direction, persistence, saltations.

SomaNet's next step was to measure each migrating neuron's average velocity, direction and
*saltation frequency*: neurons migrate in saltations, a fast forward move after a pause.
Starting from a tidy track table (one row per object and frame, :func:`track_table`),
:func:`migration` gives one row per cell:

- path length (sum of the steps) and net displacement (first to last position), in µm;
- mean speed (path length over time) and the largest step speed, in µm/min;
- direction: the angle of the net displacement, in degrees, 0° = +x (right in the image),
  90° = up in the image (-y), so a plotted arrow and the number agree;
- persistence: net displacement over path length (1 = a straight line, near 0 = wandering);
- saltations: a run of at least ``min_move_steps`` steps faster than ``move_speed`` right after
  a run of at least ``min_pause_steps`` steps slower than ``pause_speed``
  (:func:`saltation_events`); their number per hour of the track.

A CTC lineage starts a new track after a gap (one daughter) or a division (two); a *cell*
here follows its track through gaps, so a cell ends only at a division or when it is lost.

The speed thresholds are parameters. Their defaults, 0.1 µm/min for a pause and 0.3 µm/min
for a move, are set for saltatory neuronal migration imaged every few minutes (neurons move
about 30–60 µm/h in their saltations and rest in between); fit them to your cells. With a
5-minute frame interval, a centroid that jitters by one 0.24 µm pixel moves at about
0.05 µm/min, under the pause threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "MIGRATION_COLUMNS",
    "TRACK_COLUMNS",
    "cell_of_track",
    "migration",
    "saltation_events",
    "step_speeds",
    "track_table",
]

TRACK_COLUMNS = ("track", "frame", "time_min", "y_um", "x_um", "area_um2", "parent")
MIGRATION_COLUMNS = (
    "cell", "tracks", "first_frame", "last_frame", "steps", "duration_min", "path_um", "net_um",
    "mean_speed_um_min", "max_speed_um_min", "direction_deg", "persistence", "saltations",
    "saltations_per_h", "divides",
)


def _check_positive(value: float, name: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return v


def track_table(
    labels: npt.ArrayLike,
    lineage: pd.DataFrame,
    *,
    pixel_size_um: float | Sequence[float],
    frame_minutes: float,
) -> pd.DataFrame:
    """One row per tracked object and frame: centroid (µm), area (µm²), time (min), parent.

    ``labels`` is a track-labelled (t, y, x) stack (e.g. :attr:`neuroseg.linking.tracks.Tracks.labels`),
    ``lineage`` its ``track, begin, end, parent`` table. Not modified.

    Examples
    --------
    >>> stack = np.zeros((2, 4, 4), np.uint16)
    >>> stack[0, :2, :2] = 1; stack[1, :2, 2:] = 1
    >>> lin = pd.DataFrame({"track": [1], "begin": [0], "end": [1], "parent": [0]})
    >>> track_table(stack, lin, pixel_size_um=0.5, frame_minutes=5)[["frame", "x_um", "area_um2"]].values.tolist()
    [[0.0, 0.25, 1.0], [1.0, 1.25, 1.0]]
    """
    from scipy import ndimage as ndi

    stack = np.asarray(labels)
    if stack.ndim != 3:
        raise ValueError(f"labels must be a (t, y, x) stack; got shape {stack.shape}")
    py, px = (pixel_size_um,) * 2 if np.isscalar(pixel_size_um) else tuple(pixel_size_um)
    py, px = _check_positive(py, "pixel_size_um"), _check_positive(px, "pixel_size_um")
    dt = _check_positive(frame_minutes, "frame_minutes")
    parent = dict(zip(lineage["track"].astype(int), lineage["parent"].astype(int)))
    rows = []
    for t, frame in enumerate(stack):
        ids = np.unique(frame)
        ids = ids[ids != 0]
        if not ids.size:
            continue
        centres = ndi.center_of_mass(np.ones(frame.shape), frame, ids)
        areas = ndi.sum_labels(np.ones(frame.shape), frame, ids)
        for lab, (cy, cx), area in zip(ids, centres, areas):
            lab = int(lab)
            if lab not in parent:
                raise ValueError(f"label {lab} in frame {t} is not a track of the lineage")
            rows.append([lab, t, t * dt, cy * py, cx * px, area * py * px, parent[lab]])
    table = pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
    return table.astype({"track": np.int64, "frame": np.int64, "parent": np.int64}).sort_values(
        ["track", "frame"], kind="stable").reset_index(drop=True)


def cell_of_track(lineage: pd.DataFrame) -> dict[int, int]:
    """Cell of each track: a track that is its parent's only daughter (a gap) continues it.

    Examples
    --------
    >>> lin = pd.DataFrame({"track": [1, 2, 3, 4], "parent": [0, 1, 2, 2]})
    >>> cell_of_track(lin)
    {1: 1, 2: 1, 3: 3, 4: 4}
    """
    parent = dict(zip(lineage["track"].astype(int), lineage["parent"].astype(int)))
    daughters = pd.Series(list(parent.values())).value_counts().to_dict()
    cell: dict[int, int] = {}

    def find(t: int) -> int:
        if t not in cell:
            p = parent[t]
            cell[t] = find(p) if p and daughters.get(p, 0) == 1 and p in parent else t
        return cell[t]

    for t in sorted(parent):
        find(t)
    return cell


def step_speeds(table: pd.DataFrame) -> pd.DataFrame:
    """Speed of every step between consecutive observations of a cell (µm/min).

    ``table`` has the :data:`TRACK_COLUMNS` plus ``cell`` (see :func:`migration`). A step
    over a gap is divided by its real duration.
    """
    t = table.sort_values(["cell", "frame"], kind="stable")
    d = t.groupby("cell")[["x_um", "y_um", "time_min"]].diff()
    dist = np.hypot(d.x_um, d.y_um)
    out = t.assign(step_um=dist, speed_um_min=dist / d.time_min)
    return out.dropna(subset=["speed_um_min"]).reset_index(drop=True)


def saltation_events(
    speeds: npt.ArrayLike,
    *,
    pause_speed: float = 0.1,
    move_speed: float = 0.3,
    min_pause_steps: int = 2,
    min_move_steps: int = 1,
) -> np.ndarray:
    """Step indices where a saltation starts: a move after a pause.

    A saltation is a run of at least ``min_move_steps`` steps faster than ``move_speed``
    that follows, right away, a run of at least ``min_pause_steps`` steps slower than
    ``pause_speed``.

    Examples
    --------
    >>> saltation_events([0.0, 0.05, 0.5, 0.6, 0.0, 0.0, 0.0, 0.9]).tolist()
    [2, 7]
    >>> saltation_events([0.05, 0.5, 0.0, 0.0, 0.2, 0.9]).tolist()   # pause too short; no gap allowed
    []
    """
    v = np.asarray(speeds, float)
    if v.ndim != 1:
        raise ValueError(f"speeds must be one series; got shape {v.shape}")
    if not 0 < pause_speed <= move_speed:
        raise ValueError(
            f"need 0 < pause_speed <= move_speed; got pause_speed={pause_speed}, move_speed={move_speed}"
        )
    if min_pause_steps < 1 or min_move_steps < 1:
        raise ValueError("min_pause_steps and min_move_steps must be >= 1")
    slow = v < pause_speed
    fast = v > move_speed
    events = []
    k = 0
    while k < v.size:
        if not slow[k]:
            k += 1
            continue
        j = k
        while j < v.size and slow[j]:
            j += 1
        m = j
        while m < v.size and fast[m]:
            m += 1
        if j - k >= min_pause_steps and m - j >= min_move_steps:
            events.append(j)
        k = max(m, j)
    return np.asarray(events, np.int64)


def migration(
    table: pd.DataFrame,
    lineage: pd.DataFrame,
    *,
    pause_speed: float = 0.1,
    move_speed: float = 0.3,
    min_pause_steps: int = 2,
    min_move_steps: int = 1,
    min_steps: int = 3,
) -> pd.DataFrame:
    """One row per cell (:data:`MIGRATION_COLUMNS`) from a :func:`track_table`.

    Cells observed for fewer than ``min_steps`` steps are left out (their speed and
    direction mean little). See the module docstring for the measures and the defaults.

    Examples
    --------
    >>> tab = pd.DataFrame({"track": 1, "frame": [0, 1, 2, 3], "time_min": [0, 5, 10, 15],
    ...                     "y_um": 0.0, "x_um": [0.0, 0.0, 0.0, 3.0], "area_um2": 1.0, "parent": 0})
    >>> lin = pd.DataFrame({"track": [1], "begin": [0], "end": [3], "parent": [0]})
    >>> row = migration(tab, lin).iloc[0]
    >>> float(row.mean_speed_um_min), float(row.direction_deg), float(row.persistence), int(row.saltations)
    (0.2, 0.0, 1.0, 1)
    """
    missing = [c for c in TRACK_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table needs the columns {list(TRACK_COLUMNS)}; missing {missing}")
    cells = cell_of_track(lineage)
    parents = dict(zip(lineage["track"].astype(int), lineage["parent"].astype(int)))
    n_daughters = pd.Series([p for p in parents.values() if p]).value_counts().to_dict()
    t = table.assign(cell=table["track"].map(cells))
    if t["cell"].isna().any():
        raise ValueError("table has tracks that the lineage does not list")
    steps = step_speeds(t)
    rows = []
    for cell, obs in t.sort_values(["cell", "frame"], kind="stable").groupby("cell"):
        s = steps[steps.cell == cell]
        if len(s) < min_steps:
            continue
        path = float(s.step_um.sum())
        dx = float(obs.x_um.iloc[-1] - obs.x_um.iloc[0])
        dy = float(obs.y_um.iloc[-1] - obs.y_um.iloc[0])
        net = float(np.hypot(dx, dy))
        duration = float(obs.time_min.iloc[-1] - obs.time_min.iloc[0])
        events = saltation_events(s.speed_um_min.to_numpy(), pause_speed=pause_speed,
                                  move_speed=move_speed, min_pause_steps=min_pause_steps,
                                  min_move_steps=min_move_steps)
        last_track = int(obs.track.iloc[-1])
        rows.append({
            "cell": int(cell), "tracks": int(obs.track.nunique()),
            "first_frame": int(obs.frame.iloc[0]), "last_frame": int(obs.frame.iloc[-1]),
            "steps": len(s), "duration_min": duration, "path_um": path, "net_um": net,
            "mean_speed_um_min": path / duration if duration else np.nan,
            "max_speed_um_min": float(s.speed_um_min.max()),
            "direction_deg": float(np.degrees(np.arctan2(-dy, dx))) + 0.0 if net else np.nan,
            "persistence": net / path if path else np.nan,
            "saltations": int(events.size),
            "saltations_per_h": events.size / (duration / 60.0) if duration else np.nan,
            "divides": bool(n_daughters.get(last_track, 0) >= 2),
        })
    return pd.DataFrame(rows, columns=list(MIGRATION_COLUMNS))
