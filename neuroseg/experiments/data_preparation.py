"""Data preparation: validate every dataset, summarise it, and make the splits.

Called by ``notebooks/00_data_preparation.ipynb``. The split of each dataset is decided here,
once, and every later step reads it with :func:`neuroseg.data.splits.load_split`:

- DSB 2018: images split at random (seeded), stratified by modality (fluorescence-like,
  brightfield, colour), 70 / 15 / 15 %.
- FIB-25 (neuroproof sample 2): a spatial split in x: x < 125 is for training (its last 50
  z-slices for validation), x >= 125 is the test part. Nothing of the test part is trained on.
- gala FIB volume: test only (an independent volume).
- ISBI 2012 and the VNC ssTEM stack: contiguous z-ranges (neighbouring sections correlate,
  so a random slice split would leak).
- neurofinder: the field is cut into 4 x 4 tiles of 128 px, split at random (seeded).
- AxonDeepSeg SEM and TEM: split by subject (animal), so no animal is in two parts.
- CTC GOWT1: the four fully annotated frames (21, 31, 33, 39) split by time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.readers import (
    dsb_modality,
    list_axondeepseg,
    list_dsb,
    read_axondeepseg,
    read_cremi,
    read_ctc_frames,
    read_dsb,
    read_neurofinder,
)


def _label_stats(labels: np.ndarray, *, instances: bool = True) -> dict:
    values, counts = np.unique(labels, return_counts=True)
    fg = values != 0
    out = {"background_fraction": float(counts[~fg].sum() / labels.size) if (~fg).any() else 0.0}
    if instances:
        out["objects"] = int(fg.sum())
        out["median_object_px"] = float(np.median(counts[fg])) if fg.any() else 0.0
    else:
        out["classes"] = int(fg.sum())
    return out


def summarise_volumes() -> list[dict]:
    """One row per HDF5 volume dataset (raw shape, resolution, label statistics)."""
    rows = []
    specs = [
        ("fib25_neuroproof_training_sample2", "sample2.h5", "neuron_ids", True),
        ("fib_gala_example", "train.h5", "neuron_ids", True),
        ("isbi2012_em_membranes", "train.h5", "membrane_mask", False),
        ("sstem_drosophila_vnc_gerhard2013", "stack1.h5", "membranes", False),
    ]
    for name, fname, key, inst in specs:
        vol = read_cremi(require(name) / fname, labels=key)
        row = {
            "dataset": name,
            "modality": "EM volume",
            "items": 1,
            "shape": "x".join(map(str, vol.shape)),
            "resolution": "x".join(f"{r:g}" for r in vol.resolution) + " nm"
            if vol.resolution
            else "unknown",
            "labels": key,
        }
        row.update(_label_stats(vol.labels, instances=inst))
        rows.append(row)
    return rows


def summarise_dsb(*, max_images: int | None = None) -> tuple[dict, pd.DataFrame]:
    """Summary row for DSB 2018 and a per-image table (reads the images; shows progress)."""
    root = require("dsb2018_stage1_train")
    entries = list_dsb(root)
    if max_images is not None:
        entries = entries[:max_images]
    per_image = []
    for entry in tqdm(entries, desc="DSB 2018 images", leave=False):
        sample = read_dsb(root, entry["id"])
        stats = _label_stats(sample.labels)
        per_image.append(
            {
                "id": entry["id"],
                "modality": dsb_modality(entry),
                "height": sample.labels.shape[0],
                "width": sample.labels.shape[1],
                "channels": 1 if sample.image.ndim == 2 else sample.image.shape[-1],
                **stats,
            }
        )
    table = pd.DataFrame(per_image)
    row = {
        "dataset": "dsb2018_stage1_train",
        "modality": "2D nuclei (mixed)",
        "items": len(table),
        "shape": f"{table.height.min()}-{table.height.max()} x {table.width.min()}-{table.width.max()}",
        "resolution": "unknown (varies)",
        "labels": "instances",
        "objects": int(table.objects.sum()),
        "median_object_px": float(table.median_object_px.median()),
        "background_fraction": float(table.background_fraction.mean()),
    }
    return row, table


def summarise_axondeepseg() -> list[dict]:
    rows = []
    for name in ("axondeepseg_sem_rat_spinalcord", "axondeepseg_tem_mouse_corpuscallosum_srf"):
        root = require(name)
        entries = list_axondeepseg(root)
        shapes, fracs, px = [], [], []
        for e in entries:
            s = read_axondeepseg(root, e["id"])
            shapes.append(s.image.shape)
            fracs.append(float((s.labels == 0).mean()))
            px.append(s.pixel_size)
        rows.append(
            {
                "dataset": name,
                "modality": "SEM" if "sem" in name else "TEM",
                "items": len(entries),
                "shape": f"{min(s[0] for s in shapes)}-{max(s[0] for s in shapes)} x "
                f"{min(s[1] for s in shapes)}-{max(s[1] for s in shapes)}",
                "resolution": f"{min(px) * 1000:g}-{max(px) * 1000:g} nm/px",
                "labels": "classes (myelin, axon" + (", uaxon)" if "tem" in name else ")"),
                "classes": 3 if "tem" in name else 2,
                "background_fraction": float(np.mean(fracs)),
            }
        )
    return rows


def summarise_neurofinder() -> dict:
    sample = read_neurofinder(require("neurofinder_2p_subset") / "neurofinder_subset.h5")
    row = {
        "dataset": "neurofinder_2p_subset",
        "modality": "two-photon (summary images)",
        "items": 1,
        "shape": "x".join(map(str, sample.image.shape)),
        "resolution": "unknown (about 0.87 um/px if neurofinder 00.xx)",
        "labels": "soma outlines (not exhaustive)",
    }
    row.update(_label_stats(sample.labels))
    return row


def summarise_ctc() -> dict:
    root = require("ctc_fluo_n2dh_gowt1_01")
    frames, seg = read_ctc_frames(root / "01_GT" / "SEG", kind="seg")
    raw_frames = sorted((root / "01").glob("t*.tif"))
    tracks = np.loadtxt(root / "01_GT" / "TRA" / "man_track.txt", dtype=int, ndmin=2)
    return {
        "dataset": "ctc_fluo_n2dh_gowt1_01",
        "modality": "confocal time-lapse",
        "items": len(raw_frames),
        "shape": f"{len(raw_frames)}x" + "x".join(map(str, seg.shape[1:])),
        "resolution": "240 nm/px, 5 min/frame",
        "labels": f"{len(tracks)} tracks; SEG in {len(frames)} frames",
        "objects": int(sum(len(np.unique(s)) - 1 for s in seg)),
        "background_fraction": float((seg == 0).mean()),
    }


def summarise_all(*, max_dsb_images: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and summarise every dataset: (one row per dataset, DSB per-image table)."""
    dsb_row, dsb_table = summarise_dsb(max_images=max_dsb_images)
    rows = summarise_volumes() + [dsb_row] + summarise_axondeepseg()
    rows += [summarise_neurofinder(), summarise_ctc()]
    return pd.DataFrame(rows), dsb_table


# --------------------------------------------------------------------------- splits

FIB25_SPLIT_X = 125
"""FIB-25: x < 125 is the training part, x >= 125 the test part."""


def make_splits(*, seed: int, dsb_table: pd.DataFrame | None = None) -> dict[str, dict]:
    """Decide every dataset's split (see the module docstring); return the split records."""
    out = {}
    root = require("dsb2018_stage1_train")
    entries = list_dsb(root)
    ids = [e["id"] for e in entries]
    strata = [dsb_modality(e) for e in entries]
    out["dsb2018_stage1_train"] = splits.make_split(
        "dsb2018_stage1_train",
        {**splits.split_ids(ids, seed=seed, strata=strata), "modality": dict(zip(ids, strata))},
        seed=seed,
        method="random by image id, stratified by modality, 70/15/15",
    )
    x = FIB25_SPLIT_X
    out["fib25_neuroproof_training_sample2"] = splits.make_split(
        "fib25_neuroproof_training_sample2",
        {
            "train": [{"z": [0, 200], "y": None, "x": [0, x]}],
            "val": [{"z": [200, 250], "y": None, "x": [0, x]}],
            "test": [{"z": None, "y": None, "x": [x, 250]}],
        },
        seed=seed,
        method=f"spatial: train x<{x} (z<200), val x<{x} (z>=200), test x>={x}",
    )
    out["fib_gala_example"] = splits.make_split(
        "fib_gala_example",
        {"train": [], "val": [], "test": [{"z": None, "y": None, "x": None}]},
        seed=seed,
        method="independent test volume",
    )
    for name, (n_train, n_val, n_z) in {
        "isbi2012_em_membranes": (20, 5, 30),
        "sstem_drosophila_vnc_gerhard2013": (14, 3, 20),
    }.items():
        out[name] = splits.make_split(
            name,
            {
                "train": [{"z": [0, n_train], "y": None, "x": None}],
                "val": [{"z": [n_train, n_train + n_val], "y": None, "x": None}],
                "test": [{"z": [n_train + n_val, n_z], "y": None, "x": None}],
            },
            seed=seed,
            method="contiguous z-ranges",
        )
    tiles = [f"{ty}_{tx}" for ty in range(4) for tx in range(4)]
    parts = splits.split_ids(tiles, fractions=(0.625, 0.125, 0.25), seed=seed)
    out["neurofinder_2p_subset"] = splits.make_split(
        "neurofinder_2p_subset",
        {
            p: [{"tile": t, "y": [int(t[0]) * 128, int(t[0]) * 128 + 128],
                 "x": [int(t[2]) * 128, int(t[2]) * 128 + 128]} for t in parts[p]]
            for p in splits.PARTS
        },
        seed=seed,
        method="4x4 tiles of 128 px, random (10/2/4)",
    )
    for name, fractions in {
        "axondeepseg_sem_rat_spinalcord": (0.6, 0.15, 0.25),
        "axondeepseg_tem_mouse_corpuscallosum_srf": (0.6, 0.15, 0.25),
    }.items():
        entries = list_axondeepseg(require(name))
        subjects = sorted({e["id"].split("_")[0] for e in entries})
        by_subject = splits.split_ids(subjects, fractions=fractions, seed=seed)
        out[name] = splits.make_split(
            name,
            {
                p: sorted(e["id"] for e in entries if e["id"].split("_")[0] in by_subject[p])
                for p in splits.PARTS
            },
            seed=seed,
            method="by subject (animal), random",
        )
    out["ctc_fluo_n2dh_gowt1_01"] = splits.make_split(
        "ctc_fluo_n2dh_gowt1_01",
        {"train": [21], "val": [31], "test": [33, 39]},
        seed=seed,
        method="fully annotated SEG frames, by time",
    )
    return out


def save_splits(records: dict[str, dict], *, profile: str | None = None) -> list:
    return [splits.save_split(r, profile=profile) for r in records.values()]


def split_table(records: dict[str, dict]) -> pd.DataFrame:
    """How many items (or regions) each part of each split holds."""
    rows = []
    for name, rec in records.items():
        rows.append(
            {"dataset": name, "method": rec["method"],
             **{p: len(rec["parts"][p]) for p in splits.PARTS}}
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def overview_images(*, dsb_ids: Iterable[str] | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, raw 2D image, labels) for one example of every dataset, for the overview figure."""
    out = []
    fib = read_cremi(require("fib25_neuroproof_training_sample2") / "sample2.h5")
    out.append(("FIB-25 z=125 (neuron IDs)", fib.raw[125], fib.labels[125]))
    gala = read_cremi(require("fib_gala_example") / "train.h5")
    out.append(("gala FIB z=25 (neuron IDs)", gala.raw[25], gala.labels[25]))
    isbi = read_cremi(require("isbi2012_em_membranes") / "train.h5", labels="membrane_mask")
    out.append(("ISBI 2012 z=0 (membranes)", isbi.raw[0], (isbi.labels[0] == 0).astype(np.uint8)))
    vnc = read_cremi(
        require("sstem_drosophila_vnc_gerhard2013") / "stack1.h5", labels="membranes"
    )
    out.append(("VNC ssTEM z=0 (membranes)", vnc.raw[0, :512, :512], vnc.labels[0, :512, :512]))
    root = require("dsb2018_stage1_train")
    ids = list(dsb_ids) if dsb_ids else [list_dsb(root)[0]["id"]]
    for image_id in ids:
        s = read_dsb(root, image_id)
        out.append((f"DSB 2018 {image_id[:8]}", s.image, s.labels))
    for name, title in (
        ("axondeepseg_sem_rat_spinalcord", "AxonDeepSeg SEM"),
        ("axondeepseg_tem_mouse_corpuscallosum_srf", "AxonDeepSeg TEM"),
    ):
        droot = require(name)
        s = read_axondeepseg(droot, list_axondeepseg(droot)[0]["id"])
        out.append((f"{title} (classes)", s.image, s.labels))
    nf = read_neurofinder(require("neurofinder_2p_subset") / "neurofinder_subset.h5")
    out.append(("neurofinder mean (somata)", nf.image, nf.labels))
    ctc = require("ctc_fluo_n2dh_gowt1_01")
    _, seg = read_ctc_frames(ctc / "01_GT" / "SEG", kind="seg", frames=[21])
    # labels only: the Cell Tracking Challenge's terms keep this dataset's images out of figures
    out.append(("CTC GOWT1 t=21 (nuclei, labels only)", np.zeros(seg[0].shape, np.uint8), seg[0]))
    return out


def example_dsb_ids(dsb_table: pd.DataFrame, *, per_modality: int = 1) -> list[str]:
    """The first ``per_modality`` image IDs of each modality in the per-image table."""
    return [
        i for _, group in dsb_table.groupby("modality", sort=True)
        for i in group.id.head(per_modality)
    ]


def dsb_distribution_figure(dsb_table: pd.DataFrame):
    """Nuclei per image and median nucleus area, by modality."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    sns.histplot(dsb_table, x="objects", hue="modality", ax=axes[0], bins=30, element="step")
    axes[0].set_xlabel("nuclei per image")
    axes[0].set_ylabel("images")
    sns.histplot(
        dsb_table, x="median_object_px", hue="modality", ax=axes[1], bins=30, element="step",
        log_scale=True, legend=False,
    )
    axes[1].set_xlabel("median nucleus area (px)")
    axes[1].set_ylabel("images")
    fig.tight_layout()
    return fig
