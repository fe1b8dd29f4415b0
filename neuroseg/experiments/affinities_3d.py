"""The 3D baseline experiment of ``35_affinities_3d`` (WEBKNOSSOS-style affinities).

Same volumes, split and scores as ``30_slice_linking`` (see :mod:`neuroseg.experiments.slice_linking`):
a 3D U-Net predicting affinities is trained on the FIB-25 training part (x < 125, z < 200)
for each z spacing (native 10 nm, and 40 nm by taking every 4th slice, all four offsets used
for training); each post-processing's threshold is chosen by CREMI score on the validation
part (x < 125, z >= 200), and every post-processing and threshold is scored on the test
volumes (FIB-25 x >= 125, and gala). The post-processings are connected components, the
voxel-level mutex watershed and fragments + waterz (:func:`neuroseg.segment.affinities.agglomerate`);
the one stored is chosen by CREMI and time (the fastest within a tolerance of the best
CREMI). The chosen setting is stored in the model folder
(``meta["postprocess"]``), where :func:`neuroseg.segment_volume_3d` and the timing notebook
find it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from neuroseg.data.em_volumes import EMVolume
from neuroseg.measure.error_map import error_map
from neuroseg.measure.timing import measure
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.nets.folder import save_model
from neuroseg.segment.affinities import agglomerate, long_range_offsets
from neuroseg.segment.choose import pick
from neuroseg.segment.volume_3d import affinity_network, predict_affinities, train_affinities

__all__ = [
    "COLUMNS",
    "affinity_figure",
    "choose_postprocess",
    "comparison_figure",
    "error_map_figure",
    "evaluate",
    "headline",
    "history_figure",
    "model_folder",
    "offsets_for",
    "save_postprocess",
    "segments_figure",
    "setting_name",
    "train_model",
]

#: The columns of the result table, as in ``30_slice_linking``.
COLUMNS = ["volume", "z_nm", "segments", "method", "voi_split", "voi_merge", "arand", "cremi",
           "seconds", "peak_mb"]


def offsets_for(resolution: Sequence[float], *, long_range_nm: float | None) -> list[tuple[int, int, int]]:
    """The nearest offsets plus, with ``long_range_nm``, one long-range offset per axis of
    about that length (at least 2 voxels): :func:`neuroseg.segment.affinities.long_range_offsets`.

    Examples
    --------
    >>> offsets_for((40, 10, 10), long_range_nm=80)[3:]
    [(-2, 0, 0), (0, -8, 0), (0, 0, -8)]
    """
    return long_range_offsets(resolution, long_range_nm=long_range_nm)


def setting_name(method: str, threshold: float) -> str:
    """The ``method`` column of a post-processing and threshold, e.g. ``"cc@0.5"``."""
    return f"{method}@{threshold:g}"


def _parts(vol: EMVolume, z_nm: float) -> list[EMVolume]:
    step = int(round(z_nm / vol.resolution[0]))
    return [vol.subsampled(z_nm, offset=o) for o in range(step)]


def train_model(
    volumes: Mapping[str, EMVolume],
    *,
    z_nm: float,
    folder,
    long_range_nm: float | None = 80.0,
    crop: Sequence[int] = (32, 96, 96),
    tile: Sequence[int] = (32, 128, 128),
    depth: int = 3,
    base_features: int = 8,
    seed: int = 0,
    **options,
):
    """Train the affinity network for one z spacing on the FIB-25 training part.

    The training and validation parts are subsampled to ``z_nm`` at every offset (all
    slices are used). ``options`` go to :func:`neuroseg.segment.volume_3d.train_affinities`.
    Returns ``(model, history, seconds)``; ``seconds`` is the wall time of this call (close to
    zero when a finished run is found in ``folder``).
    """
    train, val = volumes["train"], volumes["val"]
    resolution = (float(z_nm), *train.resolution[1:])
    net = affinity_network(
        offsets=offsets_for(resolution, long_range_nm=long_range_nm), resolution=resolution,
        depth=depth, base_features=base_features, tile=tile, seed=seed,
    )
    start = time.perf_counter()
    model, history = train_affinities(
        net,
        [(p.raw, p.gt) for p in _parts(train, z_nm)],
        [(p.raw, p.gt) for p in _parts(val, z_nm)],
        folder=folder, crop=crop, seed=seed, **options,
    )
    return model, history, time.perf_counter() - start


def _scores(seg: np.ndarray, gt: np.ndarray) -> dict:
    return segmentation_scores(gt, seg)


def choose_postprocess(
    model,
    volumes: Mapping[str, EMVolume],
    *,
    z_nm: float,
    grid: Mapping[str, Sequence[float]],
    min_size: int = 0,
    tolerance: float = 0.0,
) -> pd.DataFrame:
    """Every post-processing and threshold of ``grid`` on the validation part (all z offsets).

    Returns one row per (method, threshold) with the mean scores and the post-processing's
    seconds per megavoxel (``s_per_mvox``, all parts together); ``chosen`` marks each
    method's best CREMI score and ``best`` the one chosen over all by CREMI and time: the
    fastest whose CREMI is within ``tolerance`` (a fraction) of the best
    (:func:`neuroseg.segment.choose.pick`; ``0``: the best CREMI, ties the first).
    """
    offsets = model.meta["offsets"]
    prepared = [(predict_affinities(model, p.raw), p) for p in _parts(volumes["val"], z_nm)]
    mvox = sum(p.raw.size for _, p in prepared) / 1e6
    rows = []
    for method, thresholds in grid.items():
        for t in thresholds:
            scores, seconds = [], 0.0
            for a, p in prepared:
                start = time.perf_counter()
                seg = agglomerate(a, method=method, threshold=float(t), offsets=offsets,
                                  min_size=min_size, resolution=p.resolution)
                seconds += time.perf_counter() - start
                scores.append(_scores(seg, p.gt))
            rows.append({"z_nm": float(z_nm), "method": method, "threshold": float(t),
                         "min_size": int(min_size), **pd.DataFrame(scores).mean().to_dict(),
                         "s_per_mvox": seconds / mvox})
    table = pd.DataFrame(rows)
    best = table.groupby("method")["cremi"].transform("min")
    table["chosen"] = table.index.isin(table[table["cremi"] == best].groupby("method").head(1).index)
    table["best"] = table.index == pick(table, tolerance=tolerance)
    return table


def save_postprocess(model, folder, choice: pd.DataFrame):
    """Store the ``best`` row of :func:`choose_postprocess` as the model's ``postprocess``."""
    row = choice[choice["best"]].iloc[0]
    post = {"method": str(row["method"]), "threshold": float(row["threshold"]),
            "min_size": int(row["min_size"])}
    model.meta = {**(model.meta or {}), "postprocess": post}
    save_model(model, folder, meta=model.meta)
    return post


def evaluate(
    models: Mapping[float, object],
    volumes: Sequence[EMVolume],
    *,
    grid: Mapping[str, Sequence[float]],
    min_size: int = 0,
    keep: Sequence[tuple[str, float]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Predict every test volume at every spacing and score every post-processing.

    Returns the result table (:data:`COLUMNS`; ``segments`` is ``"3d"``, ``method`` names
    the post-processing and threshold, ``seconds`` and ``peak_mb`` are the post-processing
    alone, as the linking alone is in ``30_slice_linking``), the inference table (one row
    per volume and spacing: voxels, seconds and peak memory of the tiled prediction) and,
    for each ``(volume, z_nm)`` in ``keep``, ``{"vol", "affs", "labels": {setting: labels}}``
    for figures.
    """
    rows, inference, kept = [], [], {}
    wanted = {(a, float(b)) for a, b in keep}
    for vol in volumes:
        for z_nm, model in models.items():
            sub = vol.subsampled(float(z_nm))
            m = measure(predict_affinities, model, sub.raw)
            affs = m.result
            inference.append({"volume": vol.name, "z_nm": float(z_nm), "megavoxels": sub.raw.size / 1e6,
                              "seconds": m.seconds, "peak_mb": m.peak_mb})
            labels = {}
            for method, thresholds in grid.items():
                for t in thresholds:
                    r = measure(agglomerate, affs, method=method, threshold=float(t),
                                offsets=model.meta["offsets"], min_size=min_size,
                                resolution=sub.resolution)
                    name = setting_name(method, float(t))
                    labels[name] = r.result
                    rows.append({"volume": vol.name, "z_nm": float(z_nm), "segments": "3d",
                                 "method": name, **_scores(r.result, sub.gt),
                                 "seconds": r.seconds, "peak_mb": r.peak_mb})
            if (vol.name, float(z_nm)) in wanted:
                kept[(vol.name, float(z_nm))] = {"vol": sub, "affs": affs, "labels": labels}
    return pd.DataFrame(rows)[COLUMNS], pd.DataFrame(inference), kept


def headline(table: pd.DataFrame, choices: pd.DataFrame) -> dict:
    """For every test volume and spacing: the CREMI score of the setting chosen on
    validation, and (for reference only) the best setting on the test volume itself."""
    out = {}
    best = choices[choices["best"]]
    for (vol, z_nm), g in table.groupby(["volume", "z_nm"]):
        row = best[best["z_nm"] == z_nm].iloc[0]
        name = setting_name(row["method"], row["threshold"])
        c = g.set_index("method")["cremi"]
        key = f"{vol}_{z_nm:g}nm"
        out[f"{key}_setting"] = name
        out[f"{key}_cremi"] = float(c[name])
        out[f"{key}_best_on_test_setting"] = str(c.idxmin())
        out[f"{key}_best_on_test_cremi"] = float(c.min())
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def _slices(n: int, count: int) -> list[int]:
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, count + 2)[1:-1]})


def affinity_figure(kept: Mapping, key, *, n: int = 3):
    """Raw slices beside their predicted nearest z, y, x affinities (channels 0-2, as RGB)
    and 1 - their mean (a boundary map)."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import normalise_for_display

    item = kept[key]
    vol, affs = item["vol"], item["affs"]
    zs = _slices(vol.raw.shape[0], n)
    fig, axes = plt.subplots(len(zs), 3, figsize=(9, 3 * len(zs)), squeeze=False)
    for row, z in zip(axes, zs):
        row[0].imshow(normalise_for_display(vol.raw[z]), cmap="gray")
        row[0].set_title(f"raw z={z}")
        row[1].imshow(np.clip(np.moveaxis(affs[:3, z], 0, -1), 0, 1))
        row[1].set_title("affinities (R: z, G: y, B: x)")
        row[2].imshow(1 - affs[:3, z].mean(0), cmap="magma", vmin=0, vmax=1)
        row[2].set_title("1 - mean affinity")
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(f"{key[0]} at {key[1]:g} nm z spacing (pixel 10 nm)")
    fig.tight_layout()
    return fig


def segments_figure(kept: Mapping, key, settings: Sequence[str], *, n: int = 3):
    """Raw with the true IDs and with the segments of each setting, on a few slices."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import overlay

    item = kept[key]
    vol = item["vol"]
    zs = _slices(vol.raw.shape[0], n)
    cols = 1 + len(settings)
    fig, axes = plt.subplots(len(zs), cols, figsize=(3 * cols, 3 * len(zs)), squeeze=False)
    for row, z in zip(axes, zs):
        overlay(row[0], vol.raw[z], vol.gt[z], title=f"truth z={z}")
        for ax, s in zip(row[1:], settings):
            overlay(ax, vol.raw[z], item["labels"][s][z], title=s)
    fig.tight_layout()
    return fig


def error_map_figure(kept: Mapping, key, settings: Sequence[str], *, n: int = 3):
    """Split (orange) and merge (blue) voxels of each setting, on a few slices."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from neuroseg.plots import normalise_for_display

    item = kept[key]
    vol = item["vol"]
    zs = _slices(vol.raw.shape[0], n)
    cmap = ListedColormap([(0, 0, 0, 0), (0.9, 0.6, 0.0, 0.8), (0.0, 0.45, 0.7, 0.8), (0.8, 0.4, 0.7, 0.8)])
    maps = {s: error_map(vol.gt, item["labels"][s]) for s in settings}
    fig, axes = plt.subplots(len(zs), len(settings), figsize=(3 * len(settings), 3 * len(zs)), squeeze=False)
    for row, z in zip(axes, zs):
        for ax, s in zip(row, settings):
            ax.imshow(normalise_for_display(vol.raw[z]), cmap="gray")
            ax.imshow(maps[s][z], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
            ax.set_title(f"{s} z={z}")
            ax.set_axis_off()
    fig.suptitle("errors: orange split, blue merge, purple both")
    fig.tight_layout()
    return fig


def model_folder(z_nm: float, profile: str | None = None):
    """``artifacts/<profile>/models/affinity_unet_<z>nm``."""
    from neuroseg.paths import models_dir

    return models_dir(profile) / f"affinity_unet_{z_nm:g}nm"


def history_figure(history: pd.DataFrame):
    """Training and validation loss per epoch, one panel per z spacing."""
    import matplotlib.pyplot as plt

    spacings = sorted(history["z_nm"].unique())
    fig, axes = plt.subplots(1, len(spacings), figsize=(4.5 * len(spacings), 3.4), squeeze=False)
    for ax, z in zip(axes[0], spacings):
        h = history[history["z_nm"] == z]
        ax.plot(h["epoch"], h["train_loss"], label="training")
        ax.plot(h["epoch"], h["val_loss"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("balanced BCE loss")
        ax.set_title(f"affinity U-Net, {z:g} nm z spacing")
        ax.legend()
    fig.tight_layout()
    return fig


def comparison_figure(table: pd.DataFrame, choices: pd.DataFrame):
    """CREMI score of every setting on every test volume and spacing; the settings chosen on
    validation are marked with a star."""
    import matplotlib.pyplot as plt

    groups = list(table.groupby(["volume", "z_nm"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False, sharey=True)
    for ax, ((vol, z), g) in zip(axes[0], groups):
        chosen = choices[(choices["z_nm"] == z) & choices["chosen"]]
        picked = {setting_name(m, t) for m, t in zip(chosen["method"], chosen["threshold"])}
        palette = {"cc": "tab:blue", "mws": "tab:orange", "waterz": "tab:green"}
        colours = [palette.get(s.split("@")[0], "tab:grey") for s in g["method"]]
        ax.bar(range(len(g)), g["cremi"], color=colours)
        for i, (s, c) in enumerate(zip(g["method"], g["cremi"])):
            if s in picked:
                ax.text(i, c, "*", ha="center", va="bottom", fontsize=14)
        ax.set_xticks(range(len(g)), g["method"], rotation=60, ha="right")
        ax.set_title(f"{vol}, {z:g} nm")
        ax.set_ylabel("CREMI score (lower is better)")
    fig.suptitle("3D affinities: post-processing and threshold (* chosen on validation)")
    fig.tight_layout()
    return fig
