"""The nucleus task (SomaNet's pretraining stage) on DSB 2018: data, training set-up, evaluation.

Used by ``notebooks/10_nucleus_pretraining.ipynb``. The network predicts two maps per pixel,
foreground and contour (touching nuclei are separated by their contours), and
:func:`neuroseg.segment.instances.labels_from_fg_contour` turns them into labels by seeded watershed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.images import normalize, to_grey
from neuroseg.data.readers import Sample, dsb_modality, list_dsb, read_dsb
from neuroseg.experiments.papers import SOMANET_PAPER
from neuroseg.measure import matching, overlap
from neuroseg.measure.matching import matching_dataset
from neuroseg.segment import instances
from neuroseg.segment.tuning import tune_fg_contour

DATASET = "dsb2018_stage1_train"

"""SomaNet's reported numbers (its best model, on its own soma images: a different dataset)."""


def load_part(
    part: str,
    *,
    subset: str | Sequence[str] = "fluorescence",
    max_images: int | None = None,
    profile: str | None = None,
    ids: Sequence[str] | None = None,
) -> list[Sample]:
    """The DSB images of one split part (``train``, ``val``, ``test``) and modality subset.

    ``subset`` is a modality (``fluorescence``, ``brightfield``, ``colour``), a list of them,
    or ``"all"``. Images come back with the grey, percentile-normalised image in ``image``
    (float32) and the instance labels in ``labels``. ``ids`` (image IDs, e.g. the validation
    images recorded beside a shipped model) replaces the split's part.
    """
    root = require(DATASET)
    if ids is None:
        split = splits.load_split(DATASET, profile=profile)
        modality = split["parts"].get("modality") or {e["id"]: dsb_modality(e) for e in list_dsb(root)}
        chosen = split["parts"][part]
    else:
        modality = {e["id"]: dsb_modality(e) for e in list_dsb(root)}
        unknown = sorted(set(ids) - set(modality))
        if unknown:
            raise ValueError(f"{len(unknown)} image IDs are not in {DATASET}, e.g. {unknown[0]!r}")
        chosen = list(ids)
    wanted = None if subset == "all" else {subset} if isinstance(subset, str) else set(subset)
    ids = [i for i in chosen if wanted is None or modality[i] in wanted]
    if max_images is not None:
        ids = ids[:max_images]
    if not ids:
        raise ValueError(f"no {DATASET} images in part {part!r} for subset {subset!r}")
    out = []
    for image_id in tqdm(ids, desc=f"loading {part}", leave=False):
        s = read_dsb(root, image_id)
        image = normalize(to_grey(s.image))
        if modality[image_id] == "brightfield":  # dark nuclei on a bright background
            image = 1.0 - image
        out.append(Sample(id=image_id, image=image, labels=s.labels, meta={"modality": modality[image_id]}))
    return out


def targets(labels: np.ndarray) -> np.ndarray:
    """Training target (2, Y, X): foreground and contour."""
    return instances.fg_contour_targets(labels)


def predict_probabilities(model, samples: Sequence[Sample], *, tile: int = 256) -> list[np.ndarray]:
    """Foreground/contour probabilities (2, Y, X) for each sample (tiled)."""
    from neuroseg.nets.predict import predict

    return [
        predict(model, s.image[None], tile=(tile, tile), overlap=32)
        for s in tqdm(samples, desc="predicting", leave=False)
    ]


def evaluate(
    samples: Sequence[Sample], predictions: Sequence[np.ndarray], *, prefix: str = "test_"
) -> tuple[pd.DataFrame, dict]:
    """Per-image scores and the headline summary.

    Per image: AP at IoU 0.5 in the DSB sense (tp/(tp+fp+fn), a hit is IoU > 0.5), the DSB
    score (mean of that over IoU 0.50:0.05:0.95), precision, recall, F1, pixel IoU of the
    foreground. Summary: AP50, DSB score and pixel IoU averaged over images; precision and
    recall pooled over all objects of all images (the SomaNet-style object counts), plus
    SomaNet's "accuracy" tp/(tp+fp+fn) pooled the same way.
    """
    rows = []
    for s, pred in zip(samples, predictions):
        m = matching.matching(s.labels, pred, threshold=0.5)
        rows.append(
            {
                "id": s.id,
                "modality": s.meta.get("modality"),
                "n_true": m.n_true,
                "n_pred": m.n_pred,
                "tp": m.tp,
                "fp": m.fp,
                "fn": m.fn,
                "ap50": m.accuracy,
                "precision": m.precision,
                "recall": m.recall,
                "f1": m.f1,
                "dsb_score": matching.dsb_score(s.labels, pred),
                "pixel_iou": overlap.pixel_iou(s.labels > 0, pred > 0),
            }
        )
    table = pd.DataFrame(rows)
    pooled = matching_dataset(
        [s.labels for s in samples], list(predictions), threshold=0.5, by_image=False
    )
    summary = {
        f"{prefix}ap50": float(table.ap50.mean()),
        f"{prefix}dsb_score": float(table.dsb_score.mean()),
        f"{prefix}pixel_iou": float(table.pixel_iou.mean()),
        f"{prefix}precision": pooled.precision,
        f"{prefix}recall": pooled.recall,
        f"{prefix}f1": pooled.f1,
        f"{prefix}accuracy": pooled.accuracy,
        f"n_{prefix.rstrip('_')}_images": len(table),
        f"n_{prefix.rstrip('_')}_nuclei": int(table.n_true.sum()),
    }
    return table, summary


def somanet_comparison(summary: dict, *, val_iou: float) -> pd.DataFrame:
    """Our numbers beside SomaNet's (labelled: different data)."""
    return pd.DataFrame(
        [
            {"metric": "validation pixel IoU", "neuroseg (DSB 2018 nuclei)": val_iou,
             "SomaNet paper (its soma images)": SOMANET_PAPER["val_iou"]},
            {"metric": "object precision", "neuroseg (DSB 2018 nuclei)": summary["test_precision"],
             "SomaNet paper (its soma images)": SOMANET_PAPER["precision"]},
            {"metric": "object accuracy tp/(tp+fp+fn)",
             "neuroseg (DSB 2018 nuclei)": summary["test_accuracy"],
             "SomaNet paper (its soma images)": SOMANET_PAPER["accuracy"]},
        ]
    )


def loss_curves_figure(history: pd.DataFrame):
    """Training and validation loss, and validation IoU, per epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(history.epoch, history.train_loss, label="train")
    if history.val_loss.notna().any():
        axes[0].plot(history.epoch, history.val_loss, label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (BCE)")
    axes[0].legend()
    axes[1].plot(history.epoch, history.train_iou, label="train")
    if history.val_iou.notna().any():
        axes[1].plot(history.epoch, history.val_iou, label="validation")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("foreground pixel IoU")
    axes[1].legend()
    fig.tight_layout()
    return fig


def examples_figure(samples, predictions, table: pd.DataFrame, *, n: int = 3):
    """Raw with true and predicted outlines for the best and worst test images (by AP50)."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import overlay

    order = table.sort_values("ap50").index.tolist()
    picks = [("worst", i) for i in order[:n]] + [("best", i) for i in order[::-1][:n]]
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.4), squeeze=False)
    for col, (kind, i) in enumerate(picks):
        s = samples[i]
        overlay(axes[0, col], s.image, s.labels, title=f"{kind}: truth ({s.id[:6]})")
        overlay(axes[1, col], s.image, predictions[i], title=f"pred AP50={table.ap50[i]:.2f}")
    fig.tight_layout()
    return fig


def segment_probabilities(probabilities: Sequence[np.ndarray], postprocess: dict) -> list[np.ndarray]:
    """Instance labels from each (2, Y, X) probability map with the given watershed options."""
    return [instances.labels_from_fg_contour(p[0], p[1], **postprocess) for p in probabilities]


def finalise_model(folder, val_samples: Sequence[Sample], *, tile: int = 256):
    """Tune the post-processing on the validation images and store it in the model folder.

    Returns (model, postprocess options, threshold grid, validation probabilities). The
    model folder then holds everything :func:`neuroseg.segment_2d` needs.
    """
    from neuroseg.nets.folder import load_model, save_model

    model = load_model(folder)
    probabilities = predict_probabilities(model, val_samples, tile=tile)
    post, grid = tune_fg_contour(probabilities, val_samples)
    save_model(model, folder, meta={**model.meta, "postprocess": post})
    return load_model(folder), post, grid, probabilities


def threshold_grid_figure(grid: pd.DataFrame):
    """Validation AP50 over the watershed thresholds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = grid.pivot(index="fg_threshold", columns="seed_threshold", values="val_ap50")
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.heatmap(table, annot=True, fmt=".3f", cmap="viridis", ax=ax, cbar_kws={"label": "val AP50"})
    ax.set_xlabel("seed threshold (fg - contour)")
    ax.set_ylabel("foreground threshold")
    fig.tight_layout()
    return fig
