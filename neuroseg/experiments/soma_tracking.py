"""Somata over time: segmentation, tracking and migration on a time-lapse, for ``60_soma_tracking``.

SomaNet's next steps, on the Cell Tracking Challenge's Fluo-N2DH-GOWT1 sequence 01 (GFP nuclei
of mouse stem cells, 0.24 µm pixels, a frame every 5 minutes; nuclei stand in for somata):

1. **Segmentation.** The nucleus model of ``10_nucleus_pretraining`` is fine-tuned (SomaNet's
   recipe: elastic deformation alpha 34, sigma 4, mirroring) on the training part of the
   sequence: the fully annotated frame 21 and the partly annotated frames before it, where
   nuclei that the annotators left out are ignored by the loss (:func:`neuroseg.data.ctc.partial_labels`).
   How many layers to retrain is chosen on frame 31 (validation); frames 33 and 39 are held
   out for SEG and AP@0.5.
2. **Tracking** with the slice-linking code, time read as z (:func:`neuroseg.linking.tracks.track`):
   the overlap linker, the learned linker (its z-affinity network retrained on frame pairs of the
   training part, with track identities from the tracking markers), and the peer tracker
   ``laptrack``. Each linker's parameter, then its division setting, is chosen on the training
   part (frames up to 31) by TRA. All are scored with ``py-ctcmetrics`` on the whole sequence and on the later part
   (frames 32 on) that no training saw.
3. **Migration** of each cell (:mod:`neuroseg.measure.migration`), from the tracks of the
   linker that scored best on the training part, beside the same measures from the ground-truth
   markers.

The data's terms allow method development and require citation; no raw image of it goes into
a figure (tracks are drawn as coordinates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroseg.data import ctc
from neuroseg.data.catalogue import require
from neuroseg.data.images import normalize
from neuroseg.data.readers import read_ctc_frames
from neuroseg.data.resample import resample_image, resample_labels
from neuroseg.linking.tracks import Tracks, track
from neuroseg.measure import migration as mig
from neuroseg.measure.ctc_scores import seg_score, tracking_scores
from neuroseg.measure.matching import matching
from neuroseg.segment import instances

DATASET = "ctc_fluo_n2dh_gowt1_01"
PIXEL_NM = 240.5  # from the TIFF XResolution tag (PROVENANCE.md); the CTC gives 0.240 µm
FRAME_MINUTES = 5.0  # the CTC dataset description
RESULT_COLUMNS = ("linker", "part", "SEG", "DET", "TRA", "LNK", "CHOTA", "divisions_true",
                  "divisions_found")
CITATION = (
    "Fluo-N2DH-GOWT1 from the Cell Tracking Challenge (Maška et al. 2023, Nature Methods 20:1010; "
    "Ulman et al. 2017, Nature Methods 14:1141); data provider E. Bártová, Institute of Biophysics, "
    "Brno"
)


@dataclass(frozen=True)
class TimeLapse:
    """A time-lapse with its ground truth: frames ``first`` to ``first + len(raw) - 1`` of the
    sequence, re-based to 0 (``seg`` keys are re-based frames)."""

    raw: np.ndarray
    markers: np.ndarray
    lineage: pd.DataFrame
    seg: dict = field(default_factory=dict)
    first: int = 0

    @property
    def frames(self) -> int:
        return int(self.raw.shape[0])


def load_sequence(*, first: int = 0, last: int | None = None) -> TimeLapse:
    """Frames ``first`` to ``last`` (inclusive; default: all) of GOWT1 sequence 01."""
    root = require(DATASET)
    _, raw = read_ctc_frames(root / "01", kind="raw")
    _, markers = read_ctc_frames(root / "01_GT" / "TRA", kind="tra")
    lineage = ctc.read_lineage(root / "01_GT" / "TRA" / "man_track.txt")
    seg_frames, seg = read_ctc_frames(root / "01_GT" / "SEG", kind="seg")
    stop = raw.shape[0] if last is None else int(last) + 1
    markers, lineage = ctc.cut_part(markers, lineage, start=first, stop=stop)
    segs = {f - first: s for f, s in zip(seg_frames, seg) if first <= f < stop}
    return TimeLapse(raw=raw[first:stop], markers=markers, lineage=lineage, seg=segs, first=first)


def part(seq: TimeLapse, *, start: int, stop: int | None = None) -> TimeLapse:
    """Frames ``start`` to ``stop - 1`` (re-based frames of ``seq``) as a time-lapse of its own."""
    stop = seq.frames if stop is None else int(stop)
    markers, lineage = ctc.cut_part(seq.markers, seq.lineage, start=start, stop=stop)
    segs = {f - start: s for f, s in seq.seg.items() if start <= f < stop}
    return TimeLapse(raw=seq.raw[start:stop], markers=markers, lineage=lineage, seg=segs,
                     first=seq.first + start)


def annotation_table(seq: TimeLapse) -> pd.DataFrame:
    """Each annotated frame read against its tracking markers: complete or partial."""
    rows = [{"frame": seq.first + f, **ctc.annotation_coverage(s, seq.markers[f])}
            for f, s in sorted(seq.seg.items())]
    return pd.DataFrame(rows)


def split_table(seq: TimeLapse, *, train_until: int, val_frames: Sequence[int],
                test_frames: Sequence[int]) -> pd.DataFrame:
    """The split in time (original frame numbers)."""
    annotated = sorted(seq.first + f for f in seq.seg)
    train = [f for f in annotated if f <= train_until and f not in val_frames]
    last = seq.first + seq.frames - 1
    return pd.DataFrame([
        {"part": "segmentation training", "frames": ", ".join(map(str, train)),
         "use": "fine-tuning (partial masks: unannotated nuclei ignored)"},
        {"part": "segmentation validation", "frames": ", ".join(map(str, val_frames)),
         "use": "layers to retrain, watershed thresholds"},
        {"part": "segmentation test", "frames": ", ".join(map(str, test_frames)),
         "use": "SEG and AP@0.5"},
        {"part": "tracking training", "frames": f"{seq.first}-{train_until}",
         "use": "linker training and each linker's parameter"},
        {"part": "tracking later part", "frames": f"{train_until + 1}-{last}",
         "use": "scored; no training saw it"},
    ])


# --------------------------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------------------------


def model_scale(image: np.ndarray, *, scale: float, labels: bool = False) -> np.ndarray:
    """A frame at the network's pixel size (``scale`` x the native size)."""
    if labels:
        return resample_labels(image, pixel_size=1.0, target_pixel_size=1.0 / scale)
    return resample_image(np.asarray(image, np.float32), pixel_size=1.0,
                          target_pixel_size=1.0 / scale)


def training_frames(seq: TimeLapse, *, train_until: int, val_frames: Sequence[int]) -> list[int]:
    """The annotated frames (original numbers) up to ``train_until`` that do not validate."""
    return [seq.first + f for f in sorted(seq.seg)
            if seq.first + f <= train_until and seq.first + f not in set(val_frames)]


def _rebased(seq: TimeLapse, frames: Sequence[int]) -> list[int]:
    out = [int(f) - seq.first for f in frames]
    absent = [f + seq.first for f in out if f not in seq.seg]
    if absent:
        raise ValueError(f"frames {absent} have no segmentation ground truth in this time-lapse")
    return out


def training_images(seq: TimeLapse, frames: Sequence[int], *, scale: float,
                    margin: int = 15) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normalised (1, Y, X) images and labels (unannotated nuclei = :data:`ctc.IGNORE`) of
    the annotated ``frames`` (original frame numbers), at the network's pixel size."""
    images, labels = [], []
    for f in _rebased(seq, frames):
        lab = ctc.partial_labels(seq.seg[f], seq.markers[f], margin=margin)
        images.append(normalize(model_scale(seq.raw[f], scale=scale))[None])
        labels.append(model_scale(lab, scale=scale, labels=True))
    return images, labels


def masked_targets(labels: np.ndarray) -> np.ndarray:
    """Foreground and contour targets plus their validity mask (4, Y, X): pixels marked
    :data:`ctc.IGNORE` do not count in the loss."""
    valid = labels != ctc.IGNORE
    t = instances.fg_contour_targets(np.where(valid, labels, 0))
    return np.concatenate([t, np.repeat(valid[None], t.shape[0], 0).astype(np.float32)])


def train_segmenter(
    pretrained: str | Path,
    folder: str | Path,
    train: tuple[list, list],
    val: tuple[list, list],
    *,
    layers: int | str,
    scale: float,
    crop: int = 128,
    epochs: int = 20,
    samples_per_epoch: int = 256,
    val_crops: int = 32,
    batch_size: int = 8,
    lr: float = 5e-4,
    precision: str = "auto",
    channels_last: bool = False,
    elastic: tuple[float, float, float] = (34.0, 4.0, 0.5),
    seed: int = 0,
    progress: bool = True,
):
    """Fine-tune the nucleus model on the frames; returns (model, history)."""
    from neuroseg.nets import transfer
    from neuroseg.nets.augment import Augmenter
    from neuroseg.nets.folder import load_model
    from neuroseg.nets.loaders import CropDataset
    from neuroseg.nets.scale import pixel_size_meta
    from neuroseg.nets.train import TrainConfig, fit, history_frame

    alpha, sigma, p = elastic
    data = CropDataset(*train, crop=(crop, crop), target_fn=masked_targets,
                       augmenter=Augmenter(alpha=alpha, sigma=sigma, elastic_p=p),
                       samples_per_epoch=samples_per_epoch, seed=seed)
    val_data = CropDataset(*val, crop=(crop, crop), target_fn=masked_targets,
                           samples_per_epoch=val_crops, seed=seed + 1, fixed=True)
    model = transfer.from_pretrained(pretrained, layers=layers, seed=seed)
    meta = {**model.meta, **pixel_size_meta(PIXEL_NM / scale, "nm"), "dataset": DATASET,
            "task": "nuclei over time", "crop": crop}
    meta.pop("postprocess", None)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=1e-4,
                         loss="bce", seed=seed, precision=precision,
                         channels_last=bool(channels_last))
    fit(model, data, val_data, config=config, folder=folder, meta=meta, resume="if_compatible",
        progress=progress)
    return load_model(folder), history_frame(folder)


def probabilities(model, frames: np.ndarray, *, progress: bool = True) -> list[np.ndarray]:
    """Foreground/contour probabilities of each frame, back at the native pixel size."""
    from neuroseg.nets.scale import predict_at_model_scale

    out = []
    for f in tqdm(frames, desc="predicting frames", disable=not progress, leave=False):
        x = normalize(np.asarray(f, np.float32))[None]
        out.append(predict_at_model_scale(model, x, pixel_size=PIXEL_NM, tile=(256, 256)))
    return out


def tune(model, seq: TimeLapse, frames: Sequence[int]) -> tuple[dict, pd.DataFrame, float]:
    """Watershed thresholds chosen on ``frames`` (original numbers; complete annotations) by
    AP@0.5."""
    from neuroseg.data.readers import Sample
    from neuroseg.segment.tuning import tune_fg_contour

    frames = _rebased(seq, frames)
    probs = probabilities(model, seq.raw[list(frames)], progress=False)
    samples = [Sample(id=str(f), image=seq.raw[f], labels=seq.seg[f]) for f in frames]
    post, grid = tune_fg_contour(probs, samples)
    return post, grid, float(grid.val_ap50.max())


def segment_frames(model, raw: np.ndarray, postprocess: dict, *, progress: bool = True) -> np.ndarray:
    """Instance labels (t, y, x) uint16 of every frame."""
    out = np.zeros(raw.shape, np.uint16)
    for t, p in enumerate(probabilities(model, raw, progress=progress)):
        lab = instances.labels_from_fg_contour(p[0], p[1], **postprocess)
        if lab.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"frame {t}: {lab.max()} objects do not fit the CTC's uint16 masks")
        out[t] = lab
    return out


def segmentation_scores(seq: TimeLapse, labels: np.ndarray, frames: Sequence[int]) -> pd.DataFrame:
    """SEG and AP@0.5 (tp / (tp + fp + fn) at IoU 0.5) of fully annotated ``frames``
    (original numbers)."""
    rows = []
    for f in _rebased(seq, frames):
        m = matching(seq.seg[f], labels[f], threshold=0.5)
        rows.append({"frame": seq.first + f, "SEG": seg_score(seq.seg[f], labels[f]),
                     "AP50": m.accuracy, "precision": m.precision, "recall": m.recall,
                     "n_true": m.n_true, "n_pred": m.n_pred})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# linkers
# --------------------------------------------------------------------------------------------


def pseudo_truth(labels: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Predicted segments named after the tracking marker they overlap most (0: none)."""
    from neuroseg.measure.overlap import contingency

    out = np.zeros(labels.shape, np.uint32)
    for t in range(labels.shape[0]):
        c = contingency(labels[t], markers[t], ignore_a=0, ignore_b=0)
        best: dict[int, tuple[int, int]] = {}
        for a, b, n in zip(c.a_ids.tolist(), c.b_ids.tolist(), c.counts.tolist()):
            if n > best.get(a, (0, 0))[1]:
                best[a] = (b, n)
        lut = np.zeros(int(labels[t].max()) + 1, np.uint32)
        for a, (b, _) in best.items():
            lut[a] = b
        out[t] = lut[labels[t]]
    return out


def train_time_linker(
    segmenter_folder: str | Path,
    folder: str | Path,
    raw: np.ndarray,
    labels: np.ndarray,
    markers: np.ndarray,
    *,
    val_frames: int,
    scale: float,
    steps: Sequence[int] = (1, 2),
    epochs: int = 10,
    samples_per_epoch: int = 256,
    crop: int = 112,
    seed: int = 0,
    progress: bool = True,
):
    """The learned linker for frames: its z-affinity network starts from the fine-tuned nucleus
    model and learns, on frame pairs ``steps`` apart, where a nucleus continues; identities come
    from the markers (:func:`pseudo_truth`). The last ``val_frames`` frames validate it, the
    others train it; its pair classifier is calibrated on all of them (time as z: 1 frame)."""
    from neuroseg.linking.learned import calibrate, linker_from_model, save_linker, train_linker

    val_from = raw.shape[0] - int(val_frames)
    if not 2 <= val_from <= raw.shape[0] - 2:
        raise ValueError(f"need at least 2 training and 2 validation frames; got {raw.shape[0]} "
                         f"frames and val_frames={val_frames}")

    gt = pseudo_truth(labels, markers)
    small = np.stack([model_scale(f, scale=scale) for f in raw])
    small_gt = np.stack([model_scale(g, scale=scale, labels=True) for g in gt])
    net = linker_from_model(segmenter_folder, seed=seed)
    linker, history = train_linker(
        net, (small[:val_from], small_gt[:val_from]), (small[val_from:], small_gt[val_from:]),
        folder=folder, z_steps=steps, crop=crop, epochs=epochs, samples_per_epoch=samples_per_epoch,
        seed=seed, progress=progress,
    )
    linker, table = calibrate(linker, [(raw, labels, gt)], resolution=(1.0, PIXEL_NM, PIXEL_NM),
                              segments="predicted", seed=seed)
    save_linker(linker, folder)
    return linker, history, table


def run_tracker(labels: np.ndarray, raw: np.ndarray, method: str, value: float, *, linker=None,
                max_gap: int = 2, **division) -> Tracks:
    """One linker with its parameter: a threshold (overlap, learned) or a distance in pixels
    (laptrack, whose splitting uses the same distance). ``division`` holds the division
    options of :func:`neuroseg.linking.tracks.track` (laptrack: ``divisions`` only)."""
    res = (1.0, PIXEL_NM, PIXEL_NM)
    if method == "laptrack":
        return track(labels, method="laptrack", max_distance=value, max_gap=max_gap,
                     divisions=division.get("divisions", True))
    return track(labels, raw=raw if method == "learned" else None, method=method, linker=linker,
                 resolution=res, threshold=value, max_gap=max_gap, **division)


def division_options(method: str, *, distances: Sequence[float], min_frames: Sequence[int]) -> list[dict]:
    """The division settings a linker chooses from: none, or divisions found by overlap (a
    distance of 0) or within each distance, kept when both daughters last each of
    ``min_frames`` frames; laptrack: its splitting on or off."""
    if method == "laptrack":
        return [{"divisions": True}, {"divisions": False}]
    return [{"divisions": False}] + [
        {"divisions": True, "division_distance": float(d) if d else None,
         "min_daughter_frames": int(m)}
        for d in distances for m in min_frames
    ]


def score(seq: TimeLapse, result: Tracks, folder: Path) -> dict:
    """CTC measures of a result on a time-lapse (folders written under ``folder``)."""
    gt = ctc.write_ground_truth(folder / "GT", seq.markers, seq.lineage, seg=seq.seg)
    res = ctc.write_result(folder / "RES", result.labels, result.lineage)
    return tracking_scores(gt, res)


def choose_parameter(seq: TimeLapse, labels: np.ndarray, method: str, values: Sequence[float],
                     folder: Path, *, linker=None, max_gap: int = 2) -> tuple[float, pd.DataFrame]:
    """The value of ``values`` with the highest TRA on ``seq`` (the training part)."""
    rows = []
    for v in tqdm(values, desc=f"choosing {method}", leave=False):
        result = run_tracker(labels, seq.raw, method, v, linker=linker, max_gap=max_gap)
        rows.append({"linker": method, "value": float(v),
                     **score(seq, result, folder / f"{method}_{v:g}")})
    table = pd.DataFrame(rows)
    return float(table.loc[table.TRA.idxmax(), "value"]), table


def choose_divisions(seq: TimeLapse, labels: np.ndarray, method: str, value: float,
                     options: Sequence[dict], folder: Path, *, linker=None,
                     max_gap: int = 2) -> tuple[dict, pd.DataFrame]:
    """The division setting of ``options`` with the highest TRA on ``seq`` (the training
    part), the linker's parameter fixed at ``value``; ties go to the first."""
    rows = []
    for k, option in enumerate(tqdm(options, desc=f"divisions {method}", leave=False)):
        result = run_tracker(labels, seq.raw, method, value, linker=linker, max_gap=max_gap,
                             **option)
        rows.append({"linker": method, "option": k, **{f"division_{n}": v for n, v in option.items()},
                     **score(seq, result, folder / f"{method}_div{k}")})
    table = pd.DataFrame(rows)
    return dict(options[int(table.TRA.idxmax())]), table


def evaluate_linkers(parts: dict[str, TimeLapse], labels: dict[str, np.ndarray], chosen: dict,
                     folder: Path, *, divisions: dict | None = None, linker=None,
                     max_gap: int = 2) -> tuple[pd.DataFrame, dict]:
    """Every linker on every part: the results table and the results themselves."""
    rows, results = [], {}
    for name, value in chosen.items():
        for pname, seq in parts.items():
            result = run_tracker(labels[pname], seq.raw, name, value, linker=linker,
                                 max_gap=max_gap, **(divisions or {}).get(name, {}))
            s = score(seq, result, folder / name / pname)
            rows.append({"linker": name, "part": pname, **s})
            results[name, pname] = result
    table = pd.DataFrame(rows)
    return table[[*RESULT_COLUMNS, "BC", "divisions_false", "valid"]], results


# --------------------------------------------------------------------------------------------
# migration
# --------------------------------------------------------------------------------------------


def migration_tables(labels: np.ndarray, lineage: pd.DataFrame, **thresholds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy track table with each row's ``cell``, one row per cell) in µm and minutes."""
    table = mig.track_table(labels, lineage, pixel_size_um=PIXEL_NM / 1000.0,
                            frame_minutes=FRAME_MINUTES)
    cells = mig.migration(table, lineage, **thresholds)
    return table.assign(cell=table.track.map(mig.cell_of_track(lineage))), cells


def migration_summary(cells: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median and quartiles of each measure, per source (ours, the ground-truth markers)."""
    rows = []
    measures = {"mean_speed_um_min": "mean speed (µm/min)", "persistence": "persistence",
                "saltations_per_h": "saltations per hour", "net_um": "net displacement (µm)",
                "path_um": "path length (µm)"}
    for source, table in cells.items():
        for col, label in measures.items():
            q = table[col].quantile([0.25, 0.5, 0.75])
            rows.append({"source": source, "measure": label, "cells": int(table[col].notna().sum()),
                         "median": float(q[0.5]), "q25": float(q[0.25]), "q75": float(q[0.75])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def tracks_figure(table: pd.DataFrame, *, shape: tuple[int, int], cells: pd.DataFrame | None = None,
                  title: str = ""):
    """Each cell's path drawn as coordinates, coloured by step speed (no image behind); only
    the cells of ``cells`` (the migration table) when given."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    if cells is not None:
        table = table[table.cell.isin(cells.cell)]
    steps = mig.step_speeds(table)
    fig, ax = plt.subplots(figsize=(5.6, 5))
    segs, speeds = [], []
    for _, obs in table.sort_values(["cell", "frame"]).groupby("cell"):
        xy = obs[["x_um", "y_um"]].to_numpy()
        segs += [xy[k : k + 2] for k in range(len(xy) - 1)]
    speeds = steps.sort_values(["cell", "frame"]).speed_um_min.to_numpy()
    lc = LineCollection(segs, array=speeds, cmap="viridis", linewidths=1.6)
    ax.add_collection(lc)
    starts = table.sort_values("frame").groupby("cell").first()
    ax.scatter(starts.x_um, starts.y_um, s=10, c="k", label="first position")
    um = PIXEL_NM / 1000.0
    ax.set_xlim(0, shape[1] * um)
    ax.set_ylim(shape[0] * um, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(lc, ax=ax, label="step speed (µm/min)", shrink=0.8)
    ax.set_title(title or "tracks, coloured by speed")
    fig.tight_layout()
    return fig


def speed_figure(table: pd.DataFrame, cells: pd.DataFrame, *, n: int = 4, **thresholds):
    """Speed over time of the ``n`` cells with the most saltations; saltations marked."""
    import matplotlib.pyplot as plt

    steps = mig.step_speeds(table)
    picks = cells.sort_values(["saltations", "steps"], ascending=False).cell.head(n).tolist()
    fig, axes = plt.subplots(len(picks), 1, figsize=(7, 1.6 * len(picks) + 0.6), sharex=True,
                             squeeze=False)
    pause = thresholds.get("pause_speed", 0.1)
    move = thresholds.get("move_speed", 0.3)
    for ax, cell in zip(axes[:, 0], picks):
        s = steps[steps.cell == cell]
        ax.plot(s.time_min, s.speed_um_min, "-o", ms=2, lw=1, color="0.3")
        ev = mig.saltation_events(s.speed_um_min.to_numpy(), **thresholds)
        ax.plot(s.time_min.to_numpy()[ev], s.speed_um_min.to_numpy()[ev], "v", color="#D55E00",
                ms=7, label="saltation")
        ax.axhline(pause, ls=":", color="#0072B2", lw=1.2)
        ax.axhline(move, ls="--", color="#D55E00", lw=1.2)
        ax.set_ylabel(f"cell {cell}\nµm/min", fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (min)")
    fig.suptitle("speed over time: pause below the dotted line, move above the dashed one",
                 fontsize=9)
    fig.tight_layout()
    return fig


def distributions_figure(cells: dict[str, pd.DataFrame]):
    """Distributions of mean speed, persistence and saltation frequency, per source."""
    import matplotlib.pyplot as plt

    cols = [("mean_speed_um_min", "mean speed (µm/min)"), ("persistence", "persistence"),
            ("saltations_per_h", "saltations per hour")]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (col, label) in zip(axes, cols):
        data = [t[col].dropna().to_numpy() for t in cells.values()]
        ax.hist(data, bins=12, label=list(cells), histtype="step", lw=1.5)
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def metrics_figure(table: pd.DataFrame):
    """The CTC measures of each linker, whole sequence and later part."""
    import matplotlib.pyplot as plt

    measures = ["SEG", "DET", "TRA", "LNK", "CHOTA"]
    parts = list(dict.fromkeys(table.part))
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 3), squeeze=False,
                             sharey=True)
    for ax, p in zip(axes[0], parts):
        sub = table[table.part == p].set_index("linker")[measures]
        sub.T.plot.bar(ax=ax, rot=0, width=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_title(p)
        ax.legend(fontsize=8, loc="lower left")
    axes[0, 0].set_ylabel("score (1 = perfect)")
    fig.tight_layout()
    return fig
