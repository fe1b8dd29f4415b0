"""The accuracy-speed front of ``45_front_2d_vs_3d`` (issue #24): both routes at their best.

Several settings of each route (network capacities; for the 2D route also its segmenter,
in-plane affinities with a per-slice mutex watershed or a boundary map with a seeded
watershed), every network trained **from scratch for the same wall time** on the training
part of FIB-25, the 2D route's learned linker too (:func:`neuroseg.segment.front_routes.train_front_linker`).
At each z spacing each setting's post-processing is chosen on the validation part by CREMI
and time (the 3D route: connected components, voxel mutex watershed, or xy fragments then
waterz), the linker is calibrated on the 2D setting's own segments, and every setting runs end
to end on both test volumes, stage by stage, timed as ``40_timing_2d_vs_3d`` times the routes
(:func:`neuroseg.measure.timing.benchmark`: warm-up, median of repeats, CUDA synchronised).

:func:`build_front` returns the table (:data:`neuroseg.measure.front.COLUMNS` first);
:func:`front_verdict_record` is the verdict computed from it
(:func:`neuroseg.measure.front.verdict`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from neuroseg.nets.speed import Speed, accelerate
from neuroseg.nets.train import default_device
from neuroseg.segment.volume_3d import predict_affinities

__all__ = ["POSTPROCESS_KEYS", "SPEED_2D", "SPEED_3D", "build_front", "chosen_postprocess",
           "front_verdict_record", "precision_check", "seed_rows", "seed_spread", "winners"]

#: How the networks run in the front unless told otherwise: bf16 autocast, channels-last.
SPEED_2D = Speed(precision="bf16", channels_last=True, batch_size=8)
SPEED_3D = Speed(precision="bf16", channels_last=True, batch_size=1)


def _per_z(mapping: dict, z: float):
    """``mapping``'s value for the z spacing ``z``, its keys numbers or their text (as
    parameters injected by papermill have them)."""
    for key, value in mapping.items():
        if float(key) == float(z):
            return value
    raise KeyError(f"no value for {z:g} nm among {list(mapping)}")


def _front_row(setting, *, z_nm, volume, gt, labels, seconds: dict, cost: dict, post: dict,
               megavoxels: float, linker_cost: dict | None = None) -> dict:
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.segment.front_routes import setting_record

    total = float(sum(seconds.values()))
    return {**setting_record(setting), "z_nm": float(z_nm), "volume": volume,
            **segmentation_scores(gt, labels), "s_per_mvox": total / megavoxels,
            "train_seconds": cost["train_seconds"], "train_flops": cost["train_flops"],
            "epochs": cost["epochs"], "init_kept": cost.get("init", "scratch"),
            "seconds": total, "megavoxels": megavoxels,
            "postprocess": ", ".join(f"{k}={v}" for k, v in post.items()),
            "linker_train_seconds": None if linker_cost is None else linker_cost["train_seconds"],
            "linker_train_flops": None if linker_cost is None else linker_cost["train_flops"],
            **{f"{k}_s_per_mvox": v / megavoxels for k, v in seconds.items()}}


def build_front(
    volumes: dict,
    *,
    settings_2d: Sequence[dict],
    settings_3d: Sequence[dict],
    linker,
    linker_cost: dict | None = None,
    z_nms: Sequence[float],
    folder,
    budget: float | None,
    train_2d: dict,
    train_3d: dict,
    candidates_2d: dict,
    candidates_3d: Sequence[dict],
    test_volumes: Sequence[str] = ("fib25_test", "gala"),
    warmup: int = 1,
    repeats: int = 3,
    speed_2d: Speed = SPEED_2D,
    speed_3d: Speed = SPEED_3D,
    tolerance: float = 0.01,
    link_thresholds: Sequence[float] | None = None,
    pretrained=None,
    device: str | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The accuracy-speed front of both routes (issue #24).

    Every setting (:class:`neuroseg.segment.front_routes.RouteSetting` fields; the 2D ones name
    a ``segmenter``, ``"affinities"`` or ``"boundaries"``) is trained from scratch on the
    training part for ``budget`` seconds of wall time (``train_2d`` / ``train_3d``: the
    options of :func:`neuroseg.segment.front_routes.train_setting`; ``train_3d["crop"]`` and
    ``["tile"]`` are mappings from z spacing to shape), into ``folder/<setting>`` (3D:
    ``folder/<setting>_<z>nm``, one network per z spacing). At each z spacing its
    post-processing is chosen on the validation part by CREMI and time (``candidates_2d``
    per segmenter, ``candidates_3d``; ``tolerance`` of :func:`neuroseg.segment.choose.pick`),
    the learned ``linker`` (:func:`neuroseg.segment.front_routes.train_front_linker`; its
    ``linker_cost`` goes into the 2D rows' ``linker_train_*`` columns) is calibrated on the 2D
    setting's own segments (its threshold among ``link_thresholds``, default
    :data:`neuroseg.linking.calibration.THRESHOLDS`), and the route is run end to end on every
    test volume, stage by stage with
    :func:`neuroseg.measure.timing.benchmark` (``warmup``, median of ``repeats``), the
    networks as ``speed_2d`` / ``speed_3d`` say. A setting with ``init`` ``"pretrained"`` or
    ``"better"`` (both trained, the lower validation loss kept: ``init_kept``) starts from
    ``pretrained``, a 2D EM network of the setting's depth and base features. For a 3D setting
    without ``pretrained``, that is this front's 2D affinities network of the same depth and
    base features, trained first, inflated to 3D kernels
    (:func:`neuroseg.segment.front_routes.inflate_2d_to_3d`; its head, other offsets, starts
    fresh); its training time is not counted in the 3D setting's budget, as no pretraining is.

    Returns
    -------
    table : DataFrame
        :data:`neuroseg.measure.front.COLUMNS`, then the setting's fields, ``epochs``,
        ``postprocess``, ``linker_train_seconds`` and ``linker_train_flops`` (2D rows), ``seconds``,
        ``megavoxels`` and each stage's seconds per megavoxel.
    choices : DataFrame
        Every candidate post-processing tried on validation, per setting and z spacing.
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from neuroseg.linking.learned import accelerated
    from neuroseg.measure.front import COLUMNS, check_front_table
    from neuroseg.segment import front_routes as fr
    from neuroseg.segment.choose import choose_agglomeration

    folder = Path(folder)
    device = device or str(default_device())
    rows, choices = [], []
    tests = [volumes[v] for v in test_volumes]
    starts_3d = {}  # (depth, base features) -> the 2D affinities network a 3D setting may start from
    for spec in tqdm(settings_2d, desc="2D settings"):
        s = fr.RouteSetting.of(spec, route="2d")
        model, cost = fr.train_setting(s, volumes, folder=folder / s.name, budget=budget,
                                       pretrained=pretrained, seed=seed, **train_2d)
        if s.segmenter == "affinities":
            starts_3d[(int(s.depth), int(s.base_features))] = model
        net = accelerate(model, speed_2d, device=device)
        for z in z_nms:
            post, table = fr.choose_2d_postprocess(model, volumes["val"], z_nm=float(z),
                                                   candidates=candidates_2d[s.segmenter],
                                                   tolerance=tolerance, device=device)
            choices.append(table.assign(route="2d", setting=s.name))
            lk, _ = fr.calibrate_for(linker, model, volumes, z_nm=float(z), postprocess=post,
                                     thresholds=link_thresholds, seed=seed, device=device)
            for vol in tests:
                sub = vol.subsampled(float(z))
                lk_fast = accelerated(lk.calibrated_for(sub.resolution, segments="predicted"),
                                      speed_2d, device=device)
                stages = fr.stages_2d(net, lk_fast, resolution=sub.resolution, postprocess=post,
                                      batch_size=speed_2d.batch_size, device=device)
                labels, seconds = fr.run_stages(stages, sub.raw, warmup=warmup, repeats=repeats,
                                                device=device, precision=speed_2d.precision)
                rows.append(_front_row(s, z_nm=z, volume=vol.name, gt=sub.gt, labels=labels,
                                       seconds=seconds, cost=cost, post=post,
                                       megavoxels=sub.raw.size / 1e6, linker_cost=linker_cost))
    for spec in tqdm(settings_3d, desc="3D settings"):
        s = fr.RouteSetting.of(spec, route="3d")
        start = pretrained
        if s.init != "scratch" and start is None:
            start = starts_3d.get((int(s.depth), int(s.base_features)))
            if start is None:
                raise ValueError(
                    f"3D setting {s.name!r} (init {s.init!r}) starts from the 2D affinities network of "
                    f"depth {s.depth} and {s.base_features} base features: add that 2D setting, "
                    "pass pretrained=, or use init 'scratch'")
        for z in z_nms:
            options = {**train_3d, "crop": _per_z(train_3d["crop"], z), "tile": _per_z(train_3d["tile"], z)}
            model, cost = fr.train_setting(s, volumes, folder=folder / f"{s.name}_{float(z):g}nm",
                                           budget=budget, z_nm=float(z), pretrained=start,
                                           seed=seed, **options)
            net = accelerate(model, speed_3d, device=device)
            val = volumes["val"]
            step = int(round(float(z) / val.resolution[0]))
            prepared = [(predict_affinities(net, p.raw, batch_size=speed_3d.batch_size), p.gt, p.resolution)
                        for p in (val.subsampled(float(z), offset=o) for o in range(step))]
            post, table = choose_agglomeration(prepared, candidates_3d, offsets=model.meta["offsets"],
                                               tolerance=tolerance)
            choices.append(table.assign(route="3d", setting=s.name, z_nm=float(z)))
            for vol in tests:
                sub = vol.subsampled(float(z))
                stages = fr.stages_3d(net, postprocess=post, batch_size=speed_3d.batch_size)
                labels, seconds = fr.run_stages(stages, sub.raw, warmup=warmup, repeats=repeats,
                                                device=device, precision=speed_3d.precision)
                rows.append(_front_row(s, z_nm=z, volume=vol.name, gt=sub.gt, labels=labels,
                                       seconds=seconds, cost=cost, post=post,
                                       megavoxels=sub.raw.size / 1e6))
    table = pd.DataFrame(rows)
    check_front_table(table)
    rest = [c for c in table.columns if c not in COLUMNS]
    return table[[*COLUMNS, *rest]], pd.concat(choices, ignore_index=True)


def front_verdict_record(table: pd.DataFrame, *, budget: float | None, device: str) -> dict:
    """The flat record of ``45_front_2d_vs_3d_<device>_verdict.json``: the budget, how "at
    equal time" is defined, then per test volume and z spacing every field of
    :func:`neuroseg.measure.front.verdict` (``<volume>_<z>nm_<field>``)."""
    from neuroseg.measure.front import verdict

    out = {"device": device, "train_budget_s": budget, "within": 0.05, "speedup_target": 3.0,
           "equal_time": "the best 2D CREMI among the 2D settings whose end-to-end s/Mvox is at "
                         "most the best 3D setting's",
           "settings_2d": int(table.loc[table["route"] == "2d", "setting"].nunique()),
           "settings_3d": int(table.loc[table["route"] == "3d", "setting"].nunique())}
    for rec in verdict(table):
        key = f"{rec['volume']}_{rec['z_nm']:g}nm"
        out.update({f"{key}_{k}": v for k, v in rec.items() if k not in ("volume", "z_nm")})
    return out


#: The post-processing options of each route, as columns of the choices table.
POSTPROCESS_KEYS = {"2d": ("threshold", "min_size"), "3d": ("method", "threshold", "min_size")}


def chosen_postprocess(row) -> dict:
    """The post-processing options of one row of the choices table (its route's
    :data:`POSTPROCESS_KEYS` that the row fills), typed as the segmenters take them.

    Examples
    --------
    >>> chosen_postprocess({"route": "3d", "method": "mws", "threshold": 0.5, "min_size": float("nan")})
    {'method': 'mws', 'threshold': 0.5}
    """
    out = {}
    for k in POSTPROCESS_KEYS[row["route"]]:
        v = row.get(k)
        if v is None or (isinstance(v, float) and v != v):  # missing or NaN
            continue
        out[k] = int(v) if k == "min_size" else v if k == "method" else float(v)
    return out


def winners(choices: pd.DataFrame, *, z_2d: float = 40.0) -> dict:
    """The front's best settings by validation, from its choices table (the post-processing
    each setting chose there): ``"2d"``, the 2D setting with the lowest validation CREMI at
    ``z_2d`` nm, and ``"3d_<z>nm"``, the 3D setting with the lowest at each z spacing; each a
    row of the table as a dict (``setting``, ``z_nm``, ``cremi``...) with its
    ``postprocess`` (:func:`chosen_postprocess`)."""
    t = choices[choices["chosen"].astype(bool)]
    out = {}
    d2 = t[(t["route"] == "2d") & (t["z_nm"] == float(z_2d))].sort_values("cremi", kind="stable")
    if len(d2):
        out["2d"] = d2.iloc[0].to_dict()
    for z, g in t[t["route"] == "3d"].groupby("z_nm"):
        out[f"3d_{float(z):g}nm"] = g.sort_values("cremi", kind="stable").iloc[0].to_dict()
    return {k: {**row, "postprocess": chosen_postprocess(row)} for k, row in out.items()}


def precision_check(model, val_volume, *, route: str, z_nm: float, postprocess: dict,
                    speeds: Sequence[Speed], device: str | None = None) -> pd.DataFrame:
    """Does running the network as each of ``speeds`` (e.g. fp32 against bf16 + channels-last)
    change the validation score? The route (2D: the network's 2D segments scored against the
    true 2D pieces, as the post-processing was chosen; 3D: the route's segments against the
    truth) on ``val_volume`` at ``z_nm`` (first z offset), once per speed: CREMI, VOI, ARAND
    and seconds per megavoxel of the network stage."""
    from neuroseg.data.labels import connected_components_per_slice
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.segment import front_routes as fr

    device = device or str(default_device())
    sub = val_volume.subsampled(float(z_nm))
    rows = []
    for speed in speeds:
        net = accelerate(model, speed, device=device)
        if route == "2d":
            stages = fr.stages_2d(net, None, resolution=sub.resolution, postprocess=postprocess,
                                  batch_size=speed.batch_size, device=device)
            truth = connected_components_per_slice(sub.gt)
        else:
            stages = fr.stages_3d(net, postprocess=postprocess, batch_size=speed.batch_size)
            truth = sub.gt
        labels, seconds = fr.run_stages(stages, sub.raw, warmup=1, repeats=1, device=device,
                                        precision=speed.precision)
        first = next(iter(seconds))
        rows.append({"route": route, "z_nm": float(z_nm), "speed": speed.label,
                     **segmentation_scores(truth, labels),
                     "network_s_per_mvox": seconds[first] / (sub.raw.size / 1e6)})
    return pd.DataFrame(rows)


def seed_rows(
    volumes: dict,
    choices: pd.DataFrame,
    *,
    seeds: Sequence[int],
    settings_2d: Sequence[dict],
    settings_3d: Sequence[dict],
    folder,
    budget: float | None,
    train_2d: dict,
    train_3d: dict,
    train_linker: dict,
    test_volumes: Sequence[str] = ("fib25_test", "gala"),
    speed_2d: Speed = SPEED_2D,
    speed_3d: Speed = SPEED_3D,
    link_thresholds: Sequence[float] | None = None,
    device: str | None = None,
) -> pd.DataFrame:
    """The front's winners (:func:`winners`: the 2D setting at 40 nm with its linker, the 3D
    setting at each z spacing) trained again from scratch with each of ``seeds`` at the same
    budget and options as the front (into ``folder/seeds/<network>_s<seed>``; a finished run is
    not trained again), each with the post-processing the front chose for it on validation;
    the 2D route's linker is trained with the same seed and calibrated on that network's own
    segments. Every winner is scored on the test volumes at its z spacing (the 2D route at
    every z of the 3D winners). Returns one row per seed, route, z spacing and test volume:
    ``route, setting, z_nm, volume, seed``, CREMI, VOI split and merge, ARAND. Timing is not
    repeated (it does not depend on the seed)."""
    from pathlib import Path

    from neuroseg.linking.learned import accelerated
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.segment import front_routes as fr

    front_folder = Path(folder)
    folder = front_folder / "seeds"
    device = device or str(default_device())
    best = winners(choices)
    if "2d" not in best:
        raise ValueError("the choices table has no chosen 2D setting: run 45_front_2d_vs_3d first")
    by_name = {fr.RouteSetting.of(spec, route=r).name: (spec, r)
               for r, specs in (("2d", settings_2d), ("3d", settings_3d)) for spec in specs}
    zs = sorted({float(row["z_nm"]) for k, row in best.items() if k.startswith("3d_")}) or [40.0]
    rows = []
    for seed in seeds:
        seed = int(seed)
        w2 = best["2d"]
        spec, route = by_name[w2["setting"]]
        s2 = fr.RouteSetting.of(spec, route=route)
        net2, _ = fr.train_setting(s2, volumes, folder=folder / f"{s2.name}_s{seed}", budget=budget,
                                   seed=seed, **train_2d)
        linker, _ = fr.train_front_linker(volumes, folder=folder / f"linker_s{seed}", budget=budget,
                                          seed=seed, **train_linker)
        fast2 = accelerate(net2, speed_2d, device=device)
        for z in zs:
            lk, _ = fr.calibrate_for(linker, net2, volumes, z_nm=z, postprocess=w2["postprocess"],
                                     thresholds=link_thresholds, seed=seed, device=device)
            for name in test_volumes:
                sub = volumes[name].subsampled(z)
                lk_fast = accelerated(lk.calibrated_for(sub.resolution, segments="predicted"),
                                      speed_2d, device=device)
                stages = fr.stages_2d(fast2, lk_fast, resolution=sub.resolution,
                                      postprocess=w2["postprocess"], batch_size=speed_2d.batch_size,
                                      device=device)
                labels, _ = fr.run_stages(stages, sub.raw, warmup=0, repeats=1, device=device,
                                          precision=speed_2d.precision)
                rows.append({"route": "2d", "setting": s2.name, "z_nm": z, "volume": name,
                             "seed": seed, **segmentation_scores(sub.gt, labels)})
        for key, w3 in best.items():
            if not key.startswith("3d_"):
                continue
            z = float(w3["z_nm"])
            spec, route = by_name[w3["setting"]]
            s3 = fr.RouteSetting.of(spec, route=route)
            options = {**train_3d, "crop": _per_z(train_3d["crop"], z), "tile": _per_z(train_3d["tile"], z)}
            net3, _ = fr.train_setting(s3, volumes, folder=folder / f"{s3.name}_{z:g}nm_s{seed}",
                                       budget=budget, z_nm=z, seed=seed,
                                       pretrained=_start_3d(front_folder, s3), **options)
            fast3 = accelerate(net3, speed_3d, device=device)
            for name in test_volumes:
                sub = volumes[name].subsampled(z)
                stages = fr.stages_3d(fast3, postprocess=w3["postprocess"], batch_size=speed_3d.batch_size)
                labels, _ = fr.run_stages(stages, sub.raw, warmup=0, repeats=1, device=device,
                                          precision=speed_3d.precision)
                rows.append({"route": "3d", "setting": s3.name, "z_nm": z, "volume": name,
                             "seed": seed, **segmentation_scores(sub.gt, labels)})
    return pd.DataFrame(rows)


def _start_3d(front_folder, setting):
    """The 2D affinities network a 3D ``setting`` of the front started from (``None`` for
    ``init`` ``"scratch"``): the front's own one of the same depth and base features."""
    from pathlib import Path

    from neuroseg.nets.folder import load_model
    from neuroseg.segment.front_routes import RouteSetting

    if setting.init == "scratch":
        return None
    source = RouteSetting("2d", base_features=setting.base_features, depth=setting.depth,
                          segmenter="affinities")
    path = Path(front_folder) / source.name
    if not (path / "weights.pt").exists():
        raise FileNotFoundError(f"{path}: the 2D network {setting.name!r} starts from is not trained; "
                                "run 45_front_2d_vs_3d first")
    return load_model(path)


def seed_spread(step: str, front_table: pd.DataFrame, rows: pd.DataFrame, *, seed: int = 0,
                machine: str = "") -> pd.DataFrame:
    """The spread over seeds of each winner's test scores, in the table of
    :mod:`neuroseg.measure.seeds`: the front's own run (``seed``, from ``front_table``) first,
    then :func:`seed_rows`' seeds. ``metric`` is
    ``<step>:<route>_<setting>_<volume>_<z>nm_<score>``."""
    from neuroseg.measure.seeds import spread_table

    scores = ("cremi", "voi_split", "voi_merge", "arand")
    keys = rows[["route", "setting", "z_nm", "volume"]].drop_duplicates()
    runs: dict[int, dict[str, float]] = {}
    for k in keys.itertuples(index=False):
        name = f"{step}:{k.route}_{k.setting}_{k.volume}_{float(k.z_nm):g}nm"
        own = front_table[(front_table["route"] == k.route) & (front_table["setting"] == k.setting)
                          & (front_table["z_nm"] == float(k.z_nm)) & (front_table["volume"] == k.volume)]
        if len(own) != 1:
            raise ValueError(f"the front table has {len(own)} rows for {name}, not 1")
        runs.setdefault(int(seed), {}).update({f"{name}_{m}": float(own.iloc[0][m]) for m in scores})
        mine = rows[(rows["route"] == k.route) & (rows["setting"] == k.setting)
                    & (rows["z_nm"] == float(k.z_nm)) & (rows["volume"] == k.volume)]
        for r in mine.itertuples(index=False):
            runs.setdefault(int(r.seed), {}).update({f"{name}_{m}": float(getattr(r, m)) for m in scores})
    return spread_table(step, runs, machine=machine)
