"""Neuron fine-tuning: settings, tasks, training and scoring on tiny synthetic tasks, and the
real soma tiles and EM slices (marked ``data``)."""

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import measure

import neuroseg
from neuroseg import paths
from neuroseg.data import synthetic
from neuroseg.data.em_slices import FIB25, load_em_slices
from neuroseg.data.images import normalize
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.readers import Sample, read_cremi, read_neurofinder
from neuroseg.data.resample import resample_image, resample_labels
from neuroseg.data.soma_tiles import SOMA_DATASET, load_soma_tiles
from neuroseg.experiments import neuron_finetuning
from neuroseg.experiments.data_preparation import make_splits, save_splits
from neuroseg.experiments.neuron_finetuning import (
    BASELINE,
    Setting,
    Task,
    build_model,
    choose,
    hyperparameter_settings,
    learning_curve_settings,
    pooled_pixel_iou,
    probabilities,
    run_settings,
    select,
    train_setting,
    training_subset,
)
from neuroseg.measure.contrast import object_contrast, soma_error_table
from neuroseg.measure.matching import matching
from neuroseg.nets import loaders, train
from neuroseg.nets.folder import load_model, read_model_meta, save_model
from neuroseg.nets.predict import predict
from neuroseg.nets.unet import build_unet
from neuroseg.segment import instances
from neuroseg.segment.tuning import em_slice_scores

TINY = {
    "ndim": 2,
    "in_channels": 1,
    "out_channels": 2,
    "depth": 2,
    "base_features": 4,
    "norm": "batch",
}
META = {
    "target": "fg_contour",
    "outputs": ["foreground", "contour"],
    "dataset": "dsb2018_stage1_train",
}
POSTPROCESS = {"fg_threshold": 0.3, "seed_threshold": 0.93}
FAST = {"layers": 1, "batch_size": 2, "epochs": 1}


# --------------------------------------------------------------------------------------------
# tiny synthetic tasks
# --------------------------------------------------------------------------------------------


def _soma_samples():
    out = []
    for s in range(5):
        image, labels = synthetic.nuclei_2d((32, 32), n=3, radius=(4.0, 6.0), seed=s)
        out.append(Sample(id=f"soma{s}", image=image, labels=labels.astype(np.uint32)))
    return out


def _em_samples():
    raw, labels = synthetic.neurites_3d((5, 32, 32), n=6, seed=0)
    labels = connected_components_per_slice(labels)
    return [
        Sample(
            id=f"em:z{z}",
            image=raw[z],
            labels=labels[z],
            pixel_size=0.01,
            meta={"dataset": "synthetic", "z": z},
        )
        for z in range(5)
    ]


SAMPLES = {"soma": _soma_samples(), "em": _em_samples()}


def _task(kind, pretrained, folder, **options):
    samples = SAMPLES[kind]
    return Task(
        name=kind,
        target="fg_contour" if kind == "soma" else "boundaries",
        train=tuple(samples[:3]),
        val=(samples[3],),
        test=(samples[4],),
        pretrained=pretrained,
        folder=folder,
        crop=16,
        samples_per_epoch=4,
        val_crops=2,
        tile=32,
        **options,
    )


def _files(folder):
    return {
        p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A nucleus model folder as 10_nucleus_pretraining writes it: fit, then post-processing."""
    pairs = [synthetic.nuclei_2d((32, 32), n=4, seed=s) for s in range(3)]
    crops = loaders.CropDataset(
        [image[None] for image, _ in pairs],
        [labels for _, labels in pairs],
        crop=(16, 16),
        target_fn=instances.fg_contour_targets,
        samples_per_epoch=4,
        seed=0,
    )
    folder = tmp_path_factory.mktemp("pretraining") / "nucleus_unet"
    config = train.TrainConfig(epochs=1, batch_size=2, seed=0, device="cpu")
    train.fit(
        build_unet(TINY, seed=0),
        crops,
        config=config,
        folder=folder,
        meta=META,
        progress=False,
    )
    model = load_model(folder)
    save_model(model, folder, meta={**model.meta, "postprocess": POSTPROCESS})
    return folder


@pytest.fixture(scope="module")
def trained(pretrained, tmp_path_factory):
    """Per task kind: (task, setting, model, history) of one tiny training run."""
    out = {}
    for kind in ("soma", "em"):
        task = _task(kind, pretrained, tmp_path_factory.mktemp(f"runs_{kind}"))
        setting = Setting(**FAST, augment=kind == "soma")
        out[kind] = (task, setting, *train_setting(task, setting))
    return out


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"init": "scratch", "layers": 1}, "from scratch trains all layers"),
        ({"init": "pretrained"}, "init must be"),
        ({"layers": 0}, "layers must be a positive int"),
        ({"layers": -2}, "layers must be a positive int"),
        ({"layers": "last"}, "layers must be a positive int"),
        ({"layers": True}, "layers must be a positive int"),
        ({"n_train": 0}, "n_train must be a positive int"),
        ({"n_train": 2.5}, "n_train must be a positive int"),
        ({"n_train": False}, "n_train must be a positive int"),
    ],
)
def test_setting_validation(options, message):
    with pytest.raises(ValueError, match=message):
        Setting(**options)


CHANGES = {
    "init": "scratch",
    "layers": 3,
    "lr": 3e-4,
    "batch_size": 4,
    "epochs": 20,
    "weight_decay": 0.0,
    "loss": "bce+dice",
    "augment": False,
    "n_train": 4,
    "extra_data": True,
    "seed": 1,
}


def test_setting_key_is_stable_and_names_every_field():
    base = Setting()
    assert base.key == "transfer_Lall_lr0.001_b8_e10_wd0.0001_bce_aug_nall_s0"
    assert Setting().key == base.key
    assert set(CHANGES) == {f.name for f in dataclasses.fields(Setting)}
    keys = {base.key}
    for name, value in CHANGES.items():
        changed = dataclasses.replace(base, **{name: value})
        assert changed.key != base.key, name
        keys.add(changed.key)
    assert len(keys) == len(CHANGES) + 1
    assert Setting(layers=3, n_train=4, extra_data=True, seed=2).key == (
        "transfer_L3_lr0.001_b8_e10_wd0.0001_bce_aug_n4_extra_s2"
    )
    # learning rates that differ in the 7th digit are different runs, in different folders
    assert Setting(lr=1e-3).key != Setting(lr=1.0000001e-3).key


def test_hyperparameter_settings_vary_one_field_at_a_time():
    base = {"layers": "all", "lr": 1e-3, "epochs": 1}
    variations = {"layers": [1, "all"], "lr": [3e-3, 1e-3], "batch_size": [4]}
    out = hyperparameter_settings(base, variations, seed=2)
    first = Setting(**base, seed=2)
    assert out == [
        first,
        dataclasses.replace(first, layers=1),
        dataclasses.replace(first, lr=3e-3),
        dataclasses.replace(first, batch_size=4),
    ]
    assert len(set(out)) == len(out) and all(s.seed == 2 for s in out)
    with pytest.raises(ValueError, match="unknown setting field 'momentum'"):
        hyperparameter_settings(base, {"momentum": [0.9]})


def test_learning_curve_settings():
    chosen = Setting(layers=3, lr=3e-3, extra_data=True, n_train=2, seed=5)
    out = learning_curve_settings(chosen, [1, 2, 10, None, 4], seeds=[0, 1], pool=4)
    assert len(out) == len(set(out)) == 3 * 2 * 2
    assert [s.n_train for s in out[::4]] == [1, 2, None]
    for s in out:
        assert s.layers == (3 if s.init == "transfer" else "all")
        assert s.extra_data is False and s.lr == 3e-3
    assert [(s.init, s.seed) for s in out[:4]] == [
        ("transfer", 0),
        ("transfer", 1),
        ("scratch", 0),
        ("scratch", 1),
    ]


def test_training_subset():
    items = [
        Sample(id=str(i), image=np.zeros((2, 2)), labels=np.zeros((2, 2), int))
        for i in range(6)
    ]
    a = training_subset(items, 3, seed=0)
    assert [s.id for s in a] == [s.id for s in training_subset(items, 3, seed=0)]
    assert len(a) == len({s.id for s in a}) == 3
    assert [s.id for s in a] == sorted((s.id for s in a), key=int)  # in the original order
    assert training_subset(items, None, seed=0) == items
    assert training_subset(items, 6, seed=3) == items
    assert training_subset(items, 60, seed=3) == items
    subsets = {tuple(s.id for s in training_subset(items, 3, seed=k)) for k in range(10)}
    assert len(subsets) > 1


# --------------------------------------------------------------------------------------------
# task
# --------------------------------------------------------------------------------------------


def test_task_targets_and_truth_masks(tmp_path):
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 2, 2]])
    soma = _task("soma", tmp_path, tmp_path)
    em = _task("em", tmp_path, tmp_path)
    assert soma.out_channels == 2 and em.out_channels == 1
    fg_contour = soma.targets(labels)
    assert fg_contour.shape == (2, 3, 4) and fg_contour.dtype == np.float32
    assert fg_contour[0].astype(int).tolist() == (labels > 0).astype(int).tolist()
    assert fg_contour[1].astype(int).tolist() == [[0, 1, 1, 0], [1, 1, 1, 0], [0, 0, 1, 0]]
    boundaries = em.targets(labels)
    assert boundaries.shape == (1, 3, 4)
    assert boundaries[0].astype(int).tolist() == [[0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    assert soma.truth_mask(labels).tolist() == (labels > 0).tolist()
    assert em.truth_mask(labels).tolist() == (boundaries[0] > 0).tolist()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"target": "affinities"}, "target must be"),
        ({"train": ()}, "needs train, val and test"),
        ({"test": ()}, "needs train, val and test"),
        ({"scale": 0.0}, "scale must be positive"),
        ({"scale": -2.0}, "scale must be positive"),
    ],
)
def test_task_validation(tmp_path, options, message):
    task = _task("soma", tmp_path, tmp_path)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(task, **options)


# --------------------------------------------------------------------------------------------
# training and scores
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["soma", "em"])
def test_train_setting_writes_the_setting_folder(trained, pretrained, kind):
    task, setting, model, history = trained[kind]
    folder = task.folder / setting.key
    for name in ("config.json", "weights.pt", "history.csv", "env.json", "checkpoints/last.pt"):
        assert (folder / name).is_file(), name
    assert list(history.epoch) == [1]
    assert model.config["out_channels"] == task.out_channels
    assert model.meta["target"] == task.target and model.meta["task"] == kind
    assert model.meta["transfer"]["new_head"] is (kind == "em")
    assert model.meta["transfer"]["trainable_layers"] == 1
    assert model.meta["setting"] == dataclasses.asdict(setting)
    assert model.meta["train_images"] == [s.id for s in task.train]
    # layers=1: only the head was trained
    start = build_model(task, setting).state_dict()
    source = load_model(pretrained).state_dict()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.items() if not k.startswith("head."))
    assert not torch.equal(state["head.weight"], start["head.weight"])


@pytest.mark.parametrize("kind", ["soma", "em"])
def test_a_finished_setting_is_not_trained_again(trained, kind):
    task, setting, model, history = trained[kind]
    before = _files(task.folder / setting.key)
    again, history_again = train_setting(task, setting)
    assert _files(task.folder / setting.key) == before
    pd.testing.assert_frame_equal(history_again, history)
    state = again.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_changed_pretrained_weights_retrain(trained, pretrained, tmp_path):
    task, setting, _, _ = trained["em"]
    source = shutil.copytree(pretrained, tmp_path / "pretrained")
    model = load_model(source)
    with torch.no_grad():
        model.decoders[0].block.conv2.weight.mul_(1.5)
    save_model(model, source)
    runs = shutil.copytree(task.folder, tmp_path / "runs")
    before = _files(runs / setting.key)
    moved = dataclasses.replace(task, pretrained=source, folder=runs)
    retrained, _ = train_setting(moved, setting)
    after = _files(runs / setting.key)
    for name in ("history.csv", "weights.pt", "checkpoints/last.pt"):
        assert after[Path(name)][1] != before[Path(name)][1], name
    digest = hashlib.sha256((source / "weights.pt").read_bytes()).hexdigest()
    assert retrained.meta["transfer"]["source_sha256"] == digest
    weight = retrained.decoders[0].block.conv2.weight
    assert torch.equal(weight, model.decoders[0].block.conv2.weight)


@pytest.mark.parametrize(
    "change", [{"samples_per_epoch": 6}, {"val_crops": 3}, {"elastic_alpha": 0.0},
               {"precision": "bf16", "channels_last": True}]
)
def test_changed_training_options_retrain(trained, tmp_path, change):
    task, setting, _, _ = trained["soma"]
    runs = shutil.copytree(task.folder, tmp_path / "runs")
    before = _files(runs / setting.key)
    model, _ = train_setting(dataclasses.replace(task, folder=runs, **change), setting)
    after = _files(runs / setting.key)
    assert after[Path("history.csv")][1] != before[Path("history.csv")][1]
    recorded = model.meta["train_config"]
    assert recorded["precision"] == change.get("precision", "auto")
    assert recorded["channels_last"] is change.get("channels_last", False)


@pytest.mark.parametrize("kind", ["soma", "em"])
@pytest.mark.parametrize("detailed", [False, True])
def test_evaluate_model_row(trained, kind, detailed):
    task, setting, model, history = trained[kind]
    row = neuron_finetuning.evaluate_model(task, model, setting=setting, history=history, detailed=detailed)
    name = "transfer, last 1" if kind == "soma" else "transfer, last 1, no augmentation"
    assert row["key"] == setting.key and row["name"] == name
    assert row["n_train"] == 3 and row["n_requested"] is None
    assert row["final_train_loss"] == pytest.approx(history.train_loss.iloc[-1])
    assert row["best_epoch"] == 1
    for key in ("val_iou", "test_iou"):
        assert 0.0 <= row[key] <= 1.0, key
    probs = probabilities(task, model, task.test)
    assert row["test_iou"] == pooled_pixel_iou(task, probs, task.test)
    objects = (
        ["test_precision", "test_recall", "test_f1", "test_accuracy", "test_tp"]
        if kind == "soma"
        else ["test_voi_split", "test_voi_merge", "test_arand", "test_cremi"]
    )
    post = ["post_fg_threshold", "post_seed_threshold"] if kind == "soma" else ["post_threshold"]
    assert all((k in row) is detailed for k in objects + post)
    if detailed:
        assert all(np.isfinite(row[k]) and row[k] >= 0 for k in objects)


@pytest.mark.parametrize("kind", ["soma", "em"])
def test_baseline_evaluates_the_pretrained_model_untouched(pretrained, tmp_path, kind, monkeypatch):
    task = _task(kind, pretrained, tmp_path / "runs")
    before = _files(pretrained)
    seen = []
    evaluate = neuron_finetuning.evaluate_model

    def spy(task, model, **options):
        seen.append((model, options.get("setting", BASELINE)))
        return evaluate(task, model, **options)

    monkeypatch.setattr("neuroseg.experiments.neuron_finetuning.evaluate_model", spy)
    table = run_settings(task, [BASELINE])
    ((model, setting),) = seen
    assert setting == BASELINE
    state = model.state_dict()
    source_state = load_model(pretrained).state_dict()
    assert state.keys() == source_state.keys()
    assert all(torch.equal(state[k], v) for k, v in source_state.items())
    assert model.meta == read_model_meta(pretrained)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.init == "none" and row["name"] == "baseline (pretrained, as is)"
    assert row.n_train == 3 and np.isnan(row.final_train_loss)
    source = load_model(pretrained)
    expected = pooled_pixel_iou(
        task, probabilities(task, source, task.val), task.val
    )
    assert row.val_iou == expected
    assert _files(pretrained) == before
    assert not task.folder.exists() or not any(task.folder.iterdir())  # nothing trained
    with pytest.raises(ValueError, match="baseline"):
        train_setting(task, BASELINE)


def test_probabilities_fg_contour_model_on_boundary_task(pretrained, tmp_path):
    task = _task("em", pretrained, tmp_path)
    model = load_model(pretrained)
    (p,) = probabilities(task, model, task.test)
    s = task.test[0]
    direct = predict(model, s.image[None], tile=(32, 32), overlap=32)
    assert p.shape == (1, 32, 32) and p.dtype == np.float32
    np.testing.assert_allclose(p, 1.0 - direct[:1], atol=1e-6)
    # the soma task keeps both channels as they are
    (q,) = probabilities(dataclasses.replace(task, target="fg_contour"), model, task.test)
    np.testing.assert_allclose(q, direct, atol=1e-6)


def test_probabilities_boundary_model_is_not_inverted(trained):
    task, _, model, _ = trained["em"]
    (p,) = probabilities(task, model, task.test)
    direct = predict(model, task.test[0].image[None], tile=(32, 32), overlap=32)
    np.testing.assert_allclose(p, direct, atol=1e-6)


def test_probabilities_at_scale_two_come_back_at_native_size(pretrained, tmp_path):
    image, labels = synthetic.nuclei_2d((30, 26), n=2, radius=(3.0, 5.0), seed=7)
    sample = Sample(id="odd", image=image, labels=labels)
    task = dataclasses.replace(_task("em", pretrained, tmp_path), scale=2.0, test=(sample,))
    model = load_model(pretrained)
    (p,) = probabilities(task, model, task.test)
    assert p.shape == (1, 30, 26)
    big = resample_image(image, pixel_size=1.0, target_pixel_size=0.5)
    assert big.shape == (60, 52)
    direct = predict(model, big[None], tile=(32, 32), overlap=32)
    back = resample_image(direct[0], pixel_size=0.5, target_pixel_size=1.0, shape=(30, 26))
    np.testing.assert_allclose(p[0], np.clip(1.0 - back, 0, 1), atol=1e-5)
    (q,) = probabilities(dataclasses.replace(task, target="fg_contour"), model, task.test)
    assert q.shape == (2, 30, 26)


# --------------------------------------------------------------------------------------------
# choosing a setting
# --------------------------------------------------------------------------------------------

CANDIDATES = [
    Setting(layers=1, lr=3e-3, n_train=2, seed=1, epochs=1),
    Setting(init="scratch", augment=False, weight_decay=0.0, extra_data=True),
    Setting(layers=3, loss="bce+dice", batch_size=4),
]


def _table(val_ious):
    rows = [
        {
            "key": BASELINE.key,
            **dataclasses.asdict(BASELINE),
            "n_requested": None,
            "val_iou": 0.99,
        }
    ]
    for s, v in zip(CANDIDATES, val_ious, strict=True):
        rows.append(
            {
                "key": s.key,
                **dataclasses.asdict(s),
                "n_requested": s.n_train,
                "n_train": 7,
                "val_iou": v,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("best", range(len(CANDIDATES)))
def test_choose_picks_the_best_trained_row(best):
    ious = [0.3, 0.4, 0.5]
    ious[best] = 0.9  # the baseline row (0.99) is higher still, and ignored
    table = _table(ious)
    chosen = choose(table)
    assert chosen == CANDIDATES[best] and chosen.key == CANDIDATES[best].key
    assert choose(select(table, [chosen])) == chosen
    assert select(table, CANDIDATES[::-1]).key.tolist() == [s.key for s in CANDIDATES[::-1]]


def test_choose_needs_a_trained_row():
    with pytest.raises(ValueError, match="no trained setting"):
        choose(_table([0.1, 0.2, 0.3]).iloc[:1])


# --------------------------------------------------------------------------------------------
# object scores
# --------------------------------------------------------------------------------------------


def test_em_slice_scores():
    samples = SAMPLES["em"][:2]
    perfect = em_slice_scores(samples, [s.labels for s in samples])
    assert perfect.id.tolist() == ["em:z0", "em:z1"] and perfect.z.tolist() == [0, 1]
    assert perfect.segments.tolist() == [int(s.labels.max()) for s in samples]
    for column in ("voi_split", "voi_merge", "arand", "cremi"):
        assert perfect[column].tolist() == [0.0, 0.0], column
    merged = em_slice_scores(samples, [np.ones_like(s.labels) for s in samples])
    assert (merged.voi_merge > 0.5).all() and (merged.voi_split == 0).all()
    assert merged.segments.tolist() == [1, 1]


def test_object_contrast_golden():
    image = np.ones((15, 15))
    labels = np.zeros((15, 15), int)
    labels[5:8, 5:8] = 4
    image[5:8, 5:8] = 2.0
    image[6, 10] = 3.0  # 3 px from the object: inside a 3-px ring, outside a 1-px one
    table = object_contrast(image, labels)
    assert table.columns.tolist() == ["id", "size", "inside", "around", "contrast"]
    (rec,) = table.to_dict("records")
    assert rec["id"] == 4 and rec["size"] == 9 and rec["inside"] == 2.0
    # the ring: 48 pixels within city-block distance 3 of the 3x3 square
    assert rec["around"] == pytest.approx(50 / 48)
    assert rec["contrast"] == pytest.approx(2.0 * 48 / 50)
    (near,) = object_contrast(image, labels, ring=1).to_dict("records")
    assert near["around"] == 1.0 and near["contrast"] == 2.0
    assert object_contrast(image, np.zeros_like(labels)).empty


def test_soma_error_table_kinds():
    true = np.zeros((12, 12), np.uint32)
    true[1:5, 1:5] = 1
    true[7:11, 7:11] = 2
    pred = np.zeros((12, 12), np.uint32)
    pred[1:5, 1:5] = 3  # true 1 exactly: tp
    pred[1:4, 7:11] = 4  # nothing there: fp
    pred[7:11, 7:9] = 9  # half of true 2: IoU 0.5 is not a hit, so fp (and true 2 is fn)
    mean = np.full((12, 12), 1.0, np.float32)
    mean[true == 2] = 4.0
    sample = Sample(
        id="t0", image=np.zeros((12, 12), np.float32), labels=true, masks={"mean": mean}
    )
    table = soma_error_table([sample], [pred], image="mean")
    kinds = {(r["kind"], r["id"]) for r in table.to_dict("records")}
    assert kinds == {("tp", 3), ("fp", 4), ("fp", 9), ("fn", 2)}
    assert len(table) == 4 and (table.tile == "t0").all()
    m = matching(true, pred)
    assert (m.tp, m.fp, m.fn) == (1, 2, 1)
    fn = table[table.kind == "fn"].iloc[0]
    assert fn["size"] == 16 and fn["inside"] == 4.0  # measured in the "mean" mask
    # a summary image that is not in the masks falls back to the sample's image (zeros)
    fallback = soma_error_table([sample], [pred], image="corr")
    assert (fallback.inside == 0).all()


# --------------------------------------------------------------------------------------------
# the user-facing call on a boundary model folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [None, 2.0])
def test_segment_2d_with_a_boundary_model(tmp_path, scale):
    model = build_unet({**TINY, "out_channels": 1}, seed=3)
    meta = {"target": "boundaries", "postprocess": {"threshold": 0.5}}
    if scale is not None:
        meta["input_scale"] = scale
    folder = save_model(model, tmp_path / "em_model", meta=meta)
    net = neuroseg.load_model(folder)
    image = (np.random.default_rng(0).random((40, 36)) * 255).astype(np.uint8)
    labels, prob = neuroseg.segment_2d(net, image, return_probabilities=True)
    assert labels.dtype == np.uint32 and labels.shape == (40, 36)
    assert prob.shape == (1, 40, 36)
    expected = instances.labels_from_boundaries(prob[0], threshold=0.5)
    assert np.array_equal(labels, expected)
    # keyword options override the folder's post-processing: nothing is below 1e-6
    assert not neuroseg.segment_2d(net, image, threshold=1e-6).any()
    # a head that says "no boundary" everywhere gives one segment
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(-5.0)
    flat = neuroseg.segment_2d(net, image)
    assert flat.shape == (40, 36) and flat.dtype == np.uint32 and (flat == 1).all()


# --------------------------------------------------------------------------------------------
# the real data (quick-profile splits)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_splits(data_root, tmp_path_factory):
    """The quick profile's split files, made from the data as 00_data_preparation makes them,
    in a temporary artifacts folder (so a pipeline run in progress is neither read nor touched)."""
    root = tmp_path_factory.mktemp("artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSEG_ARTIFACTS", str(root))
        records = make_splits(seed=0)
        save_splits(records, profile="quick")
        assert paths.splits_dir("quick") == root / "quick" / "splits"
        yield records


@pytest.mark.data
def test_soma_tiles_are_the_field_cut_at_their_origin(quick_splits, data_root):
    tiles = load_soma_tiles("test", profile="quick")
    field = read_neurofinder(data_root / SOMA_DATASET / "neurofinder_subset.h5")
    regions = quick_splits[SOMA_DATASET]["parts"]["test"]
    assert [t.id for t in tiles] == [r["tile"] for r in regions]
    assert len(tiles) == 4
    full = normalize(field.masks["mean"])
    for tile, region in zip(tiles, regions, strict=True):
        y0, x0 = tile.meta["y0"], tile.meta["x0"]
        assert [y0, x0] == [region["y"][0], region["x"][0]]
        assert tile.image.shape == tile.labels.shape == (128, 128)
        assert np.array_equal(tile.labels, field.labels[y0 : y0 + 128, x0 : x0 + 128])
        np.testing.assert_allclose(tile.image, full[y0 : y0 + 128, x0 : x0 + 128])
        assert set(tile.masks) == {"mean", "max", "std", "corr"}
    assert sum(len(np.unique(t.labels)) - 1 for t in tiles) > 0
    again = load_soma_tiles("ignored", regions=[t.meta["region"] for t in tiles])  # without the split
    assert [t.id for t in again] == [t.id for t in tiles]
    assert all(np.array_equal(a.image, t.image) for a, t in zip(again, tiles, strict=True))


@pytest.mark.data
def test_fib25_slices_are_per_slice_connected_pieces(quick_splits, data_root):
    slices = load_em_slices(FIB25, "test", max_slices=3, profile="quick")
    vol = read_cremi(data_root / FIB25 / "sample2.h5")
    assert [s.meta["z"] for s in slices] == [0, 124, 249]
    for s in slices:
        assert s.image.shape == s.labels.shape == (250, 125) and s.pixel_size == 0.01
        ids = vol.labels[s.meta["z"], :, 125:]
        np.testing.assert_allclose(s.image, normalize(vol.raw[s.meta["z"], :, 125:]))
        expected = measure.label(ids, connectivity=1, background=0)
        n = int(expected.max())
        assert len(np.unique(s.labels[s.labels > 0])) == n
        assert np.array_equal(s.labels == 0, ids == 0)
        pairs = np.unique(np.stack([expected.ravel(), s.labels.ravel()]), axis=1)
        assert pairs.shape[1] == n + int((ids == 0).any())  # one-to-one
    # IDs are unique over the part: no ID in two slices
    sets = [set(np.unique(s.labels[s.labels > 0]).tolist()) for s in slices]
    assert all(a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1 :])


@pytest.mark.data
def test_isbi_slices_resampled_to_10_nm(quick_splits, data_root):
    slices = load_em_slices("isbi2012_em_membranes", "test", profile="quick")
    vol = read_cremi(data_root / "isbi2012_em_membranes" / "train.h5", labels="membrane_mask")
    assert [s.meta["z"] for s in slices] == [25, 26, 27, 28, 29]
    for s in slices:
        assert s.image.shape == s.labels.shape
        assert abs(s.image.shape[0] - 205) <= 1 and abs(s.image.shape[1] - 205) <= 1
        assert s.pixel_size == 0.01 and s.image.dtype == np.float32
        membrane = (vol.labels[s.meta["z"]] == 0).astype(np.uint8)
        expected = resample_labels(
            membrane, pixel_size=4.0, target_pixel_size=10.0, shape=s.labels.shape
        )
        assert np.array_equal(s.labels == 0, expected == 1)
        assert 0.1 < float((s.labels == 0).mean()) < 0.4  # membranes are a minority
        assert len(np.unique(s.labels)) > 20


def test_soma_accuracy_scores_the_stored_watershed_on_pooled_objects(monkeypatch):
    """The shipped soma model's score: a 'model' whose foreground is the true objects gets
    accuracy 1; shifting the truth by more than a radius makes every object a miss."""
    yy, xx = np.mgrid[:48, :48]
    samples = []
    for s, centres in enumerate((((10, 10), (30, 20)), ((12, 34), (36, 12), (36, 36)))):
        labels = np.zeros((48, 48), np.uint16)
        for i, (cy, cx) in enumerate(centres, 1):
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 6 ** 2] = i
        samples.append(Sample(id=f"t{s}", image=(labels > 0).astype(np.float32), labels=labels))
    model = build_unet({"ndim": 2, "depth": 2, "base_features": 4, "out_channels": 2}, seed=0)
    model.meta = {"target": "fg_contour", "postprocess": {"fg_threshold": 0.5, "seed_threshold": 0.5,
                                                           "min_size": 4}}
    monkeypatch.setattr(neuron_finetuning, "predict",
                        lambda m, x, **kw: np.stack([x[0], np.zeros_like(x[0])]))
    assert neuron_finetuning.soma_accuracy(model, samples) == 1.0
    shifted = [dataclasses.replace(s, labels=np.roll(s.labels, 20, axis=1)) for s in samples]
    assert neuron_finetuning.soma_accuracy(model, shifted) < 0.5


def test_seed_spread_puts_the_headline_seed_first_and_names_metrics_as_verify_does(tmp_path):
    task = _task("soma", tmp_path, tmp_path)
    chosen = neuron_finetuning.Setting(seed=0)
    headline = {"soma_test_iou": 0.8, "soma_test_precision": 0.9, "soma_test_recall": 0.7,
                "soma_test_f1": 0.79, "soma_test_accuracy": 0.65}
    runs = pd.DataFrame([{"seed": s, "test_iou": v, "test_precision": 0.9, "test_recall": 0.7,
                          "test_f1": 0.79, "test_accuracy": 0.65} for s, v in ((1, 0.7), (2, 0.9))])
    table = neuron_finetuning.seed_spread("20_x", headline, {"soma": (task, chosen, runs)}, machine="m")
    row = table.set_index("metric").loc["20_x:soma_test_iou"]
    assert row["seeds"] == "0 1 2" and row["values"] == "0.8 0.7 0.9"
    assert row["mean"] == pytest.approx(0.8) and row["sd"] == pytest.approx(0.1)
    assert table.set_index("metric").loc["20_x:soma_test_precision", "sd"] == 0.0
    assert len(table) == 5


def test_seed_runs_train_only_the_other_seeds_of_the_chosen_setting(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(neuron_finetuning, "run_settings",
                        lambda task, settings, detailed=False: seen.append((settings, detailed)) or "table")
    chosen = neuron_finetuning.Setting(lr=0.003, seed=0)
    assert neuron_finetuning.seed_runs(_task("soma", tmp_path, tmp_path), chosen, [0, 1, 2]) == "table"
    ((settings, detailed),) = seen
    assert detailed and [s.seed for s in settings] == [1, 2]
    assert all(dataclasses.replace(s, seed=0) == chosen for s in settings)


def test_soma_examples_colour_each_prediction_by_what_it_is(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from neuroseg.measure.contrast import soma_error_table
    from neuroseg.report.neuron_figures import soma_examples_figure

    samples = _soma_samples()[:2]
    preds = [s.labels.copy() for s in samples]
    preds[0][preds[0] == 1] = 0  # one missed soma
    preds[1][:4, :4] = 99  # one false prediction
    errors = soma_error_table(samples, preds)
    fig = soma_examples_figure(samples, preds, errors, pixel_size_um=0.87)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.endswith(", 0 false, 1 missed") for t in titles)
    assert any(", 1 false, 0 missed" in t for t in titles)
    assert sum("µm" in t.get_text() for ax in fig.axes for t in ax.texts) == 4  # a bar on each tile
    fig.savefig(tmp_path / "soma.png")
