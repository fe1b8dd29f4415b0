"""The figures of ``20_neuron_finetuning``: the soma split, test examples, false positives,
EM test slices and per-slice scores (the experiment is :mod:`neuroseg.experiments.neuron_finetuning`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from neuroseg.data.readers import Sample
from neuroseg.experiments.neuron_finetuning import Task
from neuroseg.segment import instances

__all__ = ["em_examples_figure", "em_slice_figure", "false_positive_figure", "soma_examples_figure",
           "split_figure"]



def split_figure(task: Task):
    """The soma field with the train / validation / test tiles outlined."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from neuroseg.plots import OKABE_ITO, normalise_for_display

    size = [max(s.meta["y0"] + s.image.shape[0] for s in task.train + task.val + task.test),
            max(s.meta["x0"] + s.image.shape[1] for s in task.train + task.val + task.test)]
    canvas = np.zeros(size, np.float32)
    outline = np.zeros(size, bool)
    for s in task.train + task.val + task.test:
        sl = (slice(s.meta["y0"], s.meta["y0"] + s.image.shape[0]),
              slice(s.meta["x0"], s.meta["x0"] + s.image.shape[1]))
        canvas[sl] = s.image
        outline[sl] = instances.boundary_targets(s.labels) > 0
        outline[sl] &= s.labels > 0
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.imshow(normalise_for_display(canvas), cmap="gray")
    ax.imshow(np.ma.masked_where(~outline, outline), cmap="autumn", alpha=0.8, interpolation="none")
    for colour, (part, samples) in zip(OKABE_ITO, (("train", task.train), ("val", task.val), ("test", task.test))):
        for k, s in enumerate(samples):
            h, w = s.image.shape
            ax.add_patch(Rectangle((s.meta["x0"] - 0.5, s.meta["y0"] - 0.5), w, h, fill=False,
                                   edgecolor=colour, linewidth=2, label=part if k == 0 else None))
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"neurofinder field ({task.meta.get('image')} image), labelled somata in red")
    ax.axis("off")
    fig.tight_layout()
    return fig


def soma_examples_figure(samples: Sequence[Sample], labels: Sequence[np.ndarray],
                         errors: pd.DataFrame | None = None, *, pixel_size_um: float | None = None):
    """Test tiles: the labelled somata (top) and the predicted ones (bottom). With ``errors``
    (:func:`neuroseg.measure.contrast.soma_error_table`) each prediction is filled by what it
    is, matched (bluish green) or false (orange), and each missed soma outlined in vermillion;
    with ``pixel_size_um`` every tile gets a scale bar."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from neuroseg.plots import OKABE_ITO, normalise_for_display, overlay, scale_bar

    colours = {"tp": OKABE_ITO[2], "fp": OKABE_ITO[0], "fn": OKABE_ITO[5]}
    fig, axes = plt.subplots(2, len(samples), figsize=(3 * len(samples), 6.3), squeeze=False)
    for col, (s, pred) in enumerate(zip(samples, labels, strict=True)):
        overlay(axes[0, col], s.image, s.labels, title=f"tile {s.id}: labelled ({int(len(np.unique(s.labels)) - 1)})")
        ax = axes[1, col]
        if errors is None:
            overlay(ax, s.image, pred, title=f"predicted ({int(len(np.unique(pred)) - 1)})")
        else:
            mine = errors[errors["tile"].astype(str) == str(s.id)]
            ax.imshow(normalise_for_display(s.image), cmap="gray")
            counts = {}
            for kind in ("tp", "fp", "fn"):
                ids = mine.loc[mine["kind"] == kind, "id"].to_numpy()
                counts[kind] = len(ids)
                mask = np.isin(s.labels if kind == "fn" else pred, ids)
                if kind == "fn":
                    ax.contour(mask, levels=[0.5], colors=[colours[kind]], linewidths=1.2)
                else:
                    ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([colours[kind]]),
                              alpha=0.55, interpolation="none")
            ax.set_title(f"predicted: {counts['tp']} matched, {counts['fp']} false, "
                         f"{counts['fn']} missed", fontsize=8)
            ax.axis("off")
        if pixel_size_um:
            for a in axes[:, col]:
                scale_bar(a, pixel_size_um, unit="µm")
    if errors is not None:
        fig.legend(handles=[Patch(color=colours["tp"], label="matched (IoU > 0.5)"),
                            Patch(color=colours["fp"], label="false (unmatched prediction)"),
                            Patch(facecolor="none", edgecolor=colours["fn"], label="missed (unmatched soma)")],
                   loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05 if errors is not None else 0, 1, 1))
    return fig


def false_positive_figure(samples: Sequence[Sample], labels: Sequence[np.ndarray], errors: pd.DataFrame, *, n: int = 8, image: str = "mean", half: int = 12):
    """Crops around unmatched predictions (top row: the summary image, bottom: correlation)
    and a contrast histogram of matched, unmatched and missed somata."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import OKABE_ITO

    fps = errors[errors.kind == "fp"].sort_values("contrast", ascending=False).head(n)
    by_tile = {s.id: (s, p) for s, p in zip(samples, labels, strict=True)}
    cols = max(len(fps), 1)
    fig = plt.figure(figsize=(1.6 * cols + 4.5, 3.6))
    grid = fig.add_gridspec(2, cols + 3)
    for k, rec in enumerate(fps.to_dict("records")):
        s, pred = by_tile[rec["tile"]]
        obj = pred == rec["id"]
        cy, cx = (int(v) for v in np.argwhere(obj).mean(axis=0).round())
        sl = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
        for r, name in enumerate((image, "corr")):
            ax = fig.add_subplot(grid[r, k])
            ax.imshow(s.masks.get(name, s.image)[sl], cmap="gray")
            ax.contour(obj[sl], levels=[0.5], colors=["#E69F00"], linewidths=0.8)
            ax.contour(s.labels[sl] > 0, levels=[0.5], colors=["#0072B2"], linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(name)
        fig.axes[-2].set_title(f"c={rec['contrast']:.2f}", fontsize=8)
    ax = fig.add_subplot(grid[:, cols:])
    for colour, kind in zip(OKABE_ITO, ("tp", "fp", "fn")):
        values = errors.loc[errors.kind == kind, "contrast"].dropna()
        if len(values):
            ax.hist(values, bins=15, alpha=0.5, color=colour, label=f"{kind} (n={len(values)})")
    ax.set_xlabel(f"contrast in the {image} image (inside / ring)")
    ax.legend(fontsize=8)
    fig.suptitle("unmatched predictions (orange) beside labelled somata (blue)", fontsize=9)
    fig.tight_layout()
    return fig


def em_examples_figure(samples: Sequence[Sample], probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, n: int = 3):
    """Test slices: raw, true boundaries, predicted boundary map, segments."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import overlay

    picks = np.linspace(0, len(samples) - 1, n).round().astype(int)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n * samples[0].image.shape[0] / samples[0].image.shape[1] / 1.6 + 0.5), squeeze=False)
    for row, i in enumerate(picks):
        s = samples[i]
        axes[row, 0].imshow(s.image, cmap="gray")
        axes[row, 0].set_title(s.id, fontsize=8)
        axes[row, 1].imshow(instances.boundary_targets(s.labels), cmap="gray_r")
        axes[row, 1].set_title("true boundaries", fontsize=8)
        axes[row, 2].imshow(probs[i][0], cmap="gray_r", vmin=0, vmax=1)
        axes[row, 2].set_title("predicted boundary probability", fontsize=8)
        overlay(axes[row, 3], s.image, labels[i], title=f"segments ({int(labels[i].max())})")
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def em_slice_figure(scores: pd.DataFrame):
    """Per-slice VOI split and merge and adapted Rand error along z (test part)."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import OKABE_ITO

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    axes[0].plot(scores.z, scores.voi_split, color=OKABE_ITO[0], label="VOI split")
    axes[0].plot(scores.z, scores.voi_merge, color=OKABE_ITO[1], label="VOI merge")
    axes[0].set_ylabel("bits")
    axes[1].plot(scores.z, scores.arand, color=OKABE_ITO[2], label="adapted Rand error")
    for ax in axes:
        ax.set_xlabel("z (slice)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
