"""The learned linker of "Know Your Neighbour": z-affinities from two slices, pair scores.

A 2D network sees two neighbouring slices of an EM volume (two input channels: slice ``z``
and slice ``z + g``) and predicts, per pixel, the probability that the pixel and the one
under it in the other slice belong to the same neuron: a *z-affinity*. It starts from the
2D EM boundary model of ``20_neuron_finetuning`` (transfer learning: the first convolution
is widened to two channels with :func:`neuroseg.nets.layers.widen_input`, so at the start it sees
each slice as the boundary model did, and every layer is then fine-tuned).

A candidate pair of 2D segments (see :func:`neuroseg.linking.graph.candidate_pairs`) is scored
from :data:`FEATURES`: the mean z-affinity over the pair's overlap, with the overlap
features IoU, the covered fraction of each segment and the segment sizes. A logistic
regression turns them into a probability of "same neuron"; it and the link threshold are
*calibrated* on validation data for one z spacing and one kind of 2D segments (the true
segments of an oracle experiment, or a model's predicted ones), because the overlap
features mean different things at 10 and at 40 nm. :class:`AffinityLinker` holds the
network and its calibrations and is what ``link_slices(..., method="learned")`` calls.

A linker is a model folder (``config.json``, ``weights.pt``, ``history.csv``,
``env.json``) whose ``meta`` says ``"target": "z_affinity"`` and holds the calibrations;
:func:`save_linker` writes one, :func:`read_linker` (also
:func:`neuroseg.linking.learned.load_linker`) reads it back.

Training targets: for slices ``a`` and ``b`` of a ground-truth volume, the target is 1 where
``gt[a] == gt[b]`` and both are non-zero, else 0 (ground-truth label 0, rare in the
FIB-SEM volumes used, counts as "not the same").
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from neuroseg.checks import check_scale_ratio
from neuroseg.linking.calibration import (
    FEATURES,
    THRESHOLDS,
    Calibration,
    fit_pair_classifier,
    pair_features,
    pair_truth,
)
from neuroseg.linking.graph import candidate_pairs, check_labels
from neuroseg.linking.rules import relink
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.nets.augment import Augmenter
from neuroseg.nets.folder import load_model, save_model
from neuroseg.nets.loaders import CropDataset
from neuroseg.nets.predict import predict_stack
from neuroseg.nets.scale import (
    back_to_volume_scale,
    canonical_meta,
    slices_at_model_scale,
)
from neuroseg.nets.transfer import from_pretrained
from neuroseg.nets.unet import ModelError, UNet

__all__ = [
    "AffinityLinker",
    "accelerated",
    "affinity_targets",
    "calibrate",
    "linker_from_model",
    "linker_network",
    "read_linker",
    "save_linker",
    "train_linker",
    "training_pairs",
]

TARGET = "z_affinity"


# --------------------------------------------------------------------------------------------
# the linker
# --------------------------------------------------------------------------------------------


def _z_nm(resolution: Sequence[float] | None) -> float | None:
    if resolution is None:
        return None
    return float(resolution[0])


class AffinityLinker:
    """The learned linker: a z-affinity network plus calibrations (a :class:`PairScorer`).

    Parameters
    ----------
    network : UNet
        2D, two input channels (slice ``z_a`` and slice ``z_b``), one output: the logit of
        ``1 - affinity`` (the neuron does not continue). Its ``meta["pixel_nm"]`` is the pixel size it was trained at.
    calibrations : sequence of Calibration
        One per (z spacing, kind of segments) it was calibrated for.
    active : Calibration, optional
        The calibration :meth:`score_pairs` uses; when None it picks one from the
        ``resolution`` it is given (see :meth:`calibrated_for`).
    batch_size : int
        Slice pairs per network batch.

    Notes
    -----
    A linker is not modified by scoring; :meth:`calibrated_for` returns a new linker object
    that shares the network.
    """

    def __init__(
        self,
        network: UNet,
        calibrations: Sequence[Calibration] = (),
        *,
        active: Calibration | None = None,
        batch_size: int = 8,
        slice_percentiles: np.ndarray | None = None,
    ):
        if network.config["in_channels"] != 2 or network.config["out_channels"] != 1:
            raise ValueError(
                "a linker network takes 2 input channels (two slices) and predicts 1 channel; "
                f"got {network.config['in_channels']} in, {network.config['out_channels']} out"
            )
        self.network = network
        self.calibrations = tuple(calibrations)
        self.active = active
        self.batch_size = int(batch_size)
        self.slice_percentiles = None if slice_percentiles is None else np.asarray(slice_percentiles)

    def with_slice_percentiles(self, percentiles: np.ndarray | None) -> AffinityLinker:
        """This linker normalising slice ``z`` of the volumes it is given by ``percentiles[z]``
        (shape (z, 2), :func:`neuroseg.nets.scale.slice_percentiles` of the whole slices) instead
        of its own percentiles: for blocks of larger slices."""
        return AffinityLinker(self.network, self.calibrations, active=self.active,
                              batch_size=self.batch_size, slice_percentiles=percentiles)

    def __repr__(self) -> str:
        cals = ", ".join(f"{c.z_nm:g} nm/{c.segments}" for c in self.calibrations) or "none"
        return f"AffinityLinker(calibrations: {cals}; active: {self.active and self.active.z_nm})"

    @property
    def threshold(self) -> float:
        """The active calibration's link threshold."""
        if self.active is None:
            raise ValueError("no active calibration; call calibrated_for(resolution, segments=...)")
        return self.active.threshold

    def calibrated_for(
        self, resolution: Sequence[float] | float | None, *, segments: str = "predicted"
    ) -> AffinityLinker:
        """This linker with the calibration closest to a z spacing made active.

        ``resolution`` is the (z, y, x) voxel size in nm (or the z spacing alone). Among the
        calibrations for ``segments`` (falling back to the other kind when there is none),
        the one whose ``z_nm`` is nearest is chosen; with ``resolution=None`` there must be
        exactly one. A spacing more than 1.5x from the nearest calibration warns; more than 4x
        is refused (ValueError).
        """
        if not self.calibrations:
            raise ValueError("this linker has no calibration; run neuroseg.linking.learned.calibrate first")
        pool = [c for c in self.calibrations if c.segments == segments] or list(self.calibrations)
        if resolution is None:
            if len({c.z_nm for c in pool}) > 1:
                raise ValueError(
                    "the linker is calibrated for several z spacings "
                    f"{sorted({c.z_nm for c in pool})} nm; pass resolution=(z, y, x) in nm"
                )
            chosen = pool[0]
        else:
            z = float(resolution) if np.isscalar(resolution) else _z_nm(resolution)
            if not (math.isfinite(z) and z > 0):
                raise ValueError(f"the z spacing must be a positive number of nm; got {resolution}")
            chosen = min(pool, key=lambda c: (abs(math.log(c.z_nm / z)), c.z_nm))
            check_scale_ratio(z / chosen.z_nm, what=f"the z spacing {z:g} nm",
                              reference=f"the nearest calibration ({chosen.z_nm:g} nm)",
                              warn_at=None)  # the linker's own warning, from 1.5x, follows
            if max(z / chosen.z_nm, chosen.z_nm / z) > 1.5:
                warnings.warn(
                    f"the linker is calibrated for z spacings {sorted({c.z_nm for c in pool})} nm; "
                    f"{z:g} nm uses the {chosen.z_nm:g} nm calibration, which may not suit it "
                    "(calibrate one for this spacing with neuroseg.linking.learned.calibrate)",
                    stacklevel=2,
                )
        return AffinityLinker(
            self.network, self.calibrations, active=chosen, batch_size=self.batch_size,
            slice_percentiles=self.slice_percentiles,
        )

    def with_calibration(self, calibration: Calibration) -> AffinityLinker:
        """A linker with ``calibration`` added (replacing one of the same spacing and kind)
        and made active."""
        kept = [
            c
            for c in self.calibrations
            if (c.z_nm, c.segments) != (calibration.z_nm, calibration.segments)
        ]
        return AffinityLinker(
            self.network, [*kept, calibration], active=calibration, batch_size=self.batch_size,
            slice_percentiles=self.slice_percentiles,
        )

    # -- network ------------------------------------------------------------------------------

    def affinities(
        self,
        raw: npt.ArrayLike,
        slice_pairs: Sequence[tuple[int, int]],
        *,
        resolution: Sequence[float] | None = None,
    ) -> np.ndarray:
        """z-affinity maps, shape (len(slice_pairs), y, x) float32, of ``raw`` (z, y, x)."""
        raw = np.asarray(raw)
        if raw.ndim != 3:
            raise ValueError(f"raw must be a (z, y, x) volume; got shape {raw.shape}")
        pairs = [(int(a), int(b)) for a, b in slice_pairs]
        if not pairs:
            return np.zeros((0, *raw.shape[1:]), np.float32)
        used = sorted({z for p in pairs for z in p})
        given = None
        if self.slice_percentiles is not None:
            if len(self.slice_percentiles) != raw.shape[0]:
                raise ValueError(f"the linker has percentiles for {len(self.slice_percentiles)} "
                                 f"slices; the volume has {raw.shape[0]}")
            given = self.slice_percentiles[used]
        x, size = slices_at_model_scale(self.network, raw[used], resolution=resolution,
                                        percentiles=given)
        where = {z: i for i, z in enumerate(used)}
        stack = np.stack([np.stack([x[where[a]], x[where[b]]]) for a, b in pairs])
        split = predict_stack(self.network, stack, batch_size=self.batch_size)
        return 1.0 - back_to_volume_scale(split, size)[:, 0]

    # -- PairScorer ---------------------------------------------------------------------------

    def pair_features(
        self,
        labels: np.ndarray,
        raw: npt.ArrayLike | None,
        pairs: pd.DataFrame,
        *,
        resolution: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """The :data:`FEATURES` of every candidate pair (see :func:`pair_features`)."""
        if raw is None:
            raise ValueError("the learned linker needs the raw volume: link_slices(..., raw=raw)")
        return pair_features(labels, pairs, affinity=self._affinity_fn(raw, resolution))

    def _affinity_fn(self, raw, resolution):
        def fn(slice_pairs):
            return self.affinities(raw, slice_pairs, resolution=resolution)

        return fn

    def score_pairs(
        self,
        labels: np.ndarray,
        raw: npt.ArrayLike | None,
        pairs: pd.DataFrame,
        *,
        resolution: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Link probability of every candidate pair (the :class:`PairScorer` protocol)."""
        linker = self if self.active is not None else self.calibrated_for(resolution)
        feats = self.pair_features(labels, raw, pairs, resolution=resolution)
        return linker.active.score(feats[list(FEATURES)].to_numpy())


# --------------------------------------------------------------------------------------------
# calibration on validation data
# --------------------------------------------------------------------------------------------


def calibrate(
    linker: AffinityLinker,
    volumes: Sequence[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    *,
    resolution: Sequence[float],
    segments: str,
    threshold_volumes: Sequence[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]] | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    hidden: int = 32,
    seed: int = 0,
) -> tuple[AffinityLinker, pd.DataFrame]:
    """Fit the pair classifier and choose the link threshold on validation volumes.

    ``volumes`` are ``(raw, labels, gt)`` triples at one z spacing (``resolution`` (z, y, x)
    in nm): the raw volume, its 2D segments (true ones for ``segments="oracle"``, a
    model's for ``"predicted"``) and the ground truth. The perceptron is fitted on all their
    candidate pairs (``max_gap=1``) with the truth from ``gt`` (:func:`pair_truth`); the
    threshold is the one of ``thresholds`` whose linking (``method="learned"``) has the
    lowest mean CREMI score over ``threshold_volumes`` (default: the same volumes). Fit the
    perceptron on many pairs (e.g. the training part) and choose the threshold on data the
    affinity network has not seen (the validation part).

    Returns the linker with the new calibration (active) and a table of the thresholds
    tried (``threshold, voi_split, voi_merge, arand, cremi``, means over the volumes).
    """
    def prepare(triples):
        out = []
        for raw, labels, gt in triples:
            arr = check_labels(labels)
            pairs = candidate_pairs(arr)
            feats = linker.pair_features(arr, raw, pairs, resolution=resolution)
            out.append((arr, np.asarray(gt), pairs, feats[list(FEATURES)].to_numpy()))
        return out

    prepared = prepare(volumes)
    if not prepared:
        raise ValueError("calibrate needs at least one (raw, labels, gt) volume")
    choosing = prepared if threshold_volumes is None else prepare(threshold_volumes)
    x = np.concatenate([p[3] for p in prepared])
    truth = np.concatenate([pair_truth(p[0], p[1], p[2]) for p in prepared])
    state, mean, scale = fit_pair_classifier(x, truth, hidden=hidden, seed=seed)
    cal = Calibration(
        z_nm=float(resolution[0]),
        segments=segments,
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(v) for v in scale),
        state=state,
        hidden=hidden,
        n_pairs=int(truth.size),
        positive=float(truth.mean()),
    )
    rows = []
    scored = [(arr, gt, pairs.assign(score=cal.score(f))) for arr, gt, pairs, f in choosing]
    for t in thresholds:
        scores = [
            segmentation_scores(gt, relink(arr, links, float(t), method="learned").labels)
            for arr, gt, links in scored
        ]
        rows.append({"threshold": float(t), **pd.DataFrame(scores).mean().to_dict()})
    table = pd.DataFrame(rows)
    best = float(table.loc[table["cremi"].idxmin(), "threshold"])
    return linker.with_calibration(replace(cal, threshold=best)), table


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def affinity_targets(gt_a: npt.ArrayLike, gt_b: npt.ArrayLike) -> np.ndarray:
    """z-affinity target of two ground-truth slices: 1 where both are the same non-zero ID.

    Examples
    --------
    >>> affinity_targets([[1, 1, 0]], [[1, 2, 0]]).tolist()
    [[1, 0, 0]]
    """
    a = np.asarray(gt_a)
    b = np.asarray(gt_b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} and {b.shape}")
    return ((a == b) & (a != 0)).astype(np.uint8)


def training_pairs(
    raw: npt.ArrayLike,
    gt: npt.ArrayLike,
    *,
    z_steps: Sequence[int],
    both_orders: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Network inputs (2, y, x) and z-affinity targets (y, x) of every slice pair of a volume.

    Every ``(z, z + s)`` for ``s`` in ``z_steps`` that fits in the volume; with
    ``both_orders`` also ``(z + s, z)``, since the z-affinity is symmetric. Slices are
    normalised one by one, as the 2D model's inputs are.
    """
    raw = np.asarray(raw)
    gt = np.asarray(gt)
    if raw.shape != gt.shape or raw.ndim != 3:
        raise ValueError(f"raw {raw.shape} and gt {gt.shape} must be the same (z, y, x) shape")
    from neuroseg.data.images import normalize

    norm = [normalize(s) for s in raw]
    images, targets = [], []
    for s in sorted({int(s) for s in z_steps}):
        if s < 1:
            raise ValueError(f"z_steps must be >= 1; got {s}")
        for z in range(raw.shape[0] - s):
            target = affinity_targets(gt[z], gt[z + s])
            images.append(np.stack([norm[z], norm[z + s]]))
            targets.append(target)
            if both_orders:
                images.append(np.stack([norm[z + s], norm[z]]))
                targets.append(target)
    if not images:
        raise ValueError(f"no slice pair with steps {list(z_steps)} in a volume of shape {raw.shape}")
    return images, targets


def _split_channel(affinity: np.ndarray) -> np.ndarray:
    """The network's target: 1 - z-affinity (where the neuron does *not* continue)."""
    return 1.0 - np.asarray(affinity, np.float32)[None]


def linker_from_model(folder: str | os.PathLike, *, seed: int = 0) -> UNet:
    """A z-affinity network initialised from a 2D EM boundary model folder.

    The first convolution is widened to two channels (each slice gets half the trained
    filters' weight, :func:`neuroseg.nets.layers.widen_input`); the one-channel head is kept
    (it now predicts the affinity logit) and every layer is trainable.
    """
    net = from_pretrained(folder, in_channels=2, out_channels=1, layers="all", seed=seed)
    source = dict(net.meta)
    net.meta = {
        "target": TARGET,
        **canonical_meta({k: v for k, v in source.items() if k in ("pixel_size", "pixel_nm")}),
        "normalisation": source.get("normalisation"),
        "transfer": source.get("transfer"),
        "source_target": source.get("target"),
    }
    return net


def linker_network(*, pixel_nm: float, depth: int = 4, base_features: int = 16, seed: int = 0) -> UNet:
    """A z-affinity network from scratch: two slices at ``pixel_nm`` in, one logit out.

    The other start is :func:`linker_from_model` (the 2D EM boundary model's weights).

    Examples
    --------
    >>> net = linker_network(pixel_nm=10.0, depth=2, base_features=4)
    >>> net.config["in_channels"], net.config["out_channels"], net.meta["target"]
    (2, 1, 'z_affinity')
    """
    if not (isinstance(pixel_nm, int | float) and math.isfinite(pixel_nm) and pixel_nm > 0):
        raise ValueError(f"pixel_nm must be a positive number of nanometres; got {pixel_nm!r}")
    from neuroseg.nets.scale import pixel_size_meta

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = UNet(ndim=2, in_channels=2, out_channels=1, depth=int(depth), base_features=int(base_features))
    net.meta = {"target": TARGET, **pixel_size_meta(float(pixel_nm), "nm", ndim=2),
                "normalisation": "slice percentiles 1-99.8", "transfer": "scratch"}
    return net


def accelerated(linker: AffinityLinker, speed, *, device=None) -> AffinityLinker:
    """``linker`` with its network run as ``speed`` (a :class:`neuroseg.nets.speed.Speed`)
    says on ``device``; same calibrations, the active one kept."""
    from neuroseg.nets.speed import accelerate

    return AffinityLinker(accelerate(linker.network, speed, device=device), linker.calibrations,
                          active=linker.active, batch_size=speed.batch_size,
                          slice_percentiles=linker.slice_percentiles)


def train_linker(
    network: UNet,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    *,
    folder: str | os.PathLike,
    z_steps: Sequence[int] = (1, 2, 3, 4),
    crop: int = 112,
    epochs: int = 20,
    samples_per_epoch: int = 256,
    val_crops: int = 32,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: str = "bce+dice",
    elastic: tuple[float, float, float] = (34.0, 4.0, 0.5),
    precision: str = "auto",
    channels_last: bool = False,
    time_budget: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[AffinityLinker, pd.DataFrame]:
    """Fine-tune a z-affinity network on (raw, gt) volumes; write the linker folder.

    ``train`` and ``val`` are ``(raw, gt)`` volumes (z, y, x) at the network's pixel size;
    every slice pair at the ``z_steps`` (in slices) is a training image. The network learns
    the rarer class, ``1 - affinity`` (where the neuron does not continue), with ``loss``
    (BCE + Dice by default, so the few such pixels are not drowned by the many where neurons
    simply continue). Training runs with :func:`neuroseg.nets.train.fit` (AdamW, cosine schedule, flips/rotations, elastic
    deformation with ``elastic = (alpha, sigma, p)``, intensity changes), resumes a finished
    or interrupted run in ``folder``, and keeps the weights of the lowest validation loss.
    ``precision``, ``channels_last`` and ``time_budget`` (seconds of training, then it stops)
    are :class:`neuroseg.nets.train.TrainConfig`'s. The returned linker has no calibration
    yet (see :func:`calibrate`).
    """
    from neuroseg.nets.train import TrainConfig, fit

    images, targets = training_pairs(*train, z_steps=z_steps)
    alpha, sigma, p = elastic
    data = CropDataset(
        images,
        targets,
        crop=(crop, crop),
        target_fn=_split_channel,
        augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p),
        samples_per_epoch=samples_per_epoch,
        seed=seed,
    )
    val_data = None
    if val is not None:
        v_images, v_targets = training_pairs(*val, z_steps=z_steps, both_orders=False)
        val_data = CropDataset(
            v_images,
            v_targets,
            crop=(crop, crop),
            target_fn=_split_channel,
            augmenter=Augmenter.none(),
            samples_per_epoch=val_crops,
            seed=seed + 1,
            fixed=True,
        )
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, loss=loss, seed=seed,
        precision=precision, channels_last=bool(channels_last), time_budget=time_budget,
    )
    meta = dict(network.meta)
    meta.update({"z_steps": sorted({int(s) for s in z_steps}), "crop": crop, "calibrations": []})
    history = fit(
        network, data, val_data, config=config, folder=folder, resume="if_compatible", meta=meta,
        progress=progress,
    )
    best = load_model(folder)
    return AffinityLinker(best), pd.DataFrame(history)


# --------------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------------


CALIBRATIONS_FILE = "calibrations.pt"


def save_linker(linker: AffinityLinker, folder: str | os.PathLike) -> Path:
    """Write the linker to a model folder: the network (``weights.pt``), the calibrations'
    settings (``config.json`` meta) and their weights (``calibrations.pt``), atomically as one
    folder (a failure never leaves a network beside the wrong calibrations).

    Other files in the folder (``history.csv``, checkpoints) are kept.
    """
    meta = dict(linker.network.meta)
    meta["target"] = TARGET
    meta["calibrations"] = [c.to_dict() for c in linker.calibrations]
    states = [c.state for c in linker.calibrations]  # in the order of meta["calibrations"]
    return save_model(linker.network, folder, meta=meta,
                      extra_files={CALIBRATIONS_FILE: lambda handle: torch.save(states, handle)})


def read_linker(folder: str | os.PathLike) -> AffinityLinker:
    """Read a linker folder written by :func:`save_linker` (``weights_only=True``)."""
    network = load_model(folder)
    meta = network.meta or {}
    if meta.get("target") != TARGET:
        raise ModelError(
            f"{folder} holds a model with target {meta.get('target')!r}, not a linker "
            f"({TARGET!r}); train one with neuroseg.linking.learned.train_linker"
        )
    entries = meta.get("calibrations", [])
    states: list = []
    if entries:
        path = Path(folder) / CALIBRATIONS_FILE
        if not path.is_file():
            raise ModelError(f"{folder}: {CALIBRATIONS_FILE} is missing (the calibrations' weights)")
        try:
            states = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise ModelError(f"{path}: cannot be read as calibration weights ({exc})") from exc
    try:
        if not isinstance(states, list | tuple) or len(states) != len(entries):
            raise ValueError(f"{len(entries)} calibrations in config.json but other weights in the file")
        cals = []
        for entry, state in zip(entries, states, strict=True):
            cal = Calibration.from_dict(entry, state)
            cal.score(np.zeros((1, len(FEATURES))))  # the weights fit the perceptron
            cals.append(cal)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{folder}: invalid linker calibration ({exc})") from exc
    return AffinityLinker(network, cals)


def load_linker(path: str | os.PathLike):
    """Load a trained learned linker from its folder (see :mod:`neuroseg.linking.learned`).

    Parameters
    ----------
    path : path or str
        A linker folder written by :func:`neuroseg.linking.learned.save_linker` (a model folder whose
        ``config.json`` says ``"target": "z_affinity"``). Weights are read with
        ``weights_only=True``.

    Returns
    -------
    neuroseg.linking.learned.AffinityLinker
        Ready for ``link_slices(..., method="learned", linker=...)``.

    Raises
    ------
    neuroseg.nets.unet.ModelError
        If the folder is missing, corrupt or holds another kind of model.

    A ``path`` that names a shipped linker (:func:`neuroseg.list_models`) loads that one.
    """
    p = Path(path)
    if isinstance(path, str) and not p.exists() and len(p.parts) == 1:
        from neuroseg.nets.shipped import shipped_folder

        p = shipped_folder(path)
    return read_linker(p)
