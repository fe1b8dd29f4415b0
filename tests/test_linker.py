"""Tests of neuroseg.linking.learned: the learned slice linker (z-affinities, pair features, calibration).

Everything is synthetic and tiny: 2D U-Nets of depth 2 with 4 base features, volumes of a
few slices of at most 40 x 40 pixels.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from neuroseg.data.images import normalize
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.synthetic import neurites_3d
from neuroseg.linking import calibration
from neuroseg.linking.calibration import (
    FEATURES,
    THRESHOLDS,
    Calibration,
    fit_pair_classifier,
    pair_features,
    pair_truth,
    segment_truth,
)
from neuroseg.linking.graph import candidate_pairs
from neuroseg.linking.learned import (
    AffinityLinker,
    affinity_targets,
    calibrate,
    linker_from_model,
    load_linker,
    read_linker,
    save_linker,
    train_linker,
    training_pairs,
)
from neuroseg.linking.rules import link_slices, relink
from neuroseg.measure.overlap import contingency
from neuroseg.measure.voi_rand import segmentation_scores
from neuroseg.nets.folder import load_model, read_model_meta, save_model
from neuroseg.nets.unet import ModelError, UNet

TINY = {"ndim": 2, "depth": 2, "base_features": 4}
K = len(FEATURES)
RESOLUTION = (40.0, 4.0, 4.0)


def _net(in_channels=2, out_channels=1, seed=0) -> UNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(in_channels=in_channels, out_channels=out_channels, **TINY)


def _state(hidden=4, seed=0) -> dict:
    """Weights of a pair perceptron (random, fixed by ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = calibration._perceptron(K, hidden)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _cal(z_nm=40.0, segments="oracle", threshold=0.5, seed=0, **kw) -> Calibration:
    kw.setdefault("n_pairs", 10)
    kw.setdefault("positive", 0.5)
    return Calibration(
        z_nm=z_nm,
        segments=segments,
        mean=tuple(np.linspace(0.0, 1.0, K)),
        scale=tuple(np.linspace(0.5, 2.0, K)),
        state=_state(hidden=4, seed=seed),
        hidden=4,
        threshold=threshold,
        **kw,
    )


def _known_volume(shape=(8, 32, 32), n=5, seed=1):
    """EM-like raw and a dense labelling whose neurites are one 2D piece in every slice."""
    raw, gt = neurites_3d(shape, n=n, seed=seed)
    pieces = connected_components_per_slice(gt)
    assert pieces.max() == int(gt.max()) * shape[0], "precondition: one piece per slice"
    return raw, gt, pieces


def _one_to_one(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the labels of a and b correspond one to one (a bijection, same zeros)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    c = contingency(a, b, ignore_a=0, ignore_b=0)
    return (
        np.unique(c.a_ids).size == c.a_ids.size
        and np.unique(c.b_ids).size == c.b_ids.size
        and c.a_ids.size == np.unique(a[a > 0]).size == np.unique(b[b > 0]).size
    )


class _Scorer:
    """A PairScorer from a dict {(z_a, id_a, z_b, id_b): score}, ``default`` elsewhere."""

    def __init__(self, scores=None, default=1.0):
        self.scores = scores or {}
        self.default = default

    def score_pairs(self, labels, raw, pairs, *, resolution=None):
        keys = zip(pairs["z_a"], pairs["id_a"], pairs["z_b"], pairs["id_b"], strict=True)
        return np.array(
            [self.scores.get(tuple(int(v) for v in k), self.default) for k in keys], float
        )


@pytest.fixture(scope="module")
def boundary_folder(tmp_path_factory):
    """A tiny 2D boundary model folder, with non-trivial batch-norm statistics."""
    net = _net(in_channels=1, seed=1)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    folder = tmp_path_factory.mktemp("boundary") / "em_boundary_unet"
    save_model(net, folder, meta={"target": "boundaries", "pixel_nm": 10.0})
    return folder


@pytest.fixture(scope="module")
def known():
    return _known_volume()


@pytest.fixture(scope="module")
def calibrated(known):
    """An AffinityLinker (untrained network) calibrated on the known volume's oracle segments."""
    raw, gt, pieces = known
    linker = AffinityLinker(_net(seed=5))
    new, table = calibrate(
        linker, [(raw, pieces, gt)], resolution=RESOLUTION, segments="oracle", hidden=8
    )
    return linker, new, table


# --------------------------------------------------------------------------------------------
# training targets and pairs
# --------------------------------------------------------------------------------------------


def test_affinity_targets_golden():
    out = affinity_targets([[1, 2], [0, 3]], [[1, 1], [0, 3]])
    assert out.dtype == np.uint8
    assert out.tolist() == [[1, 0], [0, 1]]
    assert affinity_targets([[0, 0, 5]], [[0, 5, 5]]).tolist() == [[0, 0, 1]]
    assert affinity_targets([[7, 7, 7]], [[7, 7, 7]]).tolist() == [[1, 1, 1]]
    assert affinity_targets([[0, 0]], [[0, 0]]).tolist() == [[0, 0]]  # gt 0 is never "same"


def test_affinity_targets_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        affinity_targets(np.zeros((2, 2)), np.zeros((2, 3)))


def test_training_pairs_counts_and_order():
    rng = np.random.default_rng(0)
    raw = rng.random((4, 8, 8)).astype(np.float32)
    gt = rng.integers(0, 3, (4, 8, 8))
    # steps 1 and 2 in a 4-slice volume: 3 + 2 slice pairs
    images, targets = training_pairs(raw, gt, z_steps=(2, 1))
    assert len(images) == len(targets) == 10
    one, _ = training_pairs(raw, gt, z_steps=(1, 2), both_orders=False)
    assert len(one) == 5
    assert len(training_pairs(raw, gt, z_steps=(1, 1, 1))[0]) == 6  # repeated steps count once
    assert images[0].shape == (2, 8, 8) and targets[0].shape == (8, 8)
    norm = [normalize(s) for s in raw]
    # sorted steps, then z; every pair followed by its swapped copy with the same target
    expected = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (0, 2), (2, 0), (1, 3), (3, 1)]
    for image, target, (a, b) in zip(images, targets, expected, strict=True):
        assert np.array_equal(image[0], norm[a]) and np.array_equal(image[1], norm[b])
        assert np.array_equal(target, affinity_targets(gt[a], gt[b]))
    assert not np.array_equal(images[0], images[1])


def test_training_pairs_errors():
    raw = np.zeros((3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="same"):
        training_pairs(raw, np.zeros((3, 4, 5)), z_steps=(1,))
    with pytest.raises(ValueError, match="same"):
        training_pairs(raw[0], np.zeros((4, 4)), z_steps=(1,))
    with pytest.raises(ValueError, match=">= 1"):
        training_pairs(raw, np.zeros((3, 4, 4)), z_steps=(0, 1))
    with pytest.raises(ValueError, match="no slice pair"):
        training_pairs(raw, np.zeros((3, 4, 4)), z_steps=(3,))
    with pytest.raises(ValueError, match="no slice pair"):
        training_pairs(raw, np.zeros((3, 4, 4)), z_steps=())


# --------------------------------------------------------------------------------------------
# pair features
# --------------------------------------------------------------------------------------------

# slice 0: 1 1 2 2 0      segments 1 (2 px) and 2 (2 px), one background pixel
# slice 1: 3 3 3 4 4      segments 3 (3 px) and 4 (2 px)
# pairs: (1, 3) overlap 2, (2, 3) overlap 1, (2, 4) overlap 1 (the last pixel is not overlap)
_LABELS = np.array([[[1, 1, 2, 2, 0]], [[3, 3, 3, 4, 4]]], np.uint32)
_AFF = {(0, 1): np.array([[1.0, 0.8, 0.2, 0.9, 0.5]])}
_GOLDEN = {
    "affinity": [0.9, 0.2, 0.9],
    "iou": [2 / 3, 1 / 4, 1 / 3],
    "cover_a": [1.0, 0.5, 0.5],
    "cover_b": [2 / 3, 1 / 3, 1 / 2],
    "log_size_a": [math.log(3)] * 3,
    "log_size_b": [math.log(4), math.log(4), math.log(3)],
    "share_a": [1.0, 1.0, 1.0],
    "share_b": [1.0, 0.5, 1.0],
    "best_a": [1.0, 1.0, 1.0],
    "best_b": [1.0, 0.0, 1.0],
    "log_partners_a": [0.0, math.log(2), math.log(2)],
    "log_partners_b": [math.log(2), math.log(2), 0.0],
}


def test_pair_features_golden():
    pairs = candidate_pairs(_LABELS)
    assert pairs[["id_a", "id_b"]].values.tolist() == [[1, 3], [2, 3], [2, 4]]
    feats = pair_features(_LABELS, pairs, affinity=_AFF)
    assert tuple(feats.columns) == FEATURES
    assert all(feats[c].dtype == np.float64 for c in FEATURES)
    for name, values in _GOLDEN.items():
        np.testing.assert_allclose(feats[name].to_numpy(), values, rtol=0, atol=1e-12, err_msg=name)


def test_pair_features_follow_row_order_and_index():
    pairs = candidate_pairs(_LABELS)
    shuffled = pairs.iloc[[2, 0, 1]].set_axis([10, 20, 30])
    feats = pair_features(_LABELS, shuffled, affinity=_AFF)
    assert list(feats.index) == [10, 20, 30]
    for name, values in _GOLDEN.items():
        np.testing.assert_allclose(
            feats[name].to_numpy(), np.asarray(values)[[2, 0, 1]], atol=1e-12
        )


def test_pair_features_callable_gets_sorted_slice_pairs():
    # three slices, max_gap 2: slice pairs (0, 1), (0, 2), (1, 2); every map a constant
    labels = np.array([[[1, 1, 2, 2]], [[3, 3, 4, 4]], [[5, 5, 5, 6]]], np.int64)
    pairs = candidate_pairs(labels, max_gap=2)
    shuffled = pairs.sample(frac=1.0, random_state=1)
    value = {(0, 1): 0.1, (0, 2): 0.2, (1, 2): 0.3}
    calls = []

    def affinity(slice_pairs):
        calls.append(list(slice_pairs))
        return [np.full((1, 4), value[p]) for p in slice_pairs]

    feats = pair_features(labels, shuffled, affinity=affinity)
    assert calls == [[(0, 1), (0, 2), (1, 2)]]
    expected = [value[(a, b)] for a, b in zip(shuffled["z_a"], shuffled["z_b"], strict=True)]
    np.testing.assert_allclose(feats["affinity"].to_numpy(), expected, atol=1e-12)
    # the same through a dict, and the gap's own partners only count for share/best/partners
    again = pair_features(
        labels, shuffled, affinity={p: np.full((1, 4), v) for p, v in value.items()}
    )
    pd.testing.assert_frame_equal(feats, again)
    row = feats[(shuffled["z_a"] == 0) & (shuffled["z_b"] == 2) & (shuffled["id_a"] == 2)]
    # segment 2 meets 5 (1 px) and 6 (1 px) two slices on: two partners at that gap
    assert np.allclose(row["log_partners_a"], math.log(2))


def test_pair_features_mean_over_overlap_with_varying_map():
    rng = np.random.default_rng(4)
    labels = connected_components_per_slice(rng.integers(0, 4, (3, 6, 7)))
    pairs = candidate_pairs(labels)
    maps = {(z, z + 1): rng.random((6, 7)) for z in range(2)}
    feats = pair_features(labels, pairs, affinity=maps)
    for i, r in enumerate(pairs.itertuples()):
        mask = (labels[r.z_a] == r.id_a) & (labels[r.z_b] == r.id_b)
        assert mask.sum() == r.overlap
        assert feats["affinity"].iloc[i] == pytest.approx(maps[(r.z_a, r.z_b)][mask].mean())


def test_pair_features_do_not_modify_inputs():
    labels = _LABELS.copy()
    pairs = candidate_pairs(labels)
    aff = copy.deepcopy(_AFF)
    pairs_before = pairs.copy()
    pair_features(labels, pairs, affinity=aff)
    assert np.array_equal(labels, _LABELS)
    pd.testing.assert_frame_equal(pairs, pairs_before)
    assert np.array_equal(aff[(0, 1)], _AFF[(0, 1)])


# --------------------------------------------------------------------------------------------
# truth of segments and pairs
# --------------------------------------------------------------------------------------------

# slice 0: segment 1 overlaps gt 5 (2 px) and 6 (1 px); segment 2 lies on gt 0 only
# slice 1: segment 3 -> 5; segment 4 overlaps gt 6 (1 px) and gt 0 (2 px): gt 0 is ignored
# slice 2: both segments on gt 0; slice 3 has no segment
_T_LABELS = np.array(
    [
        [[1, 1, 1, 2, 2, 2]],
        [[3, 3, 3, 4, 4, 4]],
        [[7, 7, 7, 8, 8, 8]],
        [[0, 0, 0, 0, 0, 0]],
    ]
)
_T_GT = np.array(
    [
        [[5, 5, 6, 0, 0, 0]],
        [[5, 5, 6, 6, 0, 0]],
        [[0, 0, 0, 0, 0, 0]],
        [[5, 5, 5, 5, 5, 5]],
    ]
)


def test_segment_truth_golden():
    truth = segment_truth(_T_LABELS, _T_GT)
    assert list(truth.columns) == ["z", "id", "gt"]
    assert truth.values.tolist() == [
        [0, 1, 5],
        [0, 2, 0],
        [1, 3, 5],
        [1, 4, 6],
        [2, 7, 0],
        [2, 8, 0],
    ]


def test_segment_truth_errors_and_empty():
    with pytest.raises(ValueError, match="shape mismatch"):
        segment_truth(_T_LABELS, _T_GT[:, :, :5])
    empty = segment_truth(np.zeros((2, 3, 3), int), np.ones((2, 3, 3), int))
    assert len(empty) == 0 and list(empty.columns) == ["z", "id", "gt"]


def test_pair_truth_golden():
    pairs = candidate_pairs(_T_LABELS, max_gap=2)
    keys = [tuple(r) for r in pairs[["z_a", "id_a", "z_b", "id_b"]].values.tolist()]
    assert keys == [
        (0, 1, 1, 3),
        (0, 2, 1, 4),
        (0, 1, 2, 7),
        (0, 2, 2, 8),
        (1, 3, 2, 7),
        (1, 4, 2, 8),
    ]
    truth = pair_truth(_T_LABELS, _T_GT, pairs)
    assert truth.dtype == bool
    # only 1-3 (both gt 5); 2-8 joins two gt-0 segments and is not a match
    assert truth.tolist() == [True, False, False, False, False, False]
    reordered = pairs.iloc[::-1].reset_index(drop=True)
    assert pair_truth(_T_LABELS, _T_GT, reordered).tolist() == truth.tolist()[::-1]


# --------------------------------------------------------------------------------------------
# the pair classifier and calibrations
# --------------------------------------------------------------------------------------------


def _separable(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 0
    x = rng.normal(0.0, 1.0, (n, K))
    x[:, 0] = np.where(y, 3.0, -3.0) + rng.normal(0.0, 0.3, n)
    x[:, 4] = x[:, 4] * 100 + 1000  # scale and offset are standardised away
    return x, y


def test_fit_pair_classifier_separates():
    x, y = _separable()
    state, mean, scale = fit_pair_classifier(x, y, hidden=8, steps=150)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(scale, x.std(axis=0))
    cal = Calibration(
        z_nm=40, segments="oracle", mean=tuple(mean), scale=tuple(scale), state=state, hidden=8
    )
    p = cal.score(x)
    assert p.dtype == np.float64 and p.shape == (len(x),)
    assert p[y].min() > 0.9 and p[~y].max() < 0.1


def test_fit_pair_classifier_constant_column_and_determinism():
    x, y = _separable()
    x[:, 3] = 7.0  # a constant feature gets scale 1, not a division by zero
    before = torch.get_rng_state()
    s1, _, scale = fit_pair_classifier(x, y, hidden=4, steps=20, seed=3)
    s2, _, _ = fit_pair_classifier(x, y, hidden=4, steps=20, seed=3)
    s3, _, _ = fit_pair_classifier(x, y, hidden=4, steps=20, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    assert scale[3] == 1.0
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_fit_pair_classifier_errors():
    x, y = _separable(n=6)
    bad = x.copy()
    bad[2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_pair_classifier(bad, y, steps=1)
    bad[2, 5] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        fit_pair_classifier(bad, y, steps=1)
    with pytest.raises(ValueError, match="no pairs"):
        fit_pair_classifier(np.zeros((0, K)), np.zeros(0), steps=1)
    with pytest.raises(ValueError, match="one truth per row"):
        fit_pair_classifier(x, y[:-1], steps=1)
    with pytest.raises(ValueError, match="one truth per row"):
        fit_pair_classifier(x[:, 0], y, steps=1)


def test_calibration_validation():
    good = {
        "z_nm": 40.0,
        "segments": "oracle",
        "mean": (0.0,) * K,
        "scale": (1.0,) * K,
        "state": _state(),
        "hidden": 4,
    }
    Calibration(**good)
    with pytest.raises(ValueError, match="segments"):
        Calibration(**{**good, "segments": "true"})
    with pytest.raises(ValueError, match="mean"):
        Calibration(**{**good, "mean": (0.0,) * (K - 1)})
    with pytest.raises(ValueError, match="scale"):
        Calibration(**{**good, "scale": (1.0,) * (K + 1)})
    for t in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            Calibration(**{**good, "threshold": t})
    Calibration(**{**good, "threshold": 0.0})
    Calibration(**{**good, "threshold": 1.0})


def test_calibration_key():
    assert _cal(z_nm=40.0, segments="oracle").key == "40nm_oracle"
    assert _cal(z_nm=8, segments="predicted").key == "8nm_predicted"
    assert _cal(z_nm=12.5, segments="predicted").key == "12.5nm_predicted"


def test_calibration_dict_round_trip():
    cal = _cal(z_nm=30.0, segments="predicted", threshold=0.35, n_pairs=12, positive=0.25)
    d = cal.to_dict()
    assert "state" not in d
    assert d["mean"] == list(cal.mean) and d["threshold"] == 0.35 and d["hidden"] == 4
    back = Calibration.from_dict(json.loads(json.dumps(d)), cal.state)
    assert back.to_dict() == d
    x = np.random.default_rng(0).normal(size=(7, K))
    assert np.array_equal(back.score(x), cal.score(x))
    p = cal.score(x)
    assert ((p >= 0) & (p <= 1)).all() and np.ptp(p) > 0


# --------------------------------------------------------------------------------------------
# AffinityLinker
# --------------------------------------------------------------------------------------------


def test_linker_refuses_wrong_network():
    with pytest.raises(ValueError, match="2 input channels"):
        AffinityLinker(_net(in_channels=1))
    with pytest.raises(ValueError, match="1 channel"):
        AffinityLinker(_net(in_channels=2, out_channels=2))
    AffinityLinker(_net())


def test_linker_from_model(boundary_folder):
    before = {p.name: p.read_bytes() for p in boundary_folder.iterdir()}
    net = linker_from_model(boundary_folder)
    assert {p.name: p.read_bytes() for p in boundary_folder.iterdir()} == before
    assert net.config["in_channels"] == 2 and net.config["out_channels"] == 1
    assert net.meta["target"] == "z_affinity"
    assert net.meta["pixel_size"] == {"size": [10.0, 10.0], "unit": "nm"}
    assert net.meta["source_target"] == "boundaries"
    assert all(p.requires_grad for p in net.parameters())
    source = load_model(boundary_folder).eval()
    net.eval()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = source(x)
        got = net(torch.cat([x, x], dim=1))
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(want, torch.zeros_like(want))
    AffinityLinker(net)  # a valid linker network


def test_affinities_shape_range_and_channel_order():
    net = _net(seed=7).eval()
    linker = AffinityLinker(net, batch_size=2)
    rng = np.random.default_rng(0)
    raw = rng.random((3, 16, 16)).astype(np.float32) * 200
    pairs = [(0, 1), (1, 2), (0, 2), (1, 0)]
    aff = linker.affinities(raw, pairs)
    assert aff.shape == (4, 16, 16) and aff.dtype == np.float32
    assert aff.min() >= 0.0 and aff.max() <= 1.0
    norm = [normalize(s) for s in raw]
    for i, (a, b) in enumerate(pairs):
        x = torch.from_numpy(np.stack([norm[a], norm[b]])[None])
        with torch.no_grad():
            want = 1.0 - torch.sigmoid(net(x))[0, 0].numpy()
        np.testing.assert_allclose(aff[i], want, atol=1e-5)
    assert not np.allclose(aff[0], aff[3])  # (0, 1) and (1, 0) are different inputs
    # one pair alone gives the same map as in a batch
    np.testing.assert_allclose(linker.affinities(raw, [(1, 2)])[0], aff[1], atol=1e-6)
    assert linker.affinities(raw, []).shape == (0, 16, 16)
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        linker.affinities(raw[0], [(0, 1)])


def test_affinities_at_another_pixel_size():
    net = _net(seed=7)
    net.meta = {"pixel_nm": 10.0}
    raw = np.random.default_rng(1).random((2, 16, 16)).astype(np.float32)
    aff = AffinityLinker(net).affinities(raw, [(0, 1)], resolution=(40.0, 5.0, 5.0))
    assert aff.shape == (1, 16, 16) and aff.dtype == np.float32
    assert aff.min() >= 0.0 and aff.max() <= 1.0


def test_score_pairs_needs_raw():
    labels = np.array([[[1, 1, 2, 2]], [[3, 3, 4, 4]]])
    linker = AffinityLinker(_net(), [_cal()]).calibrated_for(RESOLUTION)
    with pytest.raises(ValueError, match="raw"):
        linker.score_pairs(labels, None, candidate_pairs(labels), resolution=RESOLUTION)
    with pytest.raises(ValueError, match="raw"):
        link_slices(labels, method="learned", linker=linker)


def test_score_pairs_without_calibration():
    labels = np.array([[[1, 1, 2, 2]], [[3, 3, 4, 4]]])
    raw = np.random.default_rng(0).random((2, 1, 4))
    with pytest.raises(ValueError, match="no calibration"):
        AffinityLinker(_net()).score_pairs(labels, raw, candidate_pairs(labels))
    with pytest.raises(ValueError, match="no active calibration"):
        AffinityLinker(_net()).threshold  # noqa: B018


def test_score_pairs_uses_features_of_the_active_calibration():
    rng = np.random.default_rng(2)
    labels = connected_components_per_slice(rng.integers(0, 3, (3, 8, 8)))
    raw = rng.random((3, 8, 8)).astype(np.float32)
    pairs = candidate_pairs(labels)
    linker = AffinityLinker(_net(seed=3), [_cal(z_nm=40.0, seed=1), _cal(z_nm=8.0, seed=2)])
    scores = linker.score_pairs(labels, raw, pairs, resolution=(36.0, 4.0, 4.0))
    feats = pair_features(labels, pairs, affinity=lambda sp: linker.affinities(raw, sp))
    want = linker.calibrations[0].score(feats[list(FEATURES)].to_numpy())
    assert scores.shape == (len(pairs),)
    np.testing.assert_allclose(scores, want, atol=1e-6)
    other = linker.score_pairs(labels, raw, pairs, resolution=(8.0, 4.0, 4.0))
    assert not np.allclose(scores, other)


def test_calibrated_for_picks_nearest_and_kind():
    cals = [
        _cal(z_nm=8.0, segments="oracle"),
        _cal(z_nm=40.0, segments="oracle"),
        _cal(z_nm=30.0, segments="predicted"),
    ]
    linker = AffinityLinker(_net(), cals)
    assert linker.active is None
    assert linker.calibrated_for((36.0, 4.0, 4.0), segments="oracle").active is cals[1]
    assert linker.calibrated_for([9.0, 4.0, 4.0], segments="oracle").active is cals[0]
    assert linker.calibrated_for(40, segments="oracle").active is cals[1]
    assert linker.calibrated_for(10.0, segments="oracle").active is cals[0]
    # the requested kind wins over a nearer spacing of the other kind
    assert linker.calibrated_for((40.0, 4.0, 4.0)).active is cals[2]
    assert linker.calibrated_for((8.0, 4.0, 4.0), segments="predicted").active is cals[2]
    # only one predicted spacing: resolution=None is fine; two oracle ones: ambiguous
    assert linker.calibrated_for(None).active is cals[2]
    with pytest.raises(ValueError, match="several z spacings"):
        linker.calibrated_for(None, segments="oracle")
    chosen = linker.calibrated_for(36.0, segments="oracle")
    assert chosen is not linker and chosen.network is linker.network
    assert chosen.calibrations == linker.calibrations and chosen.threshold == 0.5
    assert linker.active is None  # the original is unchanged
    # no calibration of the requested kind: falls back to the other kind
    only_oracle = AffinityLinker(_net(), cals[:2])
    assert only_oracle.calibrated_for(38.0, segments="predicted").active is cals[1]
    with pytest.raises(ValueError, match="no calibration"):
        AffinityLinker(_net()).calibrated_for(RESOLUTION)


def test_with_calibration_replaces_same_spacing_and_kind():
    a, b = _cal(z_nm=40.0, segments="oracle"), _cal(z_nm=40.0, segments="predicted")
    linker = AffinityLinker(_net(), [a, b], batch_size=3)
    new = _cal(z_nm=40.0, segments="oracle", threshold=0.8, seed=9)
    replaced = linker.with_calibration(new)
    assert replaced.active is new and replaced.threshold == 0.8
    assert len(replaced.calibrations) == 2
    assert new in replaced.calibrations and b in replaced.calibrations
    assert a not in replaced.calibrations
    assert replaced.network is linker.network and replaced.batch_size == 3
    assert linker.calibrations == (a, b) and linker.active is None
    added = replaced.with_calibration(_cal(z_nm=8.0, segments="oracle"))
    assert len(added.calibrations) == 3


# --------------------------------------------------------------------------------------------
# calibration on a synthetic volume
# --------------------------------------------------------------------------------------------


def test_calibrate_returns_active_calibration_and_table(calibrated, known):
    raw, gt, pieces = known
    before, linker, table = calibrated
    assert before.calibrations == () and before.active is None
    cal = linker.active
    assert cal is not None and linker.calibrations == (cal,)
    assert cal.key == "40nm_oracle" and cal.hidden == 8
    assert cal.threshold in THRESHOLDS and linker.threshold == cal.threshold
    pairs = candidate_pairs(pieces)
    assert cal.n_pairs == len(pairs)
    assert cal.positive == pytest.approx(pair_truth(pieces, gt, pairs).mean())
    assert list(table.columns) == ["threshold", "voi_split", "voi_merge", "arand", "cremi"]
    assert table["threshold"].tolist() == [float(t) for t in THRESHOLDS]
    assert cal.threshold == table.loc[table["cremi"].idxmin(), "threshold"]
    assert table["cremi"].min() == pytest.approx(0.0, abs=1e-12)
    assert linker.network is before.network


def test_calibrate_with_threshold_volumes_and_errors(calibrated, known):
    raw, gt, pieces = known
    linker = AffinityLinker(_net(seed=5))
    # threshold volume: two segments of neighbouring slices that overlap by one row only (a
    # pair unlike any true continuation) and a ground truth of one single neuron: linking it
    # (threshold 0) beats not linking it. On the volume itself the two thresholds tie (the
    # mutex rule refuses every false link of the dense segments) and the first would be kept.
    small = np.zeros((2, 8, 8), np.uint32)
    small[0, :4] = 1
    small[1, 3:] = 2
    small_raw = np.random.default_rng(0).random(small.shape).astype(np.float32)
    new, table = calibrate(
        linker,
        [(raw, pieces, gt)],
        resolution=RESOLUTION,
        segments="predicted",
        threshold_volumes=[(small_raw, small, np.ones_like(small))],
        thresholds=(0.999, 0.0),
        hidden=8,
    )
    assert table["threshold"].tolist() == [0.999, 0.0]
    assert table["cremi"].iloc[1] < table["cremi"].iloc[0]
    assert new.active.key == "40nm_predicted" and new.threshold == 0.0
    # the perceptron is fitted on `volumes` either way (the same fit as the fixture's)
    x = np.random.default_rng(0).normal(size=(5, K))
    assert np.array_equal(new.active.score(x), calibrated[1].active.score(x))
    with pytest.raises(ValueError, match="at least one"):
        calibrate(linker, [], resolution=RESOLUTION, segments="oracle")


# --------------------------------------------------------------------------------------------
# linker folders
# --------------------------------------------------------------------------------------------


def _leftovers(folder):
    return [p.name for p in folder.parent.rglob("*") if p.name.startswith(".") or "tmp" in p.name]


def test_save_and_read_linker_round_trip(calibrated, tmp_path):
    _, linker, _ = calibrated
    linker = linker.with_calibration(_cal(z_nm=8.0, segments="predicted", threshold=0.3))
    folder = tmp_path / "linker"
    assert save_linker(linker, folder) == folder
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "weights.pt",
        "env.json",
        "calibrations.pt",
    }
    assert _leftovers(folder) == []
    meta = read_model_meta(folder)
    assert meta["target"] == "z_affinity" and len(meta["calibrations"]) == 2
    x = np.random.default_rng(0).normal(size=(9, K))
    inp = torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    linker.network.eval()
    with torch.no_grad():
        want = linker.network(inp)
    for back in (read_linker(folder), load_linker(folder)):
        assert isinstance(back, AffinityLinker) and back.active is None
        with torch.no_grad():
            assert torch.equal(back.network(inp), want)
        assert [c.key for c in back.calibrations] == [c.key for c in linker.calibrations]
        for got, orig in zip(back.calibrations, linker.calibrations, strict=True):
            assert got.to_dict() == orig.to_dict()
            assert np.array_equal(got.score(x), orig.score(x))
    # saving again into the folder replaces everything atomically, other files are kept
    (folder / "history.csv").write_text("epoch\n1\n")
    save_linker(AffinityLinker(linker.network, linker.calibrations[:1]), folder)
    assert (folder / "history.csv").read_text() == "epoch\n1\n"
    assert [c.key for c in read_linker(folder).calibrations] == ["40nm_oracle"]
    assert _leftovers(folder) == []


def test_save_linker_without_calibrations(tmp_path):
    folder = save_linker(AffinityLinker(_net()), tmp_path / "bare")
    back = read_linker(folder)
    assert back.calibrations == ()
    (folder / "calibrations.pt").unlink()  # not needed when there are no calibrations
    assert read_linker(folder).calibrations == ()


def test_save_linker_with_default_calibration_fields(tmp_path):
    cal = Calibration(
        z_nm=40.0, segments="oracle", mean=(0.0,) * K, scale=(1.0,) * K, state=_state(), hidden=4
    )
    # a calibration built by hand, with the defaults of n_pairs and positive, can be saved
    folder = save_linker(AffinityLinker(_net(), [cal]), tmp_path / "lk")
    back = read_linker(folder).calibrations[0]
    assert back.to_dict() == cal.to_dict()
    x = np.random.default_rng(0).normal(size=(3, K))
    assert np.array_equal(back.score(x), cal.score(x))


def test_round_trip_of_calibrations_with_close_spacings(tmp_path):
    first, second = _cal(z_nm=40.0, seed=1), _cal(z_nm=40.0000001, seed=2)
    linker = AffinityLinker(_net(), [first]).with_calibration(second)
    assert len(linker.calibrations) == 2
    back = read_linker(save_linker(linker, tmp_path / "lk"))
    x = np.random.default_rng(0).normal(size=(3, K))
    for got, orig in zip(back.calibrations, linker.calibrations, strict=True):
        assert got.z_nm == orig.z_nm
        assert np.array_equal(got.score(x), orig.score(x))


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "linker"
    save_linker(AffinityLinker(_net(), [_cal()]), folder)
    return folder


def test_read_linker_corrupt_calibrations(saved):
    (saved / "calibrations.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError, match="calibrations.pt"):
        read_linker(saved)


def test_read_linker_missing_calibrations(saved):
    (saved / "calibrations.pt").unlink()
    with pytest.raises(ModelError, match="calibrations.pt"):
        load_linker(saved)


_UNPICKLED: list[str] = []


def _record(value):
    _UNPICKLED.append(value)
    return value


class _Payload:
    def __reduce__(self):
        return (_record, ("code ran",))


def test_read_linker_uses_weights_only(saved):
    torch.save({"40nm_oracle": _Payload()}, saved / "calibrations.pt")
    _UNPICKLED.clear()
    with pytest.raises(ModelError):
        read_linker(saved)
    assert _UNPICKLED == []


def test_read_linker_wrong_calibration_weights(saved):
    torch.save({"40nm_oracle": _state()}, saved / "calibrations.pt")  # not a list
    with pytest.raises(ModelError, match="other weights"):
        read_linker(saved)
    torch.save([_state(), _state()], saved / "calibrations.pt")  # one too many
    with pytest.raises(ModelError, match="1 calibrations in config.json"):
        read_linker(saved)
    torch.save([_state(hidden=5)], saved / "calibrations.pt")  # wrong shapes
    with pytest.raises(ModelError, match="invalid linker calibration"):
        read_linker(saved)


def test_read_linker_refuses_other_models(boundary_folder, tmp_path):
    with pytest.raises(ModelError, match="z_affinity"):
        read_linker(boundary_folder)
    with pytest.raises(ModelError, match="z_affinity"):
        load_linker(boundary_folder)
    with pytest.raises(ModelError):
        read_linker(tmp_path / "nothing_here")


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def test_train_linker_tiny_run_and_resume(boundary_folder, tmp_path):
    raw, gt = neurites_3d((3, 40, 40), n=4, seed=1)
    folder = tmp_path / "z_affinity"
    kwargs = {
        "folder": folder,
        "z_steps": (1,),
        "crop": 32,
        "epochs": 1,
        "samples_per_epoch": 4,
        "val_crops": 2,
        "batch_size": 2,
        "progress": False,
    }
    state = torch.get_rng_state()  # training seeds torch; leave the other tests' state alone
    linker, history = train_linker(
        linker_from_model(boundary_folder), (raw, gt), (raw, gt), **kwargs
    )
    torch.set_rng_state(state)
    for name in ("config.json", "weights.pt", "history.csv"):
        assert (folder / name).is_file(), name
    assert isinstance(linker, AffinityLinker) and linker.calibrations == ()
    assert len(history) == 1 and np.isfinite(history["train_loss"]).all()
    meta = read_model_meta(folder)
    assert meta["target"] == "z_affinity" and meta["z_steps"] == [1] and meta["crop"] == 32
    weights = (folder / "weights.pt").read_bytes()
    assert read_linker(folder).calibrations == ()
    # a finished run: the second call resumes, trains nothing and returns the same history
    again, history2 = train_linker(linker_from_model(boundary_folder), (raw, gt), None, **kwargs)
    assert len(history2) == len(history)
    pd.testing.assert_frame_equal(history2, history)
    assert (folder / "weights.pt").read_bytes() == weights
    assert again.network.config == linker.network.config


# --------------------------------------------------------------------------------------------
# linking: putting a known volume back together, branches and the mutex rule
# --------------------------------------------------------------------------------------------


def test_known_volume_is_put_back_by_graph_and_learned(calibrated, known):
    raw, gt, pieces = known
    _, linker, _ = calibrated
    graph = link_slices(pieces, method="graph", threshold=0.3)
    learned = link_slices(
        pieces,
        raw=raw,
        method="learned",
        linker=linker,
        threshold=linker.threshold,
        resolution=RESOLUTION,
    )
    for res in (graph, learned):
        assert _one_to_one(res.labels, gt)
        assert res.n_objects == int(gt.max())
        scores = segmentation_scores(gt, res.labels)
        assert all(v == pytest.approx(0.0, abs=1e-12) for v in scores.values()), scores
    # the learned links are exactly the true continuations
    truth = pair_truth(pieces, gt, learned.links)
    assert np.array_equal(learned.links["linked"].to_numpy(), truth)
    # and relinking its table at the same threshold gives the same result
    again = relink(pieces, learned.links, linker.threshold, method="learned")
    assert np.array_equal(again.labels, learned.labels)


def test_learned_with_uncalibrated_linker_picks_calibration_from_resolution(calibrated, known):
    raw, gt, pieces = known
    _, linker, _ = calibrated
    plain = AffinityLinker(linker.network, linker.calibrations)  # nothing active
    res = link_slices(
        pieces,
        raw=raw,
        method="learned",
        linker=plain,
        threshold=linker.threshold,
        resolution=RESOLUTION,
    )
    assert _one_to_one(res.labels, gt)


def test_branch_is_one_object_with_learned():
    # slice 0: one segment; slice 1: two pieces under it, further apart than 2 * MUTEX_REACH
    # (6 background pixels); slice 2: both go on
    labels = np.array(
        [
            [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
            [[2, 2, 0, 0, 0, 0, 0, 0, 3, 3]],
            [[4, 4, 0, 0, 0, 0, 0, 0, 5, 5]],
        ]
    )
    res = link_slices(
        labels, raw=np.zeros(labels.shape), method="learned", linker=_Scorer(), threshold=0.5
    )
    assert res.n_objects == 1
    assert res.links["linked"].all()
    assert res.labels.tolist() == (labels > 0).astype(int).tolist()


def test_touching_segments_never_merged_by_learned():
    # 1 and 2 touch in slice 0; both continue (3, 4, apart) and join again in slice 2
    labels = np.array(
        [
            [[1, 1, 2, 2]],
            [[3, 0, 0, 4]],
            [[5, 5, 5, 5]],
        ]
    )
    graph = link_slices(labels, method="graph", threshold=0.0)
    assert graph.n_objects == 1
    learned = link_slices(labels, method="learned", linker=_Scorer(), threshold=0.0)
    out = learned.labels
    assert learned.n_objects == 2
    assert out[0, 0, 0] != out[0, 0, 3]
    assert out[1, 0, 0] == out[0, 0, 0] and out[1, 0, 3] == out[0, 0, 3]
    assert int(learned.links["linked"].sum()) == 3  # one of 3-5 and 4-5 is refused
    # the higher-scoring join is the one kept
    favour_4 = _Scorer({(1, 3, 2, 5): 0.6, (1, 4, 2, 5): 0.9})
    out = link_slices(labels, method="learned", linker=favour_4, threshold=0.5).labels
    assert out[2, 0, 0] == out[0, 0, 3] != out[0, 0, 0]
    favour_3 = _Scorer({(1, 3, 2, 5): 0.9, (1, 4, 2, 5): 0.6})
    out = link_slices(labels, method="learned", linker=favour_3, threshold=0.5).labels
    assert out[2, 0, 0] == out[0, 0, 0] != out[0, 0, 3]
    # relink with method="learned" keeps the mutex; with "graph" it merges
    assert relink(labels, learned.links, 0.0, method="learned").n_objects == 2
    assert relink(labels, learned.links, 0.0, method="graph").n_objects == 1


def test_touching_segments_direct():
    labels = np.array([[[1, 1, 2, 2]], [[3, 3, 3, 3]]])
    assert link_slices(labels, method="graph", threshold=0.0).n_objects == 1
    res = link_slices(labels, method="learned", linker=_Scorer(), threshold=0.0)
    assert res.n_objects == 2
    assert res.labels[0, 0, 0] != res.labels[0, 0, 3]
    # segments separated by a background line up to 2 * MUTEX_REACH pixels wide (a membrane
    # drawn as 0) also count as touching; wider apart they may be merged
    near = np.array([[[1, 0, 0, 0, 0, 2]], [[3, 3, 3, 3, 3, 3]]])
    assert link_slices(near, method="learned", linker=_Scorer(), threshold=0.0).n_objects == 2
    far = np.array([[[1, 0, 0, 0, 0, 0, 2]], [[3, 3, 3, 3, 3, 3, 3]]])
    assert link_slices(far, method="learned", linker=_Scorer(), threshold=0.0).n_objects == 1
