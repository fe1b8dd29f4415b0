"""Tests of neuroseg.measure.overlap: hand-computed golden values, edge cases, agreement with skimage."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error as sk_adapted_rand_error
from skimage.metrics import variation_of_information as sk_variation_of_information

from neuroseg.measure.matching import (
    Matching,
    dsb_score,
    dsb_score_dataset,
    matching,
    matching_dataset,
)
from neuroseg.measure.overlap import (
    Contingency,
    contingency,
    dice,
    dice_per_class,
    pairwise_iou,
    pixel_iou,
)
from neuroseg.measure.voi_rand import (
    adapted_rand,
    adapted_rand_error,
    cremi_score,
    segmentation_scores,
    voi,
)


def _blocky_pair(seed: int = 0, shape=(12, 16, 16)) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth of boxes (with some label-0 voxels) and a perturbed segmentation."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    gt = (z // 4) * 16 + (y // 6) * 4 + (x // 5) + 1
    gt[rng.random(shape) < 0.05] = 0
    seg = gt.copy()
    seg[:, :, 7:9] += 100  # splits
    seg[seg == 2] = 1  # a merge
    seg[rng.random(shape) < 0.03] = 0  # unlabelled predicted voxels
    return seg, gt


def _reference_pairs(a: np.ndarray, b: np.ndarray) -> Counter:
    return Counter(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))


# ------------------------------------------------------------------------------------------
# contingency
# ------------------------------------------------------------------------------------------


def test_contingency_matches_brute_force_count():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (7, 9))
    b = rng.integers(0, 4, (7, 9))
    c = contingency(a, b)
    assert isinstance(c, Contingency)
    ref = _reference_pairs(a, b)
    got = dict(
        zip(zip(c.a_ids.tolist(), c.b_ids.tolist(), strict=True), c.counts.tolist(), strict=True)
    )
    assert got == dict(ref)
    assert c.counts.sum() == c.n == a.size
    np.testing.assert_array_equal(c.a_labels, np.unique(a))
    np.testing.assert_array_equal(c.a_sizes, np.bincount(a.ravel()))
    np.testing.assert_array_equal(c.b_sizes, np.bincount(b.ravel()))


def test_contingency_ignore_drops_pairs_but_keeps_full_sizes():
    a = np.array([[1, 1], [2, 2]])
    b = np.array([[1, 0], [0, 0]])
    c = contingency(a, b, ignore_b=(0,))
    # the only pair left is (1, 1) with 1 voxel; label 1 of a still has size 2
    assert c.a_ids.tolist() == [1] and c.b_ids.tolist() == [1] and c.counts.tolist() == [1]
    assert c.a_labels.tolist() == [1, 2] and c.a_sizes.tolist() == [2, 2]
    assert c.b_labels.tolist() == [1] and c.b_sizes.tolist() == [1]
    c = contingency(a, b, ignore_a=1, ignore_b=0)
    assert c.a_ids.size == 0 and c.a_labels.tolist() == [2]


def test_contingency_wide_label_range_and_dtypes_agree():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (5, 6))
    b = rng.integers(0, 3, (5, 6))
    small = contingency(a, b)
    # huge uint64 IDs (sort path), negative IDs, bool and integral floats give the same table
    big = contingency((a.astype(np.uint64) * np.uint64(2**61)), b)
    np.testing.assert_array_equal(big.a_ids, a_ids := small.a_ids.astype(np.uint64) * 2**61)
    assert a_ids.dtype == np.uint64
    np.testing.assert_array_equal(big.counts, small.counts)
    neg = contingency(a - 3, b.astype(np.int8))
    np.testing.assert_array_equal(neg.a_ids, small.a_ids - 3)
    np.testing.assert_array_equal(neg.counts, small.counts)
    flt = contingency(a.astype(np.float32), b.astype(float))
    np.testing.assert_array_equal(flt.counts, small.counts)
    boolean = contingency(a > 2, b)
    assert boolean.a_labels.tolist() == [0, 1]


def test_contingency_errors_and_no_mutation():
    a = np.array([[1, 2], [3, 4]])
    a_copy = a.copy()
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(4,\)"):
        contingency(a, np.arange(4))
    with pytest.raises(TypeError, match="non-integer"):
        contingency(a, a + 0.5)
    with pytest.raises(TypeError, match="NaN"):
        contingency(a, np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="integer label array"):
        contingency(a, np.array([["a", "b"], ["c", "d"]]))
    contingency(a, a, ignore_a=1)
    np.testing.assert_array_equal(a, a_copy)


def test_contingency_empty_arrays():
    c = contingency(np.zeros((0, 3), int), np.zeros((0, 3), int))
    assert c.n == 0 and c.counts.size == 0 and c.a_labels.size == 0


def test_pairwise_iou_golden():
    # true: 1 = cols 0-1, 2 = col 3; pred: 5 = cols 1-2, 6 = col 3
    a = np.array([[1, 1, 0, 2]])
    b = np.array([[0, 5, 5, 6]])
    a_ids, b_ids, iou, inter = pairwise_iou(a, b)
    # (1, 5): |∩| = 1, |∪| = 3; (2, 6): identical single pixels
    assert a_ids.tolist() == [1, 2] and b_ids.tolist() == [5, 6]
    np.testing.assert_allclose(iou, [1 / 3, 1.0])
    assert inter.tolist() == [1, 1]


# ------------------------------------------------------------------------------------------
# pixel metrics
# ------------------------------------------------------------------------------------------


def test_pixel_iou_and_dice_golden_and_empty():
    t = np.array([[1, 1], [1, 0]], bool)
    p = np.array([[1, 0], [1, 1]], bool)
    # |T ∩ P| = 2, |T ∪ P| = 4, |T| + |P| = 6
    assert pixel_iou(t, p) == pytest.approx(0.5)
    assert dice(t, p) == pytest.approx(4 / 6)
    empty = np.zeros((3, 3), bool)
    assert pixel_iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert pixel_iou(empty, ~empty) == 0.0 and dice(~empty, empty) == 0.0
    with pytest.raises(ValueError, match="binary mask"):
        dice(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape mismatch"):
        pixel_iou(np.ones(3, bool), np.ones(4, bool))


def test_dice_per_class():
    t = np.array([[0, 1, 1], [2, 2, 2]])
    p = np.array([[1, 1, 0], [2, 2, 0]])
    # class 1: |T|=2, |P|=2, ∩=1 -> 0.5; class 2: |T|=3, |P|=2, ∩=2 -> 0.8; class 7: absent -> 1
    assert dice_per_class(t, p, [1, 2, 7]) == pytest.approx({1: 0.5, 2: 0.8, 7: 1.0})
    assert dice_per_class(t, p, [2])[2] == pytest.approx(dice(t == 2, p == 2))


# ------------------------------------------------------------------------------------------
# instance matching
# ------------------------------------------------------------------------------------------


def test_matching_golden_4x4():
    true = np.array(
        [
            [1, 1, 0, 2],
            [1, 1, 0, 2],
            [0, 0, 0, 0],
            [3, 3, 0, 0],
        ]
    )
    pred = np.array(
        [
            [7, 7, 0, 0],
            [7, 7, 0, 0],
            [0, 0, 0, 8],
            [9, 0, 0, 0],
        ]
    )
    # 1-7 IoU 1 (hit); 2 vs nothing; 3-9 IoU 1/2 (not a hit at 0.5); 8 overlaps nothing.
    m = matching(true, pred, threshold=0.5)
    assert isinstance(m, Matching)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (1, 2, 2, 3, 3)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(1 / 3) and m.accuracy == pytest.approx(1 / 5)
    assert m.mean_matched_iou == pytest.approx(1.0)
    # just below 0.5 the IoU-1/2 pair counts
    m = matching(true, pred, threshold=0.49)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.mean_matched_iou == pytest.approx(0.75)


def test_matching_threshold_is_strict():
    true = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 1, 1, 1]])  # IoU exactly 2/4
    assert matching(true, pred, threshold=0.5).tp == 0
    assert matching(true, pred, threshold=0.4999).tp == 1
    # identical objects never hit at threshold 1.0 (IoU 1 is not > 1)
    assert matching(true, true, threshold=1.0).tp == 0
    with pytest.raises(ValueError, match="threshold"):
        matching(true, pred, threshold=1.5)


def test_matching_maximises_number_of_hits_below_half():
    # IoUs: t1-p1 = 1/5, t1-p2 = 4/6, t2-p2 = 1/6. Maximising total IoU alone would keep only
    # t1-p2 (0.667 > 0.2 + 0.167); a one-to-one matching with two hits exists and is preferred.
    true = np.array([[1, 1, 1, 1, 1, 2, 2, 0, 0, 0]])
    pred = np.array([[1, 2, 2, 2, 2, 2, 0, 0, 0, 0]])
    m = matching(true, pred, threshold=0.1)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert m.mean_matched_iou == pytest.approx((1 / 5 + 1 / 6) / 2)
    m = matching(true, pred, threshold=0.5)
    assert (m.tp, m.fp, m.fn) == (1, 1, 1)


def test_matching_empty_cases():
    z = np.zeros((3, 3), int)
    obj = z.copy()
    obj[1, 1] = 4
    both = matching(z, z)
    assert (both.tp, both.fp, both.fn) == (0, 0, 0)
    assert both.precision == both.recall == both.f1 == both.accuracy == 1.0
    only_pred = matching(z, obj)
    assert (only_pred.fp, only_pred.fn) == (1, 0)
    assert only_pred.precision == only_pred.recall == only_pred.f1 == only_pred.accuracy == 0.0
    only_true = matching(obj, z)
    assert (only_true.fp, only_true.fn) == (0, 1)
    assert only_true.precision == only_true.recall == only_true.accuracy == 0.0
    assert only_true.mean_matched_iou == 0.0


def test_matching_dataset_by_image_and_pooled():
    t1 = np.array([[1, 1, 0, 2, 2]])
    p1 = np.array([[1, 1, 0, 2, 2]])  # 2 tp
    t2 = np.array([[1, 0, 2, 0, 3]])
    p2 = np.array([[1, 0, 0, 0, 0]])  # 1 tp, 2 fn
    by_img = matching_dataset([t1, t2], [p1, p2])
    assert (by_img.tp, by_img.fp, by_img.fn, by_img.n_true, by_img.n_pred) == (3, 0, 2, 5, 3)
    # per-image accuracy 1 and 1/3; recall 1 and 1/3
    assert by_img.accuracy == pytest.approx((1 + 1 / 3) / 2)
    assert by_img.recall == pytest.approx((1 + 1 / 3) / 2)
    assert by_img.precision == pytest.approx(1.0)
    pooled = matching_dataset([t1, t2], [p1, p2], by_image=False)
    assert (pooled.tp, pooled.fp, pooled.fn) == (3, 0, 2)
    assert pooled.accuracy == pytest.approx(3 / 5) and pooled.recall == pytest.approx(3 / 5)
    assert pooled.f1 == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="same length"):
        matching_dataset([t1], [p1, p2])


def test_dsb_score_golden():
    true = np.zeros((1, 20), int)
    pred = np.zeros((1, 20), int)
    true[0, :10] = 1
    pred[0, :8] = 1  # IoU 0.8: a hit at 0.50 ... 0.75 (6 of 10 thresholds)
    true[0, 12:14] = 2  # missed: 1 fn at every threshold
    # thresholds 0.5..0.75: tp=1, fn=1 -> 1/2; 0.8..0.95: tp=0, fp=1, fn=2 -> 0
    assert dsb_score(true, pred) == pytest.approx(6 * 0.5 / 10)
    assert dsb_score(true, pred, thresholds=[0.5]) == pytest.approx(
        matching(true, pred, threshold=0.5).accuracy
    )
    z = np.zeros((2, 2), int)
    assert dsb_score(z, z) == 1.0
    assert dsb_score_dataset([true, z], [pred, z]) == pytest.approx((0.3 + 1.0) / 2)


def test_dsb_score_agrees_with_matching_per_threshold():
    seg, gt = _blocky_pair(3, shape=(1, 24, 30))
    ts = np.arange(0.1, 1.0, 0.1)
    expected = np.mean([matching(gt, seg, threshold=t).accuracy for t in ts])
    assert dsb_score(gt, seg, thresholds=ts) == pytest.approx(expected)


# ------------------------------------------------------------------------------------------
# volume metrics: golden values
# ------------------------------------------------------------------------------------------


def test_voi_and_arand_perfect():
    gt = np.array([[1, 1], [2, 2]])
    assert voi(gt, gt) == (0.0, 0.0)
    assert adapted_rand(gt, gt) == (0.0, 1.0, 1.0)
    # relabelling the segmentation changes nothing
    assert voi(gt, gt * 7 + 3) == (0.0, 0.0)
    assert cremi_score(gt, gt) == 0.0


def test_voi_and_arand_merge():
    gt = np.array([[1, 1], [2, 2]])
    seg = np.ones((2, 2), int)
    # H(seg | gt) = 0 (each gt neuron lies in one segment);
    # H(gt | seg) = -sum p log2 p(gt | seg) = -(1/2 log2 1/2 + 1/2 log2 1/2) = 1 bit
    assert voi(gt, seg) == pytest.approx((0.0, 1.0))
    # sum n_ij^2 = 2^2 + 2^2 = 8; sum s^2 = 4^2 = 16; sum t^2 = 8
    # precision = 8/16, recall = 8/8, F = 2 * 8 / (16 + 8) = 2/3
    err, prec, rec = adapted_rand(gt, seg)
    assert (err, prec, rec) == pytest.approx((1 / 3, 0.5, 1.0))
    assert adapted_rand_error(gt, seg) == pytest.approx(1 / 3)
    assert cremi_score(gt, seg) == pytest.approx(np.sqrt((0 + 1) * (1 / 3)))


def test_voi_and_arand_split():
    gt = np.ones((2, 2), int)
    seg = np.array([[1, 1], [2, 2]])
    # H(seg | gt) = 1 bit (the neuron is cut in halves), H(gt | seg) = 0
    assert voi(gt, seg) == pytest.approx((1.0, 0.0))
    # precision = 8/8, recall = 8/16
    assert adapted_rand(gt, seg) == pytest.approx((1 / 3, 1.0, 0.5))
    scores = segmentation_scores(gt, seg)
    assert scores == pytest.approx(
        {"voi_split": 1.0, "voi_merge": 0.0, "arand": 1 / 3, "cremi": np.sqrt(1 / 3)}
    )


def test_volume_metrics_ignore_gt_zero_and_keep_pred_zero():
    # gt 0 voxels are excluded entirely: the bottom row does not matter
    gt = np.array([[1, 1], [0, 0]])
    seg = np.array([[5, 5], [6, 7]])
    assert voi(gt, seg) == (0.0, 0.0) and adapted_rand_error(gt, seg) == 0.0
    # ...unless nothing is ignored: 3 segments over 4 voxels vs gt {1, 0}
    assert voi(gt, seg, ignore_true=())[0] == pytest.approx(0.5)  # 1/2 * H(6, 7 | gt 0) = 1/2
    # predicted 0 is one ordinary segment: it covers half of the neuron -> split of 1 bit
    gt = np.ones((2, 2), int)
    assert voi(gt, np.array([[0, 0], [1, 1]])) == pytest.approx((1.0, 0.0))
    # an all-zero prediction is one segment covering the neuron: perfect
    assert voi(gt, np.zeros((2, 2), int)) == (0.0, 0.0)
    # everything ignored: nothing to score
    z = np.zeros((2, 2), int)
    assert voi(z, seg) == (0.0, 0.0) and adapted_rand(z, seg) == (0.0, 1.0, 1.0)


def test_volume_metrics_validate_and_do_not_mutate():
    seg, gt = _blocky_pair(0)
    seg0, gt0 = seg.copy(), gt.copy()
    segmentation_scores(gt, seg)
    np.testing.assert_array_equal(seg, seg0)
    np.testing.assert_array_equal(gt, gt0)
    with pytest.raises(ValueError, match="true has shape"):
        voi(gt, seg[:-1])
    with pytest.raises(TypeError):
        adapted_rand(gt, seg + 0.25)


# ------------------------------------------------------------------------------------------
# volume metrics: agreement with scikit-image
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_voi_agrees_with_skimage(seed):
    seg, gt = _blocky_pair(seed)
    # skimage: variation_of_information(im_true, im_test) -> [H(test|true), H(true|test)] in
    # bits; ignore_labels applies to its first argument only and defaults to ().
    sk = sk_variation_of_information(gt, seg, ignore_labels=(0,))
    np.testing.assert_allclose(voi(gt, seg), sk, rtol=1e-10, atol=1e-12)
    sk_all = sk_variation_of_information(gt, seg)
    np.testing.assert_allclose(voi(gt, seg, ignore_true=()), sk_all, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_adapted_rand_agrees_with_skimage(seed):
    seg, gt = _blocky_pair(seed)
    sk_err, sk_first, sk_second = sk_adapted_rand_error(gt, seg)  # ignores gt 0 by default
    # skimage counts pairs of distinct voxels (sum n^2 - n); rebuild that from our table
    c = contingency(seg, gt, ignore_b=0)
    n = c.counts.sum()
    _, si = np.unique(c.a_ids, return_inverse=True)
    _, gi = np.unique(c.b_ids, return_inverse=True)
    seg_sizes = np.bincount(si, weights=c.counts)
    gt_sizes = np.bincount(gi, weights=c.counts)
    joint = np.sum(c.counts.astype(float) ** 2) - n
    prec = joint / (np.sum(seg_sizes**2) - n)
    rec = joint / (np.sum(gt_sizes**2) - n)
    # skimage 0.26 returns (error, recall, precision) in our naming (scikit-image #6485)
    assert (sk_first, sk_second) == pytest.approx((rec, prec), rel=1e-12)
    assert sk_err == pytest.approx(1 - 2 * prec * rec / (prec + rec), rel=1e-12)
    # with self-pairs included (ours) the values differ only slightly for these segment sizes
    err, p, r = adapted_rand(gt, seg)
    assert err == pytest.approx(sk_err, abs=0.01)
    assert (p, r) == pytest.approx((prec, rec), abs=0.01)
    assert p < 1.0 and r < 1.0  # the blocky pair has both merges and splits


def test_truth_first_a_known_split_and_a_known_merge_move_their_own_numbers():
    """Every metric takes (true, pred). A prediction that cuts a true neuron in two costs
    split error only; one that fuses two true neurons costs merge error only. Passed by
    keyword or by position, the same numbers come back."""
    true = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    split = np.array([[1, 1, 2, 2], [1, 1, 2, 3]])  # neuron 2 cut into 3 + 1 voxels
    merge = np.array([[1, 1, 1, 1], [1, 1, 1, 1]])  # neurons 1 and 2 fused
    s = segmentation_scores(true, split)
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))  # entropy of the 3 + 1 cut, bits
    assert s["voi_split"] == pytest.approx(0.5 * h) and s["voi_merge"] == 0.0
    m = segmentation_scores(true, merge)
    assert m["voi_merge"] == pytest.approx(1.0) and m["voi_split"] == 0.0
    assert segmentation_scores(true=true, pred=split) == s
    assert voi(true=true, pred=merge) == (m["voi_split"], m["voi_merge"])
    # Rand: a split lowers recall, a merge lowers precision
    _, p_split, r_split = adapted_rand(true, split)
    _, p_merge, r_merge = adapted_rand(true, merge)
    assert p_split == 1.0 and r_split < 1.0
    assert r_merge == 1.0 and p_merge < 1.0
    # instance matching, truth first too: the split's extra piece is a false positive, the
    # fused object matches neither neuron (IoU 0.5 is not above 0.5): two false negatives
    ms = matching(true=true, pred=split)
    assert (ms.tp, ms.fp, ms.fn) == (2, 1, 0)
    mm = matching(true=true, pred=merge)
    assert (mm.tp, mm.fp, mm.fn) == (0, 1, 2)
