"""Tests of neuroseg.data.splits: seeded splits, stratification, records on disk, regions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroseg.data import splits

IDS = [f"img{i:03d}" for i in range(40)]


def _all(parts):
    return [x for p in splits.PARTS for x in parts[p]]


def test_split_ids_golden():
    parts = splits.split_ids(list("abcdefghij"), fractions=(0.6, 0.2, 0.2), seed=0)
    assert [len(parts[p]) for p in splits.PARTS] == [6, 2, 2]
    assert parts == splits.split_ids(list("jihgfedcba"), fractions=(0.6, 0.2, 0.2), seed=0)


def test_split_ids_deterministic_by_seed():
    a = splits.split_ids(IDS, seed=3)
    b = splits.split_ids(list(reversed(IDS)), seed=3)  # input order does not matter
    assert a == b
    assert splits.split_ids(IDS, seed=4) != a


def test_split_ids_parts_disjoint_cover_sorted():
    parts = splits.split_ids(IDS, seed=1)
    assert set(parts) == set(splits.PARTS)
    everything = _all(parts)
    assert len(everything) == len(set(everything)) == len(IDS)
    assert set(everything) == set(IDS)
    assert [len(parts[p]) for p in splits.PARTS] == [28, 6, 6]
    for p in splits.PARTS:
        assert parts[p] == sorted(parts[p])


def test_split_ids_integer_ids():
    parts = splits.split_ids(range(10), fractions=(0.5, 0.2, 0.3), seed=0)
    assert sorted(_all(parts)) == list(range(10))
    assert [len(parts[p]) for p in splits.PARTS] == [5, 2, 3]


def test_stratification_puts_each_stratum_in_every_part():
    # 30 common, 4 rare, 3 very rare, 2 too rare to spread
    strata = ["common"] * 30 + ["rare"] * 4 + ["very_rare"] * 3 + ["pair"] * 2
    ids = [f"x{i:02d}" for i in range(len(strata))]
    kind = dict(zip(ids, strata))
    for seed in range(5):
        parts = splits.split_ids(ids, seed=seed, strata=strata)
        assert sorted(_all(parts)) == sorted(ids)
        for stratum in ("common", "rare", "very_rare"):
            for p in splits.PARTS:
                assert any(kind[i] == stratum for i in parts[p]), (seed, stratum, p)
        # each stratum is cut on its own (round(0.15 * 30) = 4, round(0.15 * 4) = 1 -> 1)
        counts = {
            s: [sum(kind[i] == s for i in parts[p]) for p in splits.PARTS]
            for s in ("common", "rare", "very_rare", "pair")
        }
        assert counts == {
            "common": [22, 4, 4], "rare": [2, 1, 1], "very_rare": [1, 1, 1], "pair": [2, 0, 0]
        }


def test_unstratified_split_can_miss_a_rare_stratum():
    """The check above is not vacuous: without strata, rare kinds go missing from a part."""
    strata = ["common"] * 36 + ["rare"] * 3
    ids = [f"x{i:02d}" for i in range(len(strata))]
    rare = set(ids[36:])
    missed = [
        seed for seed in range(20)
        if any(not rare & set(part) for part in splits.split_ids(ids, seed=seed).values())
    ]
    assert missed


@pytest.mark.parametrize(
    "fractions",
    [(0.7, 0.3), (0.5, 0.3, 0.3), (1.2, -0.1, -0.1), (0.7, 0.15, 0.15, 0.0), (0.5, 0.25, 0.2)],
)
def test_bad_fractions_raise(fractions):
    with pytest.raises(ValueError, match="fractions"):
        splits.split_ids(IDS, fractions=fractions, seed=0)


def test_duplicate_ids_raise():
    with pytest.raises(ValueError, match="unique"):
        splits.split_ids(["a", "b", "a"], seed=0)


def test_strata_shorter_than_ids_raise():
    with pytest.raises(ValueError, match="strata"):
        splits.split_ids(["a", "b", "c"], seed=0, strata=["x", "y"])


def test_strata_longer_than_ids_raise():
    with pytest.raises(ValueError, match="strata"):
        splits.split_ids(["a", "b"], seed=0, strata=["x", "y", "z"])


def test_make_split_record_and_overlap():
    record = splits.make_split(
        "ds", {"train": ["a", "b"], "val": ["c"], "test": ["d"]}, seed=np.int64(2), method="m"
    )
    assert record == {
        "dataset": "ds", "seed": 2, "method": "m",
        "parts": {"train": ["a", "b"], "val": ["c"], "test": ["d"]},
    }
    assert type(record["seed"]) is int
    with pytest.raises(ValueError, match="'b' is in both train and test"):
        splits.make_split("ds", {"train": ["a", "b"], "val": [], "test": ["b"]}, seed=0, method="m")
    with pytest.raises(ValueError, match=r"lacks parts \['val'\]"):
        splits.make_split("ds", {"train": ["a"], "test": ["b"]}, seed=0, method="m")


def test_make_split_accepts_regions_and_extra_keys():
    region = {"z": None, "y": None, "x": [0, 5]}
    record = splits.make_split(
        "vol",
        {"train": [region], "val": [], "test": [region], "modality": {"a": "x"}},
        seed=0,
        method="spatial",
    )
    assert record["parts"]["modality"] == {"a": "x"}


def test_save_and_load_split_round_trip(outputs):
    record = splits.make_split(
        "dsb", {"train": ["a"], "val": ["b"], "test": [{"z": [0, 2], "y": None, "x": None}]},
        seed=0, method="m",
    )
    path = splits.save_split(record, profile="quick")
    assert path == outputs["artifacts"] / "quick" / "splits" / "dsb.json"
    assert json.loads(path.read_text()) == record
    assert splits.load_split("dsb", profile="quick") == record
    with pytest.raises(FileNotFoundError):
        splits.load_split("dsb", profile="full")  # profiles do not share splits


def test_load_split_missing_mentions_notebook(outputs):
    with pytest.raises(FileNotFoundError, match="00_data_preparation") as err:
        splits.load_split("nothing_here", profile="quick")
    assert "nothing_here" in str(err.value)


def test_load_split_malformed(outputs):
    folder = outputs["artifacts"] / "quick" / "splits"
    folder.mkdir(parents=True)
    (folder / "x.json").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(ValueError, match="parts"):
        splits.load_split("x", profile="quick")


def test_region_slices():
    assert splits.region_slices({"z": None, "y": [0, 2], "x": [5, 9]}) == (
        slice(None), slice(0, 2), slice(5, 9),
    )
    assert splits.region_slices({"x": [1, 3]}, axes="yx") == (slice(None), slice(1, 3))
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    crop = volume[splits.region_slices({"z": [1, 3], "y": None, "x": [np.int64(2), 4.0]})]
    assert crop.shape == (2, 5, 2)
    assert crop[0, 0, 0] == volume[1, 0, 2]
