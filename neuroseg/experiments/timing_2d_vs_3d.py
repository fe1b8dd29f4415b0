"""The timing study of ``40_timing_2d_vs_3d``: the 2D route (slices plus linking) against the
3D route (affinities), stage by stage, on the same volume and device.

Stages, each timed with :func:`neuroseg.measure.timing.benchmark` (warm-up, CUDA synchronised,
median of repeats):

- 2D route: ``2d_inference`` (the boundary model on all slices, batched), ``2d_instances``
  (watershed segments per slice), ``linking`` (the learned linker: its z-affinity network and
  the pair decisions);
- 3D route: ``3d_inference`` (tiled 3D U-Net), ``agglomeration`` (the post-processing chosen on
  validation in ``35_affinities_3d``).

Each stage gets the previous stage's output, so the routes' end-to-end time is the sum of
their stages. Models are those the earlier notebooks saved: ``em_boundary_unet`` (20),
``slice_linker`` (30), ``affinity_unet_<z>nm`` (35).

How the networks run (precision, channels-last, ``torch.compile``, batch size) is a
:class:`neuroseg.nets.speed.Speed` per route. :func:`speed_work` changes one of these at a time on
the same volume, keeps a change for a route only when it makes that route's network stages
faster without changing their outputs beyond a tolerance, and returns the before and after.

The accuracy-speed front of both routes, every network trained at one budget, is
``45_front_2d_vs_3d`` (:mod:`neuroseg.experiments.front_2d_vs_3d`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from neuroseg.linking.learned import accelerated
from neuroseg.linking.rules import link_slices
from neuroseg.measure.timing import (
    benchmark,
    count_flops,
    device_label,
    model_flop_utilisation,
    peak_flops,
)
from neuroseg.measure.voi_rand import voi
from neuroseg.nets.speed import Speed, accelerate
from neuroseg.segment import affinities, instances
from neuroseg.segment.volume_2d import boundaries_2d
from neuroseg.segment.volume_3d import model_resolution, predict_affinities

__all__ = [
    "ROUTES",
    "accuracy_table",
    "device_label",
    "flops_table",
    "scaled_volume",
    "scaling",
    "scaling_figure",
    "speed_figure",
    "speed_work",
    "stage_figure",
    "try_changes",
    "keep_change",
    "summary",
    "result_record",
    "targets",
    "time_routes",
    "DEFAULT_SPEED_2D",
    "DEFAULT_SPEED_3D",
]

ROUTES = {"2d": ("2d_inference", "2d_instances", "linking"), "3d": ("3d_inference", "agglomeration")}

#: Where the speed work starts: fp32, eager, 8 slices (2D) or 1 tile (3D) per network call.
DEFAULT_SPEED_2D = Speed(batch_size=8)
DEFAULT_SPEED_3D = Speed(batch_size=1)


def _device(device: str | None) -> str:
    from neuroseg.nets.train import default_device

    return device or str(default_device())


def _route_2d(em_model, linker, raw, resolution, *, time_stage, speed: Speed, device: str):
    lk = accelerated(linker.calibrated_for(resolution, segments="predicted"), speed, device=device)
    net = accelerate(em_model, speed, device=device)
    prob = time_stage("2d_inference", boundaries_2d, net, raw, resolution=resolution,
                      batch_size=speed.batch_size)
    post = dict(em_model.meta.get("postprocess", {}))
    labels2d = time_stage("2d_instances", instances.labels_from_boundaries_stack, prob, **post)
    return time_stage("linking", link_slices, labels2d, raw=raw, method="learned",
                      threshold=lk.threshold, linker=lk, resolution=resolution).labels


def _route_3d(model, raw, resolution, *, time_stage, speed: Speed, device: str):
    post = {"method": "cc", "threshold": 0.5, "min_size": 0, **model.meta.get("postprocess", {})}
    affs = time_stage("3d_inference", predict_affinities,
                      accelerate(model, speed, device=device), raw,
                      batch_size=speed.batch_size)
    return time_stage("agglomeration", affinities.agglomerate, affs, offsets=model.meta["offsets"],
                      resolution=model_resolution(model.meta), **post)


def time_routes(
    raw: np.ndarray,
    *,
    resolution: Sequence[float],
    em_model,
    linker,
    affinity_model,
    warmup: int = 1,
    repeats: int = 3,
    device: str | None = None,
    speed_2d: Speed = DEFAULT_SPEED_2D,
    speed_3d: Speed = DEFAULT_SPEED_3D,
    label: str = "",
) -> tuple[pd.DataFrame, dict]:
    """Time every stage of both routes on ``raw``; returns the stage table and the two
    routes' labels (from the last repeat).

    The networks of the 2D route (boundary model, linker) run as ``speed_2d`` says, the 3D
    network as ``speed_3d``, on ``device`` (default: CUDA when available; the models are
    copied there, not moved). The table has one row per stage: ``route, stage, megavoxels,
    median, q25, q75, s_per_mvox``, the route's ``speed`` and ``precision`` and what the
    timing depends on (device, threads, peak memory...).
    """
    rows = []
    mvox = raw.size / 1e6
    speeds = {"2d": speed_2d, "3d": speed_3d}
    device = _device(device)

    def time_stage(stage, fn, *args, **kwargs):
        route = "2d" if stage in ROUTES["2d"] else "3d"
        timing, out = benchmark(fn, *args, name=stage, warmup=warmup, repeats=repeats,
                                device=device, precision=speeds[route].precision, **kwargs)
        d = timing.to_dict()
        rows.append({"volume": label, "route": route,
                     "stage": stage, "megavoxels": mvox, "median": d["median"], "q25": d["q25"],
                     "q75": d["q75"], "s_per_mvox": d["median"] / mvox, "repeats": d["repeats"],
                     "peak_rss_mb": d["peak_rss_mb"],
                     "cuda_max_allocated_mb": d["cuda_max_allocated_mb"],
                     "device": d["device"], "device_name": d["device_name"],
                     "threads": d["threads"], "precision": speeds[route].precision,
                     "speed": speeds[route].label})
        return out

    labels = {"2d": _route_2d(em_model, linker, raw, resolution, time_stage=time_stage,
                              speed=speed_2d, device=device),
              "3d": _route_3d(affinity_model, raw, resolution, time_stage=time_stage,
                              speed=speed_3d, device=device)}
    return pd.DataFrame(rows), labels


# --------------------------------------------------------------------------------------------
# speed work: one change at a time
# --------------------------------------------------------------------------------------------


def keep_change(seconds: float, best_seconds: float, difference: float, *,
                min_gain: float = 0.03, tolerance: float = 0.01) -> bool:
    """Whether a change is kept: it makes the route at least ``min_gain`` (a fraction) faster
    than the best so far, and its outputs differ from the baseline's by at most
    ``tolerance`` (a NaN difference, i.e. broken outputs, is never kept).

    Examples
    --------
    >>> keep_change(0.9, 1.0, 0.001), keep_change(0.99, 1.0, 0.0), keep_change(0.5, 1.0, 0.2)
    (True, False, False)
    """
    if not np.isfinite(seconds) or not np.isfinite(difference):
        return False
    return bool(seconds <= best_seconds * (1.0 - min_gain) and difference <= tolerance)


def _change_label(change: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in change.items())


def speed_work(
    raw: np.ndarray,
    *,
    resolution: Sequence[float],
    em_model,
    linker,
    affinity_model,
    changes: Sequence[dict],
    warmup: int = 1,
    repeats: int = 3,
    device: str | None = None,
    start_2d: Speed = DEFAULT_SPEED_2D,
    start_3d: Speed = DEFAULT_SPEED_3D,
    min_gain: float = 0.03,
    tolerance: float = 0.01,
) -> tuple[pd.DataFrame, Speed, Speed]:
    """Try ``changes`` (each a dict of :class:`~neuroseg.nets.speed.Speed` fields, e.g.
    ``{"precision": "bf16"}``) one at a time on both routes' network stages; return the
    table and the chosen 2D and 3D speeds.

    Each change is applied to the best speed so far of each route and timed with
    :func:`neuroseg.measure.timing.benchmark`: the 2D route's ``2d_inference`` and ``linking`` (on the
    baseline's 2D segments, so only the networks differ), the 3D route's ``3d_inference``.
    It is kept for a route by :func:`keep_change`: at least ``min_gain`` faster and outputs
    within ``tolerance`` of the baseline's, measured as the mean absolute difference of the
    boundary probabilities and of the affinities, and for linking as the variation of
    information (bits) between the linked segments and the baseline's. A change that fails
    (e.g. ``torch.compile`` without a compiler, fp16 on a CPU that lacks it) is recorded
    with its error and not kept.

    Returns
    -------
    table : DataFrame
        One row per (step, route): ``step, change, route, speed, seconds`` (the route's
        network stages), per-stage medians, ``s_per_mvox``, ``speedup_vs_baseline``,
        ``difference``, ``kept``, ``error``.
    speed_2d, speed_3d : Speed
        The chosen speeds (the starts with every kept change).
    """
    mvox = raw.size / 1e6
    device = _device(device)
    lk0 = linker.calibrated_for(resolution, segments="predicted")
    post = dict(em_model.meta.get("postprocess", {}))

    def timed(fn, *args, **kwargs):
        t, out = benchmark(fn, *args, warmup=warmup, repeats=repeats, device=device, **kwargs)
        return t.median, out

    def run_2d(speed: Speed):
        net, lk = accelerate(em_model, speed, device=device), accelerated(lk0, speed, device=device)
        t_inf, prob = timed(boundaries_2d, net, raw, resolution=resolution,
                            batch_size=speed.batch_size)
        t_link, linked = timed(link_slices, labels2d, raw=raw, method="learned",
                               threshold=lk.threshold, linker=lk, resolution=resolution)
        return {"2d_inference": t_inf, "linking": t_link}, (prob, linked.labels)

    def run_3d(speed: Speed):
        t, affs = timed(predict_affinities, accelerate(affinity_model, speed, device=device), raw,
                        batch_size=speed.batch_size)
        return {"3d_inference": t}, affs

    def difference(route, out, ref) -> float:
        if route == "3d":
            return float(np.mean(np.abs(out - ref)))
        prob_diff = float(np.mean(np.abs(out[0] - ref[0])))
        split, merge = voi(ref[1], out[1], ignore_true=())
        return max(prob_diff, split + merge)

    # the baseline: its 2D segments feed every variant's linking stage
    prob0 = boundaries_2d(accelerate(em_model, start_2d, device=device), raw,
                                    resolution=resolution, batch_size=start_2d.batch_size)
    labels2d = instances.labels_from_boundaries_stack(prob0, **post)
    return try_changes({"2d": run_2d, "3d": run_3d}, {"2d": start_2d, "3d": start_3d}, changes,
                       difference=difference, megavoxels=mvox, min_gain=min_gain,
                       tolerance=tolerance, progress=True)


def try_changes(
    runners: dict,
    starts: dict,
    changes: Sequence[dict],
    *,
    difference,
    megavoxels: float = 1.0,
    min_gain: float = 0.03,
    tolerance: float = 0.01,
    progress: bool = False,
) -> tuple[pd.DataFrame, ...]:
    """The loop of :func:`speed_work`, for any routes: ``runners[route](speed)`` returns
    (seconds per stage as a dict, output); ``difference(route, output, baseline_output)``
    a number. Step 0 is the baseline (``starts``); each change is applied to the best speed
    so far of each route and kept by :func:`keep_change`; a runner that raises is recorded
    with its error. Returns the table and the chosen speed of each route, in the order of
    ``runners``."""
    from tqdm.auto import tqdm

    best = dict(starts)
    rows, reference, best_s = [], {}, {}
    steps = [{}] + [dict(c) for c in changes]
    for step, change in enumerate(tqdm(steps, desc="speed work", disable=not progress)):
        for route, run in runners.items():
            row = {"step": step, "change": _change_label(change) or "baseline", "route": route}
            try:
                speed = best[route].replace(**change)
                stages, out = run(speed)
            except Exception as err:  # noqa: BLE001 - recorded, the work goes on
                if step == 0:
                    raise
                rows.append({**row, "speed": None, "seconds": np.nan, "kept": False,
                             "error": f"{type(err).__name__}: {err}"[:300]})
                continue
            seconds = float(sum(stages.values()))
            if step == 0:
                reference[route], best_s[route] = out, seconds
                diff, kept = 0.0, True
            else:
                diff = float(difference(route, out, reference[route]))
                kept = keep_change(seconds, best_s[route], diff, min_gain=min_gain, tolerance=tolerance)
            if kept:
                best[route], best_s[route] = speed, seconds
            rows.append({**row, "speed": speed.label, "seconds": seconds, **stages,
                         "s_per_mvox": seconds / megavoxels, "difference": diff, "kept": kept,
                         "error": None})
    table = pd.DataFrame(rows)
    base = table[table["step"] == 0].set_index("route")["seconds"]
    table["speedup_vs_baseline"] = base.reindex(table["route"]).to_numpy() / table["seconds"]
    return (table, *(best[r] for r in runners))


def speed_figure(table: pd.DataFrame, *, title: str):
    """Seconds per megavoxel of each route's network stages at each step of the speed work;
    kept changes filled, rejected ones hatched, failed ones marked."""
    import matplotlib.pyplot as plt

    routes = list(dict.fromkeys(table["route"]))
    fig, axes = plt.subplots(1, len(routes), figsize=(5.5 * len(routes), 3.2 + 0.25 * table["step"].nunique()),
                             squeeze=False)
    colours = {"2d": "#0072B2", "3d": "#D55E00"}
    for ax, route in zip(axes[0], routes):
        g = table[table["route"] == route].sort_values("step")
        y = np.arange(len(g))[::-1]
        values = g["s_per_mvox"].fillna(0).to_numpy()
        for yi, v, kept, err in zip(y, values, g["kept"], g["error"]):
            failed = isinstance(err, str)
            ax.barh(yi, v, color=colours.get(route, "grey") if kept else "white",
                    edgecolor=colours.get(route, "grey"), hatch=None if kept else "//")
            if failed:
                ax.text(0, yi, "  failed", va="center", fontsize=8)
            elif np.isfinite(v):
                ax.text(v, yi, f" {v:.2f}", va="center", fontsize=8)
        ax.set_yticks(y, [f"{s}. {c}" for s, c in zip(g["step"], g["change"])])
        ax.set_xlabel("network stages (s / megavoxel)")
        ax.set_title(f"{route.upper()} route (filled: kept)")
        ax.margins(x=0.2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def summary(stages: pd.DataFrame) -> dict:
    """End-to-end seconds per megavoxel of each route, the ratio 3D / 2D and each stage's
    share of its route."""
    out = {}
    totals = stages.groupby("route")["median"].sum()
    mvox = float(stages["megavoxels"].iloc[0])
    for route, total in totals.items():
        out[f"{route}_s_per_mvox"] = float(total / mvox)
        out[f"{route}_seconds"] = float(total)
        for _, r in stages[stages["route"] == route].iterrows():
            out[f"share_{r['stage']}"] = float(r["median"] / total)
            out[f"{r['stage']}_s_per_mvox"] = float(r["s_per_mvox"])
    out["ratio_3d_over_2d"] = float(totals["3d"] / totals["2d"])
    out["megavoxels"] = mvox
    return out


def scaled_volume(raw: np.ndarray, factor: float) -> np.ndarray:
    """A volume about ``factor`` times the size of ``raw``: a crop in y-x for ``factor < 1``,
    the volume mirrored along x (then y) for ``factor > 1``."""
    if factor <= 0:
        raise ValueError(f"factor must be positive; got {factor}")
    z, y, x = raw.shape
    if factor <= 1:
        s = np.sqrt(factor)
        return np.ascontiguousarray(raw[:, : max(1, round(y * s)), : max(1, round(x * s))])
    reps_x = int(np.ceil(factor))
    tiled = np.concatenate([raw if k % 2 == 0 else raw[:, :, ::-1] for k in range(reps_x)], axis=2)
    return np.ascontiguousarray(tiled[:, :, : round(x * factor)])


def scaling(
    raw: np.ndarray,
    factors: Sequence[float],
    *,
    resolution: Sequence[float],
    em_model,
    linker,
    affinity_model,
    warmup: int = 1,
    repeats: int = 1,
    device: str | None = None,
    speed_2d: Speed = DEFAULT_SPEED_2D,
    speed_3d: Speed = DEFAULT_SPEED_3D,
) -> pd.DataFrame:
    """End-to-end time of both routes on volumes ``factors`` times the size of ``raw``."""
    from tqdm.auto import tqdm

    rows = []
    for f in tqdm(factors, desc="volume sizes"):
        vol = scaled_volume(raw, f)
        table, _ = time_routes(vol, resolution=resolution, em_model=em_model, linker=linker,
                               affinity_model=affinity_model, warmup=warmup, repeats=repeats,
                               device=device, speed_2d=speed_2d, speed_3d=speed_3d,
                               label=f"x{f:g}")
        for route, g in table.groupby("route"):
            rows.append({"factor": float(f), "megavoxels": vol.size / 1e6, "route": route,
                         "seconds": float(g["median"].sum()),
                         "s_per_mvox": float(g["median"].sum() / (vol.size / 1e6))})
    return pd.DataFrame(rows)


def flops_table(stages: pd.DataFrame, *, em_model, linker, affinity_model, raw_shape) -> pd.DataFrame:
    """FLOPs per voxel of each network (counted on one slice / one tile) and the model FLOP
    utilisation of its inference stage (``None`` where the device's peak is unknown, e.g. CPU).

    The 2D boundary model and the linker's network run once per slice (the linker once per
    neighbouring pair), at the volume's pixel size here (10 nm).
    """
    _, y, x = raw_shape
    m2 = em_model.required_multiple
    y2, x2 = (int(np.ceil(y / m2[0]) * m2[0]), int(np.ceil(x / m2[1]) * m2[1]))
    tile = tuple(affinity_model.meta.get("tile") or (16, 128, 128))
    nets = {
        "2d_inference": (em_model, (1, 1, y2, x2), y2 * x2),
        "linking": (linker.network, (1, 2, y2, x2), y2 * x2),
        "3d_inference": (affinity_model, (1, 1, *tile), int(np.prod(tile))),
    }
    name = str(stages["device_name"].iloc[0])
    rows = []
    for stage, (net, shape, voxels) in nets.items():
        per_voxel = count_flops(net, shape) / voxels
        row = stages[stages["stage"] == stage].iloc[0]
        # the peak at the precision this stage ran at (the stage table records it)
        peak = peak_flops(name, str(row.get("precision", "fp32")))
        total = per_voxel * row["megavoxels"] * 1e6
        rows.append({"stage": stage, "flops_per_voxel": per_voxel, "seconds": row["median"],
                     "achieved_tflops": total / row["median"] / 1e12, "device_name": name,
                     "peak_tflops": None if peak is None else peak / 1e12,
                     "precision": str(row.get("precision", "fp32")),
                     "mfu": model_flop_utilisation(total, row["median"], peak)})
    return pd.DataFrame(rows)


def accuracy_table(linking_table: pd.DataFrame | None, baseline_summary: dict | None, *,
                   volume: str, z_nm: float) -> dict:
    """The CREMI score each route reached on ``volume`` at ``z_nm`` in the earlier notebooks:
    the 2D route with predicted segments and the learned linker (``30_slice_linking``), the
    3D route with its chosen post-processing (``35_affinities_3d``)."""
    out = {"cremi_2d": None, "cremi_3d": None}
    if linking_table is not None:
        t = linking_table
        row = t[(t["volume"] == volume) & (t["z_nm"] == z_nm) & (t["segments"] == "predicted")
                & (t["method"] == "learned")]
        if len(row):
            out["cremi_2d"] = float(row["cremi"].iloc[0])
    if baseline_summary is not None:
        value = baseline_summary.get(f"{volume}_{z_nm:g}nm_cremi")
        out["cremi_3d"] = None if value is None else float(value)
    return out


def stage_figure(stages: pd.DataFrame, accuracy: dict, *, title: str):
    """Stacked seconds per megavoxel of each route's stages, with the CREMI score each buys."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    colours = {"2d_inference": "#0072B2", "2d_instances": "#56B4E9", "linking": "#009E73",
               "3d_inference": "#D55E00", "agglomeration": "#E69F00"}
    for i, route in enumerate(("2d", "3d")):
        left = 0.0
        for stage in ROUTES[route]:
            r = stages[stages["stage"] == stage]
            if not len(r):
                continue
            v = float(r["s_per_mvox"].iloc[0])
            ax.barh(i, v, left=left, color=colours[stage], label=stage)
            left += v
        cremi = accuracy.get(f"cremi_{route}")
        text = f"{left:.2f} s/Mvox" + ("" if cremi is None else f", CREMI {cremi:.3f}")
        ax.text(left, i, " " + text, va="center")
    ax.set_yticks([0, 1], ["2D + linking", "3D affinities"])
    ax.set_xlabel("seconds per megavoxel (median of repeats)")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.45)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def scaling_figure(table: pd.DataFrame, *, title: str):
    """End-to-end seconds against volume size for both routes (log-log)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for route, g in table.groupby("route"):
        ax.plot(g["megavoxels"], g["seconds"], "o-", label="2D + linking" if route == "2d" else "3D affinities")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("volume size (megavoxels)")
    ax.set_ylabel("end-to-end seconds")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def targets(summaries: dict[str, dict], flops: dict[str, pd.DataFrame], accuracy: dict[str, dict]) -> pd.DataFrame:
    """The issue's targets against what was measured, per z spacing: 2D route at least 3x
    faster than 3D at equal or better CREMI, 2D inference at 40 % or more of the device's
    peak, linking under 10 % of the 2D route."""
    rows = []
    for key, s in summaries.items():
        acc = accuracy[key]
        equal_or_better = (None if acc["cremi_2d"] is None or acc["cremi_3d"] is None
                           else acc["cremi_2d"] <= acc["cremi_3d"])
        f = flops[key].set_index("stage")
        mfu = f.loc["2d_inference", "mfu"]
        rows += [
            {"z": key, "target": "3D / 2D time >= 3", "measured": s["ratio_3d_over_2d"],
             "met": bool(s["ratio_3d_over_2d"] >= 3)},
            {"z": key, "target": "2D CREMI <= 3D CREMI", "measured": acc["cremi_2d"],
             "met": equal_or_better},
            {"z": key, "target": "2D inference MFU >= 0.40", "measured": mfu,
             "met": None if mfu is None or pd.isna(mfu) else bool(mfu >= 0.4)},
            {"z": key, "target": "linking share of 2D route < 0.10", "measured": s["share_linking"],
             "met": bool(s["share_linking"] < 0.1)},
        ]
    return pd.DataFrame(rows)


def result_record(*, device: str, volume: str, warmup: int, repeats: int, summaries: dict,
                  accuracy: dict, flops: dict, speed_2d: Speed = DEFAULT_SPEED_2D,
                  speed_3d: Speed = DEFAULT_SPEED_3D,
                  speed_table: pd.DataFrame | None = None) -> dict:
    """The flat record of ``40_timing_<device>.json``: the device and its environment
    (versions as ``version_<package>``), how each route's networks ran (``precision`` is the
    2D route's), the speed work's gain per route (kept changes against the baseline), then
    per z spacing the routes' seconds per megavoxel, their ratio, each stage's share, the
    CREMI scores, FLOPs per voxel and MFU."""
    from neuroseg.measure.timing import environment

    env = environment(device)
    versions = env.pop("versions")
    out = {**env, **{f"version_{k}": v for k, v in versions.items()},
           "precision": speed_2d.precision, "speed_2d": speed_2d.label, "speed_3d": speed_3d.label,
           "volume": volume, "warmup": warmup, "repeats": repeats}
    if speed_table is not None:
        for route, g in speed_table.groupby("route"):
            base = float(g.loc[g["step"] == 0, "seconds"].iloc[0])
            best = float(g.loc[g["kept"].astype(bool), "seconds"].iloc[-1])
            out[f"speed_work_{route}_speedup"] = base / best
    for key, s in summaries.items():
        out.update({f"{key}_{name}": v for name, v in s.items()})
        out.update({f"{key}_{name}": v for name, v in accuracy[key].items()})
        for r in flops[key].itertuples():
            out[f"{key}_{r.stage}_flops_per_voxel"] = float(r.flops_per_voxel)
            out[f"{key}_{r.stage}_mfu"] = None if r.mfu is None or pd.isna(r.mfu) else float(r.mfu)
    return out
