"""How much of the fair fight's result is the seed? (issues #24, #29)

The front's winners (chosen on validation by ``45_front_2d_vs_3d``: the 2D setting at 40 nm with
its learned linker, the 3D setting at each z spacing) are trained again from scratch with other
seeds, at the front's budget and options, and scored on the test volumes with the
post-processing the front chose (:func:`neuroseg.experiments.front_2d_vs_3d.seed_rows`).
Writes ``reports[/<profile>]/metrics/45_front_2d_vs_3d_<device>_seed_runs.csv`` (one row per
seed, route, z spacing and test volume) and ``45_front_2d_vs_3d_seeds.csv`` (the spread of each
test score over the front's own seed and these, :mod:`neuroseg.measure.seeds`; the results page
reads it). Its own make target, ``make front-seeds SEEDS="1 2"``, outside ``make reproduce``
(issue #29 allows the extra seeds there): on 2 cores four networks per seed at the budget
(4 x 300 s in the full profile) plus calibration and scoring, about 25 minutes a seed.
"""

from __future__ import annotations

import argparse

import pandas as pd

from neuroseg import io, machine, paths
from neuroseg.data import em_volumes
from neuroseg.experiments import front_2d_vs_3d as front
from neuroseg.measure.timing import device_label
from neuroseg.nets import train
from neuroseg.nets.speed import Speed
from neuroseg.pipeline import notebook_parameters
from neuroseg.report.verify import write_step_spread

STEP = "45_front_2d_vs_3d"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(paths.PROFILES), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    profile = paths.current_profile(args.profile)
    params = notebook_parameters(STEP, profile)
    own = int(params["seed"])
    if own in args.seeds:
        parser.error(f"seed {own} is the front's own run; give other seeds")
    train.seed_everything(own, threads=int(params["threads"]))
    tag = device_label()
    metrics = paths.metrics_dir(profile)
    choices = pd.read_csv(metrics / f"{STEP}_{tag}_choices.csv")
    table = pd.read_csv(metrics / f"{STEP}_{tag}.csv")
    volumes = em_volumes.load_volumes(max_slices=params.get("max_slices"), max_yx=params.get("max_yx"),
                                      profile=profile)
    rows = front.seed_rows(
        volumes, choices, seeds=args.seeds, settings_2d=params["settings_2d"],
        settings_3d=params["settings_3d"], folder=paths.models_dir(profile) / "front",
        budget=params["budget_s"], train_2d=params["train_2d"], train_3d=params["train_3d"],
        train_linker=params["train_linker"], test_volumes=params["test_volumes"],
        speed_2d=Speed(**params["speed_2d"]), speed_3d=Speed(**params["speed_3d"]),
        link_thresholds=params.get("link_thresholds"))
    io.write_metrics(STEP, rows, profile=profile, suffix=f"_{tag}_seed_runs")
    spread = front.seed_spread(STEP, table, rows, seed=own, machine=machine.one_line())
    write_step_spread(STEP, spread, profile=profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
