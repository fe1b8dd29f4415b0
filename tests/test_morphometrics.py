"""Tests of neuroseg.measure.morphometrics on drawn fibres of known size.

Tolerances: a digital disc of radius r has an area within ~r pixels of pi r^2, so equivalent
diameters are good to well under a pixel; diameters are checked to 1 pixel (0.1 µm at the
0.1 µm pixel size used), myelin thickness to 1 pixel, the g-ratio to 0.01.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neuroseg.measure.morphometrics import (
    COLUMNS,
    assign_myelin,
    axon_morphometrics,
    masks_from_classes,
    match_axons,
    morphometrics_agreement,
    summary,
)

PX = 0.1  # µm per pixel
DIAM_TOL = PX  # one pixel
THICK_TOL = PX
GRATIO_TOL = 0.01


def _rings(shape, fibres):
    """Axon and myelin masks of fibres given as (cy, cx, r_axon, r_fibre) in pixels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    axon = np.zeros(shape, bool)
    fibre = np.zeros(shape, bool)
    for cy, cx, ra, rf in fibres:
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        axon |= r2 <= ra**2
        fibre |= r2 <= rf**2
    return axon, fibre & ~axon


def _row_at(df, x, y):
    """The row whose axon centroid is nearest (x, y)."""
    d = (df["x_px"] - x) ** 2 + (df["y_px"] - y) ** 2
    return df.loc[d.idxmin()]


# --------------------------------------------------------------------------------------------
# measurements on drawn rings
# --------------------------------------------------------------------------------------------


def test_single_ring_known_radii():
    axon, myelin = _rings((100, 100), [(50, 50, 20, 30)])
    df = axon_morphometrics(axon, myelin, pixel_size=PX)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 1
    r = df.iloc[0]
    assert r["axon_diam_um"] == pytest.approx(4.0, abs=DIAM_TOL)
    assert r["fiber_diam_um"] == pytest.approx(6.0, abs=DIAM_TOL)
    assert r["myelin_thickness_um"] == pytest.approx(1.0, abs=THICK_TOL)
    assert r["gratio"] == pytest.approx(2 / 3, abs=GRATIO_TOL)
    assert r["axon_minor_axis_um"] == pytest.approx(4.0, abs=DIAM_TOL)
    assert r["axon_area_um2"] == pytest.approx(np.pi * 2.0**2, rel=0.02)
    assert r["myelin_area_um2"] == pytest.approx(np.pi * (3.0**2 - 2.0**2), rel=0.02)
    assert r["fiber_area_um2"] == pytest.approx(r["axon_area_um2"] + r["myelin_area_um2"])
    assert (r["x_px"], r["y_px"]) == pytest.approx((50, 50))
    assert r["eccentricity"] < 0.1
    assert r["solidity"] > 0.95
    assert bool(r["myelinated"]) and not bool(r["touches_border"])
    assert df.attrs["overlap_px"] == 0 and df.attrs["orphan_myelin_px"] == 0
    assert df.attrs["pixel_size_um"] == PX


def test_pixel_size_scales_lengths_and_areas():
    axon, myelin = _rings((100, 100), [(50, 50, 20, 30)])
    a = axon_morphometrics(axon, myelin, pixel_size=0.1).iloc[0]
    b = axon_morphometrics(axon, myelin, pixel_size=0.2).iloc[0]
    assert b["axon_diam_um"] == pytest.approx(2 * a["axon_diam_um"])
    assert b["myelin_thickness_um"] == pytest.approx(2 * a["myelin_thickness_um"])
    assert b["fiber_area_um2"] == pytest.approx(4 * a["fiber_area_um2"])
    assert b["gratio"] == pytest.approx(a["gratio"])


def test_several_rings_each_measured():
    fibres = [(40, 40, 10, 18), (40, 120, 20, 30), (120, 60, 15, 20), (120, 130, 25, 32)]
    axon, myelin = _rings((170, 180), fibres)
    df = axon_morphometrics(axon, myelin, pixel_size=PX)
    assert len(df) == 4
    for cy, cx, ra, rf in fibres:
        r = _row_at(df, cx, cy)
        assert r["axon_diam_um"] == pytest.approx(2 * ra * PX, abs=DIAM_TOL)
        assert r["fiber_diam_um"] == pytest.approx(2 * rf * PX, abs=DIAM_TOL)
        assert r["myelin_thickness_um"] == pytest.approx((rf - ra) * PX, abs=THICK_TOL)
        assert r["gratio"] == pytest.approx(ra / rf, abs=GRATIO_TOL)
    assert not df["touches_border"].any()
    assert df["myelinated"].all()


def test_ellipse_minor_axis_and_eccentricity():
    yy, xx = np.mgrid[:100, :100]
    axon = ((yy - 50) / 10) ** 2 + ((xx - 50) / 25) ** 2 <= 1  # semi-axes 10 (y), 25 (x)
    myelin = (((yy - 50) / 15) ** 2 + ((xx - 50) / 30) ** 2 <= 1) & ~axon
    r = axon_morphometrics(axon, myelin, pixel_size=PX).iloc[0]
    assert r["axon_minor_axis_um"] == pytest.approx(2.0, abs=DIAM_TOL)
    assert r["eccentricity"] == pytest.approx(math.sqrt(1 - (10 / 25) ** 2), abs=0.02)
    assert abs(abs(r["orientation_rad"]) - np.pi / 2) < 0.05  # major axis along x (columns)


def test_touching_rings_split_by_watershed():
    # two equal fibres, centres 50 px apart with fibre radius 30: the sheaths overlap
    axon, myelin = _rings((80, 130), [(40, 40, 18, 30), (40, 90, 18, 30)])
    fib = assign_myelin(axon, myelin)
    assert fib.orphan_myelin_px == 0
    df = axon_morphometrics(axon, myelin, pixel_size=PX)
    assert len(df) == 2
    left, right = _row_at(df, 40, 40), _row_at(df, 90, 40)
    # each keeps its own half: the two myelin areas are equal and each is its ring minus half
    # of the shared lens
    assert left["myelin_area_um2"] == pytest.approx(right["myelin_area_um2"], rel=0.02)
    total = np.count_nonzero(myelin) * PX**2
    assert left["myelin_area_um2"] + right["myelin_area_um2"] == pytest.approx(total)
    # the split follows the bisector x = 65
    lab = fib.myelin
    _, xx = np.nonzero(lab)
    values = lab[lab > 0]
    left_id, right_id = int(left["axon_id"]), int(right["axon_id"])
    wrong = ((xx < 64) & (values != left_id)) | ((xx > 66) & (values != right_id))
    assert np.count_nonzero(wrong) == 0
    # a connected-components assignment would give all the myelin to one fibre; the
    # watershed keeps the thickness near the drawn 12 px
    for r in (left, right):
        assert r["myelin_thickness_um"] == pytest.approx(1.2, abs=0.2)


def test_unequal_touching_rings_nearest_axon():
    axon, myelin = _rings((90, 150), [(45, 40, 10, 35), (45, 100, 20, 30)])
    fib = assign_myelin(axon, myelin)
    dist = [ndimage.distance_transform_edt(fib.axons != i) for i in (1, 2)]
    nearest = np.where(dist[0] <= dist[1], 1, 2)
    mine = fib.myelin > 0
    agree = np.mean(fib.myelin[mine] == nearest[mine])
    assert agree > 0.98


def test_touches_border_flag():
    fibres = [(50, 50, 15, 22), (50, 110, 15, 22), (90, 150, 12, 20)]  # last one is cut
    axon, myelin = _rings((120, 160), fibres)
    df = axon_morphometrics(axon, myelin, pixel_size=PX)
    flags = {(round(r.x_px), round(r.y_px)): bool(r.touches_border) for r in df.itertuples()}
    assert flags[(50, 50)] is False and flags[(110, 50)] is False
    cut = _row_at(df, 150, 90)
    assert bool(cut["touches_border"])
    assert df["touches_border"].sum() == 1


def test_touches_border_through_myelin_only():
    # the axon is clear of the border, its myelin reaches it
    axon, myelin = _rings((60, 100), [(30, 30, 10, 30), (30, 70, 8, 12)])
    df = axon_morphometrics(axon, myelin, pixel_size=PX)
    assert not axon[0].any() and not axon[:, 0].any()
    assert bool(_row_at(df, 30, 30)["touches_border"])
    assert not bool(_row_at(df, 70, 30)["touches_border"])


# --------------------------------------------------------------------------------------------
# bad and unusual masks
# --------------------------------------------------------------------------------------------


def test_axon_without_myelin():
    axon, myelin = _rings((80, 140), [(40, 40, 15, 25)])
    bare, _ = _rings((80, 140), [(40, 100, 12, 12)])
    df = axon_morphometrics(axon | bare, myelin, pixel_size=PX)
    r = _row_at(df, 100, 40)
    assert r["myelin_area_um2"] == 0
    assert np.isnan(r["gratio"])
    assert not bool(r["myelinated"])
    assert r["fiber_diam_um"] == pytest.approx(r["axon_diam_um"])
    assert r["myelin_thickness_um"] == 0
    assert bool(_row_at(df, 40, 40)["myelinated"])


def test_orphan_myelin_ignored_and_counted():
    axon, myelin = _rings((80, 140), [(40, 40, 15, 25)])
    _, orphan = _rings((80, 140), [(40, 105, 10, 20)])  # a ring with no axon inside
    orphan |= np.pad(np.ones((3, 3), bool), ((70, 7), (130, 7)))  # and a speck
    n_orphan = int(np.count_nonzero(orphan))
    df = axon_morphometrics(axon, myelin | orphan, pixel_size=PX)
    ref = axon_morphometrics(axon, myelin, pixel_size=PX)
    assert len(df) == 1
    assert df.attrs["orphan_myelin_px"] == n_orphan
    assert df.attrs["orphan_myelin_regions"] == 2
    assert df.iloc[0]["myelin_area_um2"] == pytest.approx(ref.iloc[0]["myelin_area_um2"])


def test_overlap_axon_wins():
    axon, myelin = _rings((100, 100), [(50, 50, 20, 30)])
    ref = axon_morphometrics(axon, myelin, pixel_size=PX)
    myelin_over = myelin | axon  # myelin painted over the axon too
    df = axon_morphometrics(axon, myelin_over, pixel_size=PX)
    assert df.attrs["overlap_px"] == np.count_nonzero(axon)
    pd.testing.assert_frame_equal(df, ref, check_like=False)


def test_empty_axon_mask():
    _, myelin = _rings((60, 60), [(30, 30, 10, 20)])
    df = axon_morphometrics(np.zeros((60, 60), bool), myelin, pixel_size=PX)
    assert len(df) == 0
    assert list(df.columns) == list(COLUMNS)
    assert df["touches_border"].dtype == bool and df["gratio"].dtype == np.float64
    assert df.attrs["orphan_myelin_px"] == np.count_nonzero(myelin)
    both_empty = axon_morphometrics(np.zeros((5, 5)), np.zeros((5, 5)), pixel_size=PX)
    assert len(both_empty) == 0 and both_empty.attrs["orphan_myelin_px"] == 0
    s = summary(df)
    assert s["n_axons"] == 0 and np.isnan(s["gratio_mean"])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(10, 12\).*\(10, 11\)"):
        axon_morphometrics(np.zeros((10, 12), bool), np.zeros((10, 11), bool), pixel_size=PX)
    with pytest.raises(ValueError, match="shape"):
        morphometrics_agreement(
            np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((9, 8)), np.zeros((9, 8)), pixel_size=1
        )


@pytest.mark.parametrize("bad", [2, 128, 0.5, np.nan])
def test_non_binary_values_rejected(bad):
    axon = np.zeros((10, 10), float)
    axon[2:5, 2:5] = 1
    myelin = np.zeros((10, 10), float)
    myelin[0, 0] = bad
    with pytest.raises(ValueError, match="myelin_mask must be a binary mask"):
        axon_morphometrics(axon, myelin, pixel_size=PX)


def test_uint8_255_masks_accepted():
    axon, myelin = _rings((100, 100), [(50, 50, 20, 30)])
    ref = axon_morphometrics(axon, myelin, pixel_size=PX)
    df = axon_morphometrics(axon.astype(np.uint8) * 255, myelin.astype(np.uint8), pixel_size=PX)
    pd.testing.assert_frame_equal(df, ref)


@pytest.mark.parametrize("px", [0, -0.1, np.inf, np.nan])
def test_pixel_size_must_be_positive(px):
    axon, myelin = _rings((40, 40), [(20, 20, 5, 8)])
    with pytest.raises(ValueError, match="pixel_size"):
        axon_morphometrics(axon, myelin, pixel_size=px)


def test_axon_labels_keep_touching_axons_apart():
    axon, myelin = _rings((60, 100), [(30, 30, 15, 25), (30, 70, 15, 25)])
    labels = np.zeros(axon.shape, np.int32)
    labels[axon] = 1
    xx = np.nonzero(axon)[1]
    labels[axon] = np.where(xx < 50, 7, 9)
    joined = axon.copy()
    joined[28:33, 40:60] = True  # a bridge: one component in the mask
    labels[28:33, 40:50] = 7
    labels[28:33, 50:60] = 9
    assert len(axon_morphometrics(joined, myelin & ~joined, pixel_size=PX)) == 1
    df = axon_morphometrics(None, myelin & ~joined, pixel_size=PX, axon_labels=labels)
    assert df["axon_id"].tolist() == [7, 9]
    assert df["myelinated"].all()
    with pytest.raises(ValueError, match="disagree"):
        axon_morphometrics(axon, myelin, pixel_size=PX, axon_labels=labels)


def test_masks_from_classes():
    classes = np.array([[0, 1, 2, 3], [2, 2, 1, 0]], np.uint8)
    axon, myelin = masks_from_classes(classes)
    assert axon.tolist() == [[False, False, True, False], [True, True, False, False]]
    assert myelin.tolist() == [[False, True, False, False], [False, False, True, False]]
    with pytest.raises(ValueError, match="outside"):
        masks_from_classes(np.array([[0, 4]]))


# --------------------------------------------------------------------------------------------
# summary and agreement with manual masks
# --------------------------------------------------------------------------------------------


def test_summary_excludes_border_and_unmyelinated():
    fibres = [(40, 40, 10, 20), (40, 100, 15, 20), (75, 150, 10, 20)]  # last one cut
    axon, myelin = _rings((100, 160), fibres)
    bare, _ = _rings((100, 160), [(80, 60, 8, 8)])
    df = axon_morphometrics(axon | bare, myelin, pixel_size=PX)
    s = summary(df)
    assert s["n_axons"] == 4
    assert s["n_myelinated"] == 3
    assert s["n_touching_border"] == 1
    assert s["n_measured"] == 2
    g = [_row_at(df, 40, 40)["gratio"], _row_at(df, 100, 40)["gratio"]]
    assert s["gratio_mean"] == pytest.approx(np.mean(g))
    assert s["gratio_median"] == pytest.approx(np.median(g))
    assert s["gratio_mean"] == pytest.approx((0.5 + 0.75) / 2, abs=GRATIO_TOL)
    assert s["axon_diam_mean_um"] == pytest.approx(2.5, abs=DIAM_TOL)
    assert s["myelin_thickness_mean_um"] == pytest.approx(0.75, abs=THICK_TOL)


FIBRES = [(40, 40, 12, 20), (40, 110, 16, 24), (110, 60, 10, 18), (105, 125, 14, 22)]


def test_agreement_with_itself():
    axon, myelin = _rings((150, 160), FIBRES)
    a = morphometrics_agreement(axon, myelin, axon, myelin, pixel_size=PX)
    assert a["n_true"] == a["n_pred"] == a["n_matched"] == a["n_compared"] == 4
    assert a["gratio_mad"] == 0
    assert a["axon_diam_mad_um"] == 0
    assert a["myelin_thickness_mad_um"] == 0


def test_agreement_dilated_prediction():
    axon, myelin = _rings((150, 160), FIBRES)
    pred_axon = ndimage.binary_dilation(axon)  # axons 1 px too big, fibres unchanged
    pred_myelin = myelin & ~pred_axon
    a = morphometrics_agreement(axon, myelin, pred_axon, pred_myelin, pixel_size=PX)
    assert a["n_matched"] == a["n_compared"] == 4
    # the axon diameter grows by about 2 px, the thickness shrinks by about 1 px
    assert a["axon_diam_mad_um"] == pytest.approx(2 * PX, abs=0.5 * PX)
    assert a["myelin_thickness_mad_um"] == pytest.approx(PX, abs=0.5 * PX)
    assert 0.01 < a["gratio_mad"] < 0.1
    # every axon is too big, so the whole difference is a shift towards higher g-ratios
    assert a["gratio_bias"] == pytest.approx(a["gratio_mad"])
    eroded = ndimage.binary_erosion(axon)  # axons too small: the same shift, downwards
    b = morphometrics_agreement(axon, myelin, eroded, myelin | (axon & ~eroded), pixel_size=PX)
    assert b["n_compared"] == 4 and -0.1 < b["gratio_bias"] < -0.01


def test_agreement_missing_and_extra_axons():
    axon, myelin = _rings((150, 160), FIBRES)
    pred_axon, pred_myelin = _rings((150, 160), FIBRES[:3] + [(130, 20, 6, 10)])
    a = morphometrics_agreement(axon, myelin, pred_axon, pred_myelin, pixel_size=PX)
    assert (a["n_true"], a["n_pred"], a["n_matched"], a["n_compared"]) == (4, 4, 3, 3)
    assert a["gratio_mad"] == 0


def test_agreement_nothing_to_compare():
    z = np.zeros((20, 20), bool)
    a = morphometrics_agreement(z, z, z, z, pixel_size=PX)
    assert (a["n_true"], a["n_pred"], a["n_matched"]) == (0, 0, 0)
    assert np.isnan(a["gratio_mad"]) and np.isnan(a["gratio_bias"])


def test_match_axons_pairs_and_joins_measures():
    axon, myelin = _rings((150, 160), FIBRES)
    shifted = np.roll(axon, 2, axis=1)
    t = assign_myelin(axon, myelin)
    p = assign_myelin(shifted, np.roll(myelin, 2, axis=1))
    tdf = axon_morphometrics(axon, myelin, pixel_size=PX)
    pdf = axon_morphometrics(shifted, np.roll(myelin, 2, axis=1), pixel_size=PX)
    pairs = match_axons(t.axons, p.axons, true_df=tdf, pred_df=pdf)
    assert len(pairs) == 4
    assert (pairs["iou"] > 0.5).all() and (pairs["iou"] < 1).all()
    assert {"gratio_true", "gratio_pred", "x_px_true", "x_px_pred"} <= set(pairs.columns)
    assert np.allclose(pairs["x_px_pred"] - pairs["x_px_true"], 2)
    # a prediction that overlaps too little is not a match
    far = np.roll(axon, 20, axis=1)
    assert len(match_axons(t.axons, assign_myelin(far, np.zeros_like(far)).axons)) == 0
    with pytest.raises(ValueError, match="threshold"):
        match_axons(t.axons, p.axons, threshold=0.3)
