"""Integration tests on the real datasets in ``$NEUROSEG_DATA`` (skipped when it is unset).

Golden values come from PROVENANCE.md in the data folder. Kept fast: only the manifest and
one DSB image are read, not all 664.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data import splits
from neuroseg.data.__main__ import main
from neuroseg.data.catalogue import DATASETS, require, status
from neuroseg.data.readers import (
    dsb_modality,
    list_axondeepseg,
    list_dsb,
    read_axondeepseg,
    read_cremi,
    read_dsb,
)
from neuroseg.experiments.data_preparation import FIB25_SPLIT_X, make_splits

pytestmark = pytest.mark.data

FIB25 = "fib25_neuroproof_training_sample2"
DSB = "dsb2018_stage1_train"
SEM = "axondeepseg_sem_rat_spinalcord"
TEM = "axondeepseg_tem_mouse_corpuscallosum_srf"


@pytest.fixture(scope="module")
def fib25(data_root):
    return read_cremi(data_root / FIB25 / "sample2.h5")


@pytest.fixture(scope="module")
def records(data_root):
    return make_splits(seed=0)


def test_every_dataset_present(data_root, capsys):
    missing = {d.name: m for d, m, _ in status() if m}
    assert missing == {}
    assert len(DATASETS) == 9
    for name in DATASETS:
        assert require(name) == data_root / name
    assert main([]) == 0
    assert "all datasets present" in capsys.readouterr().out


def test_fib25_volume(fib25, data_root):
    assert fib25.shape == fib25.labels.shape == (250, 250, 250)
    assert fib25.raw.dtype == np.uint8 and fib25.labels.dtype == np.uint32
    assert fib25.resolution == (10.0, 10.0, 10.0)
    assert fib25.axes == "zyx"
    assert fib25.source == str(data_root / FIB25 / "sample2.h5")
    ids = np.unique(fib25.labels)
    assert ids[0] == 0 and len(ids) == 525 + 1
    assert int(np.count_nonzero(fib25.labels == 0)) == 250
    assert int(ids[-1]) > 525  # original body ids are kept, not made consecutive


def test_gala_volume(data_root):
    vol = read_cremi(data_root / "fib_gala_example" / "train.h5")
    assert vol.shape == vol.labels.shape == (50, 100, 200)
    assert vol.resolution is None
    assert len(np.unique(vol.labels)) == 87 + 1  # 87 bodies and 0 = boundary


def test_dsb_manifest(data_root):
    rows = list_dsb(data_root / DSB)
    assert len(rows) == 664
    assert len({r["id"] for r in rows}) == 664
    fluo = [r for r in rows if r["nuclei_brighter_than_background"] == 1 and r["channels"] == 1]
    assert len(fluo) == 541
    assert sum(r["channels"] == 3 for r in rows) == 107
    assert sum(r["n_nuclei"] for r in rows) == 28986
    modalities = [dsb_modality(r) for r in rows]
    assert {m: modalities.count(m) for m in set(modalities)} == {
        "fluorescence": 541, "brightfield": 16, "colour": 107,
    }


def test_dsb_first_image(data_root):
    root = data_root / DSB
    first = list_dsb(root)[0]
    sample = read_dsb(root, first["id"])
    assert sample.labels.shape == (first["height"], first["width"])
    assert int(sample.labels.max()) == first["n_nuclei"]
    assert len(np.unique(sample.labels)) == first["n_nuclei"] + 1
    channels = 1 if sample.image.ndim == 2 else sample.image.shape[-1]
    assert channels == first["channels"]


@pytest.mark.parametrize("name, n, with_uaxon", [(SEM, 10, False), (TEM, 21, True)])
def test_axondeepseg(data_root, name, n, with_uaxon):
    root = data_root / name
    entries = list_axondeepseg(root)
    assert len(entries) == n
    assert all(e["pixel_size"] is not None for e in entries)
    s = read_axondeepseg(root, entries[0]["id"])
    assert ("uaxon" in s.masks) is with_uaxon
    classes = set(np.unique(s.labels).tolist())
    assert classes == ({0, 1, 2, 3} if with_uaxon else {0, 1, 2})
    if with_uaxon:
        assert all((root / e["id"] / "uaxon.png").exists() for e in entries)
        assert {e["pixel_size"] for e in entries} == {0.00493}
        assert s.image.shape == (600, 600)
    else:
        assert min(e["pixel_size"] for e in entries) == 0.07
        assert max(e["pixel_size"] for e in entries) == 0.18


def test_splits_dsb_disjoint_and_complete(records, data_root):
    rec = records[DSB]
    parts = [rec["parts"][p] for p in splits.PARTS]
    everything = [i for part in parts for i in part]
    assert len(everything) == len(set(everything)) == 664
    assert set(everything) == {r["id"] for r in list_dsb(data_root / DSB)}
    # per stratum: fluorescence 541 -> 379/81/81, brightfield 16 -> 12/2/2, colour 107 -> 75/16/16
    assert [len(p) for p in parts] == [466, 99, 99]
    # stratified: every modality in every part
    modality = rec["parts"]["modality"]
    for part in parts:
        assert {modality[i] for i in part} == {"fluorescence", "brightfield", "colour"}


def test_splits_fib25_spatial_parts_do_not_overlap_in_x(records):
    parts = records[FIB25]["parts"]
    x_ranges = {}
    for p in splits.PARTS:
        (region,) = parts[p]
        sl = splits.region_slices(region)[2].indices(250)
        x_ranges[p] = set(range(*sl))
    assert x_ranges["train"].isdisjoint(x_ranges["test"])
    assert x_ranges["val"].isdisjoint(x_ranges["test"])
    assert x_ranges["train"] | x_ranges["test"] == set(range(250))
    assert min(x_ranges["test"]) == FIB25_SPLIT_X


def test_splits_axondeepseg_by_subject(records):
    for name in (SEM, TEM):
        parts = records[name]["parts"]
        subjects = {p: {i.split("_")[0] for i in parts[p]} for p in splits.PARTS}
        assert subjects["train"].isdisjoint(subjects["test"])
        assert subjects["train"].isdisjoint(subjects["val"])
        assert subjects["val"].isdisjoint(subjects["test"])
        assert all(parts[p] for p in splits.PARTS), name


def test_splits_are_reproducible(records):
    again = make_splits(seed=0)
    assert again == records
    other = make_splits(seed=1)
    assert other[DSB]["parts"]["test"] != records[DSB]["parts"]["test"]
