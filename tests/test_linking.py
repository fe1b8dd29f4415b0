"""Tests of neuroseg.linking: linking 2D segments of neighbouring slices into 3D objects."""

from __future__ import annotations

import cc3d
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.synthetic import neurites_3d
from neuroseg.linking.graph import LINK_COLUMNS, PAIR_COLUMNS, LinkResult, relabel_from_links
from neuroseg.linking.rules import OverlapLinker, PairScorer, link_slices, relink
from neuroseg.measure.overlap import contingency
from neuroseg.measure.voi_rand import voi

# (method, threshold, linker factory) of the four methods at their working thresholds
METHODS = [
    ("overlap", 0.25, None),
    ("hungarian", 0.25, None),
    ("graph", 0.3, None),
    ("learned", 0.5, OverlapLinker),
]
METHOD_IDS = [m[0] for m in METHODS]


def _link(labels, method, threshold, linker_cls, **kwargs) -> LinkResult:
    linker = linker_cls() if linker_cls is not None else None
    return link_slices(labels, method=method, threshold=threshold, linker=linker, **kwargs)


def _known_volume(shape=(16, 48, 48), seed=3) -> np.ndarray:
    """Dense 3D labelling whose neurites are 6-connected and one 2D piece in every slice."""
    _, gt = neurites_3d(shape, seed=seed)
    n = int(gt.max())
    assert cc3d.connected_components(gt, connectivity=6).max() == n, "precondition"
    pieces = connected_components_per_slice(gt).max()
    assert pieces == n * shape[0], "precondition: a neurite vanishes or is in pieces"
    return gt


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the non-zero voxels of a and b are grouped identically (0 where both are 0)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    split, merge = voi(b, a)
    n_a = np.unique(a[a > 0]).size
    n_b = np.unique(b[b > 0]).size
    return split == 0.0 and merge == 0.0 and n_a == n_b


def _n_objects(labels: np.ndarray) -> int:
    return np.unique(labels[labels > 0]).size


def _oversegmented(seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A harder input: every slice's segments cut again at a random column (z-varying).

    The first row of every slice is background (Cellpose's stitch3D assumes some).
    """
    _, gt = neurites_3d((12, 40, 40), n=6, drift=1.5, seed=seed)
    rng = np.random.default_rng(seed)
    cut = np.empty_like(gt)
    for z in range(gt.shape[0]):
        x0 = rng.integers(10, 30)
        cut[z] = gt[z] * 2 + (np.arange(gt.shape[2])[None, :] >= x0)
    cut[:, 0, :] = 0
    return connected_components_per_slice(cut), gt


# --------------------------------------------------------------------------------------------
# putting a known volume back together
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "threshold", "linker"), METHODS, ids=METHOD_IDS)
@pytest.mark.parametrize(("shape", "seed"), [((16, 48, 48), 3), ((12, 64, 64), 11)])
def test_oracle_slices_are_put_back_exactly(method, threshold, linker, shape, seed):
    # No branches: every neurite is one 2D segment per slice with a large IoU to itself in
    # the next slice, so all four methods (including one-to-one ones) restore it exactly.
    gt = _known_volume(shape, seed)
    seg = connected_components_per_slice(gt)
    res = _link(seg, method, threshold, linker)
    assert res.labels.dtype == np.uint32
    assert _same_partition(res.labels, gt)
    assert res.n_objects == int(gt.max())
    assert np.array_equal(np.unique(res.labels), np.arange(1, gt.max() + 1))


def test_link_table_is_consistent():
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    links = link_slices(seg, method="graph", threshold=0.3).links
    assert tuple(links.columns) == LINK_COLUMNS
    assert (links["z_b"] == links["z_a"] + 1).all()
    # every id of a row lives in its slice
    present = {(z, int(i)) for z in range(seg.shape[0]) for i in np.unique(seg[z]) if i}
    for col_z, col_id in (("z_a", "id_a"), ("z_b", "id_b")):
        rows = zip(links[col_z].tolist(), links[col_id].tolist(), strict=True)
        assert all(row in present for row in rows)
    # one true continuation per segment and slice pair, and all other rows unlinked
    assert int(links["linked"].sum()) == int(gt.max()) * (gt.shape[0] - 1)
    assert np.allclose(links["score"], links["iou"])
    union = links["size_a"] + links["size_b"] - links["overlap"]
    assert np.allclose(links["iou"], links["overlap"] / union)
    order = links.sort_values(["z_a", "z_b", "id_a", "id_b"]).index
    assert np.array_equal(order, links.index)


# --------------------------------------------------------------------------------------------
# hand-computed examples
# --------------------------------------------------------------------------------------------


def _golden() -> np.ndarray:
    s0 = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])
    s1 = np.array([[3, 3, 3, 4], [3, 3, 3, 4], [0, 0, 0, 4], [0, 0, 0, 4]])
    return np.stack([s0, s1]).astype(np.uint16)


def test_golden_link_table():
    # sizes: 1 -> 6, 2 -> 6, 3 -> 6, 4 -> 4
    # overlaps: (1, 3) 4 px, (2, 3) 2 px, (2, 4) 3 px
    # IoU: 4 / (6+6-4) = 0.5, 2 / (6+6-2) = 0.2, 3 / (6+4-3) = 3/7
    labels = _golden()
    res = link_slices(labels, method="graph", threshold=0.25)
    expected = pd.DataFrame(
        {
            "z_a": [0, 0, 0],
            "z_b": [1, 1, 1],
            "id_a": np.array([1, 2, 2], np.uint16),
            "id_b": np.array([3, 3, 4], np.uint16),
            "iou": [0.5, 0.2, 3 / 7],
            "overlap": [4, 2, 3],
            "size_a": [6, 6, 6],
            "size_b": [6, 6, 4],
            "score": [0.5, 0.2, 3 / 7],
            "linked": [True, False, True],
        }
    )
    pd.testing.assert_frame_equal(res.links, expected)
    assert res.labels.tolist() == [
        [[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]],
        [[1, 1, 1, 2], [1, 1, 1, 2], [0, 0, 0, 2], [0, 0, 0, 2]],
    ]
    # at 0.45 only (1, 3) survives; 4 becomes the third object
    res = link_slices(labels, method="graph", threshold=0.45)
    assert res.links["linked"].tolist() == [True, False, False]
    assert res.labels[1].tolist() == [[1, 1, 1, 3], [1, 1, 1, 3], [0, 0, 0, 3], [0, 0, 0, 3]]
    # at 0.15 graph links everything; the one-to-one methods still pick (1, 3) and (2, 4)
    assert link_slices(labels, method="graph", threshold=0.15).links["linked"].all()
    for method in ("overlap", "hungarian"):
        linked = link_slices(labels, method=method, threshold=0.15).links["linked"]
        assert linked.tolist() == [True, False, True], method


def test_golden_overlap_linker_scores():
    labels = _golden()
    res = link_slices(labels, method="learned", linker=OverlapLinker(), threshold=0.5)
    # overlap / smaller size: 4/6, 2/6, 3/4
    assert np.allclose(res.links["score"], [4 / 6, 2 / 6, 3 / 4])
    assert np.allclose(res.links["iou"], [0.5, 0.2, 3 / 7])  # features are still the IoU
    assert res.links["linked"].tolist() == [True, False, True]


def test_cellpose_rule_differs_from_hungarian_and_graph():
    # slice 0: a1 = columns 0-3, a2 = 4-6; slice 1: b3 = 0-5, b4 = 6-9
    # IoU(1,3) = 4/6, IoU(2,3) = 2/7, IoU(2,4) = 1/6
    s0 = np.array([[1, 1, 1, 1, 2, 2, 2, 0, 0, 0]])
    s1 = np.array([[3, 3, 3, 3, 3, 3, 4, 4, 4, 4]])
    labels = np.stack([s0, s1])
    # Cellpose: a2's best partner is b3, which takes a1 instead; (2, 4) is never considered
    cp = link_slices(labels, method="overlap", threshold=0.15)
    assert cp.links["linked"].tolist() == [True, False, False]
    assert cp.n_objects == 3
    # Hungarian: (1,3) + (2,4) = 0.83 beats (2,3) alone
    hu = link_slices(labels, method="hungarian", threshold=0.15)
    assert hu.links["linked"].tolist() == [True, False, True]
    assert hu.n_objects == 2
    # graph: every pair above threshold
    gr = link_slices(labels, method="graph", threshold=0.15)
    assert gr.links["linked"].all()
    assert gr.n_objects == 1


def test_hungarian_maximises_the_summed_iou():
    # slice 0: a1 = column 0, a2 = columns 1-9; slice 1: b3 = columns 0-4, b4 = 5-6
    # IoU(1,3) = 1/5, IoU(2,3) = 4/10, IoU(2,4) = 2/9
    labels = np.stack([np.array([[1] + [2] * 9]), np.array([[3] * 5 + [4] * 2 + [0] * 3])])
    res = link_slices(labels, method="hungarian", threshold=0.15)
    assert np.allclose(res.links["iou"], [1 / 5, 4 / 10, 2 / 9])
    # (1,3) + (2,4) = 0.422 beats (2,3) alone = 0.4, although (2,3) is the best single pair
    assert res.links["linked"].tolist() == [True, False, True]
    # Cellpose takes the locally best pair
    res = link_slices(labels, method="overlap", threshold=0.15)
    assert res.links["linked"].tolist() == [False, True, False]


def test_cellpose_rule_is_many_to_one_only_on_ties():
    # a segment split into two equal halves: tied best IoU 0.5 with both
    labels = np.array([[[1, 1, 1, 1]], [[2, 2, 3, 3]]])
    assert link_slices(labels, method="overlap", threshold=0.25).n_objects == 1
    assert link_slices(labels, method="hungarian", threshold=0.25).n_objects == 2
    # two segments tie for the same partner: the smaller 2D ID wins (Cellpose's argmax)
    labels = np.array([[[5, 5, 2, 2]], [[3, 3, 3, 3]]])
    res = link_slices(labels, method="overlap", threshold=0.25)
    assert res.links[["id_a", "linked"]].values.tolist() == [[2, True], [5, False]]
    # unequal halves: only the larger one continues the ID
    labels = np.array([[[1, 1, 1, 1, 1]], [[2, 2, 2, 3, 3]]])
    res = link_slices(labels, method="overlap", threshold=0.25)
    assert res.links["linked"].tolist() == [True, False]
    assert res.labels[1, 0].tolist() == [1, 1, 1, 2, 2]


def _cellpose_stitch3d(masks: np.ndarray, stitch_threshold: float) -> np.ndarray:
    """Transcription of cellpose.utils.stitch3D (Cellpose 2-4) on dense IoU matrices."""
    masks = masks.astype(np.int64)
    # Cellpose expects labels 1..k in every slice
    for z in range(masks.shape[0]):
        _, inv = np.unique(masks[z], return_inverse=True)
        masks[z] = inv.reshape(masks[z].shape) + (0 if (masks[z] == 0).any() else 1)
    mmax = masks[0].max()
    for i in range(len(masks) - 1):
        iunique, inv = np.unique(masks[i], return_inverse=True)
        prev = inv.reshape(masks[i].shape)
        nxt = masks[i + 1]
        c = contingency(nxt, prev)
        overlap = np.zeros((nxt.max() + 1, prev.max() + 1))
        overlap[c.a_ids, c.b_ids] = c.counts
        n_next = overlap.sum(axis=1, keepdims=True)
        n_prev = overlap.sum(axis=0, keepdims=True)
        iou = (overlap / (n_next + n_prev - overlap))[1:, 1:]
        iou[iou < stitch_threshold] = 0.0
        iou[iou < iou.max(axis=0)] = 0.0
        istitch = iunique[iou.argmax(axis=1) + 1]
        ino = np.nonzero(iou.max(axis=1) == 0.0)[0]
        istitch[ino] = np.arange(mmax + 1, mmax + len(ino) + 1)
        mmax += len(ino)
        istitch = np.append(np.array(0), istitch)
        masks[i + 1] = istitch[masks[i + 1]]
    return masks


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.1, 0.25, 0.5])
def test_overlap_method_equals_cellpose_stitch3d(seed, threshold):
    seg, _ = _oversegmented(seed)
    ours = link_slices(seg, method="overlap", threshold=threshold)
    ref = _cellpose_stitch3d(seg, threshold)
    assert _same_partition(ours.labels, ref)
    # and it is not trivially the same as the other methods on this input
    if threshold == 0.1:
        graph = link_slices(seg, method="graph", threshold=threshold)
        assert not _same_partition(ours.labels, graph.labels)


@pytest.mark.parametrize("seed", [0, 1])
def test_hungarian_is_an_optimal_one_to_one_assignment(seed):
    seg, _ = _oversegmented(seed)
    threshold = 0.1
    res = link_slices(seg, method="hungarian", threshold=threshold)
    links = res.links
    linked = links[links["linked"]]
    # one-to-one: no segment has two forward or two backward links
    assert not linked.duplicated(["z_a", "id_a"]).any()
    assert not linked.duplicated(["z_b", "id_b"]).any()
    assert (linked["iou"] >= threshold).all()
    # the summed IoU equals the optimum of a dense linear_sum_assignment per slice pair
    for z in range(seg.shape[0] - 1):
        rows = links[links["z_a"] == z]
        a, ia = np.unique(rows["id_a"], return_inverse=True)
        b, ib = np.unique(rows["id_b"], return_inverse=True)
        w = np.zeros((a.size, b.size))
        w[ia, ib] = np.where(rows["iou"] >= threshold, rows["iou"], 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        best = w[r, c].sum()
        assert rows.loc[rows["linked"], "iou"].sum() == pytest.approx(best, abs=1e-9)


# --------------------------------------------------------------------------------------------
# branching
# --------------------------------------------------------------------------------------------


def test_branch_linked_by_graph_but_not_by_hungarian():
    # neurites_3d((16, 48, 48), branch=True, seed=11): neurite 1 is one 2D segment up to
    # z=10 and shows as two from z=11 on.
    _, gt = neurites_3d((16, 48, 48), branch=True, seed=11)
    seg = connected_components_per_slice(gt)
    pieces = [np.unique(seg[z][gt[z] == 1]).size for z in range(gt.shape[0])]
    assert pieces[:11] == [1] * 11 and pieces[11:] == [2] * 5, "precondition"

    graph = link_slices(seg, method="graph", threshold=0.3)
    assert np.unique(graph.labels[gt == 1]).size == 1  # one object with a branch
    assert not np.isin(graph.labels[gt != 1], graph.labels[gt == 1]).any()  # nothing else

    hung = link_slices(seg, method="hungarian", threshold=0.3)
    assert np.unique(hung.labels[gt == 1]).size == 2  # the branch is a second object
    linked = hung.links[hung.links["linked"]]
    assert not linked.duplicated(["z_a", "id_a"]).any()

    # the parent segment has two linked rows in graph, one in hungarian
    parent = int(np.unique(seg[10][gt[10] == 1])[0])
    rows = graph.links[(graph.links["z_a"] == 10) & (graph.links["id_a"] == parent)]
    assert int(rows["linked"].sum()) == 2
    rows = hung.links[(hung.links["z_a"] == 10) & (hung.links["id_a"] == parent)]
    assert int(rows["linked"].sum()) == 1


# --------------------------------------------------------------------------------------------
# gaps and empty slices
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "threshold", "linker"), METHODS, ids=METHOD_IDS)
def test_one_blank_slice_is_bridged_with_max_gap_2(method, threshold, linker):
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    seg[7] = 0
    blank_gt = gt.copy()
    blank_gt[7] = 0
    n = int(gt.max())

    split = _link(seg, method, threshold, linker, max_gap=1)
    assert split.n_objects == 2 * n  # every neurite cut in two at the blank slice
    assert voi(blank_gt, split.labels)[0] > 0

    bridged = _link(seg, method, threshold, linker, max_gap=2)
    assert _same_partition(bridged.labels, blank_gt)
    assert bridged.n_objects == n
    gap_rows = bridged.links[bridged.links["z_b"] - bridged.links["z_a"] == 2]
    assert int(gap_rows["linked"].sum()) == n
    assert set(gap_rows.loc[gap_rows["linked"], "z_a"]) == {6}


def test_gap_pairs_only_bridge_unlinked_segments():
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    res = link_slices(seg, method="graph", threshold=0.3, max_gap=2)
    gap = res.links["z_b"] - res.links["z_a"]
    # gap rows are candidates (overlapping pairs) ...
    assert (gap == 2).any()
    assert (res.links.loc[gap == 2, "iou"] >= 0.3).any()
    # ... but never linked when both segments are already continued in the slice between
    assert not res.links.loc[gap == 2, "linked"].any()
    assert _same_partition(res.labels, gt)


def test_missing_continuation_is_bridged():
    # one segment (not a whole slice) is missing: neurite 2 has a hole at z = 5
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    seg[5][gt[5] == 2] = 0
    holed = gt.copy()
    holed[5][gt[5] == 2] = 0
    n = int(gt.max())
    assert link_slices(seg, method="graph", threshold=0.3).n_objects == n + 1
    res = link_slices(seg, method="graph", threshold=0.3, max_gap=2)
    assert _same_partition(res.labels, holed)
    linked_gaps = res.links[res.links["linked"] & (res.links["z_b"] - res.links["z_a"] == 2)]
    assert len(linked_gaps) == 1
    assert linked_gaps[["z_a", "z_b"]].values.tolist() == [[4, 6]]


def test_empty_slices_in_the_middle():
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    seg[6:8] = 0  # two empty slices
    holed = gt.copy()
    holed[6:8] = 0
    n = int(gt.max())
    for max_gap in (1, 2):
        res = link_slices(seg, method="graph", threshold=0.3, max_gap=max_gap)
        assert res.n_objects == 2 * n, max_gap
        assert not res.labels[6:8].any()
    res = link_slices(seg, method="graph", threshold=0.3, max_gap=3)
    assert _same_partition(res.labels, holed)
    assert not res.labels[6:8].any()


def _check_empty_table(links: pd.DataFrame) -> None:
    assert tuple(links.columns) == LINK_COLUMNS
    assert len(links) == 0
    assert links["linked"].dtype == bool
    assert links["score"].dtype == np.float64


@pytest.mark.parametrize("method", ["overlap", "hungarian", "graph", "learned"])
def test_all_background(method):
    labels = np.zeros((3, 5, 6), np.uint16)
    linker = OverlapLinker() if method == "learned" else None
    res = link_slices(labels, method=method, linker=linker, max_gap=2)
    assert res.labels.dtype == np.uint32
    assert res.labels.shape == labels.shape
    assert not res.labels.any()
    assert res.n_objects == 0
    _check_empty_table(res.links)
    assert not relink(labels, res.links, 0.5).labels.any()
    assert not relabel_from_links(labels, res.links).any()


def test_single_slice_and_empty_volume():
    labels = np.array([[[0, 5, 5], [9, 9, 0]]])
    res = link_slices(labels, max_gap=3)
    assert res.labels.tolist() == [[[0, 1, 1], [2, 2, 0]]]
    _check_empty_table(res.links)
    res = link_slices(np.zeros((0, 4, 4), np.int32))
    assert res.labels.shape == (0, 4, 4)
    _check_empty_table(res.links)


def test_segments_without_partner_get_their_own_id():
    labels = np.zeros((3, 4, 4), np.int32)
    labels[0, :2, :2] = 1
    labels[1, 2:, 2:] = 2  # no overlap with 1
    labels[2, :2, :2] = 3  # overlaps 1 only across a gap
    assert link_slices(labels, method="graph").labels.max() == 3
    res = link_slices(labels, method="graph", max_gap=2)
    assert res.labels[0, 0, 0] == res.labels[2, 0, 0] != res.labels[1, 3, 3]
    assert res.n_objects == 2


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "threshold", "linker"), METHODS, ids=METHOD_IDS)
def test_inputs_not_modified(method, threshold, linker):
    raw, gt = neurites_3d((8, 32, 32), seed=3)
    seg = connected_components_per_slice(gt)
    seg[4] = 0
    seg_copy, raw_copy = seg.copy(), raw.copy()
    res = _link(seg, method, threshold, linker, raw=raw, max_gap=2)
    assert np.array_equal(seg, seg_copy)
    assert np.array_equal(raw, raw_copy)
    links_copy = res.links.copy()
    relink(seg, res.links, 0.9, method="graph" if method == "learned" else method)
    relabel_from_links(seg, res.links)
    pd.testing.assert_frame_equal(res.links, links_copy)
    assert np.array_equal(seg, seg_copy)


def test_repeated_ids_across_slices():
    # the ground truth itself: every slice uses the IDs 1..n again
    gt = _known_volume()
    res = link_slices(gt, method="graph", threshold=0.3)
    # objects are numbered by their first segment, here slice 0 with IDs 1..n in order
    assert np.array_equal(res.labels, gt)
    assert set(res.links["id_a"]) <= set(range(1, int(gt.max()) + 1))
    # same partition as with IDs made unique per slice
    unique = link_slices(connected_components_per_slice(gt), method="graph", threshold=0.3)
    assert _same_partition(res.labels, unique.labels)
    # an ID in two slices with no link between them is two objects
    labels = np.zeros((2, 2, 4), np.uint8)
    labels[0, :, :2] = 7
    labels[1, :, 2:] = 7
    assert link_slices(labels).labels.tolist() == [[[1, 1, 0, 0]] * 2, [[0, 0, 2, 2]] * 2]


def test_other_integer_dtypes():
    labels = _golden()
    ref = link_slices(labels, method="graph").labels
    for dtype in (np.int8, np.int64, np.uint64):
        assert np.array_equal(link_slices(labels.astype(dtype), method="graph").labels, ref)
    big = labels.astype(np.uint64) * np.uint64(2**40)  # IDs far apart: sorted lookups
    res = link_slices(big, method="graph")
    assert np.array_equal(res.labels, ref)
    assert res.links["id_a"].tolist() == [2**40, 2**41, 2**41]
    assert np.array_equal(relabel_from_links(big, res.links), ref)


# --------------------------------------------------------------------------------------------
# relinking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["graph", "overlap", "hungarian"])
@pytest.mark.parametrize("max_gap", [1, 2])
def test_relink_equals_link_slices_at_that_threshold(method, max_gap):
    seg, _ = _oversegmented(1)
    seg[5] = 0
    low = link_slices(seg, method=method, threshold=0.1, max_gap=max_gap)
    for t in (0.3, 0.6, 0.1):
        again = relink(seg, low.links, t, method=method)
        direct = link_slices(seg, method=method, threshold=t, max_gap=max_gap)
        assert np.array_equal(again.labels, direct.labels), t
        pd.testing.assert_frame_equal(again.links, direct.links)
        assert again.threshold == t and again.method == method


def test_relink_at_higher_threshold_splits_what_was_linked():
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    res = link_slices(seg, method="graph", threshold=0.3)
    hi = relink(seg, res.links, 0.9)
    assert hi.n_objects > res.n_objects
    assert int(hi.links["linked"].sum()) < int(res.links["linked"].sum())
    # a refinement: every new object lies inside one old object
    split, merge = voi(res.labels, hi.labels)
    assert split > 0 and merge == 0.0
    # back to the first threshold gives the first result
    back = relink(seg, hi.links, 0.3)
    assert np.array_equal(back.labels, res.labels)
    pd.testing.assert_frame_equal(back.links, res.links)
    # the same through relabel_from_links with linked = score >= t
    manual = res.links.assign(linked=res.links["score"] >= 0.9)
    assert np.array_equal(relabel_from_links(seg, manual), hi.labels)


def test_relink_learned_scores():
    gt = _known_volume()
    seg = connected_components_per_slice(gt)
    seg[7] = 0
    low = link_slices(seg, method="learned", linker=OverlapLinker(), threshold=0.2, max_gap=2)
    direct = link_slices(seg, method="learned", linker=OverlapLinker(), threshold=0.95, max_gap=2)
    again = relink(seg, low.links, 0.95, method="learned")
    assert np.array_equal(again.labels, direct.labels)
    pd.testing.assert_frame_equal(again.links, direct.links)


def test_relabel_from_links_by_hand():
    labels = np.array([[[1, 2, 0]], [[3, 4, 0]], [[0, 0, 5]]])
    links = pd.DataFrame(
        {"z_a": [0, 1], "z_b": [1, 2], "id_a": [2, 3], "id_b": [3, 5], "linked": [True, True]}
    )
    assert relabel_from_links(labels, links).tolist() == [[[1, 2, 0]], [[2, 3, 0]], [[0, 0, 2]]]
    bad = links.assign(id_b=[3, 6])
    with pytest.raises(ValueError, match="id_b=6 in slice 2"):
        relabel_from_links(labels, bad)
    with pytest.raises(ValueError, match="z_a=3"):
        relabel_from_links(labels, links.assign(z_a=[0, 3]))
    with pytest.raises(ValueError, match="linked"):
        relabel_from_links(labels, links.drop(columns="linked"))
    # unlinked rows with unknown segments are not looked at
    assert relabel_from_links(labels, bad.assign(linked=[True, False])).max() == 4


# --------------------------------------------------------------------------------------------
# the learned linker plug
# --------------------------------------------------------------------------------------------


class _SpyLinker:
    """Records its call and returns the OverlapLinker scores."""

    def __init__(self):
        self.calls = []

    def score_pairs(self, labels, raw, pairs, *, resolution):
        self.calls.append((labels, raw, pairs, resolution))
        return OverlapLinker().score_pairs(labels, raw, pairs, resolution=resolution)


class _NeedsRaw:
    def score_pairs(self, labels, raw, pairs, *, resolution):
        if raw is None:
            raise ValueError("this linker needs raw")
        return np.ones(len(pairs))


def test_linker_gets_labels_raw_pairs_and_resolution():
    raw, gt = neurites_3d((6, 24, 24), n=3, seed=3)
    seg = connected_components_per_slice(gt)
    spy = _SpyLinker()
    assert isinstance(spy, PairScorer) and isinstance(OverlapLinker(), PairScorer)
    res = link_slices(seg, raw=raw, method="learned", linker=spy, resolution=(30, 4, 4), max_gap=2)
    assert len(spy.calls) == 1
    labels, got_raw, pairs, resolution = spy.calls[0]
    assert np.array_equal(labels, seg) and not labels.flags.writeable
    assert got_raw is not None and np.array_equal(got_raw, raw)
    assert tuple(pairs.columns) == PAIR_COLUMNS
    pd.testing.assert_frame_equal(pairs, res.links[list(PAIR_COLUMNS)])
    assert resolution == (30.0, 4.0, 4.0)
    assert res.resolution == (30.0, 4.0, 4.0)
    assert res.method == "learned" and res.threshold == 0.25


def test_linker_errors():
    labels = _golden()
    with pytest.raises(ValueError, match="needs raw"):
        link_slices(labels, method="learned", linker=_NeedsRaw())
    raw = np.zeros(labels.shape, np.float32)
    # every pair scores 1, but segments 1 and 2 touch in slice 0: the learned rule's mutex
    # keeps them apart, so 3 joins one of them and 4 the other
    assert link_slices(labels, raw=raw, method="learned", linker=_NeedsRaw()).n_objects == 2
    assert link_slices(labels, raw=raw, method="graph", threshold=0.0).n_objects == 1

    class Wrong:
        def __init__(self, out):
            self.out = out

        def score_pairs(self, labels, raw, pairs, *, resolution):
            return self.out

    with pytest.raises(ValueError, match="one score per pair"):
        link_slices(labels, method="learned", linker=Wrong(np.ones(2)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        link_slices(labels, method="learned", linker=Wrong(np.array([0.5, 1.5, 0.2])))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        link_slices(labels, method="learned", linker=Wrong(np.array([0.5, np.nan, 0.2])))
    with pytest.raises(TypeError, match="score_pairs"):
        link_slices(labels, method="learned", linker=object())
    with pytest.raises(ValueError, match="only used with method='learned'"):
        link_slices(labels, method="graph", linker=OverlapLinker())
    with pytest.raises(ValueError, match="raw has shape"):
        link_slices(labels, raw=np.zeros((2, 4, 5)), method="learned", linker=OverlapLinker())


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def test_validation_errors():
    labels = _golden()
    with pytest.raises(TypeError, match="integer label array; got dtype float64"):
        link_slices(labels.astype(np.float64))
    with pytest.raises(ValueError, match=r"got shape \(4, 4\)"):
        link_slices(labels[0])
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 4, 4\)"):
        link_slices(labels[None])
    with pytest.raises(ValueError, match="unknown method 'nearest'"):
        link_slices(labels, method="nearest")
    with pytest.raises(ValueError, match="needs a linker"):
        link_slices(labels, method="learned")
    with pytest.raises(ValueError, match="threshold must be in"):
        link_slices(labels, threshold=1.5)
    with pytest.raises(ValueError, match="threshold must be in"):
        link_slices(labels, threshold=float("nan"))
    with pytest.raises(ValueError, match="max_gap must be >= 1"):
        link_slices(labels, max_gap=0)
    with pytest.raises(TypeError, match="max_gap"):
        link_slices(labels, max_gap=1.5)
    with pytest.raises(ValueError, match="negative"):
        link_slices(-labels.astype(np.int32))
    for bad in [(1, 1), (30, 0, 4), (30, -4, 4), "abc", (30, float("inf"), 4)]:
        with pytest.raises(ValueError, match="resolution"):
            link_slices(labels, resolution=bad)
    res = link_slices(labels, resolution=np.array([40, 4, 4]))
    assert res.resolution == (40.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="unknown method"):
        relink(labels, res.links, 0.5, method="nearest")
    with pytest.raises(ValueError, match="score"):
        relink(labels, res.links.drop(columns="score"), 0.5)


def test_resolution_does_not_change_overlap_decisions():
    seg, _ = _oversegmented(2)
    for method in ("overlap", "hungarian", "graph"):
        a = link_slices(seg, method=method)
        b = link_slices(seg, method=method, resolution=(50, 4, 4))
        assert np.array_equal(a.labels, b.labels)
        pd.testing.assert_frame_equal(a.links, b.links)
