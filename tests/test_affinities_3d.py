"""Tests of neuroseg.experiments.affinities_3d: the 3D affinity experiment on tiny synthetic volumes.

Four 8 x 24 x 24 volumes at 10 nm (train, val and two test volumes) with dense IDs from a
seeded watershed and boundaries dark in the raw; networks of depth 2 with 2 base features,
trained for one epoch of two crops at z spacings of 10 and 20 nm.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.segmentation import watershed  # noqa: E402

from neuroseg.data.em_volumes import EMVolume
from neuroseg.experiments.affinities_3d import (
    COLUMNS,
    affinity_figure,
    choose_postprocess,
    comparison_figure,
    error_map_figure,
    evaluate,
    headline,
    history_figure,
    model_folder,
    offsets_for,
    save_postprocess,
    segments_figure,
    setting_name,
    train_model,
)
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.nets.folder import load_model, read_model_meta

SHAPE = (8, 24, 24)
Z_NMS = (10.0, 20.0)
GRID = {"cc": [0.5, 0.9], "mws": [0.5]}
SETTINGS = ["cc@0.5", "cc@0.9", "mws@0.5"]
TRAIN = {"crop": (4, 16, 16), "tile": (4, 16, 16), "depth": 2, "base_features": 2, "epochs": 1,
         "samples_per_epoch": 2, "val_crops": 1, "batch_size": 2, "progress": False}
CHOICE_COLUMNS = ["z_nm", "method", "threshold", "min_size", "voi_split", "voi_merge", "arand",
                  "cremi", "s_per_mvox", "chosen", "best"]


def _volume(name: str, seed: int) -> EMVolume:
    """Dense IDs (a seeded watershed on the distance to random seeds), boundaries dark."""
    rng = np.random.default_rng(seed)
    markers = np.zeros(SHAPE, np.int32)
    markers.flat[rng.choice(int(np.prod(SHAPE)), 12, replace=False)] = np.arange(1, 13)
    gt = watershed(ndimage.distance_transform_edt(markers == 0), markers).astype(np.uint32)
    boundary = ndimage.morphological_gradient(gt.astype(np.int64), size=(1, 3, 3)) > 0
    raw = np.where(boundary, 0.15, 0.85) + rng.normal(0, 0.05, SHAPE)
    return EMVolume(name, raw.astype(np.float32), gt, (10.0, 10.0, 10.0), {"part": name})


@pytest.fixture(scope="module")
def volumes() -> dict[str, EMVolume]:
    return {
        "train": _volume("fib25_train", 0),
        "val": _volume("fib25_val", 1),
        "fib25_test": _volume("fib25_test", 2),
        "gala": _volume("gala", 3),
    }


@pytest.fixture(scope="module")
def trained(volumes, tmp_path_factory):
    """Per z spacing: the model, its history, seconds, folder, choice table and postprocess."""
    root = tmp_path_factory.mktemp("affinity_models")
    out = {}
    for z_nm in Z_NMS:
        folder = root / f"affinity_unet_{z_nm:g}nm"
        model, history, seconds = train_model(volumes, z_nm=z_nm, folder=folder, **TRAIN)
        choice = choose_postprocess(model, volumes, z_nm=z_nm, grid=GRID)
        post = save_postprocess(model, folder, choice)
        out[z_nm] = {"model": model, "history": history, "seconds": seconds, "folder": folder,
                     "choice": choice, "post": post}
    return out


@pytest.fixture(scope="module")
def evaluated(trained, volumes):
    models = {z: t["model"] for z, t in trained.items()}
    tests = [volumes["fib25_test"], volumes["gala"]]
    return evaluate(models, tests, grid=GRID, keep=[("gala", 20.0)])


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def test_offsets_for():
    assert offsets_for((40, 10, 10), long_range_nm=80) == [
        (-1, 0, 0), (0, -1, 0), (0, 0, -1), (-2, 0, 0), (0, -8, 0), (0, 0, -8)
    ]
    nearest = [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]
    assert offsets_for((40, 10, 10), long_range_nm=None) == nearest
    assert offsets_for((10, 10, 10), long_range_nm=None) == nearest
    assert offsets_for((10, 10, 10), long_range_nm=0) == nearest
    assert offsets_for((10, 10, 10), long_range_nm=40)[3:] == [(-4, 0, 0), (0, -4, 0), (0, 0, -4)]
    # at least 2 voxels, rounded to the nearest voxel count
    assert offsets_for((40, 10, 10), long_range_nm=10)[3:] == [(-2, 0, 0), (0, -2, 0), (0, 0, -2)]
    assert offsets_for((20, 10, 10), long_range_nm=70)[3] == (-4, 0, 0)  # 3.5 rounds to 4
    assert all(isinstance(o, tuple) for o in offsets_for((40, 10, 10), long_range_nm=80))


def test_setting_name():
    assert setting_name("cc", 0.5) == "cc@0.5"
    assert setting_name("mws", 0.25) == "mws@0.25"
    assert setting_name("cc", 1.0) == "cc@1"
    assert setting_name("mws", 0.9) == "mws@0.9"


def test_model_folder(outputs):
    assert model_folder(40.0) == outputs["artifacts"] / "full" / "models" / "affinity_unet_40nm"
    assert model_folder(10, "quick").name == "affinity_unet_10nm"
    assert model_folder(10, "quick").parent == outputs["artifacts"] / "quick" / "models"


# --------------------------------------------------------------------------------------------
# training and the choice of post-processing
# --------------------------------------------------------------------------------------------


def test_train_model(trained):
    for z_nm, t in trained.items():
        model = t["model"]
        resolution = (z_nm, 10.0, 10.0)
        assert model.meta["target"] == "affinities"
        assert model.meta["pixel_size"] == {"size": list(resolution), "unit": "nm"}
        assert model.meta["offsets"] == [
            list(o) for o in offsets_for(resolution, long_range_nm=80.0)
        ]
        assert model.meta["tile"] == [4, 16, 16] and model.meta["crop"] == [4, 16, 16]
        assert model.config["depth"] == 2 and model.config["base_features"] == 2
        expected_pool = [[2, 2, 2]] if z_nm == 10.0 else [[1, 2, 2]]
        assert model.config["pool_factors"] == expected_pool
        assert (t["folder"] / "config.json").exists() and (t["folder"] / "weights.pt").exists()
        assert len(t["history"]) == 1
        assert np.isfinite(t["history"]["train_loss"]).all()
        assert np.isfinite(t["history"]["val_loss"]).all()
        assert t["seconds"] > 0


def test_choose_postprocess(trained):
    for z_nm, t in trained.items():
        choice = t["choice"]
        assert list(choice.columns) == CHOICE_COLUMNS
        assert len(choice) == 3
        assert choice[["method", "threshold"]].values.tolist() == [
            ["cc", 0.5], ["cc", 0.9], ["mws", 0.5]
        ]
        assert (choice["z_nm"] == z_nm).all() and (choice["min_size"] == 0).all()
        assert np.isfinite(choice[["voi_split", "voi_merge", "arand", "cremi"]].to_numpy()).all()
        chosen = choice[choice["chosen"]]
        assert sorted(chosen["method"]) == ["cc", "mws"]  # one per method
        for method, g in choice.groupby("method"):
            assert chosen.set_index("method").loc[method, "cremi"] == g["cremi"].min()
        assert choice["best"].sum() == 1
        best = choice[choice["best"]].iloc[0]
        assert bool(best["chosen"])
        assert best["cremi"] == choice["cremi"].min()


def test_train_model_rerun_finds_the_finished_run(trained, volumes):
    t = trained[20.0]
    model, history, seconds = train_model(volumes, z_nm=20.0, folder=t["folder"], **TRAIN)
    assert history.equals(t["history"])
    assert seconds < t["seconds"]
    for a, b in zip(model.state_dict().values(), t["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert model.meta["postprocess"] == t["post"]  # the stored choice survives a re-run


def test_choose_postprocess_min_size(trained, volumes):
    choice = choose_postprocess(
        trained[20.0]["model"], volumes, z_nm=20.0, grid={"mws": [0.5]}, min_size=3
    )
    assert choice["min_size"].tolist() == [3]
    assert choice["chosen"].tolist() == [True] and choice["best"].tolist() == [True]


def test_choose_postprocess_ties_take_the_first(trained, volumes):
    model = trained[20.0]["model"]
    # thresholds at 1.0: every edge cut (an affinity is never above 1), all the same scores
    choice = choose_postprocess(model, volumes, z_nm=20.0, grid={"cc": [1.0, 1.0]})
    assert choice["cremi"].nunique() == 1
    assert choice["chosen"].tolist() == [True, False]
    assert choice["best"].tolist() == [True, False]


def test_save_postprocess(trained):
    for t in trained.values():
        choice, post = t["choice"], t["post"]
        best = choice[choice["best"]].iloc[0]
        assert post == {"method": best["method"], "threshold": float(best["threshold"]),
                        "min_size": int(best["min_size"])}
        assert isinstance(post["threshold"], float) and isinstance(post["min_size"], int)
        meta = load_model(t["folder"]).meta
        assert meta["postprocess"] == post
        assert read_model_meta(t["folder"])["postprocess"] == post
        # the rest of the meta survives
        assert meta["target"] == "affinities"
        assert meta["offsets"] == t["model"].meta["offsets"]
        assert meta["pixel_size"] == t["model"].meta["pixel_size"]
        assert t["model"].meta["postprocess"] == post


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def test_evaluate_tables(evaluated, volumes):
    table, inference, kept = evaluated
    assert list(table.columns) == COLUMNS
    assert len(table) == 2 * len(Z_NMS) * len(SETTINGS)
    assert (table["segments"] == "3d").all()
    assert not table.duplicated(["volume", "z_nm", "method"]).any()
    for _, g in table.groupby(["volume", "z_nm"]):
        assert sorted(g["method"]) == SETTINGS
    assert set(table["volume"]) == {"fib25_test", "gala"}
    assert set(table["z_nm"]) == set(Z_NMS)
    scores = table[["voi_split", "voi_merge", "arand", "cremi", "seconds", "peak_mb"]]
    assert np.isfinite(scores.to_numpy(float)).all()
    assert (table["seconds"] > 0).all()

    assert list(inference.columns) == ["volume", "z_nm", "megavoxels", "seconds", "peak_mb"]
    assert len(inference) == 2 * len(Z_NMS)
    assert not inference.duplicated(["volume", "z_nm"]).any()
    for _, row in inference.iterrows():
        slices = SHAPE[0] // int(row["z_nm"] / 10)
        assert row["megavoxels"] == pytest.approx(slices * SHAPE[1] * SHAPE[2] / 1e6)
    assert (inference["seconds"] > 0).all()


def test_evaluate_kept(evaluated, trained, volumes):
    table, _, kept = evaluated
    assert set(kept) == {("gala", 20.0)}
    item = kept[("gala", 20.0)]
    vol = item["vol"]
    assert vol.raw.shape == (4, 24, 24) and vol.resolution == (20.0, 10.0, 10.0)
    assert np.array_equal(vol.gt, volumes["gala"].gt[::2])
    n_offsets = len(trained[20.0]["model"].meta["offsets"])
    assert item["affs"].shape == (n_offsets, 4, 24, 24)
    assert sorted(item["labels"]) == SETTINGS
    rows = table[(table["volume"] == "gala") & (table["z_nm"] == 20.0)].set_index("method")
    for name, labels in item["labels"].items():
        assert labels.shape == vol.gt.shape and labels.dtype == np.uint32
        assert rows.loc[name, "cremi"] == pytest.approx(segmentation_scores(vol.gt, labels)["cremi"])


def test_headline(evaluated, trained):
    table, _, _ = evaluated
    choices = pd.concat([t["choice"] for t in trained.values()], ignore_index=True)
    out = headline(table, choices)
    expected = set()
    for vol in ("fib25_test", "gala"):
        for z_nm in Z_NMS:
            key = f"{vol}_{z_nm:g}nm"
            expected |= {f"{key}_setting", f"{key}_cremi", f"{key}_best_on_test_setting",
                         f"{key}_best_on_test_cremi"}
            post = trained[z_nm]["post"]
            setting = setting_name(post["method"], post["threshold"])
            assert out[f"{key}_setting"] == setting
            rows = table[(table["volume"] == vol) & (table["z_nm"] == z_nm)].set_index("method")
            assert out[f"{key}_cremi"] == rows.loc[setting, "cremi"]
            assert out[f"{key}_best_on_test_cremi"] == rows["cremi"].min()
            assert out[f"{key}_best_on_test_cremi"] <= out[f"{key}_cremi"]
            assert out[f"{key}_best_on_test_setting"] in SETTINGS
    assert set(out) == expected


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def test_figures(evaluated, trained):
    table, _, kept = evaluated
    key = ("gala", 20.0)
    history = pd.concat([t["history"].assign(z_nm=z) for z, t in trained.items()])
    choices = pd.concat([t["choice"] for t in trained.values()], ignore_index=True)
    figures = [
        affinity_figure(kept, key),
        affinity_figure(kept, key, n=1),
        segments_figure(kept, key, ["cc@0.5", "mws@0.5"]),
        error_map_figure(kept, key, SETTINGS, n=2),
        history_figure(history),
        comparison_figure(table, choices),
    ]
    try:
        for fig in figures:
            assert isinstance(fig, Figure)
            assert fig.axes
        # 4 slices, n=3: slices 0.75, 1.5, 2.25 round to 1 and 2 (duplicates dropped)
        assert len(figures[0].axes) == 2 * 3
        assert len(figures[1].axes) == 3  # one slice: raw, affinities, boundary map
        assert len(figures[2].axes) == 2 * 3  # 2 slices x (truth + 2 settings)
        assert len(figures[3].axes) == 2 * 3  # 2 slices x 3 settings
        assert len(figures[4].axes) == len(Z_NMS)  # one panel per spacing
        assert len(figures[5].axes) == 2 * len(Z_NMS)  # one panel per volume and spacing
    finally:
        for fig in figures:
            plt.close(fig)
