"""The timing study of ``40_timing_2d_vs_3d``: the 2D route (slices plus linking) against the
3D route (affinities), stage by stage, on the same volume and device.

Stages, each timed with :func:`neuroseg.timing.benchmark` (warm-up, CUDA synchronised,
median of repeats):

- 2D route: ``2d_inference`` (the boundary model on all slices, batched), ``2d_instances``
  (watershed segments per slice), ``linking`` (the learned linker: its z-affinity network and
  the pair decisions);
- 3D route: ``3d_inference`` (tiled 3D U-Net), ``agglomeration`` (the post-processing chosen on
  validation in ``35_affinities_3d``).

Each stage gets the previous stage's output, so the routes' end-to-end time is the sum of
their stages. Models are those the earlier notebooks saved: ``em_boundary_unet`` (20),
``slice_linker`` (30), ``affinity_unet_<z>nm`` (35).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import affinities, inference, instances, linking
from .timing import benchmark, count_flops, device_name, model_flop_utilisation, peak_flops

__all__ = [
    "ROUTES",
    "accuracy_table",
    "device_label",
    "effective_precision",
    "flops_table",
    "scaled_volume",
    "scaling",
    "scaling_figure",
    "stage_figure",
    "summary",
    "result_record",
    "targets",
    "time_routes",
]

ROUTES = {"2d": ("2d_inference", "2d_instances", "linking"), "3d": ("3d_inference", "agglomeration")}


def _route_2d(em_model, linker, raw, resolution, *, time_stage):
    lk = linker.calibrated_for(resolution, segments="predicted")
    prob = time_stage("2d_inference", inference.boundaries_2d, em_model, raw, resolution=resolution)
    post = dict(em_model.meta.get("postprocess", {}))
    labels2d = time_stage("2d_instances", instances.labels_from_boundaries_stack, prob, **post)
    return time_stage("linking", linking.link_slices, labels2d, raw=raw, method="learned",
                      threshold=lk.threshold, linker=lk, resolution=resolution).labels


def _route_3d(model, raw, resolution, *, time_stage):
    post = {"method": "cc", "threshold": 0.5, "min_size": 0, **model.meta.get("postprocess", {})}
    affs = time_stage("3d_inference", affinities.predict_affinities, model, raw)
    return time_stage("agglomeration", affinities.agglomerate, affs, offsets=model.meta["offsets"],
                      resolution=model.meta.get("resolution_nm"), **post)


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
    precision: str = "fp32",
    label: str = "",
) -> tuple[pd.DataFrame, dict]:
    """Time every stage of both routes on ``raw``; returns the stage table and the two
    routes' labels (from the last repeat).

    The table has one row per stage: ``route, stage, megavoxels, median, q25, q75,
    s_per_mvox`` and what the timing depends on (device, threads, peak memory...).
    """
    rows = []
    mvox = raw.size / 1e6

    def time_stage(stage, fn, *args, **kwargs):
        timing, out = benchmark(fn, *args, name=stage, warmup=warmup, repeats=repeats,
                                device=device, precision=precision, **kwargs)
        d = timing.to_dict()
        rows.append({"volume": label, "route": "2d" if stage in ROUTES["2d"] else "3d",
                     "stage": stage, "megavoxels": mvox, "median": d["median"], "q25": d["q25"],
                     "q75": d["q75"], "s_per_mvox": d["median"] / mvox, "repeats": d["repeats"],
                     "peak_rss_mb": d["peak_rss_mb"],
                     "cuda_max_allocated_mb": d["cuda_max_allocated_mb"],
                     "device": d["device"], "device_name": d["device_name"],
                     "threads": d["threads"], "precision": precision})
        return out

    labels = {"2d": _route_2d(em_model, linker, raw, resolution, time_stage=time_stage),
              "3d": _route_3d(affinity_model, raw, resolution, time_stage=time_stage)}
    return pd.DataFrame(rows), labels


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
    precision: str = "fp32",
) -> pd.DataFrame:
    """End-to-end time of both routes on volumes ``factors`` times the size of ``raw``."""
    from tqdm.auto import tqdm

    rows = []
    for f in tqdm(factors, desc="volume sizes"):
        vol = scaled_volume(raw, f)
        table, _ = time_routes(vol, resolution=resolution, em_model=em_model, linker=linker,
                               affinity_model=affinity_model, warmup=warmup, repeats=repeats,
                               device=device, precision=precision, label=f"x{f:g}")
        for route, g in table.groupby("route"):
            rows.append({"factor": float(f), "megavoxels": vol.size / 1e6, "route": route,
                         "seconds": float(g["median"].sum()),
                         "s_per_mvox": float(g["median"].sum() / (vol.size / 1e6))})
    return pd.DataFrame(rows)


def flops_table(stages: pd.DataFrame, *, em_model, linker, affinity_model, raw_shape,
                precision: str = "bf16") -> pd.DataFrame:
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
    peak = peak_flops(name, precision)
    rows = []
    for stage, (net, shape, voxels) in nets.items():
        per_voxel = count_flops(net, shape) / voxels
        row = stages[stages["stage"] == stage].iloc[0]
        total = per_voxel * row["megavoxels"] * 1e6
        rows.append({"stage": stage, "flops_per_voxel": per_voxel, "seconds": row["median"],
                     "achieved_tflops": total / row["median"] / 1e12, "device_name": name,
                     "peak_tflops": None if peak is None else peak / 1e12,
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


def device_label(device: str | None = None) -> str:
    """A file-name-safe device tag for ``40_timing_<device>.json``: ``cpu`` or the GPU's name
    (e.g. ``nvidia_h100_80gb_hbm3``)."""
    import re

    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "_", device_name(str(dev)).lower()).strip("_")


def effective_precision(precision: str, device: str | None = None) -> str:
    """The precision the networks actually run at: ``precision`` (bf16 autocast) on CUDA,
    fp32 on CPU (autocast is CUDA-only here)."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return precision if dev.type == "cuda" else "fp32"


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


def result_record(*, device: str, precision: str, volume: str, warmup: int, repeats: int,
                  summaries: dict, accuracy: dict, flops: dict) -> dict:
    """The flat record of ``40_timing_<device>.json``: the device and its environment
    (versions as ``version_<package>``), then per z spacing the routes' seconds per megavoxel,
    their ratio, each stage's share, the CREMI scores, FLOPs per voxel and MFU."""
    from .timing import environment

    env = environment(device)
    versions = env.pop("versions")
    out = {**env, **{f"version_{k}": v for k, v in versions.items()}, "precision": precision,
           "volume": volume, "warmup": warmup, "repeats": repeats}
    for key, s in summaries.items():
        out.update({f"{key}_{name}": v for name, v in s.items()})
        out.update({f"{key}_{name}": v for name, v in accuracy[key].items()})
        for r in flops[key].itertuples():
            out[f"{key}_{r.stage}_flops_per_voxel"] = float(r.flops_per_voxel)
            out[f"{key}_{r.stage}_mfu"] = None if r.mfu is None or pd.isna(r.mfu) else float(r.mfu)
    return out
