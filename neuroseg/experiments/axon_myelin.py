"""Axon and myelin (the AxonDeepSeg part), the experiment of ``50_axon_myelin``: training, scores.

Used by ``notebooks/50_axon_myelin.ipynb``. A 2D U-Net classifies every pixel of an SEM or TEM
image of a nerve cross-section as background, myelin or (myelinated) axon, and on TEM also
unmyelinated axon (the classes of :data:`neuroseg.data.readers.AXON_CLASSES`), with softmax outputs
and a cross-entropy (+ Dice) loss. Two initialisations are compared: from scratch, and from
the nucleus model of ``10_nucleus_pretraining`` (its head replaced, every layer fine-tuned).

Pixel size is part of the model. A model is trained at one pixel size (``meta["pixel_size"]``
in µm); :func:`neuroseg.segment.axon_myelin.segment` resamples an image to it, predicts, and
resamples the class probabilities back to the image's own grid. An image far from the model's pixel size
(beyond ``max_ratio``) is refused with a clear error, and one moderately far gives a
:class:`~neuroseg.data.resample.PixelSizeWarning`: upsampling a coarse image does not add the
detail the model learned from. :func:`pixel_size_sensitivity` shows what a wrong pixel size
does to the scores.

Scores are computed at the image's native pixel size against the manual masks: Dice per class
(:func:`neuroseg.measure.overlap.dice_per_class`), and the morphometrics of
:mod:`neuroseg.measure.morphometrics` from predicted masks against those from the manual masks, over
axons matched at IoU > 0.5 (:func:`neuroseg.measure.morphometrics.matched_morphometrics`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroseg import paths
from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.readers import AXON_CLASSES, DataError, Sample, read_axondeepseg
from neuroseg.data.resample import (
    PixelSizeWarning,
    resample_image,
    resample_labels,
)
from neuroseg.experiments.papers import TARGETS, meets_target
from neuroseg.measure import morphometrics
from neuroseg.measure.overlap import dice_per_class
from neuroseg.nets import transfer
from neuroseg.nets.augment import Augmenter
from neuroseg.nets.folder import load_model
from neuroseg.nets.loaders import CropDataset
from neuroseg.nets.scale import pixel_size_meta
from neuroseg.nets.train import PRECISIONS, TrainConfig, fit, history_frame
from neuroseg.nets.unet import ModelError, UNet
from neuroseg.plots import CLASS_COLOURS, class_legend, overlay_classes
from neuroseg.segment.axon_myelin import axon_model_pixel_size, input_image, segment

__all__ = [
    "DATASETS", "AxonTask", "AxonSetting", "class_names", "load_samples", "network_pair",
    "make_task", "data_table", "dice_mean", "Comparison", "compare", "train_setting", "evaluate",
    "comparison_row", "choose", "pixel_size_sensitivity", "headline", "examples_figure",
    "gratio_figure", "curves_figure", "sensitivity_figure",
]

#: The two AxonDeepSeg datasets, by modality.
DATASETS = {
    "sem": "axondeepseg_sem_rat_spinalcord",
    "tem": "axondeepseg_tem_mouse_corpuscallosum_srf",
}


#: what a setting trains on (see :class:`AxonSetting`)
TRAIN_ON = ("train", "train+val")

# colour-blind-safe class colours (Okabe-Ito): myelin orange, axon blue, uaxon bluish green


def _check_modality(modality: str) -> str:
    if modality not in DATASETS:
        raise ValueError(f"modality must be one of {sorted(DATASETS)}; got {modality!r}")
    return modality


def class_names(modality: str) -> tuple[str, ...]:
    """Class names by index: background, myelin, axon (and uaxon on TEM).

    Examples
    --------
    >>> class_names("tem")
    ('background', 'myelin', 'axon', 'uaxon')
    """
    names = ("background", "myelin", "axon")
    return names + ("uaxon",) if _check_modality(modality) == "tem" else names


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def load_samples(
    modality: str, part: str, *, max_images: int | None = None, profile: str | None = None,
    ids: Sequence[str] | None = None,
) -> list[Sample]:
    """The samples of one part (train/val/test) of the recorded split, at native pixel size.

    The split (by animal) is the one ``00_data_preparation`` recorded; ``max_images`` keeps
    the first few (the quick profile); ``ids`` are images to read instead of the split's
    ``part`` (a shipped model's record, checked without the split file).
    """
    name = DATASETS[_check_modality(modality)]
    if ids is None:
        split = splits.load_split(name, profile=profile)
        if part not in split["parts"]:
            raise ValueError(f"part must be one of {sorted(split['parts'])}; got {part!r}")
        ids = split["parts"][part]
    ids = list(ids)
    if max_images is not None:
        ids = ids[: int(max_images)]
    root = require(name)
    out = []
    for i in ids:
        s = read_axondeepseg(root, i)
        if s.pixel_size is None:
            raise DataError(f"{name}/{i}: no pixel size in samples.csv")
        out.append(s)
    return out


def network_pair(sample: Sample, pixel_size_um: float) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, Y', X') float32, classes (Y', X')) resampled to ``pixel_size_um``.

    The image is normalised (percentiles 1-99.8 to [0, 1]) and resampled bilinearly; the class
    image by nearest neighbour (:func:`neuroseg.data.resample.resample_labels`).
    """
    image = input_image(sample.image)
    if math.isclose(sample.pixel_size, pixel_size_um, rel_tol=1e-6):
        return image[None].astype(np.float32), np.asarray(sample.labels)
    small = resample_image(image, pixel_size=sample.pixel_size, target_pixel_size=pixel_size_um)
    labels = resample_labels(
        sample.labels, pixel_size=sample.pixel_size, target_pixel_size=pixel_size_um,
        shape=small.shape,
    )
    return small[None].astype(np.float32), labels


@dataclass(frozen=True)
class AxonTask:
    """One modality's data and training set-up.

    Attributes
    ----------
    modality : "sem" or "tem"
    pixel_size_um : the pixel size the model works at (images are resampled to it)
    train, val : samples (native pixel size)
    crop : training crop (pixels at the model's pixel size)
    samples_per_epoch, val_crops : crops per epoch, fixed validation crops
    tile : inference tile
    elastic : (alpha, sigma, probability) of the elastic deformation
    scale_range : random zoom range of the training crops (fibre sizes differ between
        animals more than pixel sizes do), or None
    pretrained : the nucleus model folder
    folder : where the settings' model folders go
    """

    modality: str
    pixel_size_um: float
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    crop: int
    samples_per_epoch: int
    val_crops: int
    tile: int
    elastic: tuple[float, float, float]
    pretrained: Path
    folder: Path
    scale_range: tuple[float, float] | None = None

    def __post_init__(self):
        _check_modality(self.modality)
        if not self.train or not self.val:
            raise ValueError(f"{self.modality}: need training and validation samples")
        if not (self.pixel_size_um > 0 and math.isfinite(self.pixel_size_um)):
            raise ValueError(f"pixel_size_um must be positive; got {self.pixel_size_um}")

    @property
    def classes(self) -> tuple[str, ...]:
        return class_names(self.modality)


def make_task(
    modality: str,
    *,
    pixel_size_um: float,
    crop: int,
    samples_per_epoch: int,
    val_crops: int,
    tile: int,
    elastic: Sequence[float] = (34.0, 4.0, 0.5),
    scale_range: Sequence[float] | None = None,
    max_images: dict | None = None,
    profile: str | None = None,
) -> AxonTask:
    """The task of one modality with the recorded split's train and val samples; models go
    to ``<models>/axon_myelin_<modality>/<setting>``."""
    limits = max_images or {}
    return AxonTask(
        modality=modality,
        pixel_size_um=float(pixel_size_um),
        train=tuple(load_samples(modality, "train", max_images=limits.get("train"), profile=profile)),
        val=tuple(load_samples(modality, "val", max_images=limits.get("val"), profile=profile)),
        crop=int(crop),
        samples_per_epoch=int(samples_per_epoch),
        val_crops=int(val_crops),
        tile=int(tile),
        elastic=tuple(float(v) for v in elastic),
        pretrained=paths.models_dir(profile) / "nucleus_unet",
        folder=paths.models_dir(profile) / f"axon_myelin_{modality}",
        scale_range=None if scale_range is None else tuple(float(v) for v in scale_range),
    )


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxonSetting:
    """One training run: ``init`` is ``"scratch"`` or ``"pretrained"`` (the nucleus model,
    head replaced, every layer trained). ``precision`` and ``channels_last`` are those of
    :class:`neuroseg.nets.train.TrainConfig` (``"bf16"`` with ``channels_last=True`` trains several
    times faster on a CPU with bf16 matrix units).

    ``train_on="train"`` trains on the training images and keeps the epoch with the lowest
    validation loss. ``train_on="train+val"`` is the refit once the choices are made on
    validation: it trains on the training and validation images together, has nothing left
    to validate on, and keeps the last epoch.

    ``features`` is the number of features of the network's first level (doubling at each
    level below). ``None`` takes the nucleus model's architecture, so that the two
    initialisations are the same network; another width is only possible from scratch.
    """

    init: str = "pretrained"
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "ce+dice"
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = False
    train_on: str = "train"
    features: int | None = None

    def __post_init__(self):
        if self.features is not None:
            if isinstance(self.features, bool) or not isinstance(self.features, int) or self.features < 1:
                raise ValueError(f"features must be a positive integer or None; got {self.features!r}")
            if self.init != "scratch":
                raise ValueError(
                    f"features={self.features} needs init='scratch': the pretrained network has "
                    "the nucleus model's width"
                )
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}; got {self.train_on!r}")
        if self.init not in ("scratch", "pretrained"):
            raise ValueError(f"init must be 'scratch' or 'pretrained'; got {self.init!r}")
        if self.loss not in ("ce", "ce+dice"):
            raise ValueError(f"loss must be 'ce' or 'ce+dice'; got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")

    @property
    def key(self) -> str:
        """Folder name: every field (the speed options only when set), so that each run is
        trained once."""
        key = (
            f"{self.init}_e{self.epochs}_b{self.batch_size}_lr{self.lr:g}_wd{self.weight_decay:g}"
            f"_{self.loss.replace('+', '-')}_s{self.seed}"
        )
        if self.precision != "auto":
            key += f"_{self.precision}"
        if self.channels_last:
            key += "_cl"
        if self.features is not None:
            key += f"_w{self.features}"
        if self.refit:
            key += "_trainval"
        return key

    @property
    def name(self) -> str:
        """Short name in tables and figures: the initialisation, ``-w<features>`` for a
        width other than the nucleus model's, ``+val`` for the refit."""
        width = "" if self.features is None else f"-w{self.features}"
        return f"{self.init}{width}" + ("+val" if self.refit else "")

    @property
    def refit(self) -> bool:
        """Whether this run is the refit on the training and validation images."""
        return self.train_on == "train+val"


def _model_meta(task: AxonTask, setting: AxonSetting) -> dict:
    refit = setting.refit
    return {
        "target": "classes",
        "task": f"axon_myelin_{task.modality}",
        "modality": task.modality,
        "dataset": DATASETS[task.modality],
        "outputs": list(task.classes),
        **pixel_size_meta(task.pixel_size_um, "um"),
        "crop": task.crop,
        "normalisation": "grey, percentiles 1-99.8 to [0, 1]",
        "training": {
            "samples_per_epoch": task.samples_per_epoch,
            "val_crops": task.val_crops,
            "elastic": list(task.elastic),
            "scale_range": None if task.scale_range is None else list(task.scale_range),
            "val_images": [] if refit else [s.id for s in task.val],
        },
        "train_images": [s.id for s in task.train] + ([s.id for s in task.val] if refit else []),
    }


def _build(task: AxonTask, setting: AxonSetting) -> UNet:
    k = len(task.classes)
    if setting.init == "scratch":
        config = dict(load_model(task.pretrained).config)
        config["out_channels"] = k
        if setting.features is not None:
            config["base_features"] = setting.features
        return transfer.from_scratch(config, seed=setting.seed)
    return transfer.from_pretrained(task.pretrained, out_channels=k, layers="all", seed=setting.seed)


def _class_target(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels, np.float32)[None]


def train_setting(
    task: AxonTask, setting: AxonSetting, *, progress: bool = False
) -> tuple[UNet, pd.DataFrame]:
    """Train one setting into ``task.folder / setting.key``; return (kept model, history).

    Augmentation: flips and right-angle rotations (mirroring), elastic deformation
    (``task.elastic``), random zoom (``task.scale_range``) and intensity changes. A finished run with the same data, set-up and
    source weights is not repeated.
    """
    refit = setting.refit
    train_samples = list(task.train) + (list(task.val) if refit else [])
    val_samples = [] if refit else list(task.val)
    pairs = [network_pair(s, task.pixel_size_um) for s in train_samples]
    val_pairs = [network_pair(s, task.pixel_size_um) for s in val_samples]
    crop = (task.crop, task.crop)
    for s, (im, _) in zip(train_samples + val_samples, pairs + val_pairs):
        if min(im.shape[1:]) < task.crop:
            raise ValueError(
                f"{s.id}: {im.shape[1:]} px at {task.pixel_size_um} µm is smaller than the crop {task.crop}"
            )
    alpha, sigma, p = task.elastic
    train_data = CropDataset(
        [q[0] for q in pairs], [q[1] for q in pairs], crop=crop, target_fn=_class_target,
        augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p, scale_range=task.scale_range),
        samples_per_epoch=task.samples_per_epoch, seed=setting.seed,
    )
    val_data = None if refit else CropDataset(
        [q[0] for q in val_pairs], [q[1] for q in val_pairs], crop=crop, target_fn=_class_target,
        samples_per_epoch=task.val_crops, seed=10_000 + setting.seed, fixed=True,
    )
    model = _build(task, setting)
    setting_record = dataclasses.asdict(setting)
    # runs recorded before these options existed keep their identity
    if not refit:
        setting_record.pop("train_on")
    if setting.features is None:
        setting_record.pop("features")
    meta = {**_model_meta(task, setting), "transfer": model.meta["transfer"], "setting": setting_record}
    config = TrainConfig(
        epochs=setting.epochs, batch_size=setting.batch_size, lr=setting.lr,
        weight_decay=setting.weight_decay, loss=setting.loss, seed=setting.seed,
        precision=setting.precision, channels_last=setting.channels_last,
        keep="last" if refit else "best",
    )
    folder = task.folder / setting.key
    fit(model, train_data, val_data, config=config, folder=folder, meta=meta,
        resume="if_compatible", progress=progress)
    return load_model(folder), history_frame(folder)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _masks(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(classes)
    return c == AXON_CLASSES["axon"], c == AXON_CLASSES["myelin"]


def evaluate(
    model: UNet,
    samples: Sequence[Sample],
    *,
    tile: int | None = 256,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, list[np.ndarray]]:
    """Score ``model`` on samples at their native pixel size.

    Returns
    -------
    per_image : DataFrame
        One row per image: ``image``, ``pixel_size_um``, ``dice_<class>`` for each
        non-background class, the axon counts (``n_true``, ``n_pred``, ``n_matched``,
        ``n_compared``), ``gratio_mad``, ``axon_diam_mad_um``, ``myelin_thickness_mad_um``,
        ``gratio_bias`` and the mean g-ratio of the manual and predicted measured fibres.
    pairs : DataFrame
        The matched axons of all images (:func:`neuroseg.measure.morphometrics.matched_morphometrics`)
        with an ``image`` column.
    predictions : list of class images
    """
    names = class_names(_modality_of(model))
    rows, tables, preds = [], [], []
    for s in tqdm(samples, desc="evaluate", disable=not progress, leave=False):
        pred = segment(model, s.image, pixel_size=s.pixel_size, tile=tile)
        preds.append(pred)
        dice = dice_per_class(s.labels, pred, range(1, len(names)))
        ta, tm = _masks(s.labels)
        pa, pm = _masks(pred)
        pairs = morphometrics.matched_morphometrics(ta, tm, pa, pm, pixel_size=s.pixel_size)
        diffs = morphometrics.pair_differences(pairs)
        rows.append({
            "image": s.id,
            "pixel_size_um": s.pixel_size,
            **{f"dice_{names[k]}": v for k, v in dice.items()},
            "n_true": pairs.attrs["n_true"],
            "n_pred": pairs.attrs["n_pred"],
            "n_matched": len(pairs),
            **diffs,
            "gratio_mean_true": pairs.attrs["true_summary"]["gratio_mean"],
            "gratio_mean_pred": pairs.attrs["pred_summary"]["gratio_mean"],
        })
        tables.append(pairs.assign(image=s.id))
    pairs_all = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return pd.DataFrame(rows), pairs_all, preds


def _modality_of(model: UNet) -> str:
    axon_model_pixel_size(model)  # ModelError for a model that is not an axon/myelin one
    modality = model.meta.get("modality")
    if modality not in DATASETS:
        raise ModelError(f"the model's meta names no known modality (got {modality!r})")
    return modality


def comparison_row(per_image: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    """Summary of an :func:`evaluate` result: Dice per class as the mean over images, and
    the morphometric differences pooled over every compared axon of every image."""
    if per_image.empty:
        raise ValueError("no images were evaluated")
    out = {c: float(per_image[c].mean()) for c in per_image.columns if c.startswith("dice_")}
    out["n_images"] = len(per_image)
    out.update(morphometrics.pair_differences(pairs))
    return out


def dice_mean(model: UNet, samples: Sequence[Sample], *, tile: int | None = 256) -> float:
    """Mean Dice over the classes but background (each a mean over ``samples``), as
    :func:`compare`'s ``test_dice_mean``; the score a shipped axon model records."""
    if not samples:
        raise ValueError("no images were given")
    per_image, _, _ = evaluate(model, samples, tile=tile)
    return float(np.mean([per_image[c].mean() for c in per_image.columns if c.startswith("dice_")]))


def choose(table: pd.DataFrame, *, by: str = "val_dice_mean") -> pd.Series:
    """The row with the highest ``by`` (validation score), first on ties."""
    if table.empty or by not in table.columns:
        raise ValueError(f"need a non-empty table with the column {by!r}")
    return table.loc[table[by].idxmax()]


def data_table(task: AxonTask, test: Sequence[Sample]) -> pd.DataFrame:
    """The images of each part: id, pixel size, native size and size at the model's pixel size."""
    rows = []
    for part, samples in (("train", task.train), ("val", task.val), ("test", test)):
        for s in samples:
            h, w = np.shape(s.labels)
            scale = s.pixel_size / task.pixel_size_um
            rows.append({
                "modality": task.modality, "part": part, "image": s.id,
                "pixel_size_um": s.pixel_size, "height_px": h, "width_px": w,
                "width_um": round(w * s.pixel_size, 2),
                "model_height_px": int(math.floor(h * scale + 0.5)),
                "model_width_px": int(math.floor(w * scale + 0.5)),
            })
    return pd.DataFrame(rows)


@dataclass
class Comparison:
    """The result of :func:`compare` for one modality.

    ``table`` has one row per trained model (validation and test scores, training time),
    named by :attr:`AxonSetting.name`: one per initialisation and extra width, trained on the
    training images, plus with ``refit`` the chosen one trained again on the training and
    validation images (``train_on="train+val"``, no validation scores). ``chosen`` is the
    name of the candidate with the best mean validation Dice; ``final`` is the name of the
    reported model: ``chosen``, or ``"<chosen>+val"`` for the refit. ``histories``,
    ``models`` and ``test`` (name -> (per_image, pairs, predictions) of :func:`evaluate`)
    hold the rest, by the same names.
    """

    modality: str
    table: pd.DataFrame
    chosen: str
    histories: dict
    models: dict
    test: dict
    final: str = ""

    def __post_init__(self):
        if not self.final:
            self.final = self.chosen


def compare(
    task: AxonTask,
    test: Sequence[Sample],
    *,
    inits: Sequence[str] = ("scratch", "pretrained"),
    scratch_widths: Sequence[int] = (),
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    loss: str = "ce+dice",
    seed: int = 0,
    precision: str = "auto",
    channels_last: bool = False,
    refit: bool = False,
    tile: int | None = 256,
    progress: bool = True,
) -> Comparison:
    """Train one setting per candidate, score each on the validation and test images, and
    choose by mean validation Dice over the non-background classes.

    The candidates are one network per initialisation in ``inits`` (the nucleus model's
    architecture) and one from-scratch network per width in ``scratch_widths``
    (:attr:`AxonSetting.features`). With ``refit``, the chosen candidate is then trained once
    more, on the training and validation images together for the same number of epochs
    (keeping the last), and that model is the one reported (:attr:`Comparison.final`): the
    validation image has done its job of choosing and becomes more training data.
    """
    rows, histories, models, tests = [], {}, {}, {}
    common = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  loss=loss, seed=seed, precision=precision, channels_last=channels_last)
    candidates = [AxonSetting(init=init, **common) for init in inits]
    candidates += [AxonSetting(init="scratch", features=int(w), **common) for w in scratch_widths]
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidates must differ; got {names}")

    def run(setting: AxonSetting) -> None:
        model, history = train_setting(task, setting, progress=progress)
        per_image, pairs, preds = evaluate(model, test, tile=tile, progress=progress)
        tst = comparison_row(per_image, pairs)
        dice_cols = [c for c in tst if c.startswith("dice_")]
        if not setting.refit:
            val = comparison_row(*evaluate(model, task.val, tile=tile)[:2])
            val_scores = {
                **{f"val_{k}": v for k, v in val.items()},
                "val_dice_mean": float(np.mean([val[c] for c in dice_cols])),
            }
        else:  # the validation images are training images now
            val_scores = {}
        rows.append({
            "modality": task.modality,
            "init": setting.init,
            "base_features": int(model.config["base_features"]),
            "train_on": setting.train_on,
            "name": setting.name,
            "setting": setting.key,
            "best_epoch": int(model.meta.get("best_epoch", len(history))),
            "weights_epoch": int(model.meta.get("weights_epoch", model.meta.get("best_epoch", len(history)))),
            "train_seconds": float(history["seconds"].sum()),
            **val_scores,
            **{f"test_{k}": v for k, v in tst.items()},
            "test_dice_mean": float(np.mean([tst[c] for c in dice_cols])),
        })
        histories[setting.name], models[setting.name], tests[setting.name] = history, model, (per_image, pairs, preds)

    for setting in candidates:
        run(setting)
    chosen = str(choose(pd.DataFrame(rows))["name"])
    final = chosen
    if refit:
        best = dataclasses.replace(candidates[names.index(chosen)], train_on="train+val")
        run(best)
        final = best.name
    table = pd.DataFrame(rows)
    table = table.assign(chosen=(table["name"] == chosen) & (table["train_on"] == "train"),
                         final=table["name"] == final)
    return Comparison(task.modality, table, chosen, histories, models, tests, final)


def pixel_size_sensitivity(
    model: UNet,
    samples: Sequence[Sample],
    *,
    factors: Sequence[float] = (0.5, 0.7, 1.0, 1.4, 2.0),
    max_px: int | None = 768,
    tile: int | None = 256,
) -> pd.DataFrame:
    """Dice when the pixel size given to :func:`segment` is wrong by a factor.

    Each image (its central ``max_px`` square at most, to bound the cost) is segmented with
    ``pixel_size = true pixel size * factor`` (the warning of far factors is recorded, not
    shown). Returns one row per image and factor: ``image``, ``factor``, ``warned``,
    ``dice_<class>``.
    """
    names = class_names(_modality_of(model))
    rows = []
    for s in samples:
        image, labels = np.asarray(s.image), np.asarray(s.labels)
        if max_px is not None:
            y0 = max(0, (image.shape[0] - max_px) // 2)
            x0 = max(0, (image.shape[1] - max_px) // 2)
            image = image[y0:y0 + max_px, x0:x0 + max_px]
            labels = labels[y0:y0 + max_px, x0:x0 + max_px]
        for f in factors:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PixelSizeWarning)
                pred = segment(model, image, pixel_size=s.pixel_size * float(f), tile=tile,
                               max_ratio=None)
            dice = dice_per_class(labels, pred, range(1, len(names)))
            rows.append({
                "image": s.id,
                "factor": float(f),
                "warned": any(issubclass(w.category, PixelSizeWarning) for w in caught),
                **{f"dice_{names[k]}": v for k, v in dice.items()},
            })
    return pd.DataFrame(rows)


def headline(comparisons: Sequence[Comparison], tasks: dict[str, AxonTask]) -> dict:
    """The flat numbers of ``reports/metrics/50_axon_myelin.json``.

    Per modality, of the reported model (:attr:`Comparison.final`): the test Dice of each
    class (``sem_dice_axon``, ``tem_dice_uaxon``...), the g-ratio and axon diameter
    differences to the manual masks (with ``<m>_gratio_bias``, the signed g-ratio shift),
    its initialisation and width (``<m>_init``, ``<m>_base_features``), what it was trained
    on and how many images that is; the mean test Dice of each candidate trained on the
    training images only (``sem_scratch_test_dice_mean``, ``sem_scratch_w32_...``) and, when the
    reported model is a refit, the chosen one's numbers before the refit
    (``sem_train_only_dice_axon``...); and whether the SEM targets of :data:`TARGETS` are met.
    """
    out: dict = {}
    for c in comparisons:
        m = c.modality
        table = c.table
        row = table[table["name"] == c.final].iloc[0]
        names = class_names(m)[1:]
        for name in names:
            out[f"{m}_dice_{name}"] = float(row[f"test_dice_{name}"])
        out[f"{m}_gratio_mad"] = float(row["test_gratio_mad"])
        out[f"{m}_gratio_bias"] = float(row["test_gratio_bias"])
        out[f"{m}_axon_diam_mad_um"] = float(row["test_axon_diam_mad_um"])
        out[f"{m}_myelin_thickness_mad_um"] = float(row["test_myelin_thickness_mad_um"])
        out[f"{m}_n_compared_axons"] = int(row["test_n_compared"])
        out[f"{m}_init"] = str(row["init"])
        out[f"{m}_base_features"] = int(row["base_features"])
        out[f"{m}_train_on"] = str(row["train_on"])
        out[f"{m}_pixel_size_um"] = tasks[m].pixel_size_um
        out[f"{m}_n_train_images"] = len(tasks[m].train) + (
            len(tasks[m].val) if row["train_on"] == "train+val" else 0)
        out[f"{m}_n_test_images"] = int(row["test_n_images"])
        only = table[table["train_on"] == "train"]
        for _, other in only.iterrows():
            key = str(other["name"]).replace("-", "_")
            out[f"{m}_{key}_test_dice_mean"] = float(other["test_dice_mean"])
        if c.final != c.chosen:
            before = only[only["name"] == c.chosen].iloc[0]
            for name in names:
                out[f"{m}_train_only_dice_{name}"] = float(before[f"test_dice_{name}"])
            out[f"{m}_train_only_gratio_mad"] = float(before["test_gratio_mad"])
    if "sem_dice_axon" in out:
        out["sem_targets_met"] = all(meets_target(k, out[k]) for k in TARGETS)
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def examples_figure(samples: Sequence[Sample], preds: Sequence[np.ndarray], *, modality: str,
                    n: int = 3, max_px: int = 600):
    """Image, manual classes and predicted classes for the first ``n`` samples (central
    ``max_px`` square)."""
    import matplotlib.pyplot as plt

    names = class_names(modality)
    n = min(n, len(samples))
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n + 0.4), squeeze=False)
    for row, (s, pred) in enumerate(zip(samples[:n], preds[:n])):
        y0 = max(0, (s.image.shape[0] - max_px) // 2)
        x0 = max(0, (s.image.shape[1] - max_px) // 2)
        sl = (slice(y0, y0 + max_px), slice(x0, x0 + max_px))
        size_um = min(max_px, s.image.shape[1]) * s.pixel_size
        axes[row, 0].imshow(s.image[sl], cmap="gray")
        axes[row, 0].set_title(f"{s.id}\n{s.pixel_size:g} µm/px, {size_um:.1f} µm wide", fontsize=8)
        axes[row, 0].set_axis_off()
        overlay_classes(axes[row, 1], s.image[sl], s.labels[sl], title="manual")
        overlay_classes(axes[row, 2], s.image[sl], pred[sl], title="predicted")
    class_legend(fig, names)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def gratio_figure(pairs: pd.DataFrame, *, title: str):
    """Histogram of g-ratios (manual vs predicted) and g-ratio against axon diameter, over
    the compared axons."""
    import matplotlib.pyplot as plt

    sel = pairs[pairs["compared"].to_numpy(bool)] if len(pairs) else pairs
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = np.linspace(0.3, 1.0, 36)
    for side, colour in (("true", "#000000"), ("pred", "#D55E00")):
        label = "manual" if side == "true" else "predicted"
        if len(sel):
            a.hist(sel[f"gratio_{side}"], bins=bins, histtype="step", lw=1.8, color=colour,
                   label=f"{label} (mean {sel[f'gratio_{side}'].mean():.3f})")
            b.scatter(sel[f"axon_diam_um_{side}"], sel[f"gratio_{side}"], s=6, alpha=0.5,
                      color=colour, label=label)
    a.set_xlabel("g-ratio (axon diameter / fibre diameter)")
    a.set_ylabel("matched axons")
    b.set_xlabel("axon diameter (µm, equivalent circle)")
    b.set_ylabel("g-ratio")
    for ax in (a, b):
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: {len(sel)} matched myelinated axons not touching the border", fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(histories: dict[str, pd.DataFrame]):
    """Validation loss and training loss per epoch, one line per run."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, h in histories.items():
        axes[0].plot(h["epoch"], h["train_loss"], label=label)
        axes[1].plot(h["epoch"], h["val_loss"], label=label)
    axes[0].set_ylabel("training loss (CE + Dice)")
    axes[1].set_ylabel("validation loss (CE + Dice)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sensitivity_figure(table: pd.DataFrame, *, modality: str):
    """Mean Dice per class against the factor by which the given pixel size is wrong."""
    import matplotlib.pyplot as plt

    names = class_names(modality)
    mean = table.groupby("factor").mean(numeric_only=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for k in range(1, len(names)):
        ax.plot(mean.index, mean[f"dice_{names[k]}"], marker="o", color=CLASS_COLOURS[k],
                label=names[k])
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(list(mean.index), [f"{f:g}" for f in mean.index])
    ax.set_xlabel("given pixel size / true pixel size")
    ax.set_ylabel("Dice (mean over test images)")
    ax.set_title(f"{modality.upper()}: a wrong pixel size", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
