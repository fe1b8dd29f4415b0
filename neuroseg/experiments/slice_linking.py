"""The slice-linking experiment of ``30_slice_linking`` ("Know Your Neighbour").

Volumes with dense 3D neuron IDs are segmented slice by slice and linked in z by every method of
:func:`neuroseg.linking.rules.link_slices`. Two experiments:

- **oracle**: the ground truth's own 2D segments (per-slice connected pieces of the true IDs),
  which isolates the quality of linking;
- **predicted**: the 2D segments of the fine-tuned EM boundary model (``em_boundary_unet`` of
  ``20_neuron_finetuning``).

Protocol (the split of ``00_data_preparation``): the learned linker's network is trained on
the FIB-25 training part (x < 125, z < 200); each method's threshold (and the learned
linker's pair classifier) is chosen on the FIB-25 validation part (x < 125, z >= 200), the
pair classifier fitted on training-part pairs; all scores are on the FIB-25 test part
(x >= 125) and the independent gala volume, at the native 10 nm and subsampled in z to 40 nm
(every 4th slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from neuroseg.data.catalogue import require
from neuroseg.data.em_slices import FIB25
from neuroseg.data.em_volumes import EMVolume
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.readers import read_cremi
from neuroseg.linking import learned
from neuroseg.linking.calibration import THRESHOLDS, pair_truth
from neuroseg.linking.graph import candidate_pairs, relabel_from_links
from neuroseg.linking.learned import AffinityLinker, calibrate, linker_from_model
from neuroseg.linking.rules import link_slices, relink
from neuroseg.measure.error_map import error_map
from neuroseg.measure.timing import measure
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.segment.volume_2d import segments_2d

__all__ = [
    "METHODS",
    "RULE_METHODS",
    "calibrate_linker",
    "evaluate",
    "linked_slices_figure",
    "method_thresholds",
    "score_distribution_figure",
    "segments_for",
    "train_linker",
]

METHODS = ("overlap", "hungarian", "graph", "learned", "multicut")
#: The methods whose threshold :func:`method_thresholds` chooses (the learned linker's is
#: calibrated with it, :func:`calibrate_linker`).
RULE_METHODS = tuple(m for m in METHODS if m != "learned")


def segments_for(vol: EMVolume, kind: str, model=None) -> np.ndarray:
    """2D segments of a volume: ``"oracle"`` (per-slice pieces of the true IDs) or
    ``"predicted"`` (the 2D boundary model's)."""
    if kind == "oracle":
        return connected_components_per_slice(vol.gt)
    if kind == "predicted":
        if model is None:
            raise ValueError("predicted segments need the 2D EM model")
        return segments_2d(model, vol.raw, resolution=vol.resolution)
    raise ValueError(f"segments must be 'oracle' or 'predicted'; got {kind!r}")


# --------------------------------------------------------------------------------------------
# training and calibration of the learned linker
# --------------------------------------------------------------------------------------------


def train_linker(
    em_model_folder,
    volumes: dict[str, EMVolume],
    *,
    folder,
    z_steps: Sequence[int],
    seed: int = 0,
    **options,
) -> tuple[AffinityLinker, pd.DataFrame]:
    """Train the z-affinity network from the 2D EM model on the FIB-25 training part."""
    net = linker_from_model(em_model_folder, seed=seed)
    train, val = volumes["train"], volumes["val"]
    return learned.train_linker(
        net, (train.raw, train.gt), (val.raw, val.gt), folder=folder, z_steps=z_steps,
        seed=seed, **options,
    )


def calibrate_linker(
    linker: AffinityLinker,
    volumes: dict[str, EMVolume],
    *,
    z_nms: Sequence[float],
    model=None,
    seed: int = 0,
) -> tuple[AffinityLinker, pd.DataFrame]:
    """Calibrate for every z spacing and kind of segments (oracle, and predicted if a
    ``model`` is given): pair classifier on the training part (all z offsets), threshold
    on the validation part. Returns the linker and the thresholds tried."""
    kinds = ["oracle"] + (["predicted"] if model is not None else [])
    tables = []
    for z_nm in z_nms:
        for kind in kinds:
            parts = {}
            for name in ("train", "val"):
                vol = volumes[name]
                step = int(round(z_nm / vol.resolution[0]))
                subs = [vol.subsampled(z_nm, offset=o) for o in range(step)]
                parts[name] = [(s.raw, segments_for(s, kind, model), s.gt) for s in subs if s.raw.shape[0] > 1]
            linker, table = calibrate(
                linker, parts["train"], threshold_volumes=parts["val"],
                resolution=(float(z_nm), *volumes["train"].resolution[1:]), segments=kind, seed=seed,
            )
            tables.append(table.assign(z_nm=float(z_nm), segments=kind))
    return linker, pd.concat(tables, ignore_index=True)


def method_thresholds(
    volumes: dict[str, EMVolume],
    *,
    z_nms: Sequence[float],
    model=None,
    thresholds: Sequence[float] = THRESHOLDS,
) -> pd.DataFrame:
    """Each rule's threshold (overlap, Hungarian, graph, multicut), chosen by CREMI on the
    validation part (all z offsets).

    Returns one row per (z_nm, segments, method, threshold) with the mean scores; the chosen
    threshold has ``chosen = True``.
    """
    kinds = ["oracle"] + (["predicted"] if model is not None else [])
    rows = []
    val = volumes["val"]
    for z_nm in z_nms:
        step = int(round(z_nm / val.resolution[0]))
        for kind in kinds:
            subs = [val.subsampled(z_nm, offset=o) for o in range(step)]
            prepared = [(segments_for(s, kind, model), s.gt) for s in subs if s.raw.shape[0] > 1]
            for method in RULE_METHODS:
                tables = [link_slices(seg, method=method, threshold=0.0).links for seg, _ in prepared]
                for t in thresholds:
                    scores = [
                        segmentation_scores(
                            gt, relink(seg, links, float(t), method=method).labels
                        )
                        for (seg, gt), links in zip(prepared, tables)
                    ]
                    rows.append({"z_nm": float(z_nm), "segments": kind, "method": method,
                                 "threshold": float(t), **pd.DataFrame(scores).mean().to_dict()})
    table = pd.DataFrame(rows)
    best = table.groupby(["z_nm", "segments", "method"])["cremi"].transform("min")
    first = table[table["cremi"] == best].groupby(["z_nm", "segments", "method"]).head(1).index
    table["chosen"] = table.index.isin(first)
    return table


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _threshold(chosen: pd.DataFrame, z_nm: float, kind: str, method: str, linker) -> float:
    if method == "learned":
        return linker.calibrated_for((z_nm, 1.0, 1.0), segments=kind).threshold
    row = chosen[(chosen["z_nm"] == z_nm) & (chosen["segments"] == kind) & (chosen["method"] == method)]
    return float(row["threshold"].iloc[0])


def evaluate(
    volumes: Sequence[EMVolume],
    *,
    z_nms: Sequence[float],
    linker: AffinityLinker,
    thresholds: pd.DataFrame,
    model=None,
    keep: Sequence[tuple[str, float, str]] = (),
) -> tuple[pd.DataFrame, dict]:
    """Link every test volume at every spacing with every method; score against the truth.

    Returns the table (columns ``volume, z_nm, segments, method, voi_split, voi_merge, arand,
    cremi, seconds, peak_mb``; ``seconds`` and ``peak_mb`` are the linking call alone, the
    learned linker's network included, measured once with :func:`neuroseg.measure.timing.measure`)
    and, for each ``(volume, z_nm, segments)`` in ``keep``, the inputs and results for
    figures: ``{key: {"vol", "segments", "results": {method: LinkResult}}}``.
    """
    chosen = thresholds[thresholds["chosen"]]
    kinds = ["oracle"] + (["predicted"] if model is not None else [])
    rows, kept = [], {}
    for vol in volumes:
        for z_nm in z_nms:
            sub = vol.subsampled(z_nm)
            for kind in kinds:
                seg = segments_for(sub, kind, model)
                results = {}
                for method in METHODS:
                    lk = linker.calibrated_for(sub.resolution, segments=kind) if method == "learned" else None
                    m = measure(
                        link_slices, seg, raw=sub.raw if method == "learned" else None,
                        method=method, threshold=_threshold(chosen, z_nm, kind, method, linker),
                        linker=lk, resolution=sub.resolution,
                    )
                    results[method] = m.result
                    rows.append({"volume": vol.name, "z_nm": float(z_nm), "segments": kind,
                                 "method": method,
                                 **segmentation_scores(sub.gt, m.result.labels),
                                 "seconds": m.seconds, "peak_mb": m.peak_mb})
                if (vol.name, float(z_nm), kind) in {(a, float(b), c) for a, b, c in keep}:
                    kept[(vol.name, float(z_nm), kind)] = {"vol": sub, "segments": seg, "results": results}
    cols = ["volume", "z_nm", "segments", "method", "voi_split", "voi_merge", "arand", "cremi",
            "seconds", "peak_mb"]
    return pd.DataFrame(rows)[cols], kept


def headline(table: pd.DataFrame) -> dict:
    """Learned against overlap (CREMI ratio) for every test volume, spacing and segments."""
    out = {}
    for (vol, z_nm, kind), g in table.groupby(["volume", "z_nm", "segments"]):
        c = g.set_index("method")["cremi"]
        key = f"{vol}_{z_nm:g}nm_{kind}"
        out[f"{key}_cremi_overlap"] = float(c["overlap"])
        out[f"{key}_cremi_learned"] = float(c["learned"])
        out[f"{key}_learned_over_overlap"] = float(c["learned"] / c["overlap"]) if c["overlap"] > 0 else float("nan")
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def linked_slices_figure(kept: dict, key, *, methods=("overlap", "learned"), n: int = 3):
    """A few slices: raw, the truth, and each method's 3D labels, coloured by 3D ID."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import colour_labels

    entry = kept[key]
    vol = entry["vol"]
    zs = np.linspace(0, vol.raw.shape[0] - 1, n + 2).round().astype(int)[1:-1]
    cols = ["raw", "truth", *methods]
    fig, axes = plt.subplots(n, len(cols), figsize=(2.6 * len(cols), 2.6 * n * vol.raw.shape[1] / vol.raw.shape[2]))
    axes = np.atleast_2d(axes)
    for r, z in enumerate(zs):
        for c, name in enumerate(cols):
            ax = axes[r, c]
            if name == "raw":
                ax.imshow(vol.raw[z], cmap="gray")
            elif name == "truth":
                ax.imshow(colour_labels(vol.gt[z]))
            else:
                ax.imshow(colour_labels(entry["results"][name].labels[z]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
        axes[r, 0].set_ylabel(f"z = {z}")
    fig.suptitle(f"{key[0]}, {key[1]:g} nm, {key[2]} 2D segments: slices coloured by 3D ID")
    fig.tight_layout()
    return fig


def error_map_figure(kept: dict, key, *, methods=("overlap", "learned"), n: int = 3):
    """Split (orange) and merge (blue) voxels of each method on a few slices."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    entry = kept[key]
    vol = entry["vol"]
    cmap = ListedColormap(["#ffffff", "#e66100", "#1f78b4", "#7b3294"])
    maps = {m: error_map(vol.gt, entry["results"][m].labels) for m in methods}
    zs = np.linspace(0, vol.raw.shape[0] - 1, n + 2).round().astype(int)[1:-1]
    fig, axes = plt.subplots(n, len(methods), figsize=(3 * len(methods), 3 * n * vol.raw.shape[1] / vol.raw.shape[2]))
    axes = np.atleast_2d(axes)
    for r, z in enumerate(zs):
        for c, m in enumerate(methods):
            ax = axes[r, c]
            ax.imshow(maps[m][z], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                frac = (maps[m] > 0).mean()
                ax.set_title(f"{m}: {frac:.1%} of voxels wrong")
        axes[r, 0].set_ylabel(f"z = {z}")
    fig.suptitle(f"{key[0]}, {key[1]:g} nm, {key[2]}: split (orange), merge (blue), both (purple)")
    fig.tight_layout()
    return fig


def link_truth_table(kept: dict, key) -> pd.DataFrame:
    """The learned link table of a kept result with the truth of each pair (``truth``)."""
    entry = kept[key]
    links = entry["results"]["learned"].links
    truth = pair_truth(entry["segments"], entry["vol"].gt, links)
    return links.assign(truth=truth)


def score_distribution_figure(tables: dict[str, pd.DataFrame], thresholds: dict[str, float]):
    """Histograms of the learned link score of true and false candidate pairs."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.2), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, (name, table) in zip(axes[0], tables.items()):
        for truth, colour, label in ((True, "#1b9e77", "same neuron"), (False, "#d95f02", "different")):
            ax.hist(table.loc[table["truth"] == truth, "score"], bins=bins, color=colour, alpha=0.6,
                    label=f"{label} ({int((table['truth'] == truth).sum())})")
        ax.axvline(thresholds[name], color="k", ls="--", lw=1, label="threshold")
        ax.set_yscale("log")
        ax.set_xlabel("learned link score")
        ax.set_title(name)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("candidate pairs")
    fig.tight_layout()
    return fig


def comparison_figure(table: pd.DataFrame):
    """CREMI score of every method, per test volume and spacing, oracle and predicted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    kinds = list(dict.fromkeys(table["segments"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.4), squeeze=False, sharey=False)
    for ax, kind in zip(axes[0], kinds):
        t = table[table["segments"] == kind].assign(
            case=lambda d: d["volume"] + ", " + d["z_nm"].map(lambda v: f"{v:g} nm"))
        sns.barplot(data=t, x="case", y="cremi", hue="method", hue_order=list(METHODS), ax=ax)
        ax.set_title(f"{kind} 2D segments")
        ax.set_xlabel("")
        ax.set_ylabel("CREMI score (lower is better)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def oracle_reference(volumes: dict[str, EMVolume], *, z_nm: float = 40.0) -> pd.DataFrame:
    """The whole FIB-25 cube (training, validation and test parts together) at ``z_nm``:
    its true 2D segments linked by overlap at Cellpose's default 0.25, and by a perfect
    linker (exactly the candidate pairs that join pieces of one true neuron), the best any
    method can do with these pairs. Nothing here is trained."""
    fib = read_cremi(require(FIB25) / "sample2.h5", labels="neuron_ids")
    crop_z = volumes["train"].raw.shape[0] + volumes["val"].raw.shape[0]
    crop_y = volumes["train"].raw.shape[1]
    gt = np.ascontiguousarray(fib.labels[:crop_z, :crop_y, : 2 * volumes["train"].raw.shape[2]])
    step = int(round(z_nm / 10.0))
    gt = gt[::step]
    seg = connected_components_per_slice(gt)
    rows = []
    res = link_slices(seg, method="overlap", threshold=0.25)
    rows.append({"linking": "overlap, threshold 0.25 (Cellpose default)",
                 **segmentation_scores(gt, res.labels)})
    links = candidate_pairs(seg)
    perfect = links.assign(linked=pair_truth(seg, gt, links))
    rows.append({"linking": "perfect (true candidate pairs only)",
                 **segmentation_scores(gt, relabel_from_links(seg, perfect))})
    return pd.DataFrame(rows).assign(volume=f"fib25 cube {gt.shape}", z_nm=float(z_nm))


def history_figure(history: pd.DataFrame):
    """Training and validation loss, and validation IoU of the 'does not continue' class."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(history["epoch"], history["train_loss"], label="train")
    if "val_loss" in history:
        axes[0].plot(history["epoch"], history["val_loss"], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("BCE + Dice loss")
    axes[0].legend()
    if "val_iou" in history:
        axes[1].plot(history["epoch"], history["val_iou"])
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation IoU ('does not continue')")
    fig.tight_layout()
    return fig
