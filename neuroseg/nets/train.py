"""Training: :func:`fit` a U-Net on crop datasets, with checkpoints, resume and history.

A training run lives in a model folder (see :mod:`neuroseg.nets.unet`):

- ``config.json``, ``weights.pt``, ``env.json`` — the best model so far (lowest validation
  loss, or lowest training loss when there is no validation set), or with
  ``TrainConfig(keep="last")`` the last epoch's, loadable with
  :func:`neuroseg.nets.folder.load_model`;
- ``history.csv`` — one row per epoch (train loss, val loss, val IoU, lr, seconds);
- ``checkpoints/last.pt`` and ``checkpoints/best.pt`` — model, optimiser and scheduler state
  plus the epoch, to resume an interrupted run with ``fit(..., resume=True)``.

Same seed on CPU, same weights: the model is built from the seed, batches come in a seeded
order, and each crop is a function of (seed, epoch, index) (see :mod:`neuroseg.nets.loaders`).
Precision: by default (``precision="auto"``) a CUDA device trains with bf16 autocast unless
``amp=False`` and a CPU in float32; ``precision="bf16"`` autocasts on the CPU too (several times
faster where the CPU has bf16 matrix units, e.g. AMX), and ``channels_last=True`` stores the
2-D/3-D activations channels-last. Weights and the optimiser stay float32.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from neuroseg.io import atomic_path
from neuroseg.machine import set_threads
from neuroseg.nets.folder import save_model
from neuroseg.nets.scale import canonical_meta
from neuroseg.nets.speed import channels_last_format
from neuroseg.nets.unet import ModelError

PRECISIONS = ("auto", "fp32", "bf16")
KEEP = ("best", "last")


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`fit`.

    ``loss`` is ``"bce"``, ``"dice"`` or ``"bce+dice"`` (binary targets, one per output
    channel), ``"balanced_bce"`` (BCE where, per channel and batch, the 1s and the 0s of the
    target weigh half each: for rare boundaries) or ``"ce"`` / ``"ce+dice"`` (a class-index
    target, softmax outputs). A binary target with twice the output channels carries a
    validity mask in its second half: voxels where it is 0 do not count.
    ``channel_weights`` weight the BCE of each output channel. ``early_stopping`` is a
    patience in epochs on the validation loss (``None``: off). ``schedule`` is
    ``"cosine"`` (decay to 1 % of ``lr`` over the run) or ``None``. ``precision`` is
    ``"auto"`` (bf16 autocast on CUDA when ``amp``, float32 on a CPU), ``"fp32"`` or
    ``"bf16"`` (autocast on any device); ``channels_last`` uses the channels-last memory
    format for the model and its inputs. ``keep`` is which weights the model folder holds at
    the end: ``"best"`` (lowest validation loss, or training loss without validation data) or
    ``"last"`` (the final epoch's: for a model refitted on all non-test data, whose epoch
    count was chosen beforehand). ``time_budget`` (seconds, ``None``: off) ends training when
    the run's training time (the sum of its epochs' ``seconds``, validation included, over
    resumed runs too) reaches it: the epoch under way stops taking batches (after at least
    one), is validated and saved, and is the last; the history then records each epoch's
    training ``samples``. ``epochs`` stays the upper bound and the length of the cosine
    schedule. A budgeted run depends on the machine's speed, so it is not reproducible to
    the byte as an epoch-bounded one is.
    """

    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    loss: str = "bce"
    channel_weights: tuple[float, ...] | None = None
    schedule: str | None = "cosine"
    early_stopping: int | None = None
    seed: int = 0
    amp: bool = True
    device: str | None = None
    grad_clip: float | None = 1.0
    precision: str = "auto"
    channels_last: bool = False
    keep: str = "best"
    time_budget: float | None = None

    def __post_init__(self):
        if self.time_budget is not None and not (math.isfinite(self.time_budget) and self.time_budget > 0):
            raise ValueError(f"time_budget must be a positive number of seconds; got {self.time_budget}")
        if self.keep not in KEEP:
            raise ValueError(f"unknown keep {self.keep!r} (one of {', '.join(KEEP)})")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} (one of {', '.join(PRECISIONS)})")
        if self.loss not in ("bce", "dice", "bce+dice", "balanced_bce", "ce", "ce+dice"):
            raise ValueError(f"unknown loss {self.loss!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """1 - soft Dice per channel (sigmoid of logits vs binary target), averaged; voxels where
    ``mask`` is 0 do not count."""
    prob = torch.sigmoid(logits)
    if mask is not None:
        prob, target = prob * mask, target * mask
    dims = tuple(range(2, logits.ndim)) + (0,)
    inter = (prob * target).sum(dims)
    denom = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def _split_mask(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(target, mask): a target with twice the logits' channels holds a validity mask."""
    k = logits.shape[1]
    if target.shape[1] == 2 * k:
        return target[:, :k], target[:, k:]
    if target.shape[1] != k:
        raise ValueError(f"target has {target.shape[1]} channels for {k} outputs (need {k} or {2 * k})")
    return target, None


def _balanced_weights(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-voxel weights under which the 1s and the 0s of each channel weigh half each."""
    valid = torch.ones_like(target) if mask is None else mask
    dims = (0,) + tuple(range(2, target.ndim))
    pos = (target * valid).sum(dims, keepdim=True)
    neg = ((1 - target) * valid).sum(dims, keepdim=True)
    total = pos + neg
    w_pos = torch.where(pos > 0, total / (2 * pos.clamp(min=1)), torch.zeros_like(pos))
    w_neg = torch.where(neg > 0, total / (2 * neg.clamp(min=1)), torch.zeros_like(neg))
    # a channel with only one class present keeps plain weights
    one_class = (pos == 0) | (neg == 0)
    w_pos = torch.where(one_class, torch.ones_like(w_pos), w_pos)
    w_neg = torch.where(one_class, torch.ones_like(w_neg), w_neg)
    return valid * (target * w_pos + (1 - target) * w_neg)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The configured loss of a batch."""
    logits = logits.float()
    if config.loss.startswith("ce"):
        classes = target[:, 0].long()
        loss = F.cross_entropy(logits, classes)
        if config.loss == "ce+dice":
            onehot = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).float()
            prob = torch.softmax(logits, 1)
            dims = (0,) + tuple(range(2, logits.ndim))
            dice = (2 * (prob * onehot).sum(dims) + 1) / (prob.sum(dims) + onehot.sum(dims) + 1)
            loss = loss + (1 - dice).mean()
        return loss
    target, mask = _split_mask(logits, target)
    loss = logits.new_zeros(())
    if "bce" in config.loss:
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        dims = (0,) + tuple(range(2, logits.ndim))
        if config.loss == "balanced_bce":
            w = _balanced_weights(target, mask)
            per_channel = (per_pixel * w).sum(dims) / w.sum(dims).clamp(min=1e-6)
        elif mask is not None:
            per_channel = (per_pixel * mask).sum(dims) / mask.sum(dims).clamp(min=1.0)
        else:
            per_channel = per_pixel.mean(dim=dims)
        if config.channel_weights is not None:
            w = torch.as_tensor(config.channel_weights, dtype=per_channel.dtype, device=logits.device)
            if w.numel() != per_channel.numel():
                raise ValueError(
                    f"channel_weights has {w.numel()} values for {per_channel.numel()} channels"
                )
            loss = loss + (per_channel * w).sum() / w.sum()
        else:
            loss = loss + per_channel.mean()
    if "dice" in config.loss:
        loss = loss + soft_dice_loss(logits, target, mask=mask)
    return loss


def _iou_of_batch(logits: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> tuple[int, int]:
    """(intersection, union) of the foreground: channel 0 > 0.5, or class > 0 for CE."""
    if config.loss.startswith("ce"):
        pred = logits.argmax(1) > 0
        true = target[:, 0] > 0
    else:
        pred = logits[:, 0] > 0
        true = target[:, 0] > 0.5
    return int((pred & true).sum()), int((pred | true).sum())


@dataclass
class _State:
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list = field(default_factory=list)


def _make_optimizer(model: torch.nn.Module, config: TrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(optimizer, config: TrainConfig):
    if config.schedule is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.lr * 0.01
        )
    raise ValueError(f"unknown schedule {config.schedule!r}")


def _save_checkpoint(
    path: Path, model, optimizer, scheduler, state: _State, config: TrainConfig, run: dict
):
    payload = {
        "run": run,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": state.epoch,
        "best_loss": state.best_loss,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "history": state.history,
        "config": asdict(config),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """Read a training checkpoint (weights only), naming the file if it is corrupt."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelError(f"{path}: corrupt or unreadable checkpoint ({err})") from err


def _write_history(folder: Path, history: list[dict]) -> None:
    if not history:
        return
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(folder / "history.csv") as tmp:
        tmp.write_text(buf.getvalue())


_ADDED_OPTIONS = {"precision": "auto", "channels_last": False, "keep": "best", "time_budget": None}


def _run_identity(model, config: TrainConfig, meta: dict) -> dict:
    """What makes two training runs the same run (for resuming), as JSON-comparable data."""
    def canon(x):
        return json.loads(json.dumps(x, sort_keys=True, default=str))

    cfg = asdict(config)
    cfg.pop("device")
    # options added after runs were recorded: at their default they leave the identity as it was
    for key, default in _ADDED_OPTIONS.items():
        if cfg.get(key) == default:
            cfg.pop(key)
    return _location_free({
        "config": canon(cfg),
        "model": canon(getattr(model, "config", {})),
        "meta": canon(canonical_meta(
            {k: v for k, v in meta.items() if k not in ("train_config", "best_epoch", "weights_epoch")})),
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
    })


def _location_free(run: dict) -> dict:
    """``run`` without where the source model lies on disk (``meta.transfer.source``): its
    weights' digest (``source_sha256``) identifies it, so a moved or re-cloned project keeps
    its finished runs. Applied to recorded identities too, which may still hold the path."""
    meta = run.get("meta")
    transfer = meta.get("transfer") if isinstance(meta, dict) else None
    if not isinstance(transfer, dict) or "source" not in transfer:
        return run
    transfer = {k: v for k, v in transfer.items() if k != "source"}
    return {**run, "meta": {**meta, "transfer": transfer}}


def _recorded_identity(run: dict) -> dict:
    """A recorded run identity as :func:`_run_identity` makes one today: location-free, and
    with a pixel size recorded under an older key (``pixel_nm``, ``input_scale``...) in the one
    key of :mod:`neuroseg.nets.scale`, so that such a finished run is still recognised."""
    run = _location_free(run)
    if isinstance(run.get("meta"), dict):
        meta = json.loads(json.dumps(canonical_meta(run["meta"]), sort_keys=True, default=str))
        run = {**run, "meta": meta}
    return run


def _spent(state: _State) -> float:
    """The run's training time so far: the sum of its epochs' seconds."""
    return sum(float(r.get("seconds", 0.0)) for r in state.history)


def _budget_spent(state: _State, config: TrainConfig) -> bool:
    """Whether the run's training time has reached ``config.time_budget``."""
    return config.time_budget is not None and _spent(state) >= config.time_budget


def _train_mode(model: torch.nn.Module) -> None:
    """Training mode, except normalisation layers whose parameters are all frozen.

    A frozen layer (transfer learning) keeps its running statistics from the source task
    instead of re-estimating them on the new data.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _evaluate(model, loader, config: TrainConfig, device) -> tuple[float, float]:
    model.eval()
    total, n, inter, union = 0.0, 0, 0, 0
    with torch.no_grad(), _autocast(device, config):
        for x, y in loader:
            x, y = _memory_format(x.to(device), config), y.to(device)
            logits = model(x)
            total += float(loss_fn(logits, y, config)) * len(x)
            n += len(x)
            i, u = _iou_of_batch(logits, y, config)
            inter += i
            union += u
    return total / max(n, 1), (inter / union if union else 1.0)


def _autocast(device: torch.device, config: TrainConfig):
    if config.precision == "auto":
        enabled = bool(config.amp and device.type == "cuda")
    else:
        enabled = config.precision == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _to_channels_last(model: torch.nn.Module) -> None:
    """Convolution weights channels-last, in place (their values are unchanged)."""
    for param in model.parameters():
        if param.ndim in (4, 5):
            param.data = param.data.contiguous(memory_format=channels_last_format(param.ndim))


def _memory_format(x: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    if not config.channels_last or x.ndim not in (4, 5):
        return x
    return x.contiguous(memory_format=channels_last_format(x.ndim))


def fit(
    model: torch.nn.Module,
    train_data: torch.utils.data.Dataset,
    val_data: torch.utils.data.Dataset | None = None,
    *,
    config: TrainConfig,
    folder: str | os.PathLike,
    resume: bool | str = True,
    meta: dict | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` and write the model folder; return the history (one dict per epoch).

    Parameters
    ----------
    model : UNet
        Trained in place (parameters with ``requires_grad=False`` stay frozen).
    train_data, val_data : Dataset
        Return (image, target) tensors; a ``set_epoch(epoch)`` method, when present, is
        called before each epoch (see :class:`neuroseg.nets.loaders.CropDataset`).
    config : TrainConfig
    folder : path
        The model folder (created). With ``resume=True`` and ``checkpoints/last.pt`` present,
        training continues from it; the checkpoint must come from the same run (same
        ``config``, model architecture and ``meta``), else :class:`ModelError` is raised.
        ``resume="if_compatible"`` instead starts afresh (removing the old checkpoints) when
        the checkpoint is from a different run, which is what a pipeline re-run after a change
        of parameters wants. ``resume=False`` always starts afresh. A finished run
        (checkpoint at ``config.epochs``) returns at once with its history.
    meta : dict
        Stored in ``config.json`` (target type, normalisation, crop, pixel size...).
    on_epoch_end : callable
        Called as ``on_epoch_end(epoch, row)`` after the epoch's checkpoint is written.

    Examples
    --------
    See ``tests/test_train.py`` and ``notebooks/10_nucleus_pretraining.ipynb``.
    """
    folder = Path(folder)
    ckpt_dir = folder / "checkpoints"
    device = torch.device(config.device) if config.device else default_device()
    model.to(device)
    if config.channels_last:
        _to_channels_last(model)
    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config)
    state = _State()
    last = ckpt_dir / "last.pt"
    meta = dict(meta or {})
    meta["train_config"] = asdict(config)
    run = _run_identity(model, config, meta)
    if resume not in (True, False, "if_compatible"):
        raise ValueError(f"resume must be True, False or 'if_compatible', got {resume!r}")
    if last.exists() and resume:
        ckpt = load_checkpoint(last, map_location=device)
        recorded = _recorded_identity(ckpt.get("run") or {})
        differ = [k for k in run if recorded.get(k) != run[k]]
        if differ and resume == "if_compatible":
            print(f"{last}: from a different run ({', '.join(differ)} changed); starting afresh")
            for old in ckpt_dir.glob("*.pt"):
                old.unlink()
            ckpt = None
        elif differ:
            raise ModelError(
                f"{last}: checkpoint is from a different run ({', '.join(differ)} differ); "
                "use another folder, resume=False or resume='if_compatible'"
            )
    else:
        ckpt = None
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ModelError(f"{last}: checkpoint does not match the model ({err})") from err
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = _State(
            epoch=ckpt["epoch"],
            best_loss=ckpt["best_loss"],
            best_epoch=ckpt["best_epoch"],
            bad_epochs=ckpt["bad_epochs"],
            history=list(ckpt["history"]),
        )
    elif not resume:
        for old in ckpt_dir.glob("*.pt"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)

    val_loader = None
    if val_data is not None:
        val_loader = torch.utils.data.DataLoader(val_data, batch_size=config.batch_size, shuffle=False)
    stop = state.bad_epochs >= (config.early_stopping or math.inf) or _budget_spent(state, config)
    bar = tqdm(
        total=config.epochs, initial=state.epoch, desc="epochs", disable=not progress, leave=True
    )
    while state.epoch < config.epochs and not stop:
        epoch = state.epoch
        start = time.perf_counter()
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            train_data, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=True
        )
        if len(loader) == 0:
            raise ValueError(
                f"training set yields {len(train_data)} samples, fewer than one batch of "
                f"{config.batch_size}"
            )
        _train_mode(model)
        total, n, inter, union = 0.0, 0, 0, 0
        spent = _spent(state)
        for x, y in loader:
            if config.time_budget is not None and n and spent + time.perf_counter() - start >= config.time_budget:
                break  # the budget is spent in the middle of an epoch: end it here
            x, y = _memory_format(x.to(device), config), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, config):
                logits = model(x)
            loss = loss_fn(logits, y, config)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: loss became {float(loss)}")
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(x)
            n += len(x)
            i, u = _iou_of_batch(logits.detach(), y, config)
            inter += i
            union += u
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row = {
            "epoch": epoch + 1,
            "train_loss": total / n,
            "train_iou": inter / union if union else 1.0,
            "val_loss": float("nan"),
            "val_iou": float("nan"),
            "lr": lr,
            "seconds": 0.0,
        }
        if config.time_budget is not None:
            row["samples"] = n  # training samples of this epoch (fewer when the budget cut it)
        if val_loader is not None:
            row["val_loss"], row["val_iou"] = _evaluate(model, val_loader, config, device)
        row["seconds"] = round(time.perf_counter() - start, 3)
        monitored = row["val_loss"] if val_loader is not None else row["train_loss"]
        state.history.append(row)
        state.epoch = epoch + 1
        improved = monitored < state.best_loss
        if improved:
            state.best_loss, state.best_epoch, state.bad_epochs = monitored, epoch + 1, 0
        else:
            state.bad_epochs += 1
        meta["best_epoch"] = state.best_epoch
        if improved:
            _save_checkpoint(ckpt_dir / "best.pt", model, optimizer, scheduler, state, config, run)
        if (improved and config.keep == "best") or config.keep == "last":
            meta["weights_epoch"] = state.epoch
            save_model(model, folder, meta=meta, device=str(device))
        _save_checkpoint(last, model, optimizer, scheduler, state, config, run)
        _write_history(folder, state.history)
        bar.update(1)
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")
        if config.early_stopping is not None and state.bad_epochs >= config.early_stopping:
            stop = True
        if _budget_spent(state, config):
            stop = True
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    bar.close()
    # leave the kept weights (best, or last: already in the model) in the model and the folder
    best = ckpt_dir / "best.pt"
    if config.keep == "best" and best.exists():
        model.load_state_dict(load_checkpoint(best, map_location=device)["model"])
    return list(state.history)


def history_frame(folder: str | os.PathLike):
    """``history.csv`` of a model folder as a DataFrame."""
    import pandas as pd

    path = Path(folder) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training history")
    return pd.read_csv(path)


def seed_everything(seed: int, *, threads: int | None = None) -> None:
    """Seed torch and numpy's legacy global RNG, make CPU kernels deterministic and, with
    ``threads``, use that many CPU threads (:func:`neuroseg.machine.set_threads`): the same
    seed, threads and machine give the same bytes."""
    if threads is not None:
        set_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the legacy RNG
    torch.use_deterministic_algorithms(True, warn_only=True)
