"""Neuron fine-tuning (SomaNet's second stage), the experiment of ``20_neuron_finetuning``.

Two targets start from the nucleus model of ``10_nucleus_pretraining``: **soma** (neurofinder
tiles, :mod:`neuroseg.data.soma_tiles`; the nucleus target, so the head is kept; ``Task.scale``
can enlarge images before the network, scores are computed at the native pixel size) and
**em** (FIB-25 slices at 10 nm, :mod:`neuroseg.data.em_slices`; boundaries, so the head is
replaced; the ssTEM stacks are optional extra data, ``Setting.extra_data``).

A :class:`Task` holds a target's data and training set-up; a :class:`Setting` is one training
run (initialisation, trainable layers, hyperparameters, number of training images, seed).
:func:`run_settings` trains and scores a list of settings; a setting's model folder is named
after its fields, so a setting that appears in several tables is trained once.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroseg.data import splits
from neuroseg.data.em_slices import EXTRA_EM, FIB25, load_em_slices
from neuroseg.data.readers import Sample
from neuroseg.data.resample import resample_image, resample_labels
from neuroseg.data.soma_tiles import SOMA_DATASET, load_soma_tiles
from neuroseg.data.splits import training_subset
from neuroseg.experiments.papers import SOMANET_PAPER
from neuroseg.measure.matching import matching_dataset
from neuroseg.measure.overlap import pixel_iou
from neuroseg.nets import transfer
from neuroseg.nets.augment import Augmenter
from neuroseg.nets.folder import load_model, save_model
from neuroseg.nets.loaders import CropDataset
from neuroseg.nets.predict import predict
from neuroseg.nets.scale import PixelSize, canonical_meta, from_model_scale
from neuroseg.nets.train import TrainConfig, fit, history_frame
from neuroseg.nets.unet import UNet
from neuroseg.segment import instances, tuning
from neuroseg.segment.tuning import em_slice_scores

__all__ = [
    "Setting",
    "Task",
    "choose",
    "em_task",
    "evaluate_model",
    "finalise",
    "hyperparameter_settings",
    "learning_curve_settings",
    "probabilities",
    "run_settings",
    "seed_runs",
    "seed_spread",
    "soma_accuracy",
    "soma_task",
]


# --------------------------------------------------------------------------------------------
# task and settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One fine-tuning target: its data, its network target and its training set-up.

    ``target`` is ``"fg_contour"`` (two channels, instances by seeded watershed on
    foreground minus contour) or ``"boundaries"`` (one channel, instances by watershed on the
    boundary map). ``scale`` enlarges images before the network (and shrinks probabilities
    back). ``folder`` holds one model folder per trained setting. ``precision`` and
    ``channels_last`` are :class:`neuroseg.nets.train.TrainConfig`'s, for every setting.
    """

    name: str
    target: str
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    pretrained: Path
    folder: Path
    extra: tuple[Sample, ...] = ()
    scale: float = 1.0
    pixel_nm: float | None = None
    crop: int = 128
    samples_per_epoch: int = 128
    val_crops: int = 32
    tile: int = 256
    elastic_alpha: float = 34.0
    elastic_sigma: float = 4.0
    elastic_p: float = 0.5
    precision: str = "auto"
    channels_last: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.target not in ("fg_contour", "boundaries"):
            raise ValueError(f"target must be 'fg_contour' or 'boundaries', got {self.target!r}")
        if not (self.train and self.val and self.test):
            raise ValueError(f"task {self.name!r} needs train, val and test samples")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def out_channels(self) -> int:
        return 2 if self.target == "fg_contour" else 1

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Training target (K, Y, X) of a label crop."""
        if self.target == "fg_contour":
            return instances.fg_contour_targets(labels)
        return instances.boundary_targets(labels)[None]

    def truth_mask(self, labels: np.ndarray) -> np.ndarray:
        """The pixels the pixel IoU is about: foreground (soma) or boundaries (EM)."""
        if self.target == "fg_contour":
            return labels > 0
        return instances.boundary_targets(labels) > 0


def soma_task(
    *,
    pretrained: str | Path,
    folder: str | Path,
    image: str = "mean",
    scale: float = 2.0,
    profile: str | None = None,
    **options,
) -> Task:
    """The soma target on the neurofinder tiles (see :class:`Task` for ``options``)."""
    parts = {p: tuple(load_soma_tiles(p, image=image, profile=profile)) for p in splits.PARTS}
    return Task(
        name="soma",
        target="fg_contour",
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        pretrained=Path(pretrained),
        folder=Path(folder),
        scale=float(scale),
        meta={"dataset": SOMA_DATASET, "image": image},
        **options,
    )


def em_task(
    *,
    pretrained: str | Path,
    folder: str | Path,
    pixel_nm: float = 10.0,
    extra: Sequence[str] = EXTRA_EM,
    max_slices: dict | None = None,
    profile: str | None = None,
    **options,
) -> Task:
    """The EM boundary target on FIB-25 slices; ``extra`` datasets' training slices too.

    ``max_slices`` maps a part name to the most slices kept from it (quick runs).
    """
    cap = dict(max_slices or {})
    parts = {
        p: tuple(load_em_slices(FIB25, p, pixel_nm=pixel_nm, max_slices=cap.get(p), profile=profile))
        for p in splits.PARTS
    }
    more = tuple(
        s
        for name in extra
        for s in load_em_slices(name, "train", pixel_nm=pixel_nm, max_slices=cap.get("train"), profile=profile)
    )
    return Task(
        name="em",
        target="boundaries",
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        extra=more,
        pretrained=Path(pretrained),
        folder=Path(folder),
        pixel_nm=float(pixel_nm),
        meta={"dataset": FIB25, "extra": list(extra), "pixel_nm": float(pixel_nm)},
        **options,
    )


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class Setting:
    """One training run.

    ``init`` is ``"transfer"`` (from the pretrained model) or ``"scratch"``; ``layers`` the
    number of trainable conv layers counted from the output, or ``"all"``; ``loss`` one of
    :class:`neuroseg.nets.train.TrainConfig`'s losses; ``n_train`` the
    number of training images (None: all), drawn with ``seed``, which also seeds the new head,
    the crops and the augmentation. ``extra_data`` adds the task's extra training images.
    """

    init: str = "transfer"
    layers: int | str = "all"
    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 10
    weight_decay: float = 1e-4
    loss: str = "bce"
    augment: bool = True
    n_train: int | None = None
    extra_data: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.init not in ("transfer", "scratch", "none"):
            raise ValueError(f"init must be 'transfer', 'scratch' or 'none', got {self.init!r}")
        if self.init == "scratch" and self.layers != "all":
            raise ValueError("a network trained from scratch trains all layers (layers='all')")
        if not (self.layers == "all" or (_is_int(self.layers) and self.layers >= 1)):
            raise ValueError(f"layers must be a positive int or 'all', got {self.layers!r}")
        if self.n_train is not None and not (_is_int(self.n_train) and self.n_train >= 1):
            raise ValueError(f"n_train must be a positive int or None, got {self.n_train!r}")

    @property
    def key(self) -> str:
        """Folder name: every field, readable."""
        n = "all" if self.n_train is None else str(self.n_train)
        return (
            f"{self.init}_L{self.layers}_lr{float(self.lr)!r}_b{self.batch_size}_e{self.epochs}"
            f"_wd{float(self.weight_decay)!r}_{self.loss}_{'aug' if self.augment else 'noaug'}_n{n}"
            f"{'_extra' if self.extra_data else ''}_s{self.seed}"
        )


BASELINE = Setting(init="none")
"""The pretrained model applied as it is (SomaNet's baseline row)."""


def hyperparameter_settings(base: dict, variations: dict, *, seed: int = 0) -> list[Setting]:
    """The base setting, then each variation of one field at a time (no duplicates).

    Examples
    --------
    >>> s = hyperparameter_settings({"lr": 0.001}, {"lr": [0.001, 0.0001], "layers": [1]})
    >>> [(x.lr, x.layers) for x in s]
    [(0.001, 'all'), (0.0001, 'all'), (0.001, 1)]
    """
    first = Setting(**base, seed=seed)
    out = [first]
    for name, values in variations.items():
        if name not in {f.name for f in dataclasses.fields(Setting)}:
            raise ValueError(f"unknown setting field {name!r}")
        for value in values:
            s = dataclasses.replace(first, **{name: value})
            if s not in out:
                out.append(s)
    return out


def learning_curve_settings(
    chosen: Setting, sizes: Iterable[int | None], *, seeds: Iterable[int], pool: int
) -> list[Setting]:
    """Transfer (with ``chosen``'s layers) against scratch at each training-set size and seed.

    Sizes larger than the ``pool`` of training images become "all" (None); duplicates go.
    """
    out = []
    for n, init, seed in product(sizes, ("transfer", "scratch"), seeds):
        n = None if n is None or n >= pool else int(n)
        layers = chosen.layers if init == "transfer" else "all"
        s = dataclasses.replace(chosen, init=init, layers=layers, n_train=n, seed=seed, extra_data=False)
        if s not in out:
            out.append(s)
    return out


def choose(table: pd.DataFrame, *, by: str = "val_iou") -> Setting:
    """The setting of the row with the highest ``by`` (validation data only)."""
    trained = table[table.init != "none"]
    if trained.empty:
        raise ValueError("no trained setting in the table")
    return _row_setting(trained.loc[trained[by].idxmax()])


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _network_pair(task: Task, s: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, Y', X'), labels (Y', X')) at the network's scale."""
    return _network_pair_at(s, task.scale)


def _network_pair_at(s: Sample, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if scale == 1.0:
        return s.image[None].astype(np.float32), s.labels
    image = resample_image(s.image, pixel_size=1.0, target_pixel_size=1.0 / scale)
    labels = resample_labels(s.labels, pixel_size=1.0, target_pixel_size=1.0 / scale, shape=image.shape)
    return image[None], labels


def _model_meta(task: Task) -> dict:
    if task.target == "fg_contour":
        outputs = ["foreground", "contour"]
    else:
        outputs = ["boundary"]
    return {
        "target": task.target,
        "outputs": outputs,
        "task": task.name,
        **canonical_meta({**task.meta, "input_scale": task.scale}),
        "crop": task.crop,
        # everything else that shapes the training run (a change means a new run)
        "training": {
            "samples_per_epoch": task.samples_per_epoch,
            "val_crops": task.val_crops,
            "elastic": [task.elastic_alpha, task.elastic_sigma, task.elastic_p],
            "val_images": [s.id for s in task.val],
        },
        "normalisation": "grey, percentiles 1-99.8 to [0, 1]",
    }


def build_model(task: Task, setting: Setting) -> UNet:
    """The network a setting starts from: the pretrained one (head replaced if needed, last
    layers trainable) or the same architecture from scratch."""
    if setting.init == "scratch":
        config = dict(load_model(task.pretrained).config)
        config["out_channels"] = task.out_channels
        return transfer.from_scratch(config, seed=setting.seed)
    return transfer.from_pretrained(
        task.pretrained, out_channels=task.out_channels, layers=setting.layers, seed=setting.seed
    )


def train_setting(task: Task, setting: Setting, *, progress: bool = False) -> tuple[UNet, pd.DataFrame]:
    """Train one setting into ``task.folder / setting.key``; return (best model, history).

    A finished run in that folder (same setting, same pretrained weights) is not repeated.
    """
    if setting.init == "none":
        raise ValueError("the baseline setting is not trained; use evaluate_model")
    pool = training_subset(task.train, setting.n_train, seed=setting.seed)
    if setting.extra_data:
        pool = pool + list(task.extra)
    pairs = [_network_pair(task, s) for s in pool]
    val_pairs = [_network_pair(task, s) for s in task.val]
    crop = (task.crop, task.crop)
    augmenter = (
        Augmenter(alpha=task.elastic_alpha, sigma=task.elastic_sigma, elastic_p=task.elastic_p)
        if setting.augment
        else Augmenter.none()
    )
    train_data = CropDataset(
        [p[0] for p in pairs], [p[1] for p in pairs], crop=crop, target_fn=task.targets,
        augmenter=augmenter, samples_per_epoch=task.samples_per_epoch, seed=setting.seed,
    )
    val_data = CropDataset(
        [p[0] for p in val_pairs], [p[1] for p in val_pairs], crop=crop, target_fn=task.targets,
        samples_per_epoch=task.val_crops, seed=10_000 + setting.seed, fixed=True,
    )
    model = build_model(task, setting)
    meta = {
        **_model_meta(task),
        "transfer": model.meta["transfer"],
        "setting": dataclasses.asdict(setting),
        "train_images": [s.id for s in pool],
    }
    config = TrainConfig(
        epochs=setting.epochs, batch_size=setting.batch_size, lr=setting.lr,
        weight_decay=setting.weight_decay, loss=setting.loss, seed=setting.seed,
        precision=task.precision, channels_last=task.channels_last,
    )
    folder = task.folder / setting.key
    fit(model, train_data, val_data, config=config, folder=folder, meta=meta, resume="if_compatible",
        progress=progress)
    return load_model(folder), history_frame(folder)


# --------------------------------------------------------------------------------------------
# prediction and scores
# --------------------------------------------------------------------------------------------


def probabilities(task: Task, model: UNet, samples: Sequence[Sample]) -> list[np.ndarray]:
    """Per-sample probabilities (K, Y, X) at the native pixel size, in the task's target.

    A foreground/contour model applied to the boundary task (the nucleus baseline on EM)
    gives ``1 - foreground`` as its boundary map: in EM the cell interiors are the bright
    "objects" and the membranes the dark background.
    """
    return _probabilities(model, samples, target=task.target, scale=task.scale, tile=task.tile)


def _probabilities(model: UNet, samples: Sequence[Sample], *, target: str, scale: float,
                   tile: int) -> list[np.ndarray]:
    source = (getattr(model, "meta", {}) or {}).get("target", "fg_contour")
    out = []
    for s in samples:
        x, _ = _network_pair_at(s, scale)
        p = predict(model, x, tile=(tile, tile), overlap=32)
        p = from_model_scale(p, shape=s.image.shape, pixel_size=1.0,
                             model=PixelSize((1.0 / scale,) * 2, "px"))
        if target == "boundaries" and source == "fg_contour":
            p = 1.0 - p[:1]
        out.append(np.clip(p, 0.0, 1.0).astype(np.float32))
    return out


def soma_accuracy(model: UNet, samples: Sequence[Sample], *, scale: float = 1.0,
                  tile: int = 256) -> float:
    """Object accuracy tp / (tp + fp + fn) at IoU 0.5 of a soma model on ``samples``, pooled,
    with the watershed options stored in the model (``meta["postprocess"]``, as
    :func:`finalise` stores them): the score a shipped soma model records."""
    post = dict((getattr(model, "meta", {}) or {}).get("postprocess") or {})
    probs = _probabilities(model, samples, target="fg_contour", scale=scale, tile=tile)
    labels = [instances.labels_from_fg_contour(p[0], p[1], **post) for p in probs]
    m = matching_dataset([s.labels for s in samples], labels, threshold=0.5, by_image=False)
    return float(m.accuracy)


def pooled_pixel_iou(task: Task, probs: Sequence[np.ndarray], samples: Sequence[Sample], *, threshold: float = 0.5) -> float:
    """Pixel IoU of the task's mask (soma foreground, EM boundaries) over all samples pooled."""
    truth = np.concatenate([task.truth_mask(s.labels).ravel() for s in samples])
    pred = np.concatenate([(p[0] > threshold).ravel() for p in probs])
    return pixel_iou(truth, pred)


def segment(task: Task, probs: Sequence[np.ndarray], postprocess: dict) -> list[np.ndarray]:
    """Instance labels of each probability map with the given watershed options."""
    if task.target == "fg_contour":
        return [instances.labels_from_fg_contour(p[0], p[1], **postprocess) for p in probs]
    return [instances.labels_from_boundaries(p[0], **postprocess) for p in probs]


def tune_postprocessing(task: Task, probs: Sequence[np.ndarray], samples: Sequence[Sample]) -> tuple[dict, pd.DataFrame]:
    """Watershed options tuned on validation samples; returns (best, grid).

    Soma: foreground and seed thresholds maximising AP at IoU 0.5 (as for nuclei). EM:
    boundary threshold and seed distance minimising the mean per-slice VOI (split + merge).
    """
    if task.target == "fg_contour":
        return tuning.tune_fg_contour(probs, samples)
    return tuning.tune_boundaries(probs, samples)


def object_scores(task: Task, samples: Sequence[Sample], labels: Sequence[np.ndarray], *, prefix: str = "test_") -> dict:
    """Soma: pooled object precision, recall, F1 and accuracy tp/(tp+fp+fn) at IoU 0.5.
    EM: mean per-slice VOI split, merge, adapted Rand error and CREMI score."""
    if task.target == "fg_contour":
        m = matching_dataset([s.labels for s in samples], list(labels), threshold=0.5, by_image=False)
        return {f"{prefix}precision": m.precision, f"{prefix}recall": m.recall, f"{prefix}f1": m.f1,
                f"{prefix}accuracy": m.accuracy, f"{prefix}tp": m.tp, f"{prefix}fp": m.fp,
                f"{prefix}fn": m.fn}
    scores = em_slice_scores(samples, labels)
    return {f"{prefix}{k}": float(scores[k].mean()) for k in ("voi_split", "voi_merge", "arand", "cremi")}


def evaluate_model(
    task: Task, model: UNet, *, setting: Setting = BASELINE, history: pd.DataFrame | None = None,
    detailed: bool = False,
) -> dict:
    """One table row: the setting, training figures and held-out scores.

    Always: final training loss and training IoU (from the history: augmented training
    crops), validation and test pixel IoU (whole images). With ``detailed``, the watershed is
    tuned on the validation images and the test instances are scored (:func:`object_scores`).
    """
    pool = training_subset(task.train, setting.n_train, seed=setting.seed)
    row = {
        "task": task.name,
        "name": describe(setting),
        "key": setting.key,
        **dataclasses.asdict(setting),
        "n_requested": setting.n_train,
        "n_train": len(pool) + (len(task.extra) if setting.extra_data else 0),
        "final_train_loss": float("nan"),
        "train_iou": float("nan"),
        "seconds": 0.0,
    }
    if history is not None and len(history):
        row.update(final_train_loss=float(history.train_loss.iloc[-1]),
                   train_iou=float(history.train_iou.iloc[-1]),
                   best_epoch=int(model.meta.get("best_epoch", len(history))),
                   seconds=float(history.seconds.sum()))
    val_p = probabilities(task, model, task.val)
    test_p = probabilities(task, model, task.test)
    row["val_iou"] = pooled_pixel_iou(task, val_p, task.val)
    row["test_iou"] = pooled_pixel_iou(task, test_p, task.test)
    if detailed:
        post, _ = tune_postprocessing(task, val_p, task.val)
        row.update({f"post_{k}": v for k, v in post.items()})
        row.update(object_scores(task, task.test, segment(task, test_p, post)))
    return row


def describe(setting: Setting) -> str:
    """A short human name of a setting (for tables and plots)."""
    if setting.init == "none":
        return "baseline (pretrained, as is)"
    if setting.init == "scratch":
        name = "from scratch"
    else:
        name = "transfer, all layers" if setting.layers == "all" else f"transfer, last {setting.layers}"
    if not setting.augment:
        name += ", no augmentation"
    if setting.extra_data:
        name += ", + ssTEM slices"
    return name


def run_settings(task: Task, settings: Sequence[Setting], *, detailed: bool = False) -> pd.DataFrame:
    """Train (or reuse) and evaluate each setting; one row per setting."""
    rows = []
    for s in tqdm(settings, desc=f"{task.name} settings"):
        if s.init == "none":
            rows.append(evaluate_model(task, load_model(task.pretrained), detailed=detailed))
            continue
        model, history = train_setting(task, s)
        rows.append(evaluate_model(task, model, setting=s, history=history, detailed=detailed))
    return pd.DataFrame(rows)


#: The columns of a detailed :func:`run_settings` row that are the headline's test numbers,
#: and their names in the headline (``<task>_<name>``).
HEADLINE_TEST = {
    "fg_contour": {"test_iou": "test_iou", "test_precision": "test_precision",
                   "test_recall": "test_recall", "test_f1": "test_f1", "test_accuracy": "test_accuracy"},
    "boundaries": {"test_iou": "test_boundary_iou", "test_voi_split": "test_voi_split",
                   "test_voi_merge": "test_voi_merge", "test_arand": "test_arand",
                   "test_cremi": "test_cremi"},
}


def seed_runs(task: Task, chosen: Setting, seeds: Sequence[int]) -> pd.DataFrame:
    """The chosen setting trained again with each of ``seeds`` (its own seed left out: that
    run is the headline's), scored as the headline is (:func:`run_settings`, detailed)."""
    others = [dataclasses.replace(chosen, seed=int(s)) for s in seeds if int(s) != chosen.seed]
    return run_settings(task, others, detailed=True)


def seed_spread(step: str, headline: dict, runs: dict[str, tuple[Task, Setting, pd.DataFrame]], *,
                machine: str = "") -> pd.DataFrame:
    """The spread over seeds of the headline's test numbers, in the table of
    :mod:`neuroseg.measure.seeds` (``metric`` is ``<step>:<task>_<name>``): the headline's own
    seed first, then the runs of :func:`seed_runs`. ``runs`` maps a task name (the headline's
    prefix) to (task, chosen setting, seed runs)."""
    from neuroseg.measure.seeds import spread_table

    by_seed: dict[int, dict[str, float]] = {}
    for name, (task, chosen, table) in runs.items():
        names = HEADLINE_TEST[task.target]
        own = by_seed.setdefault(chosen.seed, {})
        own.update({f"{step}:{name}_{v}": float(headline[f"{name}_{v}"]) for v in names.values()})
        for row in table.itertuples():
            values = by_seed.setdefault(int(row.seed), {})
            values.update({f"{step}:{name}_{v}": float(getattr(row, k)) for k, v in names.items()})
    return spread_table(step, by_seed, machine=machine)


def finalise(task: Task, setting: Setting, folder: str | Path) -> tuple[UNet, dict, pd.DataFrame]:
    """Store the chosen setting's model, with watershed options tuned on validation data.

    The model folder (``config.json``, ``weights.pt``, ``history.csv``, ``env.json``) is what
    :func:`neuroseg.load_model` and :func:`neuroseg.segment_2d` take. Returns (model,
    post-processing options, tuning grid).
    """
    model, _ = train_setting(task, setting)
    post, grid = tune_postprocessing(task, probabilities(task, model, task.val), task.val)
    folder = Path(folder)
    save_model(model, folder, meta={**model.meta, "postprocess": post})
    shutil.copyfile(task.folder / setting.key / "history.csv", folder / "history.csv")
    return load_model(folder), post, grid


# --------------------------------------------------------------------------------------------
# the experiments' tables
# --------------------------------------------------------------------------------------------


def comparison_settings(base: dict, *, seed: int = 0, extra_data: bool = False) -> list[Setting]:
    """The baseline, transfer with the last 1, 3 and all layers, scratch, and the ablations.

    Every trained row uses ``base``'s hyperparameters; the ablations are transfer (with
    ``base``'s layers) without augmentation and, with ``extra_data``, with the task's extra
    training images.
    """
    first = Setting(**base, seed=seed)
    out = [BASELINE]
    for layers in (1, 3, "all"):
        out.append(dataclasses.replace(first, layers=layers))
    out.append(dataclasses.replace(first, init="scratch", layers="all"))
    out.append(dataclasses.replace(first, augment=False))
    if extra_data:
        out.append(dataclasses.replace(first, extra_data=True))
    return list(dict.fromkeys(out))


def unique_settings(*groups: Iterable[Setting]) -> list[Setting]:
    """All settings of several lists, each once, in order of first appearance."""
    return list(dict.fromkeys(s for g in groups for s in g))


def select(table: pd.DataFrame, settings: Iterable[Setting]) -> pd.DataFrame:
    """The rows of ``table`` (from :func:`run_settings`) for the given settings, in order."""
    index = {k: i for i, k in enumerate(table["key"])}
    return table.iloc[[index[s.key] for s in settings]].reset_index(drop=True)


def _row_setting(row: pd.Series) -> Setting:
    values = {f.name: row[f.name] for f in dataclasses.fields(Setting)}
    values["layers"] = "all" if values["layers"] == "all" else int(values["layers"])
    values["n_train"] = None if pd.isna(row["n_requested"]) else int(row["n_requested"])
    for k in ("batch_size", "epochs", "seed"):
        values[k] = int(values[k])
    for k in ("lr", "weight_decay"):
        values[k] = float(values[k])
    for k in ("augment", "extra_data"):
        values[k] = bool(values[k])
    return Setting(**values)


COMPARISON_COLUMNS = {
    "fg_contour": ["name", "n_train", "final_train_loss", "train_iou", "val_iou", "test_iou",
                   "test_precision", "test_recall", "test_accuracy", "test_f1", "seconds"],
    "boundaries": ["name", "n_train", "final_train_loss", "train_iou", "val_iou", "test_iou",
                   "test_voi_split", "test_voi_merge", "test_arand", "test_cremi", "seconds"],
}


def comparison_table(task: Task, table: pd.DataFrame, settings: Sequence[Setting]) -> pd.DataFrame:
    """Baseline, transfer, scratch and ablation rows with held-out scores."""
    return select(table, settings)[COMPARISON_COLUMNS[task.target]]


def hyperparameter_table(task: Task, table: pd.DataFrame, settings: Sequence[Setting], chosen: Setting) -> pd.DataFrame:
    """SomaNet's table: lr, batch, epochs, decay, (loss function), layers -> final training
    loss, train IoU, val IoU.

    Test columns are filled for the chosen row only (the choice is made on validation IoU);
    for the soma task, SomaNet's reported row follows, labelled as a different dataset.
    """
    rows = select(table, settings)
    out = pd.DataFrame({
        "setting": np.where(rows.key == chosen.key, "chosen", ""),
        "lr": rows.lr, "batch_size": rows.batch_size, "epochs": rows.epochs,
        "weight_decay": rows.weight_decay, "loss": rows.loss, "trainable_layers": rows.layers.astype(str),
        "final_train_loss": rows.final_train_loss, "train_iou": rows.train_iou, "val_iou": rows.val_iou,
    })
    test_cols = [c for c in COMPARISON_COLUMNS[task.target] if c.startswith("test_")]
    for c in test_cols:
        out[c] = np.where(out.setting == "chosen", rows[c], np.nan)
    out.insert(0, "data", f"neuroseg ({task.name}: {task.meta.get('dataset')})")
    if task.target == "fg_contour":
        paper = {c: np.nan for c in out.columns}
        paper.update(data="SomaNet paper (its own soma images; a different dataset)",
                     setting="its best model", val_iou=SOMANET_PAPER["val_iou"],
                     test_precision=SOMANET_PAPER["precision"], test_accuracy=SOMANET_PAPER["accuracy"])
        out = pd.concat([out, pd.DataFrame([paper])], ignore_index=True)
    return out


def learning_curve_summary(table: pd.DataFrame, *, metric: str = "test_iou") -> pd.DataFrame:
    """Mean, min and max of ``metric`` over seeds, per training-set size and initialisation."""
    g = table.groupby(["n_train", "init"])[metric]
    out = g.agg(["mean", "min", "max", "count"]).reset_index()
    wide = out.pivot(index="n_train", columns="init", values="mean")
    if {"transfer", "scratch"} <= set(wide.columns):
        gain = (wide["transfer"] - wide["scratch"]).rename("transfer_minus_scratch")
        out = out.merge(gain.reset_index(), on="n_train")
    return out


def _curve_gains(curve: pd.DataFrame, metric: str = "test_iou") -> dict:
    summary = learning_curve_summary(curve, metric=metric)
    if "transfer_minus_scratch" not in summary:
        return {}
    gains = summary.drop_duplicates("n_train").set_index("n_train")["transfer_minus_scratch"]
    return {int(n): float(v) for n, v in gains.items()}


def headline(
    soma_test: dict, em_test: dict, *, soma_chosen: Setting, em_chosen: Setting,
    soma_runs: pd.DataFrame, em_runs: pd.DataFrame, soma_curve: pd.DataFrame,
    em_curve: pd.DataFrame, soma_errors: pd.DataFrame, soma_post: dict, em_post: dict,
    device: str,
) -> dict:
    """The numbers ``reports/metrics/20_neuron_finetuning.json`` holds (a flat dict).

    ``*_curve_gain_nN`` is the learning curve's mean test IoU of transfer minus that of
    scratch with N training images.
    """
    base_soma = soma_runs[soma_runs.init == "none"].iloc[0]
    base_em = em_runs[em_runs.init == "none"].iloc[0]
    contrast = soma_errors.groupby("kind").contrast.median()
    out = {
        **{f"soma_{k}": v for k, v in soma_test.items()},
        "soma_chosen": soma_chosen.key,
        **{f"soma_post_{k}": v for k, v in soma_post.items()},
        "soma_baseline_test_iou": float(base_soma.test_iou),
        "soma_baseline_test_precision": float(base_soma.test_precision),
        "soma_baseline_test_recall": float(base_soma.test_recall),
        "soma_fp_median_contrast": float(contrast.get("fp", np.nan)),
        "soma_tp_median_contrast": float(contrast.get("tp", np.nan)),
        "soma_fn_median_contrast": float(contrast.get("fn", np.nan)),
        **{f"soma_curve_gain_n{n}": v for n, v in _curve_gains(soma_curve).items()},
        **{f"em_{k}": v for k, v in em_test.items()},
        "em_chosen": em_chosen.key,
        **{f"em_post_{k}": v for k, v in em_post.items()},
        "em_baseline_test_boundary_iou": float(base_em.test_iou),
        "em_baseline_test_voi_split": float(base_em.test_voi_split),
        "em_baseline_test_voi_merge": float(base_em.test_voi_merge),
        **{f"em_curve_gain_n{n}": v for n, v in _curve_gains(em_curve).items()},
        # each trained setting once (the curves reuse runs of the tables)
        "train_seconds": float(
            sum(pd.concat([r, c]).drop_duplicates("key").seconds.sum()
                for r, c in ((soma_runs, soma_curve), (em_runs, em_curve)))
        ),
        "device": device,
    }
    return out
