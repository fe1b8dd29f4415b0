"""Training loop: determinism, resume after an interruption, checkpoints, freezing."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from neuroseg.data import synthetic
from neuroseg.data.images import normalize, to_grey
from neuroseg.nets import augment, loaders, train, transfer
from neuroseg.nets.folder import load_model
from neuroseg.nets.layers import freeze_all_but_last
from neuroseg.nets.unet import ModelError, UNet, build_unet
from neuroseg.segment.instances import fg_contour_targets

TINY = {"ndim": 2, "in_channels": 1, "out_channels": 2, "depth": 2, "base_features": 4}


def _datasets(seed=0):
    pairs = [synthetic.nuclei_2d((40, 40), n=5, seed=s) for s in range(4)]
    images = [img[None] for img, _ in pairs]
    labels = [lab for _, lab in pairs]
    tr = loaders.CropDataset(
        images, labels, crop=(32, 32), target_fn=fg_contour_targets,
        augmenter=augment.Augmenter(elastic_p=0.5), samples_per_epoch=8, seed=seed,
    )
    va = loaders.CropDataset(
        images, labels, crop=(32, 32), target_fn=fg_contour_targets, samples_per_epoch=4,
        seed=seed + 1, fixed=True,
    )
    return tr, va


def _fit(folder, *, epochs=3, seed=0, options=None, **kw):
    model = build_unet(TINY, seed=seed)
    tr, va = _datasets(seed)
    config = train.TrainConfig(
        epochs=epochs, batch_size=4, lr=1e-2, seed=seed, device="cpu", **(options or {})
    )
    history = train.fit(model, tr, va, config=config, folder=folder, progress=False, **kw)
    return model, history


def _state(folder, name="last.pt"):
    return train.load_checkpoint(folder / "checkpoints" / name)["model"]


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_writes_model_folder_and_history(tmp_path):
    model, history = _fit(tmp_path / "m")
    folder = tmp_path / "m"
    for name in ("config.json", "weights.pt", "env.json", "history.csv"):
        assert (folder / name).exists(), name
    frame = pd.read_csv(folder / "history.csv")
    assert list(frame.epoch) == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_iou", "lr", "seconds"} <= set(frame.columns)
    assert frame.train_loss.iloc[-1] < frame.train_loss.iloc[0]
    loaded = load_model(folder)
    assert loaded.meta["train_config"]["epochs"] == 3
    # the folder holds the best epoch's weights, and fit leaves them in the model
    assert _same_state(loaded.state_dict(), _state(folder, "best.pt"))
    assert _same_state(model.state_dict(), loaded.state_dict())


def test_same_seed_same_weights_on_cpu(tmp_path):
    _fit(tmp_path / "a", epochs=2)
    _fit(tmp_path / "b", epochs=2)
    _fit(tmp_path / "c", epochs=2, seed=1)
    assert _same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    assert not _same_state(_state(tmp_path / "a"), _state(tmp_path / "c"))


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    _, full_history = _fit(tmp_path / "full", epochs=3)

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "resumed", epochs=3, on_epoch_end=interrupt)
    assert train.load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["epoch"] == 1
    _, resumed_history = _fit(tmp_path / "resumed", epochs=3, resume=True)
    assert _same_state(_state(tmp_path / "full"), _state(tmp_path / "resumed"))
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(full_history).drop(columns=drop), pd.DataFrame(resumed_history).drop(columns=drop)
    )


def test_resume_of_a_different_run(tmp_path):
    _fit(tmp_path / "m", epochs=2)
    model = build_unet(TINY, seed=0)
    tr, va = _datasets()
    other = train.TrainConfig(epochs=2, batch_size=4, lr=5e-3, device="cpu")
    with pytest.raises(ModelError, match="different run"):
        train.fit(model, tr, va, config=other, folder=tmp_path / "m", progress=False)
    history = train.fit(
        model, tr, va, config=other, folder=tmp_path / "m", progress=False, resume="if_compatible"
    )
    assert len(history) == 2
    assert train.load_checkpoint(tmp_path / "m" / "checkpoints" / "last.pt")["config"]["lr"] == 5e-3


def test_corrupt_checkpoint_is_named(tmp_path):
    _fit(tmp_path / "m", epochs=1)
    last = tmp_path / "m" / "checkpoints" / "last.pt"
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="last.pt"):
        _fit(tmp_path / "m", epochs=2)


def test_frozen_layers_do_not_change(tmp_path):
    model = build_unet(TINY, seed=0)
    freeze_all_but_last(model, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tr, va = _datasets()
    config = train.TrainConfig(epochs=1, batch_size=4, lr=1e-2, device="cpu")
    train.fit(model, tr, va, config=config, folder=tmp_path / "m", progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") or "running" in k or "num_batches" in k for k in changed)
    assert any(k.startswith("head.") for k in changed)


def test_losses():
    logits = torch.tensor([[[[10.0, -10.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    for loss in ("bce", "dice", "bce+dice"):
        value = float(train.loss_fn(logits, target, train.TrainConfig(loss=loss)))
        assert 0 <= value < 0.01, loss
    wrong = float(train.loss_fn(-logits, target, train.TrainConfig(loss="bce")))
    assert wrong > 5
    classes = torch.tensor([[[[2, 0]]]]).float()
    ce_logits = torch.tensor([[[[0.0, 9.0]], [[0.0, 0.0]], [[9.0, 0.0]]]])
    assert float(train.loss_fn(ce_logits, classes, train.TrainConfig(loss="ce"))) < 0.01
    with pytest.raises(ValueError, match="channel_weights"):
        train.loss_fn(logits, target, train.TrainConfig(channel_weights=(1.0, 2.0)))


def test_config_validation():
    with pytest.raises(ValueError, match="loss"):
        train.TrainConfig(loss="l2")
    with pytest.raises(ValueError, match="optimizer"):
        train.TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="precision"):
        train.TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="keep"):
        train.TrainConfig(keep="first")


def test_bf16_channels_last_training_on_cpu(tmp_path, monkeypatch):
    fast = {"precision": "bf16", "channels_last": True}
    seen = []
    forward = UNet.forward

    def spy(self, x):
        out = forward(self, x)
        if self.training:
            convs = [w for w in self.parameters() if w.ndim == 4 and w.shape[1] > 1 and w.shape[2] > 1]
            last = all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                       for w in convs)
            seen.append((out.dtype, last))
        return out

    monkeypatch.setattr(UNet, "forward", spy)
    _, history = _fit(tmp_path / "a", epochs=2, options=fast)
    assert seen and all(s == (torch.bfloat16, True) for s in seen)
    assert all(np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"]) for row in history)
    seen.clear()
    _fit(tmp_path / "plain", epochs=2)
    assert seen and all(s == (torch.float32, False) for s in seen)
    # same seed, same weights; weights stay float32 and load into an ordinary model
    _fit(tmp_path / "b", epochs=2, options=fast)
    assert _same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    assert not _same_state(_state(tmp_path / "a"), _state(tmp_path / "plain"))
    loaded = load_model(tmp_path / "a")
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values() if v.is_floating_point())
    x = torch.rand(1, 1, 32, 32)
    assert loaded.eval()(x).shape == (1, 2, 32, 32)


def test_new_options_at_their_default_keep_a_recorded_run(tmp_path):
    model = build_unet(TINY, seed=0)
    plain = train._run_identity(model, train.TrainConfig(), {})
    assert "precision" not in plain["config"] and "channels_last" not in plain["config"]
    fast = train._run_identity(model, train.TrainConfig(precision="bf16"), {})
    assert fast["config"]["precision"] == "bf16" and fast != plain
    # a finished run is not resumed under other speed options
    _fit(tmp_path / "m", epochs=1)
    with pytest.raises(ModelError, match="different run"):
        _fit(tmp_path / "m", epochs=1, options={"channels_last": True})


def test_keep_last_leaves_the_final_epoch_in_the_folder(tmp_path):
    """A refit keeps its last epoch, whatever the monitored loss did; the default keeps the
    best one. Both are resumable and skipped once finished."""
    model = build_unet(TINY, seed=0)
    tr, _ = _datasets(0)
    # lr so large (and constant) that the last of 4 epochs is not the lowest training loss
    config = train.TrainConfig(epochs=4, batch_size=4, lr=1.0, schedule=None, seed=0, device="cpu",
                               keep="last")
    history = train.fit(model, tr, None, config=config, folder=tmp_path / "last", progress=False)
    losses = [row["train_loss"] for row in history]
    assert int(np.argmin(losses)) + 1 != len(losses), losses
    loaded = load_model(tmp_path / "last")
    assert loaded.meta["weights_epoch"] == 4
    assert loaded.meta["best_epoch"] == int(np.argmin(losses)) + 1
    assert _same_state(loaded.state_dict(), _state(tmp_path / "last", "last.pt"))
    assert _same_state(model.state_dict(), loaded.state_dict())
    assert not _same_state(loaded.state_dict(), _state(tmp_path / "last", "best.pt"))
    # the same run with keep="best" holds the best epoch; the option is part of the identity
    best = build_unet(TINY, seed=0)
    train.fit(best, tr, None, config=dataclasses.replace(config, keep="best"), folder=tmp_path / "best",
              progress=False)
    assert load_model(tmp_path / "best").meta["weights_epoch"] == int(np.argmin(losses)) + 1
    with pytest.raises(ModelError, match="different run"):
        train.fit(build_unet(TINY, seed=0), tr, None, config=config, folder=tmp_path / "best",
                  progress=False)
    # a finished keep="last" run returns at once, the last weights in the model
    again = build_unet(TINY, seed=1)
    assert len(train.fit(again, tr, None, config=config, folder=tmp_path / "last", progress=False)) == 4
    assert _same_state(again.state_dict(), loaded.state_dict())


def test_dataset_too_small_for_a_batch(tmp_path):
    model = build_unet(TINY, seed=0)
    tr, _ = _datasets()
    config = train.TrainConfig(epochs=1, batch_size=16, device="cpu")
    with pytest.raises(ValueError, match="fewer than one batch"):
        train.fit(model, tr, None, config=config, folder=tmp_path / "m", progress=False)


def test_crop_dataset_is_a_function_of_seed_epoch_index():
    tr, va = _datasets()
    a0 = tr.sample(3)
    tr.set_epoch(1)
    a1 = tr.sample(3)
    tr.set_epoch(0)
    assert np.array_equal(tr.sample(3)[0], a0[0])
    assert not np.array_equal(a1[0], a0[0])
    v0 = va.sample(2)
    va.set_epoch(5)
    assert np.array_equal(va.sample(2)[1], v0[1])


def test_crop_dataset_validates_inputs():
    image, labels = synthetic.nuclei_2d((20, 20), seed=0)
    with pytest.raises(ValueError, match="does not match"):
        loaders.CropDataset([image[None]], [labels[:10]], crop=(8, 8), target_fn=fg_contour_targets)
    with pytest.raises(ValueError, match="equally many"):
        loaders.CropDataset([image[None]], [], crop=(8, 8), target_fn=fg_contour_targets)


def test_random_crop_pads_small_images():
    rng = np.random.default_rng(0)
    image, labels = synthetic.nuclei_2d((20, 24), seed=0)
    crop_img, crop_lab = loaders.random_crop(image[None], labels, (32, 16), rng=rng)
    assert crop_img.shape == (1, 32, 16) and crop_lab.shape == (32, 16)


def test_normalize_and_grey():
    assert normalize(np.array([[0, 50], [100, 100]]), pmin=0, pmax=100).tolist() == [
        [0.0, 0.5], [1.0, 1.0]]
    with pytest.raises(ValueError, match="NaN"):
        normalize(np.array([0.0, np.nan]))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 100
    assert np.allclose(to_grey(rgb), 71.54)
    with pytest.raises(ValueError, match="2D grey or RGB"):
        to_grey(np.zeros((2, 2, 2, 2)))


def _fit_transfer(source, folder, *, epochs=2):

    model = transfer.from_pretrained(source, out_channels=2, layers=1, seed=0)
    tr, va = _datasets()
    config = train.TrainConfig(epochs=epochs, batch_size=4, lr=1e-2, seed=0, device="cpu")
    return train.fit(model, tr, va, config=config, folder=folder, meta={"transfer": model.meta["transfer"]},
                     progress=False, resume="if_compatible")


def test_finished_transfer_run_survives_a_moved_source_but_not_a_changed_one(tmp_path, capsys):
    import shutil

    _fit(tmp_path / "source", epochs=1)
    first = _fit_transfer(tmp_path / "source", tmp_path / "run")
    done = _state(tmp_path / "run")
    # the project moved: the same source weights under another path keep the finished run
    shutil.move(tmp_path / "source", tmp_path / "moved")
    capsys.readouterr()
    again = _fit_transfer(tmp_path / "moved", tmp_path / "run")
    assert "starting afresh" not in capsys.readouterr().out
    assert [r["seconds"] for r in again] == [r["seconds"] for r in first]
    assert _same_state(done, _state(tmp_path / "run"))
    # other source weights make another run
    _fit(tmp_path / "moved", epochs=1, seed=3, resume="if_compatible")
    _fit_transfer(tmp_path / "moved", tmp_path / "run")
    assert "starting afresh" in capsys.readouterr().out
    assert not _same_state(done, _state(tmp_path / "run"))
