"""Tracking over time: the tracker (time as z), the CTC format and measures, migration."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from neuroseg.data import ctc
from neuroseg.linking.tracks import track
from neuroseg.measure import migration as mig
from neuroseg.measure.ctc_scores import tracking_scores

PX_UM = 0.5
DT_MIN = 5.0


def disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def blobs(paths, shape=(64, 96), radius=5):
    """A (t, y, x) stack with one disc per path (a list of (y, x) or None per frame)."""
    n = len(paths[0])
    stack = np.zeros((n, *shape), np.uint16)
    for k, path in enumerate(paths, 1):
        for t, c in enumerate(path):
            if c is not None:
                stack[t][disc(shape, c, radius)] = k
    return stack


def test_moving_blobs_give_back_speed_direction_persistence_and_saltations():
    # blob 1: right at 2 px/frame = 1 µm per 5 min = 0.2 µm/min, a straight line
    right = [(20, 10 + 2 * t) for t in range(12)]
    # blob 2: still for 4 steps, then up 6 px in one frame (a saltation), still, then again
    xs, y = [], 50
    for t in range(12):
        if t in (5, 10):
            y -= 6
        xs.append((y, 70))
    result = track(blobs([right, xs]))
    assert result.divisions == 0
    assert len(result.lineage) == 2
    table = mig.track_table(result.labels, result.lineage, pixel_size_um=PX_UM, frame_minutes=DT_MIN)
    cells = mig.migration(table, result.lineage).set_index("cell")
    first = cells.loc[int(result.labels[0][20, 10])]
    assert first.mean_speed_um_min == pytest.approx(0.2, abs=1e-6)
    assert first.direction_deg == pytest.approx(0.0, abs=1e-6)
    assert first.persistence == pytest.approx(1.0)
    assert first.saltations == 0
    second = cells.loc[int(result.labels[0][50, 70])]
    assert second.direction_deg == pytest.approx(90.0)  # up in the image
    assert second.net_um == pytest.approx(12 * PX_UM)
    assert second.saltations == 2
    assert second.saltations_per_h == pytest.approx(2 / (11 * DT_MIN / 60))


def test_a_division_is_linked_as_one_parent_with_two_daughters():
    shape = (40, 60)
    stack = np.zeros((8, *shape), np.uint16)
    for t in range(4):
        stack[t][disc(shape, (20, 30), 7)] = 3
    for t in range(4, 8):
        d = 3 + t
        stack[t][disc(shape, (20, 30 - d), 5)] = 1
        stack[t][disc(shape, (20, 30 + d), 5)] = 2
    stack[4][disc(shape, (20, 23), 5)] = 1  # the daughters touch the mother's place
    stack[4][disc(shape, (20, 37), 5)] = 2
    for method in ("overlap", "laptrack"):
        result = track(stack, method=method, max_distance=20.0)
        lin = result.lineage
        assert result.divisions == 1, method
        mother = lin[lin.parent == 0]
        assert mother[["begin", "end"]].values.tolist() == [[0, 3]], method
        daughters = lin[lin.parent == int(mother.track.iloc[0])]
        assert daughters[["begin", "end"]].values.tolist() == [[4, 7], [4, 7]], method


def test_a_daughter_beside_its_mother_is_found_within_the_division_distance():
    shape = (40, 80)
    stack = np.zeros((6, *shape), np.uint16)
    for t in range(3):
        stack[t][disc(shape, (20, 30), 6)] = 1
    for t in range(3, 6):
        stack[t][disc(shape, (20, 28), 5)] = 1      # one daughter on the mother's place
        stack[t][disc(shape, (20, 50), 5)] = 2      # one beside it, 20 px away: no overlap
    assert track(stack).divisions == 0
    assert track(stack, division_distance=15.0).divisions == 0
    result = track(stack, division_distance=25.0)
    assert result.divisions == 1
    assert result.links.kind.tolist().count("division") == 1
    with pytest.raises(ValueError, match="division_distance"):
        track(stack, division_distance=-1.0)


def test_a_gap_of_one_frame_is_bridged_and_the_cell_continues():
    path = [(30, 20 + t) for t in range(7)]
    path[3] = None  # missed in frame 3
    stack = blobs([path])
    result = track(stack, max_gap=2)
    lin = result.lineage
    assert lin[["begin", "end", "parent"]].values.tolist() == [[0, 2, 0], [4, 6, 1]]
    assert result.links.kind.tolist().count("gap") == 1
    assert set(mig.cell_of_track(lin).values()) == {1}
    # without gap closing the track is lost and a new one starts
    lost = track(stack, max_gap=1).lineage
    assert lost.parent.tolist() == [0, 0]


def test_thresholds_and_short_daughters_reject_links():
    path = [(30, 20 + 3 * t) for t in range(4)]
    stack = blobs([path], radius=3)
    assert len(track(stack, threshold=0.9).lineage) == 4  # no IoU that high: four tracks
    assert len(track(stack, threshold=0.05).lineage) == 1


def test_ctc_files_round_trip_with_a_perfect_score(tmp_path):
    right = [(20, 10 + 2 * t) for t in range(6)]
    still = [(45, 70)] * 6
    stack = blobs([right, still])
    result = track(stack)
    gt = ctc.write_ground_truth(tmp_path / "GT", result.labels, result.lineage,
                                seg={2: result.labels[2]})
    res = ctc.write_result(tmp_path / "RES", result.labels, result.lineage)
    assert sorted(p.name for p in res.iterdir())[:2] == ["mask000.tif", "mask001.tif"]
    assert ctc.read_lineage(res / "res_track.txt").equals(result.lineage)
    scores = tracking_scores(gt, res)
    for m in ("SEG", "DET", "TRA", "LNK", "CHOTA"):
        assert scores[m] == pytest.approx(1.0), m
    assert scores["valid"] == 1
    # a result that loses a link scores lower
    broken = result.lineage.copy()
    labels = result.labels.copy()
    labels[3:][labels[3:] == 1] = 3
    broken = ctc.lineage_from_labels(labels)
    res2 = ctc.write_result(tmp_path / "RES2", labels, broken)
    assert tracking_scores(gt, res2)["LNK"] < 1.0


def test_cut_part_keeps_a_later_division_and_rebases():
    stack = np.zeros((6, 1, 3), np.uint16)
    stack[:3, 0, 0] = 1
    stack[3:, 0, 1] = 2
    stack[3:, 0, 2] = 3
    lin = pd.DataFrame({"track": [1, 2, 3], "begin": [0, 3, 3], "end": [2, 5, 5],
                        "parent": [0, 1, 1]})
    part, plin = ctc.cut_part(stack, lin, start=2)
    assert part.shape[0] == 4
    assert plin.values.tolist() == [[1, 0, 0, 0], [2, 1, 3, 1], [3, 1, 3, 1]]
    later, llin = ctc.cut_part(stack, lin, start=3)
    assert llin.values.tolist() == [[2, 0, 2, 0], [3, 0, 2, 0]]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"labels": np.zeros((4, 4), np.uint8)}, ValueError, "(t, y, x)"),
        ({"method": "kalman"}, ValueError, "method must be one of"),
        ({"method": "learned"}, ValueError, "needs linker="),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"max_gap": 0}, ValueError, "max_gap"),
        ({"resolution": (1, 0, 1)}, ValueError, "resolution"),
    ],
)
def test_bad_tracking_input_gets_a_clear_error(kwargs, error, words):
    args = {"labels": np.zeros((3, 4, 4), np.uint8), **kwargs}
    labels = args.pop("labels")
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        track(labels, **args)


def test_bad_ctc_input_gets_a_clear_error_and_leaves_nothing(tmp_path):
    too_big = np.full((2, 2, 2), 70000, np.uint32)
    lin = pd.DataFrame({"track": [70000], "begin": [0], "end": [1], "parent": [0]})
    with pytest.raises(ValueError, match="uint16"):
        ctc.write_result(tmp_path / "out", too_big, lin)
    assert not os.listdir(tmp_path)
    bad = tmp_path / "man_track.txt"
    bad.write_text("1 0 3\n")
    with pytest.raises(ValueError, match="four integers"):
        ctc.read_lineage(bad)
    with pytest.raises(ValueError, match="not after its parent"):
        ctc.check_lineage(pd.DataFrame({"track": [1, 2], "begin": [0, 1], "end": [2, 3],
                                        "parent": [0, 1]}))
    with pytest.raises(FileNotFoundError, match="ground-truth"):
        tracking_scores(tmp_path / "nothing", tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pause_speed": 0.5, "move_speed": 0.3}, "pause_speed <= move_speed"),
        ({"min_pause_steps": 0}, ">= 1"),
    ],
)
def test_bad_saltation_thresholds_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        mig.saltation_events([0.0, 1.0], **kwargs)


@pytest.mark.data
@pytest.mark.slow
def test_tracking_the_true_markers_of_gowt1_recovers_their_tracks(tmp_path):
    from neuroseg.data.catalogue import require
    from neuroseg.data.readers import read_ctc_frames

    root = require("ctc_fluo_n2dh_gowt1_01")
    _, markers = read_ctc_frames(root / "01_GT" / "TRA", kind="tra", frames=range(40, 56))
    lineage = ctc.read_lineage(root / "01_GT" / "TRA" / "man_track.txt")
    _, full = read_ctc_frames(root / "01_GT" / "TRA", kind="tra")
    part, plin = ctc.cut_part(full, lineage, start=40, stop=56)
    assert np.array_equal(part, markers)
    # the division of track 10 at frame 47 is in this part
    assert (plin.parent == 10).sum() == 2
    small = part[:, ::2, ::2]
    gt = ctc.write_ground_truth(tmp_path / "GT", small, plin)
    overlap = track(small)
    res = ctc.write_result(tmp_path / "overlap", overlap.labels, overlap.lineage)
    scores = tracking_scores(gt, res)
    assert scores["TRA"] > 0.95
    assert scores["divisions_true"] == 1
    # one daughter's marker lies beside the mother's, not on it: only a distance finds it
    assert scores["divisions_found"] == 0
    for name, result in {
        "laptrack": track(small, method="laptrack", max_distance=35.0),
        "near": track(small, division_distance=35.0),
    }.items():
        res = ctc.write_result(tmp_path / name, result.labels, result.lineage)
        assert tracking_scores(gt, res)["divisions_found"] == 1, name


def test_partial_annotations_are_ignored_in_the_loss_and_segments_named_by_markers():
    from neuroseg.experiments import soma_tracking

    seg = np.zeros((1, 12), np.uint16)
    seg[0, 1:4] = 7                      # annotated nucleus
    markers = np.zeros((1, 12), np.uint16)
    markers[0, 2] = 5                    # its marker
    markers[0, 8] = 6                    # a nucleus nobody annotated
    labels = ctc.partial_labels(seg, markers, margin=1)
    assert labels[0, 7:10].tolist() == [ctc.IGNORE] * 3
    targets = soma_tracking.masked_targets(labels)
    assert targets.shape == (4, 1, 12)
    assert targets[2:, 0, 7:10].sum() == 0 and targets[2:, 0, :7].all()
    assert targets[0, 0, 1:4].tolist() == [1, 1, 1]
    # predicted segments take the marker they overlap most; one on no marker gets 0
    pred = np.array([[[1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 0, 3]]], np.uint16)
    named = soma_tracking.pseudo_truth(pred, markers[None])
    assert named[0, 0, [0, 8, 11]].tolist() == [5, 6, 0]
