"""Both routes as *settings* of an accuracy-speed front: trained at one wall-time budget,
post-processing chosen on validation data, then run stage by stage.

A :class:`RouteSetting` names one point of a route's front: the route (``"2d"``: 2D segments
of every slice, then the learned linker; ``"3d"``: a 3D U-Net's affinities, then
agglomeration), the network's capacity (``base_features``, ``depth``) and, for the 2D route,
its segmenter: ``"affinities"`` (in-plane affinities and a per-slice mutex watershed,
:mod:`neuroseg.segment.affinities_2d`) or ``"boundaries"`` (a boundary map and a seeded
watershed, :mod:`neuroseg.segment.volume_2d`).

- :func:`train_setting` trains a setting's network from scratch on the training part for at
  most ``budget`` seconds of wall time (:class:`neuroseg.nets.train.TrainConfig`'s
  ``time_budget``), and returns its training seconds (the sum of its epochs') and training
  FLOPs (:func:`neuroseg.measure.front.train_flops` of the crops it saw). The 2D network
  serves every z spacing; the 3D route has one network per z spacing.
- :func:`choose_2d_postprocess` and :func:`neuroseg.segment.choose.choose_agglomeration`
  choose the post-processing on the validation part by CREMI and time.
- :func:`train_front_linker` trains the 2D route's learned linker from scratch at the same
  budget; :func:`calibrate_for` fits the learned linker's pair classifier and threshold on this
  segmenter's own 2D segments (training and validation parts).
- :func:`stages_2d` / :func:`stages_3d` give a route's stages as ``(name, function)`` pairs,
  each taking the previous one's output, for :func:`run_stages` (timed with
  :func:`neuroseg.measure.timing.benchmark`, as ``40_timing_2d_vs_3d`` times the routes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd

from neuroseg.segment.affinities import affinity_target, long_range_offsets

__all__ = [
    "INITS",
    "RouteSetting",
    "calibrate_for",
    "inflate_2d_to_3d",
    "choose_2d_postprocess",
    "run_stages",
    "segments_of",
    "setting_record",
    "stages_2d",
    "stages_3d",
    "train_front_linker",
    "train_setting",
]

SEGMENTERS = ("affinities", "boundaries")
#: How a setting's network starts: from scratch, from the 2D EM network (copied; inflated to
#: 3D kernels for the 3D route), or both trained and the lower validation loss kept.
INITS = ("scratch", "pretrained", "better")


@dataclass(frozen=True)
class RouteSetting:
    """One point of a route's front (see the module docstring).

    Examples
    --------
    >>> RouteSetting.of({"route": "2d", "base_features": 16}).name
    '2d_affinities_f16'
    """

    route: str
    name: str = ""
    base_features: int = 8
    depth: int = 3
    segmenter: str = "affinities"
    init: str = "scratch"

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {self.init!r}")
        if self.route not in ("2d", "3d"):
            raise ValueError(f"route must be '2d' or '3d'; got {self.route!r}")
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter must be one of {SEGMENTERS}; got {self.segmenter!r}")
        if int(self.base_features) < 1 or int(self.depth) < 2:
            raise ValueError("base_features must be >= 1 and depth >= 2")
        if not self.name:
            kind = f"_{self.segmenter}" if self.route == "2d" else ""
            init = "" if self.init == "scratch" else f"_{self.init}"
            object.__setattr__(self, "name", f"{self.route}{kind}_f{int(self.base_features)}{init}")

    @classmethod
    def of(cls, spec: Mapping | RouteSetting, route: str | None = None) -> RouteSetting:
        """A setting from a mapping (e.g. a row of a notebook's parameters)."""
        if isinstance(spec, RouteSetting):
            return spec
        spec = dict(spec)
        if route is not None:
            spec.setdefault("route", route)
        return cls(**spec)


def inflate_2d_to_3d(source, target, *, head: bool = False) -> int:
    """Start ``target`` (a 2D or 3D U-Net) from the weights of ``source`` (a 2D U-Net of the
    same ``depth``, ``base_features``, growth and normalisation), in place.

    A 2D kernel becomes a 3D one as I3D inflates it: a ``3 x 3`` convolution is repeated over
    the 3 z taps and divided by 3, so that on a volume constant in z the 3D network computes
    what the 2D one computes on a slice (away from the z borders); a transposed convolution's
    ``2 x 2`` kernel is repeated over its z factor (1 or 2) undivided, as each output voxel
    gets exactly one tap. Normalisation layers (weights and running statistics) are copied.
    The head (``1 x 1`` output convolution) is copied only with ``head=True`` (same number of
    outputs); otherwise it keeps its fresh initialisation. A 2D ``target`` gets a plain copy.

    Returns the number of tensors copied; raises ``ValueError`` naming the first tensor whose
    shape does not fit (e.g. other base features: start that setting from scratch).
    """
    import torch

    src = source.state_dict()
    dst = target.state_dict()
    if src.keys() != dst.keys():
        raise ValueError("the 2D network and this setting's network differ in their layers "
                         f"(depth or normalisation): {sorted(set(src) ^ set(dst))[:4]}")
    copied = 0
    out = {}
    for name, w in src.items():
        d = dst[name]
        if name.startswith("head.") and not head:
            out[name] = d
            continue
        if w.shape == d.shape:
            out[name] = w.clone()
        elif w.ndim == 4 and d.ndim == 5 and tuple(w.shape) == tuple(d.shape[:2]) + tuple(d.shape[3:]):
            taps = d.shape[2]
            rep = w.unsqueeze(2).repeat(1, 1, taps, 1, 1)
            # a transposed convolution (in ``.up.``) is not averaged over its z taps
            out[name] = rep if ".up." in f".{name}" else rep / taps
        else:
            raise ValueError(f"cannot start from the 2D network: {name} has shape {tuple(w.shape)}, "
                             f"this setting's has {tuple(d.shape)} (other base features?)")
        copied += 1
    with torch.no_grad():
        target.load_state_dict(out)
    return copied


def _parts(vol, z_nm: float) -> list:
    step = int(round(z_nm / vol.resolution[0]))
    return [vol.subsampled(z_nm, offset=o) for o in range(step)]


def _seen(history: pd.DataFrame, samples_per_epoch: int, batch_size: int) -> int:
    """Training samples seen: as recorded (a budgeted run records them per epoch), else
    whole batches of every epoch."""
    if "samples" in history:
        return int(history["samples"].sum())
    return len(history) * (int(samples_per_epoch) // int(batch_size)) * int(batch_size)


def train_setting(
    setting: RouteSetting,
    volumes: Mapping,
    *,
    folder: str | os.PathLike,
    budget: float | None,
    z_nm: float | None = None,
    crop: Sequence[int],
    tile: Sequence[int] | None = None,
    max_epochs: int = 1000,
    samples_per_epoch: int = 32,
    val_crops: int = 8,
    batch_size: int = 4,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    precision: str = "auto",
    channels_last: bool = False,
    long_range_nm: float = 80.0,
    elastic: tuple[float, float, float] = (34.0, 4.0, 0.5),
    pretrained=None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[object, dict]:
    """Train a setting's network on ``volumes["train"]`` (validation loss on ``volumes["val"]``)
    for at most ``budget`` seconds and ``max_epochs`` epochs; write ``folder``.

    ``setting.init`` says how the network starts: ``"scratch"``; ``"pretrained"``: from
    ``pretrained`` (a 2D U-Net, e.g. ``em_boundary_unet``) by :func:`inflate_2d_to_3d`
    (copied for a 2D network, its head kept fresh); ``"better"``: both, each for the whole
    budget (in ``folder/scratch`` and ``folder/pretrained``), and the one with the lower
    validation loss is kept (the cost reported is the kept one's).

    The 2D networks see single slices at 10 nm (``crop`` (y, x)); the 3D network is trained at
    ``z_nm`` (``crop`` (z, y, x), the parts subsampled at every z offset), with nearest and
    ``long_range_nm`` offsets. A finished run in ``folder`` is not trained again.

    Returns
    -------
    model, and ``{"train_seconds", "train_flops", "epochs"}``.
    """
    from pathlib import Path

    from neuroseg.measure.front import train_flops
    from neuroseg.nets.train import TrainConfig, fit

    setting = RouteSetting.of(setting)
    crop = tuple(int(c) for c in crop)
    if setting.init != "scratch" and pretrained is None:
        raise ValueError(f"setting {setting.name!r} starts from a pretrained 2D network: pass pretrained=")
    if setting.init == "better":
        options = dict(budget=budget, z_nm=z_nm, crop=crop, tile=tile, max_epochs=max_epochs,
                       samples_per_epoch=samples_per_epoch, val_crops=val_crops,
                       batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                       precision=precision, channels_last=channels_last,
                       long_range_nm=long_range_nm, elastic=elastic, seed=seed, progress=progress)
        runs = {}
        for init in ("scratch", "pretrained"):
            s = RouteSetting(setting.route, setting.name, setting.base_features, setting.depth,
                             setting.segmenter, init)
            model, cost = train_setting(s, volumes, folder=Path(folder) / init,
                                        pretrained=pretrained, **options)
            runs[init] = (model, cost)
        kept = min(runs, key=lambda k: runs[k][1]["val_loss"])  # ties: scratch
        return runs[kept][0], {**runs[kept][1], "init": kept}
    start = None
    if setting.init == "pretrained":
        def start(net):
            inflate_2d_to_3d(pretrained, net)
            net.meta = {**(net.meta or {}), "init": "pretrained"}
    common = dict(budget=budget, max_epochs=max_epochs, samples_per_epoch=samples_per_epoch,
                  val_crops=val_crops, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  precision=precision, channels_last=channels_last, elastic=elastic, seed=seed,
                  start=start)
    if setting.route == "3d":
        if z_nm is None:
            raise ValueError("a 3D setting is trained per z spacing: give z_nm")
        model, history = _train_3d(setting, volumes, folder=folder, z_nm=float(z_nm), crop=crop,
                                   tile=tile or crop, long_range_nm=long_range_nm,
                                   fit=fit, config_cls=TrainConfig, progress=progress, **common)
    else:
        model, history = _train_2d(setting, volumes, folder=folder, crop=crop,
                                   long_range_nm=long_range_nm, fit=fit, config_cls=TrainConfig,
                                   progress=progress, **common)
    seen = _seen(history, samples_per_epoch, batch_size)
    flops = train_flops(model, (1, *crop), seen)
    val = history["val_loss"].to_numpy(float) if "val_loss" in history else np.array([np.nan])
    return model, {"train_seconds": float(history["seconds"].sum()), "train_flops": flops,
                   "epochs": int(len(history)), "init": setting.init,
                   "val_loss": float(np.nanmin(val)) if np.isfinite(val).any() else float("inf")}


def train_front_linker(
    volumes: Mapping,
    *,
    folder: str | os.PathLike,
    budget: float | None,
    z_steps: Sequence[int] = (1, 2, 3, 4),
    crop: int = 112,
    depth: int = 4,
    base_features: int = 16,
    max_epochs: int = 1000,
    samples_per_epoch: int = 256,
    val_crops: int = 32,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    precision: str = "auto",
    channels_last: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> tuple[object, dict]:
    """The 2D route's learned linker, trained from scratch at the front's ``budget``.

    Its z-affinity network (:func:`neuroseg.linking.learned.linker_network`) learns on the
    slice pairs of ``volumes["train"]`` at ``z_steps`` (validation loss on ``volumes["val"]``)
    for at most ``budget`` seconds, into ``folder`` (a finished run is not trained again). It
    is not calibrated: :func:`calibrate_for` fits it to each 2D setting's own segments.

    Returns
    -------
    linker, and ``{"train_seconds", "train_flops", "epochs"}`` as :func:`train_setting`.
    """
    from neuroseg.linking.learned import linker_network, train_linker
    from neuroseg.measure.front import train_flops

    train, val = volumes["train"], volumes["val"]
    net = linker_network(pixel_nm=float(train.resolution[-1]), depth=depth,
                         base_features=base_features, seed=seed)
    linker, history = train_linker(
        net, (train.raw, train.gt), (val.raw, val.gt), folder=folder, z_steps=z_steps, crop=int(crop),
        epochs=int(max_epochs), samples_per_epoch=int(samples_per_epoch), val_crops=int(val_crops),
        batch_size=int(batch_size), lr=float(lr), weight_decay=float(weight_decay),
        precision=precision, channels_last=bool(channels_last),
        time_budget=None if budget is None else float(budget), seed=seed, progress=progress)
    seen = _seen(history, samples_per_epoch, batch_size)
    return linker, {"train_seconds": float(history["seconds"].sum()),
                    "train_flops": train_flops(linker.network, (2, int(crop), int(crop)), seen),
                    "epochs": int(len(history))}


def _config(config_cls, *, budget, max_epochs, batch_size, lr, weight_decay, precision,
            channels_last, seed, loss):
    return config_cls(epochs=int(max_epochs), batch_size=int(batch_size), lr=float(lr),
                      weight_decay=float(weight_decay), loss=loss, seed=int(seed),
                      precision=precision, channels_last=bool(channels_last),
                      time_budget=None if budget is None else float(budget))


def _train_2d(setting, volumes, *, folder, crop, long_range_nm, fit, config_cls, progress,
              budget, max_epochs, samples_per_epoch, val_crops, batch_size, lr, weight_decay,
              precision, channels_last, elastic, seed, start):
    from neuroseg.data.images import normalize
    from neuroseg.data.labels import connected_components_per_slice
    from neuroseg.nets.augment import Augmenter
    from neuroseg.segment.affinities_2d import affinity_network_2d, offsets_2d, train_affinities_2d

    train, val = volumes["train"], volumes["val"]
    pixel_nm = float(train.resolution[-1])
    if setting.segmenter == "affinities":
        net = affinity_network_2d(offsets=offsets_2d(pixel_nm=pixel_nm, ranges_nm=(long_range_nm / 2, long_range_nm)),
                                  pixel_nm=pixel_nm, depth=setting.depth,
                                  base_features=setting.base_features, seed=seed)
        if start is not None:
            start(net)
        return train_affinities_2d(
            net, (train.raw, train.gt), (val.raw, val.gt), folder=folder, crop=crop,
            epochs=max_epochs, samples_per_epoch=samples_per_epoch, val_crops=val_crops,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, elastic=elastic,
            precision=precision, channels_last=channels_last, time_budget=budget, seed=seed,
            progress=progress)
    # the boundary segmenter, trained from scratch like the affinity one
    import torch

    from neuroseg.nets.scale import pixel_size_meta
    from neuroseg.nets.unet import UNet
    from neuroseg.segment.instances import boundary_targets

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(ndim=2, in_channels=1, out_channels=1, depth=setting.depth,
                   base_features=setting.base_features)
    meta = {"target": "boundaries", **pixel_size_meta((pixel_nm, pixel_nm), "nm", ndim=2),
            "normalisation": "slice percentiles 1-99.8", "crop": list(crop)}
    if start is not None:
        start(net)
        meta["init"] = net.meta["init"]

    def slices(vol):
        pieces = connected_components_per_slice(vol.gt)
        keep = [z for z in range(vol.raw.shape[0]) if pieces[z].any()]
        return ([normalize(vol.raw[z].astype(np.float32))[None].astype(np.float32) for z in keep],
                [pieces[z] for z in keep])

    def target(labels):
        return boundary_targets(labels)[None]

    alpha, sigma, p = elastic
    return _fit_crops(net, slices(train), slices(val), target_fn=target,
                      augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p), loss="bce+dice",
                      meta=meta, folder=folder, crop=crop, fit=fit, config_cls=config_cls,
                      progress=progress, budget=budget, max_epochs=max_epochs,
                      samples_per_epoch=samples_per_epoch, val_crops=val_crops,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      precision=precision, channels_last=channels_last, seed=seed)


def _fit_crops(net, train, val, *, target_fn, augmenter, loss, meta, folder, crop, fit, config_cls,
               progress, budget, max_epochs, samples_per_epoch, val_crops, batch_size, lr,
               weight_decay, precision, channels_last, seed):
    """Train ``net`` on random crops of the (images, labels) of ``train``, validated on
    fixed crops of ``val``, at the budget; the trained model and its history."""
    from neuroseg.nets.augment import Augmenter
    from neuroseg.nets.folder import load_model
    from neuroseg.nets.loaders import CropDataset

    data = CropDataset(*train, crop=crop, target_fn=target_fn, augmenter=augmenter,
                       samples_per_epoch=samples_per_epoch, seed=seed)
    val_data = CropDataset(*val, crop=crop, target_fn=target_fn, augmenter=Augmenter.none(),
                           samples_per_epoch=val_crops, seed=seed + 1, fixed=True)
    config = _config(config_cls, budget=budget, max_epochs=max_epochs, batch_size=batch_size,
                     lr=lr, weight_decay=weight_decay, precision=precision,
                     channels_last=channels_last, seed=seed, loss=loss)
    history = fit(net, data, val_data, config=config, folder=folder, resume="if_compatible",
                  meta=meta, progress=progress)
    return load_model(folder), pd.DataFrame(history)


def _train_3d(setting, volumes, *, folder, z_nm, crop, tile, long_range_nm, fit, config_cls,
              progress, budget, max_epochs, samples_per_epoch, val_crops, batch_size, lr,
              weight_decay, precision, channels_last, elastic, seed, start):
    from neuroseg.data.images import normalize
    from neuroseg.nets.augment import Augmenter
    from neuroseg.segment.volume_3d import affinity_network

    train, val = volumes["train"], volumes["val"]
    resolution = (float(z_nm), *train.resolution[1:])
    offsets = long_range_offsets(resolution, long_range_nm=long_range_nm)
    net = affinity_network(offsets=offsets, resolution=resolution, depth=setting.depth,
                           base_features=setting.base_features, tile=tile, seed=seed)
    if start is not None:
        start(net)
    target_fn = partial(affinity_target, offsets=offsets)

    def prepared(vol):
        parts = _parts(vol, z_nm)
        return ([normalize(p.raw)[None].astype(np.float32) for p in parts], [p.gt for p in parts])

    alpha, sigma, p = elastic
    augmenter = Augmenter(alpha=alpha, sigma=sigma, elastic_p=p, elastic_axes=(1, 2),
                          flip_axes=(-3, -2, -1))
    return _fit_crops(net, prepared(train), prepared(val), target_fn=target_fn,
                      augmenter=augmenter, loss="balanced_bce",
                      meta={**net.meta, "crop": list(crop)}, folder=folder, crop=crop, fit=fit,
                      config_cls=config_cls, progress=progress, budget=budget,
                      max_epochs=max_epochs, samples_per_epoch=samples_per_epoch,
                      val_crops=val_crops, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, precision=precision,
                      channels_last=channels_last, seed=seed)


def segments_of(model, raw: np.ndarray, *, resolution: Sequence[float], postprocess: Mapping | None = None,
                device: str | None = None) -> np.ndarray:
    """2D segments of every slice by a 2D setting's network (affinity or boundary model)."""
    for _, fn in stages_2d(model, None, resolution=resolution, postprocess=postprocess,
                           device=device)[:2]:
        raw = fn(raw)
    return raw


def choose_2d_postprocess(
    model,
    val_volume,
    *,
    z_nm: float,
    candidates: Sequence[Mapping],
    tolerance: float = 0.01,
    device: str | None = None,
) -> tuple[dict, pd.DataFrame]:
    """A 2D segmenter's post-processing chosen on the validation part at ``z_nm`` (all z
    offsets) by the CREMI score of its 2D segments against the true 2D pieces (each slice on
    its own: nothing is linked) and time (:func:`neuroseg.segment.choose.choose`).

    ``candidates`` are keyword arguments of the segmenter's post-processing: ``threshold``
    and ``min_size`` of :func:`neuroseg.segment.affinities_2d.mutex_watershed_2d`, or of
    :func:`neuroseg.segment.instances.labels_from_boundaries`.
    """
    import time

    from neuroseg.data.labels import connected_components_per_slice
    from neuroseg.measure.voi_rand import segmentation_scores
    from neuroseg.segment.choose import choose

    parts = [p for p in _parts(val_volume, z_nm) if p.raw.shape[0] > 0]
    first = [(p, stages_2d(model, None, resolution=p.resolution, device=device)[0][1](p.raw))
             for p in parts]
    mvox = sum(p.raw.size for p in parts) / 1e6

    def evaluate(candidate: Mapping) -> dict:
        scores, seconds = [], 0.0
        for p, out in first:
            (_, cut), = stages_2d(model, None, resolution=p.resolution, postprocess=candidate,
                                  device=device)[1:2]
            start = time.perf_counter()
            seg = cut(out)
            seconds += time.perf_counter() - start
            scores.append(segmentation_scores(connected_components_per_slice(p.gt), seg))
        return {**pd.DataFrame(scores).mean().to_dict(), "s_per_mvox": seconds / mvox}

    chosen, table = choose(candidates, evaluate, tolerance=tolerance)
    return chosen, table.assign(z_nm=float(z_nm))


def calibrate_for(linker, model, volumes: Mapping, *, z_nm: float, postprocess: Mapping | None = None,
                  thresholds: Sequence[float] | None = None, seed: int = 0,
                  device: str | None = None):
    """The learned linker calibrated (pair classifier on the training part, threshold among
    ``thresholds`` (default :data:`neuroseg.linking.calibration.THRESHOLDS`) on the validation
    part, every z offset) for ``z_nm`` on the 2D segments of ``model`` with ``postprocess``;
    returns the linker and the thresholds tried."""
    from neuroseg.linking.learned import calibrate

    parts = {}
    for name in ("train", "val"):
        parts[name] = [(p.raw, segments_of(model, p.raw, resolution=p.resolution,
                                           postprocess=postprocess, device=device), p.gt)
                       for p in _parts(volumes[name], z_nm) if p.raw.shape[0] > 1]
    resolution = (float(z_nm), *volumes["train"].resolution[1:])
    extra = {} if thresholds is None else {"thresholds": [float(t) for t in thresholds]}
    return calibrate(linker, parts["train"], threshold_volumes=parts["val"], resolution=resolution,
                     segments="predicted", seed=seed, **extra)


def stages_2d(model, linker, *, resolution: Sequence[float], postprocess: Mapping | None = None,
              batch_size: int = 8, device: str | None = None) -> list[tuple[str, Callable]]:
    """The 2D route's stages for a 2D setting's network: ``2d_inference``, ``2d_instances``
    and (with a ``linker``, calibrated for the z spacing) ``linking``; each a function of the
    previous stage's output, the first of the raw volume."""
    from neuroseg.linking.rules import link_slices
    from neuroseg.segment import instances
    from neuroseg.segment.affinities_2d import TARGET_2D, mutex_watershed_2d, predict_affinities_2d
    from neuroseg.segment.volume_2d import boundaries_2d

    post = dict(postprocess if postprocess is not None else (model.meta.get("postprocess") or {}))
    res = tuple(float(r) for r in resolution)
    if model.meta.get("target") == TARGET_2D:
        def infer(raw):
            return predict_affinities_2d(model, raw, resolution=res, batch_size=batch_size, device=device)

        def cut(out):
            affs, offsets = out
            return mutex_watershed_2d(affs, offsets=offsets, **post)
    else:
        def infer(raw):
            return boundaries_2d(model, raw, resolution=res, batch_size=batch_size, device=device)

        def cut(prob):
            return instances.labels_from_boundaries_stack(prob, **post)
    stages = [("2d_inference", infer), ("2d_instances", cut)]
    if linker is not None:
        lk = linker.calibrated_for(res, segments="predicted")
        stages.append(("linking", lambda labels2d, raw: link_slices(
            labels2d, raw=raw, method="learned", threshold=lk.threshold, linker=lk,
            resolution=res).labels))
    return stages


def stages_3d(model, *, postprocess: Mapping | None = None, batch_size: int = 1,
              device: str | None = None) -> list[tuple[str, Callable]]:
    """The 3D route's stages: ``3d_inference`` (tiled) and ``agglomeration`` (the model's
    stored post-processing, or ``postprocess``)."""
    from neuroseg.nets.predict import on_device
    from neuroseg.segment.affinities import agglomerate
    from neuroseg.segment.volume_3d import model_resolution, predict_affinities

    post = {"method": "cc", "threshold": 0.5, "min_size": 0,
            **dict(postprocess if postprocess is not None else (model.meta.get("postprocess") or {}))}
    net = on_device(model, device) if device is not None else model
    return [
        ("3d_inference", lambda raw: predict_affinities(net, raw, batch_size=batch_size)),
        ("agglomeration", lambda affs: agglomerate(affs, offsets=model.meta["offsets"],
                                                   resolution=model_resolution(model.meta), **post)),
    ]


def run_stages(stages: Sequence[tuple[str, Callable]], raw: np.ndarray, *, warmup: int = 1,
               repeats: int = 3, device: str | None = None, precision: str = "fp32") -> tuple[np.ndarray, dict]:
    """Run ``stages`` on ``raw``, each timed with :func:`neuroseg.measure.timing.benchmark`
    on the previous stage's output (the linking stage also gets ``raw``). Returns the last
    stage's output and the median seconds of each stage (``{name: seconds}``)."""
    from neuroseg.measure.timing import benchmark

    out, seconds = raw, {}
    for name, fn in stages:
        args = (out, raw) if name == "linking" else (out,)
        timing, out = benchmark(fn, *args, name=name, warmup=warmup, repeats=repeats,
                                device=device, precision=precision)
        seconds[name] = float(timing.median)
    return out, seconds


def setting_record(setting: RouteSetting) -> dict:
    """A setting as flat columns of a table (``setting`` is its name)."""
    d = asdict(RouteSetting.of(setting))
    d["setting"] = d.pop("name")
    return d
