"""How much of the axon/myelin headline is the seed? (issue #29)

The reported model of each modality of ``50_axon_myelin`` (the candidate chosen on validation,
refitted on training + validation images where 50 refits) is trained again with other seeds,
with exactly its options and epochs, and scored on the test images as 50 scores it. Writes
``reports[/<profile>]/metrics/50_axon_myelin_seeds.csv`` (:mod:`neuroseg.measure.seeds`: each
headline test number of ``50_axon_myelin.json`` over 50's own seed and these; the results page
and ``make verify`` read it). Its own make target, ``make axon-seeds SEEDS="1 2"``, outside
``make reproduce`` (issue #29 allows the extra seeds there): in the full profile one SEM seed
is one refit of the 32-feature network, about 20 minutes on 2 cores in bf16.

    python benchmarks/axon_seeds.py --profile full --seeds 1 2 [--modalities sem tem]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re

import pandas as pd

from neuroseg import machine, paths
from neuroseg.experiments import axon_myelin as am
from neuroseg.measure.seeds import spread_table
from neuroseg.nets import train
from neuroseg.pipeline import notebook_parameters
from neuroseg.report.verify import write_step_spread

STEP = "50_axon_myelin"
#: The per-modality headline numbers of a reported model that a seed run measures again.
SCORES = ("gratio_mad", "gratio_bias", "axon_diam_mad_um", "myelin_thickness_mad_um")


def reported_setting(row: pd.Series, params: dict, *, seed: int) -> am.AxonSetting:
    """The :class:`~neuroseg.experiments.axon_myelin.AxonSetting` of a row of 50's comparison
    table, with ``seed``; its key must be the row's (checked), so nothing is guessed."""
    width = re.search(r"-w(\d+)", str(row["name"]))
    setting = am.AxonSetting(
        init=str(row["init"]), epochs=int(params["epochs"]), batch_size=int(params["batch_size"]),
        lr=float(params["lr"]), weight_decay=float(params["weight_decay"]), loss=str(params["loss"]),
        seed=int(params["seed"]), precision=str(params.get("precision", "auto")),
        channels_last=bool(params.get("channels_last", False)), train_on=str(row["train_on"]),
        features=int(width.group(1)) if width else None,
    )
    if setting.key != str(row["setting"]):
        raise ValueError(f"{STEP}'s table names {row['setting']!r}, the parameters give {setting.key!r}: "
                         f"run {STEP} again with the current parameters first")
    return dataclasses.replace(setting, seed=int(seed))


def test_scores(model, samples, *, modality: str, tile: int) -> dict[str, float]:
    """The headline keys of one model on the test images (``<m>_dice_<class>`` and :data:`SCORES`)."""
    per_image, pairs, _ = am.evaluate(model, samples, tile=tile)
    row = {**am.comparison_row(per_image, pairs)}
    out = {f"{modality}_{k}": float(v) for k, v in row.items() if k.startswith("dice_")}
    out.update({f"{modality}_{k}": float(row[k]) for k in SCORES if k in row})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(paths.PROFILES), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modalities", nargs="+", default=["sem"], choices=list(am.DATASETS))
    args = parser.parse_args(argv)
    profile = paths.current_profile(args.profile)
    params = notebook_parameters(STEP, profile)
    own = int(params["seed"])
    if own in args.seeds:
        parser.error(f"seed {own} is {STEP}'s own run; give other seeds")
    train.seed_everything(own, threads=int(params["threads"]))
    metrics = paths.metrics_dir(profile)
    table = pd.read_csv(metrics / f"{STEP}_comparison.csv")
    headline = json.loads((metrics / f"{STEP}.json").read_text())
    by_seed: dict[int, dict[str, float]] = {own: {}}
    for m in args.modalities:
        final = table[(table["modality"] == m) & table["final"].astype(bool)]
        if final.empty:
            parser.error(f"{STEP}_comparison.csv has no reported {m} model: run {STEP} first")
        task = am.make_task(m, pixel_size_um=params["pixel_size_um"][m], crop=params["crop"][m],
                            samples_per_epoch=params["samples_per_epoch"], val_crops=params["val_crops"],
                            tile=params["tile"], elastic=params["elastic"],
                            scale_range=params.get("scale_range"), max_images=params.get("max_images"),
                            profile=profile)
        test = am.load_samples(m, "test", max_images=(params.get("max_images") or {}).get("test"),
                               profile=profile)
        for seed in args.seeds:
            setting = reported_setting(final.iloc[0], params, seed=seed)
            model, _ = am.train_setting(task, setting, progress=True)
            by_seed.setdefault(seed, {}).update(test_scores(model, test, modality=m, tile=params["tile"]))
        keys = sorted(by_seed[args.seeds[0]])
        by_seed[own].update({k: math.nan if headline.get(k) is None else float(headline[k]) for k in keys})
    runs = {s: {f"{STEP}:{k}": v for k, v in values.items()} for s, values in by_seed.items()}
    spread = spread_table(STEP, runs, machine=machine.one_line())
    write_step_spread(STEP, spread, profile=profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
