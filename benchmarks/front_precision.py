"""Does bf16 inference lower the fair fight's validation scores? (issue #24)

For the front's best 2D setting (at 40 nm) and best 3D setting at each z spacing, chosen on
validation by ``45_front_2d_vs_3d``, the network runs on the FIB-25 validation part in float32
and as the front ran it (bf16 autocast, channels-last), with the post-processing chosen there;
writes ``reports[/<profile>]/metrics/45_front_2d_vs_3d_<device>_precision.csv``.
``make front-precision`` runs it (after ``make 45_front_2d_vs_3d``); a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse

import pandas as pd

from neuroseg import io, paths
from neuroseg.data import em_volumes
from neuroseg.experiments import front_2d_vs_3d as front
from neuroseg.measure.timing import device_label
from neuroseg.nets import train
from neuroseg.nets.folder import load_model
from neuroseg.nets.speed import Speed
from neuroseg.pipeline import notebook_parameters

STEP = "45_front_2d_vs_3d"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(paths.PROFILES), default=None)
    args = parser.parse_args(argv)
    profile = paths.current_profile(args.profile)
    params = notebook_parameters(STEP, profile)
    train.seed_everything(int(params["seed"]), threads=int(params["threads"]))
    tag = device_label()
    choices = pd.read_csv(paths.metrics_dir(profile) / f"{STEP}_{tag}_choices.csv")
    val = em_volumes.load_volumes(max_slices=params.get("max_slices"), max_yx=params.get("max_yx"),
                                  profile=profile)["val"]
    folder = paths.models_dir(profile) / "front"
    tables = []
    for key, row in front.winners(choices).items():
        z = float(row["z_nm"])
        route = "2d" if key == "2d" else "3d"
        model = load_model(folder / (row["setting"] if route == "2d" else f"{row['setting']}_{z:g}nm"))
        run_as = Speed(**params[f"speed_{route}"])
        speeds = [Speed(batch_size=run_as.batch_size), run_as]
        table = front.precision_check(model, val, route=route, z_nm=z, postprocess=row["postprocess"],
                                      speeds=speeds)
        tables.append(table.assign(setting=row["setting"]))
        print(table.round(4).to_string(index=False))
    out = io.write_metrics(STEP, pd.concat(tables, ignore_index=True), profile=profile,
                           suffix=f"_{tag}_precision")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
