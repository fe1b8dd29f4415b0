"""The blockwise study (#26): consistency with the whole volume, throughput, memory, projection.

    python benchmarks/blockwise_study.py          # or: make blockwise-study (about an hour)
    python benchmarks/blockwise_study.py --no-gigavoxel   # without the 1 Gvoxel point (minutes)

Writes ``reports/metrics/blockwise_consistency.csv`` (blockwise against whole-volume labels on
the FIB-25 test part at 40 x 10 x 10 nm: VOI split / merge, adapted Rand error, equal up to
renumbering), ``reports/metrics/blockwise_scaling.csv`` (seconds, megavoxels per second and
the peak resident memory of a worker, over 1 and 2 workers and volume sizes 8x apart, and one
2D run near a gigavoxel), ``reports/metrics/blockwise_projection.csv`` (core-hours for 1 mm^3
at 4 x 4 x 30 nm from the measured cost per voxel; GPU-hours are a projection, no GPU was
measured), ``reports/metrics/blockwise_scaling.json`` (the machine, load averages before and
after every timing, the models and their sizes, how the volumes were made) and
``reports/blockwise.md``, the section of the results page made from them.

The models are the shipped ones (``neuroseg.list_models()``): ``em_2d`` with ``em_linker``
(2D route) and ``em_3d_40nm`` (3D route), the fair fight's chosen settings, run in the
precision ``--precision`` (default bf16 with channels-last, which keeps their validation
scores: ``reports/metrics/45_front_2d_vs_3d_cpu_precision.csv``). The large volumes are the
FIB-25 test part tiled by mirroring: fine for timing and memory, meaningless for accuracy.
Every step is deterministic (fixed threads, no randomness).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from neuroseg import paths
from neuroseg.io import write_csv

MODELS = {"2d": "em_2d", "linker": "em_linker", "3d": "em_3d_40nm"}
#: 1 mm^3 at 4 x 4 x 30 nm.
VOXELS_MM3 = (1e6 / 4) * (1e6 / 4) * (1e6 / 30)
#: Stated assumption of the GPU projection: one GPU does the work of this many CPU cores.
#: No GPU was measured; the column is a projection, not a result.
GPU_CORE_EQUIVALENT = 50.0
#: The gigavoxel point: the 2D route on 2 workers, 64 x 512 x 512 blocks (the default block).
GIGAVOXEL = ((256, 2048, 2048), (64, 512, 512))


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _models() -> dict:
    from neuroseg.linking.learned import load_linker
    from neuroseg.nets.shipped import load_model

    return {"model": load_model(MODELS["2d"]), "linker": load_linker(MODELS["linker"]),
            "model3": load_model(MODELS["3d"])}


def _describe_models() -> dict:
    import torch

    from neuroseg.nets.shipped import shipped_dir

    info = {}
    for name in MODELS.values():
        folder = shipped_dir() / name
        config = json.loads((folder / "config.json").read_text())
        unet = config.get("unet", {})
        state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
        n = sum(int(v.numel()) for v in state.values() if hasattr(v, "numel"))
        info[name] = {"shipped": name, "folder": str(folder.relative_to(Path.cwd()))
                      if folder.is_relative_to(Path.cwd()) else str(folder),
                      "architecture": {k: unet.get(k) for k in
                                       ("ndim", "in_channels", "out_channels", "depth",
                                        "base_features", "pool_factors")},
                      "parameters": n,
                      "pixel_size": config.get("meta", {}).get("pixel_size"),
                      "postprocess": config.get("meta", {}).get("postprocess")}
    return info


def _speed(precision: str) -> dict:
    return {"precision": precision, "channels_last": precision != "fp32"}


def _mirror_tile(vol: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``vol`` repeated by mirroring (flipped copies side by side) up to ``shape``."""
    out = vol
    for axis, n in enumerate(shape):
        reps = -(-n // out.shape[axis])
        parts = [np.flip(out, axis) if k % 2 else out for k in range(reps)]
        out = np.concatenate(parts, axis=axis)
    return np.ascontiguousarray(out[: shape[0], : shape[1], : shape[2]])


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    if ((a == 0) != (b == 0)).any():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def consistency(raw, gt, res, models, work: Path, *, blocks: dict, log: list,
                precision: str) -> pd.DataFrame:
    """Blockwise against whole-volume labels, both routes, blocks cut in z only and in z, y, x;
    the whole volume's networks run at the same ``precision`` as the blocks'."""
    from neuroseg.data import files
    from neuroseg.linking.learned import accelerated
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.nets.speed import Speed, accelerate
    from neuroseg.segment.blockwise import segment_blockwise
    from neuroseg.segment.volume_2d import segment_volume_2d
    from neuroseg.segment.volume_3d import segment_volume_3d

    speed = Speed(**_speed(precision))
    rows = []
    for route in ("2d", "3d"):
        before = _load()
        t0 = time.perf_counter()
        if route == "2d":
            whole = segment_volume_2d(accelerate(models["model"], speed), raw,
                                      linker=accelerated(models["linker"], speed),
                                      resolution=res, device="cpu")
        else:
            whole = segment_volume_3d(accelerate(models["model3"], speed), raw, resolution=res,
                                      device="cpu")
        log.append({"what": f"whole {route}", "seconds": time.perf_counter() - t0,
                    "load_before": before, "load_after": _load()})
        for blocking, block in blocks.items():
            out = work / f"consistency_{route}_{blocking}.zarr"
            before = _load()
            result = segment_blockwise(
                raw, out, route=route, model=models["model" if route == "2d" else "model3"],
                linker=models["linker"] if route == "2d" else None, resolution=res,
                block=block, scheduler="inline", progress=False, **_speed(precision))
            log.append({"what": f"consistency {route} {blocking}", "seconds": result.seconds,
                        "load_before": before, "load_after": _load()})
            got = files.read(out).array
            s = segmentation_scores(whole, got)
            tw, tb = segmentation_scores(gt, whole), segmentation_scores(gt, got)
            rows.append({"route": route, "blocking": blocking, "voi_split": s["voi_split"],
                         "voi_merge": s["voi_merge"], "arand": s["arand"],
                         "equal": "true" if _same_partition(whole, got) else "false",
                         "block": "x".join(map(str, block)), "objects_whole": int(whole.max()),
                         "objects_blockwise": int(got.max()),
                         # each against the ground truth: how good the models are
                         "voi_whole_vs_truth": tw["voi_split"] + tw["voi_merge"],
                         "voi_blockwise_vs_truth": tb["voi_split"] + tb["voi_merge"],
                         "arand_whole_vs_truth": tw["arand"], "arand_blockwise_vs_truth": tb["arand"]})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def one_block_peak_mb(route: str, raw: np.ndarray, res, block, work: Path, *,
                      precision: str) -> float:
    """Peak resident memory (MB) of a fresh process segmenting one block with its halo (no
    Dask): the working set of an inner block, Python, torch and the model included."""
    from neuroseg.data import files

    # an inner block reads its halo too: 32 voxels beyond y and x faces, and in z max_gap
    # slices after it (2d) or half the model's tile on both sides (3d: 8 slices, 64 pixels)
    halo = (1, 64, 64) if route == "2d" else (16, 128, 128)
    block = tuple(b + h for b, h in zip(block, halo))
    src = work / f"one_block_{route}.zarr"
    files.write(src, _mirror_tile(raw, block), voxel_size=res)
    model = MODELS[route]
    linker = MODELS["linker"] if route == "2d" else None
    code = f"""
import torch
torch.set_num_threads(1)
from neuroseg.segment.blockwise import max_rss_mb, segment_blockwise
segment_blockwise({str(src)!r}, {str(work / f"one_block_{route}_out.zarr")!r}, route={route!r},
                  model={model!r}, linker={linker!r}, block={tuple(block)!r},
                  scheduler="inline", progress=False, **{_speed(precision)!r})
print("PEAK", max_rss_mb())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return float(done.stdout.split("PEAK")[-1].strip())


def scaling(raw, res, work: Path, *, runs: list, log: list, precision: str) -> pd.DataFrame:
    from neuroseg.data import files
    from neuroseg.segment.blockwise import segment_blockwise

    rows = []
    for route, workers, shape, block in runs:
        src = work / f"raw_{'x'.join(map(str, shape))}.zarr"
        if not src.exists():
            files.write(src, _mirror_tile(raw, shape), voxel_size=res)
            for old in work.glob("raw_*.zarr"):  # one input on disk at a time (a Gvoxel is big)
                if old != src:
                    shutil.rmtree(old)
        out = work / f"scaling_{route}_{workers}_{src.stem}.zarr"
        before = _load()
        result = segment_blockwise(
            src, out, route=route, model=MODELS[route],
            linker=MODELS["linker"] if route == "2d" else None, block=block,
            workers=workers, threads=1, progress=True, **_speed(precision))
        shutil.rmtree(out)
        after = _load()
        mvox = float(np.prod(shape)) / 1e6
        seconds = result.seconds - result.startup_seconds  # without starting the cluster
        rows.append({"route": route, "workers": workers, "megavoxels": round(mvox, 3),
                     "block": "x".join(map(str, block)), "seconds": round(seconds, 2),
                     "mvox_per_s": round(mvox / seconds, 4),
                     "peak_mb_per_worker": round(result.peak_mb_per_worker or float("nan"), 1),
                     "precision": _speed(precision)["precision"] + (", channels-last" if
                                                                    precision != "fp32" else "")})
        log.append({"what": f"scaling {route} workers={workers} shape={shape}",
                    "seconds": result.seconds, "cluster_startup_seconds": result.startup_seconds,
                    "load_before": before, "load_after": after,
                    "blocks": result.n_blocks, "objects": result.n_objects})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def projection(table: pd.DataFrame) -> pd.DataFrame:
    """Core-hours for 1 mm^3 at 4 x 4 x 30 nm from the one-worker (one core) throughput."""
    rows = []
    for route, part in table[table["workers"] == 1].groupby("route"):
        rate = float(part["mvox_per_s"].median())  # Mvox per second on one core
        core_hours = VOXELS_MM3 / (rate * 1e6) / 3600.0
        rows.append({"route": route, "voxels": f"{VOXELS_MM3:.3e}", "mvox_per_core_s": rate,
                     "core_hours": round(core_hours), "gpu_hours_projection":
                     round(core_hours / GPU_CORE_EQUIVALENT),
                     "basis": f"1 worker = 1 core measured here; GPU = {GPU_CORE_EQUIVALENT:g} "
                              "cores ASSUMED (projection, no GPU measured)"})
    return pd.DataFrame(rows)


def section_md(cons: pd.DataFrame, table: pd.DataFrame, proj: pd.DataFrame, sidecar: dict) -> str:
    """``reports/blockwise.md``: the results page's section, every number from the tables."""
    from neuroseg.report.results import md_table

    models = sidecar["models"]
    names = ", ".join(f"`{n}` ({m['architecture']['ndim']}D, depth {m['architecture']['depth']}, "
                      f"{m['architecture']['base_features']} base features, {m['parameters']:,} "
                      "parameters)" for n, m in models.items())
    md = ["## Volumes larger than memory: both routes blockwise on Dask", "",
          f"Made by `make blockwise-study` (`benchmarks/blockwise_study.py`, outside `make "
          f"reproduce`; {sidecar['wall_seconds'] / 60:.0f} min) on: {sidecar['machine_text']}. "
          f"Shipped models {names}, run in {sidecar['precision_text']}.", "",
          "**Blockwise against the whole volume** (FIB-25 test part, "
          f"{' x '.join(map(str, sidecar['volume']['shape']))} voxels at 40 x 10 x 10 nm; the "
          "whole volume run at the same precision). `equal`: the same labels up to renumbering; "
          "the last columns score each against the ground truth (VOI split + merge):", ""]
    cols = ["route", "blocking", "block", "voi_split", "voi_merge", "arand", "equal",
            "voi_whole_vs_truth", "voi_blockwise_vs_truth"]
    md += [md_table(cons[cols]), ""]
    md += ["**Throughput and memory** (the FIB-25 test part tiled by mirroring: fine for "
           "timing, not for accuracy; seconds without starting the cluster; one thread per "
           "worker; load averages before and after each run in `metrics/blockwise_scaling.json`):",
           ""]
    md += [md_table(table), ""]
    for route, part in table.groupby("route"):
        one = part[part["workers"] == 1]
        two = part[(part["workers"] == 2) & part["megavoxels"].isin(one["megavoxels"])]
        if len(one) and len(two):
            mv = float(one["megavoxels"].iloc[0])
            r = float(two[two["megavoxels"] == mv]["mvox_per_s"].iloc[0]) / float(one["mvox_per_s"].iloc[0])
            md.append(f"- {route}: two workers give {r:.2f}x the throughput of one on "
                      f"{mv:g} Mvoxels.")
    biggest = float(table["megavoxels"].max())
    if biggest < 500:
        md.append(f"- The largest volume run so far is {biggest:g} Mvoxels: the gigavoxel run "
                  "(`make blockwise-study` without `BLOCKWISE_ARGS=--no-gigavoxel`) is not in "
                  "these tables yet.")
    for route, mem in sidecar["memory"].items():
        md.append(f"- {route}: peak memory per worker {mem['peak_mb_per_worker'][0]:.0f} MB at "
                  f"{mem['megavoxels'][0]:g} Mvoxels and {mem['peak_mb_per_worker'][1]:.0f} MB "
                  f"at {mem['megavoxels'][1]:g} (x{mem['ratio_big_to_small']:.2f}); one block "
                  f"with its halo alone in a fresh process: "
                  f"{mem['one_block_with_halo_process_peak_mb']:.0f} MB (the larger volume's "
                  f"peak is x{mem['ratio_big_to_one_block']:.2f} of it).")
    md.append("- A volume of a few blocks has only border blocks, which read less halo than an "
              "inner one; the reference is an inner block with its full halo, segmented alone.")
    md += ["", "**What 1 mm³ at 4 x 4 x 30 nm would take** at the one-worker rate measured "
           f"here (one core). The GPU column is a **projection** that assumes one GPU does the "
           f"work of {GPU_CORE_EQUIVALENT:g} cores: no GPU has been measured.", ""]
    md += [md_table(proj.drop(columns=["basis"])), ""]
    return "\n".join(md)


def write_page(reports: Path, cons, table, proj, sidecar: dict) -> None:
    """``reports/blockwise.md`` from the tables (atomically)."""
    from neuroseg.io import atomic_path

    with atomic_path(reports / "blockwise.md") as target:
        Path(target).write_text(section_md(cons, table, proj, sidecar) + "\n", encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--consistency-only", action="store_true",
                        help="only blockwise against whole (blockwise_consistency.csv), minutes")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16",
                        help="the networks' arithmetic (bf16 with channels-last by default)")
    parser.add_argument("--no-gigavoxel", action="store_true",
                        help="leave out the 2D run near a gigavoxel (about 40 min here)")
    args = parser.parse_args(argv)
    import torch

    from neuroseg.data.em_volumes import load_volumes

    torch.set_num_threads(2)
    # the committed reports (the --small check writes to a temporary folder)
    reports = Path(tempfile.mkdtemp()) if args.small else paths.reports_dir("full")
    metrics = reports / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    print(f"results to {reports}", flush=True)
    vol = load_volumes(profile="quick")["fib25_test"].subsampled(40.0)
    raw, gt, res = vol.raw, vol.gt, vol.resolution
    models = _models()
    log: list = []
    started = time.time()
    prec = args.precision
    with tempfile.TemporaryDirectory(prefix="blockwise_study_") as tmp:
        work = Path(tmp)
        if args.small:
            raw, gt = raw[:8, :64, :64], gt[:8, :64, :64]
            cons_blocks = {"z": (4, 64, 64), "zyx": (4, 32, 32)}
            runs = [("2d", 1, (8, 64, 64), (4, 64, 64)), ("2d", 2, (8, 64, 64), (4, 64, 64)),
                    ("2d", 2, (16, 128, 64), (4, 64, 64)), ("3d", 1, (8, 64, 64), (4, 64, 64)),
                    ("3d", 2, (16, 128, 64), (4, 64, 64))]
        else:
            z, y, x = raw.shape  # 63 x 250 x 125 at 40 x 10 x 10 nm
            cons_blocks = {"z": (16, y, x), "zyx": (16, 128, 64)}
            b2, b3 = (32, 256, 256), (32, 256, 256)
            # 1 and 2 workers on one volume; sizes 8x apart for memory
            runs = [("2d", 1, (64, 512, 512), b2), ("2d", 2, (64, 512, 512), b2),
                    ("2d", 2, (64, 256, 256), b2), ("2d", 2, (128, 512, 512), b2),
                    ("3d", 1, (64, 512, 256), b3), ("3d", 2, (64, 512, 256), b3),
                    ("3d", 2, (32, 256, 256), b3), ("3d", 2, (64, 512, 512), b3)]
        cons = consistency(raw, gt, res, models, work, blocks=cons_blocks, log=log, precision=prec)
        write_csv(cons, metrics / "blockwise_consistency.csv")
        if args.consistency_only:
            print(cons.to_string())
            side = metrics / "blockwise_scaling.json"
            if side.exists() and not args.small:  # the page, with the throughput of the last run
                write_page(reports, cons, pd.read_csv(metrics / "blockwise_scaling.csv"),
                           pd.read_csv(metrics / "blockwise_projection.csv"),
                           json.loads(side.read_text()))
            return
        table = scaling(raw, res, work, runs=runs, log=log, precision=prec)
        one_block = {route: one_block_peak_mb(route, raw, res, block, work, precision=prec)
                     for route, block in {r[0]: r[3] for r in runs}.items()}
        context = {"prec": prec, "raw": raw, "started": started, "small": bool(args.small),
                   "one_block": one_block, "log": log}
        write_results(reports, cons, table, **context)  # kept if the gigavoxel run is cut short
        if not (args.small or args.no_gigavoxel):
            table = pd.concat([table, scaling(raw, res, work, runs=[("2d", 2, *GIGAVOXEL)],
                                              log=log, precision=prec)], ignore_index=True)
            write_results(reports, cons, table, **context)


def write_results(reports: Path, cons: pd.DataFrame, table: pd.DataFrame, *, prec: str, raw,
                  started: float, small: bool, one_block: dict, log: list) -> None:
    """The scaling and projection tables, the JSON sidecar and ``blockwise.md``."""
    from neuroseg.io import atomic_path
    from neuroseg.machine import describe
    from neuroseg.report.results import machine_description
    from neuroseg.segment.blockwise import max_rss_mb

    metrics = reports / "metrics"
    write_csv(table, metrics / "blockwise_scaling.csv")
    proj = projection(table)
    write_csv(proj, metrics / "blockwise_projection.csv")
    memory = {}
    for route, part in table[table["workers"] == 2].groupby("route"):
        part = part[part["block"] == part["block"].iloc[0]].sort_values("megavoxels")
        small_run, big = part.iloc[0], part.iloc[-1]
        memory[route] = {"megavoxels": [small_run["megavoxels"], big["megavoxels"]],
                         "peak_mb_per_worker": [small_run["peak_mb_per_worker"],
                                                big["peak_mb_per_worker"]],
                         "one_block_with_halo_process_peak_mb": one_block[route],
                         "ratio_big_to_one_block": big["peak_mb_per_worker"] / one_block[route],
                         "ratio_big_to_small": big["peak_mb_per_worker"] / small_run["peak_mb_per_worker"]}
    sidecar = {
        "machine": describe("cpu"), "machine_text": machine_description(),
        "driver_peak_mb": max_rss_mb(), "precision": _speed(prec),
        "precision_text": "bf16 with channels-last" if prec != "fp32" else "float32",
        "seconds_note": "scaling seconds exclude starting the LocalCluster (recorded per run); "
                        "they include reading the input, every block, the joins, resolving "
                        "them and the relabel pass",
        "models": _describe_models(),
        "volume": {"source": "FIB-25 test part (fib25_neuroproof_training_sample2), every 4th "
                             "slice: 40 x 10 x 10 nm", "shape": list(raw.shape),
                   "tiling": "larger volumes are this part tiled by mirroring (fine for timing "
                             "and memory, not for accuracy)"},
        "timings": log, "memory": memory, "small_check": small,
        "gpu_core_equivalent_assumed": GPU_CORE_EQUIVALENT,
        "wall_seconds": time.time() - started,
        "workers_note": "LocalCluster of 1 or 2 worker processes, 1 thread each; the load "
                        "averages before and after each run say whether the machine was idle",
    }
    with atomic_path(metrics / "blockwise_scaling.json") as target:
        Path(target).write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    write_page(reports, cons, table, proj, sidecar)
    print(json.dumps(memory, indent=2))
    print(proj.to_string(), flush=True)


if __name__ == "__main__":
    main()
