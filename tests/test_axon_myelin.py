"""Axon/myelin segmentation: pixel-size handling, training set-up, evaluation and the headline.

Synthetic nerve cross-sections (rings of myelin around axons, with known classes) stand in for
the AxonDeepSeg images; the last tests read the real data sets.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from neuroseg.data.readers import Sample
from neuroseg.data.resample import PixelSizeWarning
from neuroseg.experiments import axon_myelin
from neuroseg.experiments.axon_myelin import (
    DATASETS,
    AxonSetting,
    AxonTask,
    Comparison,
    choose,
    class_names,
    compare,
    comparison_row,
    examples_figure,
    gratio_figure,
    load_samples,
    network_pair,
    pixel_size_sensitivity,
    sensitivity_figure,
    train_setting,
)
from neuroseg.experiments.data_preparation import make_splits, save_splits
from neuroseg.nets import train
from neuroseg.nets.augment import Augmenter, elastic_deform
from neuroseg.nets.folder import load_model, save_model
from neuroseg.nets.unet import ModelError, UNet
from neuroseg.segment.axon_myelin import probabilities, segment


def _fibres(shape=(96, 96), *, seed=0, n=6, uaxon=False) -> tuple[np.ndarray, np.ndarray]:
    """(image, classes): bright myelin rings around dark axons on a mid-grey background."""
    rng = np.random.default_rng(seed)
    classes = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(n):
        cy, cx = rng.integers(12, shape[0] - 12), rng.integers(12, shape[1] - 12)
        r = rng.uniform(4, 8)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        classes[(d2 <= (r + 3) ** 2) & (classes == 0)] = 1
        classes[d2 <= r**2] = 2
    if uaxon:
        classes[2:8, 2:8] = 3
    image = np.choose(classes, [0.5, 0.9, 0.1, 0.3]) + rng.normal(0, 0.02, shape)
    return (image * 255).clip(0, 255).astype(np.uint8), classes


def _sample(i: int, *, pixel_size=0.1, shape=(96, 96), uaxon=False) -> Sample:
    image, classes = _fibres(shape, seed=i, uaxon=uaxon)
    return Sample(id=f"s{i}", image=image, labels=classes, pixel_size=pixel_size)


def _net(out_channels=3, *, pixel_size=0.1, modality="sem") -> UNet:
    torch.manual_seed(0)
    net = UNet(ndim=2, in_channels=1, out_channels=out_channels, depth=2, base_features=4)
    net.meta = {"target": "classes", "pixel_size_um": pixel_size, "modality": modality}
    return net.eval()


def _task(tmp_path, *, modality="sem", pixel_size=0.1, scale_range=None) -> AxonTask:
    src = tmp_path / "nucleus"
    torch.manual_seed(1)
    save_model(UNet(ndim=2, in_channels=1, out_channels=2, depth=2, base_features=4), src,
               meta={"target": "fg_contour"})
    uaxon = modality == "tem"
    return AxonTask(
        modality=modality, pixel_size_um=pixel_size,
        train=(_sample(0, pixel_size=0.05, shape=(128, 128), uaxon=uaxon), _sample(1, uaxon=uaxon)),
        val=(_sample(2, uaxon=uaxon),), crop=48, samples_per_epoch=4, val_crops=2, tile=64,
        elastic=(34.0, 4.0, 0.5), pretrained=src, folder=tmp_path / "models",
        scale_range=scale_range,
    )


# ---------------------------------------------------------------------------------- classes


def test_class_names():
    assert class_names("sem") == ("background", "myelin", "axon")
    assert class_names("tem")[3] == "uaxon"
    with pytest.raises(ValueError, match="modality"):
        class_names("confocal")


# ---------------------------------------------------------------------------- pixel size


def test_network_pair_resamples_image_and_classes_to_the_model_pixel_size():
    s = _sample(0, pixel_size=0.05, shape=(100, 80))
    image, classes = network_pair(s, 0.1)
    assert image.shape == (1, 50, 40) and classes.shape == (50, 40)
    assert image.dtype == np.float32
    assert set(np.unique(classes)) <= {0, 1, 2}
    # same pixel size: classes untouched, image normalised only
    image, classes = network_pair(s, 0.05)
    assert image.shape == (1, 100, 80)
    np.testing.assert_array_equal(classes, s.labels)


def test_segment_returns_the_image_grid_at_any_nearby_pixel_size():
    net = _net()
    image, _ = _fibres((90, 70))
    for px in (0.1, 0.07, 0.2):
        with warnings.catch_warnings():
            warnings.simplefilter("error", PixelSizeWarning)
            out = segment(net, image, pixel_size=px, tile=None)
        assert out.shape == (90, 70) and out.dtype == np.uint8
        assert out.max() <= 2


def test_probabilities_sum_to_one():
    p = probabilities(_net(4, modality="tem"), _fibres((64, 64))[0], pixel_size=0.1, tile=None)
    assert p.shape == (4, 64, 64)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-4)


def test_segment_warns_then_refuses_far_pixel_sizes():
    net = _net()
    image = _fibres((64, 64))[0]
    with pytest.warns(PixelSizeWarning, match="3x coarser"):
        segment(net, image, pixel_size=0.3, tile=None)
    with pytest.raises(ValueError, match=r"0\.5 µm is 5x coarser than the 0\.1 µm"):
        segment(net, image, pixel_size=0.5, tile=None)
    with pytest.raises(ValueError, match="finer"):
        segment(net, image, pixel_size=0.02, tile=None)
    with pytest.warns(PixelSizeWarning):  # max_ratio=None only warns
        segment(net, image, pixel_size=0.5, tile=None, max_ratio=None)


@pytest.mark.parametrize("px", [0.0, -0.1, math.nan])
def test_segment_rejects_invalid_pixel_sizes(px):
    with pytest.raises(ValueError, match="pixel_size"):
        segment(_net(), _fibres((32, 32))[0], pixel_size=px)


def test_segment_refuses_a_model_that_is_not_an_axon_model():
    net = _net()
    net.meta = {"target": "fg_contour"}
    with pytest.raises(ModelError, match="not an axon/myelin model"):
        segment(net, _fibres((32, 32))[0], pixel_size=0.1)


def test_evaluate_refuses_a_model_that_is_not_an_axon_model():
    """The pixel-size check comes first: a boundary model with a modality is still refused."""
    net = _net()
    net.meta = {"target": "boundaries", "modality": "sem", "pixel_size": {"size": [10, 10], "unit": "nm"}}
    with pytest.raises(ModelError, match="not an axon/myelin model"):
        axon_myelin.evaluate(net, [], tile=None)


def test_segment_rejects_nan_and_bad_shapes():
    image = _fibres((32, 32))[0].astype(np.float32)
    image[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segment(_net(), image, pixel_size=0.1)
    with pytest.raises(ValueError, match="2-D"):
        segment(_net(), np.zeros((2, 3, 32, 32)), pixel_size=0.1)


def test_segment_does_not_modify_its_input():
    image = _fibres((48, 48))[0]
    before = image.copy()
    segment(_net(), image, pixel_size=0.15, tile=None)
    np.testing.assert_array_equal(image, before)


# ---------------------------------------------------------------------------- augmentation


def test_zoom_scales_a_centred_square():
    lab = np.zeros((33, 33), np.int32)
    lab[13:20, 13:20] = 4  # 7 px side, centred on 16
    img, out = elastic_deform(lab[None].astype(np.float32), lab, rng=np.random.default_rng(0),
                              alpha=0.0, scale=2.0)
    ys, xs = np.nonzero(out == 4)
    assert ys.max() - ys.min() + 1 == 14 and xs.max() - xs.min() + 1 == 14
    assert set(np.unique(out)) == {0, 4}
    _, out = elastic_deform(lab[None].astype(np.float32), lab, rng=np.random.default_rng(0),
                            alpha=0.0, scale=0.5)
    # the square shrinks to about 3.5 px a side in the centre (reflection fills the border)
    assert 9 <= (out[8:25, 8:25] == 4).sum() <= 16
    with pytest.raises(ValueError, match="scale"):
        elastic_deform(lab[None].astype(np.float32), lab, rng=np.random.default_rng(0), scale=0)


def test_augmenter_without_zoom_draws_as_before():
    image, lab = _fibres((40, 40))
    x = image[None].astype(np.float32)
    a = Augmenter()(x, lab, rng=np.random.default_rng(3))
    b = Augmenter(scale_range=None)(x, lab, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    c = Augmenter(scale_range=(1.5, 1.5), elastic=False, flip_rotate=False, intensity=False)(
        x, lab, rng=np.random.default_rng(3))
    assert (c[1] == 2).sum() > (lab == 2).sum() * 1.8  # a 1.5x zoom: 2.25x the area
    with pytest.raises(ValueError, match="scale_range"):
        Augmenter(scale_range=(2.0, 1.0))


# ---------------------------------------------------------------------------- training


def test_setting_key_names_every_field_and_rejects_unknown_options():
    a = AxonSetting(init="scratch", epochs=3)
    assert a.key == "scratch_e3_b8_lr0.001_wd0.0001_ce-dice_s0"
    assert AxonSetting(seed=1).key != AxonSetting().key
    with pytest.raises(ValueError, match="init"):
        AxonSetting(init="imagenet")
    with pytest.raises(ValueError, match="loss"):
        AxonSetting(loss="bce")
    assert AxonSetting(init="scratch", epochs=3, train_on="train+val").key == a.key + "_trainval"
    with pytest.raises(ValueError, match="train_on"):
        AxonSetting(train_on="test")


def test_setting_width_is_named_and_only_from_scratch():
    plain = AxonSetting(init="scratch", epochs=3)
    wide = AxonSetting(init="scratch", epochs=3, features=32)
    assert wide.key == plain.key + "_w32" and wide.name == "scratch-w32"
    assert plain.name == "scratch" and AxonSetting(init="pretrained").name == "pretrained"
    refit = AxonSetting(init="scratch", epochs=3, features=32, train_on="train+val")
    assert refit.key == plain.key + "_w32_trainval" and refit.name == "scratch-w32+val"
    with pytest.raises(ValueError, match="needs init='scratch'"):
        AxonSetting(init="pretrained", features=32)
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="features"):
            AxonSetting(init="scratch", features=bad)


def test_task_needs_train_and_val(tmp_path):
    task = _task(tmp_path)
    with pytest.raises(ValueError, match="training and validation"):
        AxonTask(**{**task.__dict__, "val": ()})


@pytest.mark.parametrize("init", ["scratch", "pretrained"])
def test_train_setting_writes_a_reusable_model_folder(tmp_path, init):
    task = _task(tmp_path, scale_range=(0.8, 1.25))
    setting = AxonSetting(init=init, epochs=2, batch_size=2)
    model, history = train_setting(task, setting)
    folder = task.folder / setting.key
    for name in ("config.json", "weights.pt", "history.csv", "env.json"):
        assert (folder / name).is_file()
    assert list(history["epoch"]) == [1, 2]
    assert model.config["out_channels"] == 3
    meta = load_model(folder).meta
    assert meta["pixel_size"] == {"size": [0.1, 0.1], "unit": "um"} and meta["target"] == "classes" and meta["modality"] == "sem"
    assert meta["outputs"] == ["background", "myelin", "axon"]
    assert meta["training"]["scale_range"] == [0.8, 1.25]
    assert (meta["transfer"]["source"] is None) == (init == "scratch")
    # a finished run is reused, not retrained
    stamp = (folder / "weights.pt").stat().st_mtime_ns
    _, again = train_setting(task, setting)
    assert (folder / "weights.pt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(history, again)
    # and the model segments an image at the data's pixel size
    out = segment(model, task.train[0].image, pixel_size=0.05, tile=64)
    assert out.shape == task.train[0].image.shape


def test_refit_trains_on_train_and_val_and_keeps_the_last_epoch(tmp_path, monkeypatch):
    task = _task(tmp_path)
    seen = {}
    original = train.fit

    def spy(model, train_data, val_data, **kw):
        seen["n_train_images"], seen["val_data"] = len(train_data.images), val_data
        seen["keep"] = kw["config"].keep
        return original(model, train_data, val_data, **kw)

    monkeypatch.setattr("neuroseg.experiments.axon_myelin.fit", spy)
    plain = AxonSetting(init="scratch", epochs=2, batch_size=2)
    train_setting(task, plain)
    assert seen == {"n_train_images": 2, "val_data": seen["val_data"], "keep": "best"}
    assert seen["val_data"] is not None
    refit = dataclasses.replace(plain, train_on="train+val")
    model, history = train_setting(task, refit)
    assert seen == {"n_train_images": 3, "val_data": None, "keep": "last"}
    meta = load_model(task.folder / refit.key).meta
    assert meta["train_images"] == [s.id for s in task.train + task.val]
    assert meta["training"]["val_images"] == []
    assert meta["weights_epoch"] == 2 and history["val_loss"].isna().all()
    # the train-only run's folder and identity are untouched by the option
    assert "train_on" not in load_model(task.folder / plain.key).meta["setting"]


def test_a_wider_scratch_network_has_the_width_and_a_recorded_setting(tmp_path):
    task = _task(tmp_path)
    plain = AxonSetting(init="scratch", epochs=1, batch_size=2)
    wide = dataclasses.replace(plain, features=6)
    model, _ = train_setting(task, wide)
    assert model.config["base_features"] == 6
    assert load_model(task.folder / wide.key).meta["setting"]["features"] == 6
    model, _ = train_setting(task, plain)
    assert model.config["base_features"] == 4  # the nucleus model's
    # runs at the nucleus model's width keep the identity they had before the option
    assert "features" not in load_model(task.folder / plain.key).meta["setting"]


def test_compare_chooses_on_validation_then_refits_the_chosen_init(tmp_path):
    task = _task(tmp_path)
    c = compare(task, [_sample(3)], epochs=1, batch_size=2, lr=1e-3, weight_decay=0.0,
                   refit=True, tile=64, progress=False)
    t = c.table
    assert list(t["name"]) == ["scratch", "pretrained", f"{c.chosen}+val"]
    assert list(t["base_features"]) == [4, 4, 4]
    assert list(t["train_on"]) == ["train", "train", "train+val"]
    train_only = t[t["train_on"] == "train"]
    assert c.chosen == train_only.loc[train_only["val_dice_mean"].idxmax(), "name"]
    assert c.final == f"{c.chosen}+val" and t["final"].tolist() == [False, False, True]
    assert t["chosen"].sum() == 1 and pd.isna(t["val_dice_mean"].iloc[2])
    assert set(c.models) == set(c.test) == set(c.histories) == set(t["name"])
    assert c.models[c.final].meta["training"]["val_images"] == []
    plain = compare(task, [_sample(3)], epochs=1, batch_size=2, lr=1e-3, weight_decay=0.0,
                       tile=64, progress=False)
    assert plain.final == plain.chosen and len(plain.table) == 2


def test_compare_can_add_wider_scratch_networks_to_the_candidates(tmp_path, monkeypatch):
    task = _task(tmp_path)
    scores = {"scratch": 0.5, "pretrained": 0.6, "scratch-w6": 0.7}  # validation Dice by name

    def fake_evaluate(model, samples, *, tile=256, progress=False):
        per_image, pairs, preds = original(model, samples, tile=tile)
        if samples is task.val:
            name = AxonSetting(**model.meta["setting"]).name
            per_image = per_image.assign(dice_myelin=scores[name], dice_axon=scores[name])
        return per_image, pairs, preds

    original = axon_myelin.evaluate
    monkeypatch.setattr("neuroseg.experiments.axon_myelin.evaluate", fake_evaluate)
    c = compare(task, [_sample(3)], scratch_widths=[6], epochs=1, batch_size=2, lr=1e-3,
                   weight_decay=0.0, refit=True, tile=64, progress=False)
    t = c.table
    assert list(t["name"]) == ["scratch", "pretrained", "scratch-w6", "scratch-w6+val"]
    assert list(t["base_features"]) == [4, 4, 6, 6]
    assert c.chosen == "scratch-w6" and c.final == "scratch-w6+val"
    assert t["chosen"].tolist() == [False, False, True, False]
    assert c.models[c.final].config["base_features"] == 6
    with pytest.raises(ValueError, match="candidates must differ"):
        compare(task, [_sample(3)], inits=["scratch", "scratch"], epochs=1, batch_size=2,
                   lr=1e-3, weight_decay=0.0, tile=64, progress=False)


def test_same_seed_same_weights(tmp_path):
    setting = AxonSetting(init="scratch", epochs=1, batch_size=2)
    weights = []
    for k in range(2):
        task = _task(tmp_path / str(k))
        model, _ = train_setting(task, setting)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_tem_task_has_four_classes(tmp_path):
    task = _task(tmp_path, modality="tem", pixel_size=0.1)
    model, _ = train_setting(task, AxonSetting(init="pretrained", epochs=1, batch_size=2))
    assert model.config["out_channels"] == 4
    per_image, pairs, preds = axon_myelin.evaluate(model, task.val, tile=64)
    assert {"dice_myelin", "dice_axon", "dice_uaxon"} <= set(per_image.columns)


def test_crop_larger_than_an_image_is_an_error(tmp_path):
    task = _task(tmp_path)
    task = AxonTask(**{**task.__dict__, "crop": 200})
    with pytest.raises(ValueError, match="smaller than the crop 200"):
        train_setting(task, AxonSetting(epochs=1))


# ---------------------------------------------------------------------------- evaluation


class _Oracle(torch.nn.Module):
    """A 'model' whose logits are the one-hot classes of the grey levels of ``_fibres``."""

    def __init__(self, meta):
        super().__init__()
        self.meta = meta
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.config = {"ndim": 2, "depth": 1, "pool_factors": []}

    def forward(self, x):
        # normalised grey levels: 0.1 axon < 0.5 background < 0.9 myelin (percentile scaling)
        v = x[:, 0]
        lo, hi = v.amin(), v.amax()
        v = (v - lo) / (hi - lo + 1e-6)
        cls = torch.where(v < 0.25, 2, torch.where(v > 0.75, 1, 0))
        return torch.nn.functional.one_hot(cls, 3).movedim(-1, 1).float() * 10 + self.w


def test_evaluate_scores_a_perfect_prediction_as_perfect(monkeypatch):
    samples = [_sample(i, shape=(80, 80)) for i in range(2)]
    oracle = _Oracle({"target": "classes", "pixel_size_um": 0.1, "modality": "sem"})
    monkeypatch.setattr("neuroseg.nets.scale.predict", lambda model, x, **kw: torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].detach().numpy())
    per_image, pairs, preds = axon_myelin.evaluate(oracle, samples, tile=None)
    assert per_image["dice_axon"].tolist() == [1.0, 1.0]
    assert per_image["dice_myelin"].tolist() == [1.0, 1.0]
    assert (per_image["gratio_mad"].fillna(0) == 0).all()
    assert set(pairs["image"]) <= {"s0", "s1"} and (pairs["iou"] == 1.0).all()
    row = comparison_row(per_image, pairs)
    assert row["dice_axon"] == 1.0 and row["n_images"] == 2
    assert row["n_compared"] == int(pairs["compared"].sum())


def test_comparison_row_pools_axons_and_averages_images():
    per_image = pd.DataFrame({"dice_axon": [0.8, 0.6], "dice_myelin": [0.7, 0.9]})
    pairs = pd.DataFrame({
        "compared": [True, True, True, False],
        "gratio_true": [0.6, 0.6, 0.6, 0.6], "gratio_pred": [0.7, 0.6, 0.6, 0.0],
        "axon_diam_um_true": [1.0] * 4, "axon_diam_um_pred": [1.3, 1.0, 1.0, 9.0],
        "myelin_thickness_um_true": [0.2] * 4, "myelin_thickness_um_pred": [0.2] * 4,
    })
    row = comparison_row(per_image, pairs)
    assert row["dice_axon"] == pytest.approx(0.7) and row["dice_myelin"] == pytest.approx(0.8)
    assert row["n_compared"] == 3
    assert row["gratio_mad"] == pytest.approx(0.1 / 3)
    assert row["axon_diam_mad_um"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no images"):
        comparison_row(pd.DataFrame(), pairs)


def _comparison(modality, rows, *, refit=None):
    table = pd.DataFrame(rows)
    best = choose(table[table["train_on"] == "train"])
    chosen = str(best["name"])
    if refit is not None:
        table = pd.concat([table, pd.DataFrame([{**_row(best["init"], float("nan"), refit),
                                                 "base_features": best["base_features"],
                                                 "train_on": "train+val", "name": f"{chosen}+val"}])])
    final = chosen if refit is None else f"{chosen}+val"
    return Comparison(modality, table, chosen, {}, {}, {}, final)


def _row(init, val, test, *, gratio=0.03, uaxon=False, features=None):
    name = init if features is None else f"{init}-w{features}"
    row = {"init": init, "name": name, "base_features": features or 16, "train_on": "train",
           "val_dice_mean": val,
           "test_dice_mean": test, "test_dice_myelin": test,
           "test_dice_axon": test, "test_gratio_mad": gratio, "test_gratio_bias": -gratio / 2,
           "test_axon_diam_mad_um": 0.1,
           "test_myelin_thickness_mad_um": 0.05, "test_n_compared": 10, "test_n_images": 2}
    if uaxon:
        row["test_dice_uaxon"] = test
    return row


def test_headline_reports_the_init_chosen_on_validation(tmp_path):
    sem = _comparison("sem", [_row("scratch", 0.7, 0.95), _row("pretrained", 0.8, 0.86)])
    tem = _comparison("tem", [_row("scratch", 0.9, 0.5, uaxon=True), _row("pretrained", 0.6, 0.9, uaxon=True)])
    tasks = {"sem": _task(tmp_path / "a"), "tem": _task(tmp_path / "b", modality="tem")}
    head = axon_myelin.headline([sem, tem], tasks)
    # chosen by validation, not by the better test score
    assert head["sem_init"] == "pretrained" and head["sem_dice_axon"] == 0.86
    assert head["tem_init"] == "scratch" and head["tem_dice_uaxon"] == 0.5
    assert head["sem_scratch_test_dice_mean"] == 0.95
    assert head["sem_gratio_bias"] == -0.015
    for key in ("sem_dice_axon", "sem_dice_myelin", "sem_gratio_mad", "tem_dice_axon",
                "tem_dice_myelin", "tem_dice_uaxon", "tem_gratio_mad"):
        assert key in head
    assert head["sem_targets_met"] is True
    bad = _comparison("sem", [_row("scratch", 0.7, 0.95, gratio=0.06)])
    assert axon_myelin.headline([bad], tasks)["sem_targets_met"] is False
    assert "sem_train_only_dice_axon" not in head and head["sem_train_on"] == "train"
    assert head["sem_n_train_images"] == 2


def test_headline_reports_the_refit_and_what_it_was_before(tmp_path):
    sem = _comparison("sem", [_row("scratch", 0.7, 0.84), _row("pretrained", 0.8, 0.83)], refit=0.9)
    assert sem.final == "pretrained+val"
    head = axon_myelin.headline([sem], {"sem": _task(tmp_path)})
    assert head["sem_init"] == "pretrained" and head["sem_train_on"] == "train+val"
    assert head["sem_dice_axon"] == 0.9 and head["sem_train_only_dice_axon"] == 0.83
    assert head["sem_n_train_images"] == 3
    # the per-init means are of the train-only runs
    assert head["sem_pretrained_test_dice_mean"] == 0.83 and head["sem_scratch_test_dice_mean"] == 0.84
    assert head["sem_base_features"] == 16


def test_headline_of_a_wider_network_chosen_on_validation(tmp_path):
    sem = _comparison("sem", [_row("scratch", 0.7, 0.84), _row("pretrained", 0.8, 0.83),
                              _row("scratch", 0.85, 0.82, features=32)], refit=0.9)
    assert sem.chosen == "scratch-w32" and sem.final == "scratch-w32+val"
    head = axon_myelin.headline([sem], {"sem": _task(tmp_path)})
    assert head["sem_init"] == "scratch" and head["sem_base_features"] == 32
    assert head["sem_train_only_dice_axon"] == 0.82 and head["sem_dice_axon"] == 0.9
    assert head["sem_scratch_w32_test_dice_mean"] == 0.82
    assert head["sem_scratch_test_dice_mean"] == 0.84


def test_pixel_size_sensitivity_records_the_warning():
    table = pixel_size_sensitivity(_net(), [_sample(0, shape=(64, 64))], factors=(1.0, 3.0),
                                      max_px=48, tile=None)
    assert table["factor"].tolist() == [1.0, 3.0]
    assert table["warned"].tolist() == [False, True]
    assert {"dice_myelin", "dice_axon"} <= set(table.columns)


def test_figures_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [_sample(0, shape=(64, 64))]
    fig = examples_figure(samples, [samples[0].labels], modality="sem")
    pairs = pd.DataFrame({"compared": [True], "gratio_true": [0.6], "gratio_pred": [0.65],
                          "axon_diam_um_true": [1.0], "axon_diam_um_pred": [1.1]})
    fig2 = gratio_figure(pairs, title="t")
    sens = pd.DataFrame({"image": ["a", "a"], "factor": [1.0, 2.0], "dice_myelin": [0.9, 0.5],
                         "dice_axon": [0.9, 0.4]})
    fig3 = sensitivity_figure(sens, modality="sem")
    for f in (fig, fig2, fig3):
        plt.close(f)


# ---------------------------------------------------------------------------- real data


@pytest.mark.data
@pytest.mark.parametrize("modality, classes", [("sem", {0, 1, 2}), ("tem", {0, 1, 2, 3})])
def test_real_samples_and_split(data_root, modality, classes, outputs):

    records = make_splits(seed=0)
    save_splits({DATASETS[modality]: records[DATASETS[modality]]})
    parts = {p: load_samples(modality, p) for p in ("train", "val", "test")}
    subjects = {p: {s.id.split("_")[0] for s in v} for p, v in parts.items()}
    assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"]
    s = parts["test"][0]
    again = load_samples(modality, "ignored", ids=[s.id])  # by ID, without the split (shipped models)
    assert [a.id for a in again] == [s.id] and np.array_equal(again[0].labels, s.labels)
    assert set(np.unique(s.labels)) == classes
    assert 0.004 < s.pixel_size < 0.2
    image, labels = network_pair(s, {"sem": 0.1, "tem": 0.01}[modality])
    assert image.shape[1:] == labels.shape


def test_dice_mean_is_the_mean_over_classes_of_the_image_means(monkeypatch):
    samples = [_sample(i, shape=(80, 80)) for i in range(2)]
    oracle = _Oracle({"target": "classes", "pixel_size_um": 0.1, "modality": "sem"})
    monkeypatch.setattr("neuroseg.nets.scale.predict", lambda model, x, **kw: torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].detach().numpy())
    assert axon_myelin.dice_mean(oracle, samples, tile=None) == 1.0
    net = _net()
    per_image, _, _ = axon_myelin.evaluate(net, samples, tile=None)
    expected = np.mean([per_image["dice_axon"].mean(), per_image["dice_myelin"].mean()])
    assert axon_myelin.dice_mean(net, samples, tile=None) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no images"):
        axon_myelin.dice_mean(net, [], tile=None)
