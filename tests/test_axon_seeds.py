"""The axon seed runs (benchmarks/axon_seeds.py) retrain exactly 50's reported setting."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from neuroseg.experiments.axon_myelin import AxonSetting

SPEC = importlib.util.spec_from_file_location(
    "axon_seeds", Path(__file__).resolve().parents[1] / "benchmarks" / "axon_seeds.py")
axon_seeds = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(axon_seeds)

PARAMS = {"epochs": 120, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0001, "loss": "ce+dice",
          "seed": 0, "precision": "bf16", "channels_last": True}


def _row(setting: AxonSetting) -> pd.Series:
    return pd.Series({"init": setting.init, "train_on": setting.train_on, "name": setting.name,
                      "setting": setting.key})


@pytest.mark.parametrize("features, init, train_on", [(32, "scratch", "train+val"), (None, "pretrained", "train"),
                                                      (None, "scratch", "train+val")])
def test_the_reported_setting_is_rebuilt_with_another_seed(features, init, train_on):
    reported = AxonSetting(init=init, epochs=120, batch_size=8, lr=0.001, weight_decay=0.0001,
                           loss="ce+dice", seed=0, precision="bf16", channels_last=True,
                           train_on=train_on, features=features)
    again = axon_seeds.reported_setting(_row(reported), PARAMS, seed=2)
    assert again.seed == 2 and again.features == features and again.train_on == train_on
    assert again.key == reported.key.replace("_s0_", "_s2_")


def test_a_table_from_other_parameters_is_refused():
    reported = AxonSetting(init="scratch", epochs=200, seed=0, precision="bf16", channels_last=True,
                           loss="ce+dice", train_on="train+val", features=32)
    with pytest.raises(ValueError, match="run 50_axon_myelin again"):
        axon_seeds.reported_setting(_row(reported), PARAMS, seed=1)
