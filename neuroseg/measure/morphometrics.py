"""Per-axon morphometrics from axon and myelin masks (the AxonDeepSeg measurements).

A segmentation of a nerve cross-section into background, myelin and axon (see
:data:`neuroseg.data.readers.AXON_CLASSES`) is turned into one row of measurements per axon:

1. :func:`assign_myelin` — axons are the connected components of the axon mask (or given
   instance labels); every myelin pixel is given to its nearest axon by a seeded watershed,
   from the axons, on the distance to the nearest axon pixel, restricted to the myelin (∪ axon)
   mask. A myelin sheath shared by two touching fibres is thus split roughly along the
   line of equal distance, and myelin that no axon touches (through myelin) is left out.
2. :func:`axon_morphometrics` — sizes and shapes in µm with
   :func:`skimage.measure.regionprops_table` (no Python loop over axons).
3. :func:`summary` — counts and means for one image; :func:`match_axons` and
   :func:`morphometrics_agreement` compare measurements from a predicted segmentation with
   those from the manual one (axons matched at IoU > 0.5 with
   :func:`neuroseg.measure.overlap.pairwise_iou`).

Conventions
-----------
- ``pixel_size`` is in µm per pixel (square pixels), positive and finite.
- Masks are 2-D, bool or numbers whose values are all in {0, 1, 255}; anything else raises
  ``ValueError`` (threshold a probability map first). Masks compared with each other must
  have the same shape, else ``ValueError`` names both shapes.
- Connectivity is 8 (full) for axon components, for the myelin watershed and for orphan
  myelin regions.
- A pixel marked both axon and myelin is axon (``df.attrs["overlap_px"]`` counts them).
- Diameters are those of the circle of the same area. ``myelin_thickness_um`` is
  ``(fiber_diam_um - axon_diam_um) / 2`` and ``gratio`` is ``axon_diam_um / fiber_diam_um``.
- An axon with no myelin assigned is ``myelinated = False`` with ``myelin_area_um2 = 0``,
  ``fiber_* = axon_*``, ``myelin_thickness_um = 0`` and ``gratio = NaN`` (a g-ratio is
  defined for myelinated fibres only; 1.0 would bias means towards thin myelin).
- ``touches_border`` is True when the axon or its myelin has a pixel on the image border:
  such a fibre is cut and its sizes are underestimated. :func:`summary` and
  :func:`morphometrics_agreement` leave those fibres out of their means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops_table
from skimage.segmentation import watershed

from neuroseg.data.labels import as_labels, require_same_shape
from neuroseg.data.readers import AXON_CLASSES
from neuroseg.data.resample import check_size
from neuroseg.measure.overlap import pairwise_iou

__all__ = [
    "COLUMNS",
    "Fibers",
    "assign_myelin",
    "axon_morphometrics",
    "masks_from_classes",
    "match_axons",
    "matched_morphometrics",
    "morphometrics_agreement",
    "pair_differences",
    "summary",
]

#: Columns of :func:`axon_morphometrics`, in order.
COLUMNS = (
    "axon_id",
    "x_px",
    "y_px",
    "axon_area_um2",
    "axon_diam_um",
    "axon_minor_axis_um",
    "myelin_area_um2",
    "fiber_area_um2",
    "fiber_diam_um",
    "myelin_thickness_um",
    "gratio",
    "eccentricity",
    "orientation_rad",
    "solidity",
    "touches_border",
    "myelinated",
)
_INT_COLUMNS = ("axon_id",)
_BOOL_COLUMNS = ("touches_border", "myelinated")

_AXON = AXON_CLASSES["axon"]
_MYELIN = AXON_CLASSES["myelin"]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_pixel_size(pixel_size: float) -> float:
    return check_size(pixel_size, "pixel_size")


def _as_binary(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return a 2-D bool mask; accept bool, or numbers whose values are all 0, 1 or 255."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask; got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a binary mask; got dtype {arr.dtype}")
    bad = (arr != 0) & (arr != 1) & (arr != 255)
    if bad.any():
        values = np.unique(arr[bad])
        shown = ", ".join(f"{v:g}" for v in values[:5].tolist())
        more = f" (and {values.size - 5} more)" if values.size > 5 else ""
        raise ValueError(
            f"{name} must be a binary mask (bool, or values in {{0, 1, 255}}); it has "
            f"{int(bad.sum())} pixels with other values: {shown}{more} (threshold a "
            "probability map first)"
        )
    return arr != 0


# --------------------------------------------------------------------------------------------
# axons and their myelin
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fibers:
    """Axons with the myelin assigned to them; see :func:`assign_myelin`.

    Attributes
    ----------
    axons : ndarray of int32
        Axon instance labels (0 = not axon). These IDs are the ``axon_id`` of
        :func:`axon_morphometrics`.
    fibers : ndarray of int32
        Each axon's label on the axon and on the myelin assigned to it (0 elsewhere).
    overlap_px : int
        Pixels marked both axon and myelin in the input (counted as axon).
    orphan_myelin_px : int
        Myelin pixels not connected (through myelin) to any axon; left unassigned.
    orphan_myelin_regions : int
        Connected regions of orphan myelin.
    """

    axons: np.ndarray
    fibers: np.ndarray
    overlap_px: int
    orphan_myelin_px: int
    orphan_myelin_regions: int

    @property
    def myelin(self) -> np.ndarray:
        """Myelin labelled with the ID of the axon it belongs to (0 elsewhere)."""
        return np.where(self.fibers != self.axons, self.fibers, 0)


def assign_myelin(
    axon_mask: npt.ArrayLike | None,
    myelin_mask: npt.ArrayLike,
    *,
    axon_labels: npt.ArrayLike | None = None,
) -> Fibers:
    """Label the axons and give every myelin pixel to its nearest axon.

    Parameters
    ----------
    axon_mask : array_like of bool or None
        2-D axon mask (bool, or values in {0, 1, 255}). May be None when ``axon_labels`` is
        given.
    myelin_mask : array_like of bool
        2-D myelin mask of the same shape.
    axon_labels : array_like of int, optional
        Axon instances (0 = background), e.g. to keep touching axons apart. If omitted, the
        axons are the 8-connected components of ``axon_mask``, numbered 1..N in raster
        order. If both are given, ``axon_labels > 0`` must equal ``axon_mask``.

    Returns
    -------
    Fibers
        The axon labels, the fibre labels (axon + its myelin) and diagnostics.

    Raises
    ------
    ValueError
        For masks of different shapes, non-binary masks, negative labels, or an
        ``axon_labels`` that disagrees with ``axon_mask``.

    Notes
    -----
    Pixels marked both axon and myelin are axon. The myelin is split among the axons by
    :func:`skimage.segmentation.watershed` seeded with the axon labels, on the Euclidean
    distance to the nearest axon pixel, with the myelin ∪ axon mask as its mask: each myelin
    pixel goes to the axon whose front reaches it first, which for a shared sheath is the
    nearer axon. Myelin not connected to any axon is left out and counted.

    Examples
    --------
    >>> axon = np.zeros((5, 8), bool)
    >>> axon[2, 1] = axon[2, 6] = True
    >>> myelin = np.zeros((5, 8), bool)
    >>> myelin[1:4, :] = True
    >>> assign_myelin(axon, myelin).fibers[2].tolist()
    [1, 1, 1, 1, 2, 2, 2, 2]
    """
    myelin = _as_binary(myelin_mask, "myelin_mask")
    if axon_labels is None:
        if axon_mask is None:
            raise ValueError("give axon_mask or axon_labels")
        axon = _as_binary(axon_mask, "axon_mask")
        require_same_shape(axon, myelin, "axon_mask", "myelin_mask")
        axons = sk_label(axon, connectivity=2).astype(np.int32, copy=False)
    else:
        labels = as_labels(axon_labels, "axon_labels")
        if labels.ndim != 2:
            raise ValueError(f"axon_labels must be 2-D; got shape {labels.shape}")
        require_same_shape(labels, myelin, "axon_labels", "myelin_mask")
        if labels.size and labels.min() < 0:
            raise ValueError("axon_labels must be >= 0 (0 = background)")
        if labels.size and int(labels.max()) > np.iinfo(np.int32).max:
            raise ValueError("axon_labels must fit in int32")
        axon = labels > 0
        if axon_mask is not None:
            given = _as_binary(axon_mask, "axon_mask")
            require_same_shape(given, myelin, "axon_mask", "myelin_mask")
            differ = int(np.count_nonzero(given != axon))
            if differ:
                raise ValueError(
                    f"axon_labels > 0 and axon_mask disagree on {differ} pixels; pass one of "
                    "them (axon_mask=None to use the labels alone)"
                )
        axons = labels.astype(np.int32, copy=False)

    overlap = axon & myelin
    overlap_px = int(np.count_nonzero(overlap))
    myelin = myelin & ~axon
    if not axon.any():
        fibers = np.zeros_like(axons)
    else:
        distance = ndimage.distance_transform_edt(~axon)
        fibers = watershed(distance, markers=axons, mask=axon | myelin, connectivity=2)
        fibers = fibers.astype(np.int32, copy=False)
    orphan = myelin & (fibers == 0)
    orphan_px = int(np.count_nonzero(orphan))
    regions = int(sk_label(orphan, connectivity=2).max()) if orphan_px else 0
    return Fibers(
        axons=axons,
        fibers=fibers,
        overlap_px=overlap_px,
        orphan_myelin_px=orphan_px,
        orphan_myelin_regions=regions,
    )


def _empty_table() -> pd.DataFrame:
    data = {}
    for c in COLUMNS:
        dtype = np.int64 if c in _INT_COLUMNS else bool if c in _BOOL_COLUMNS else np.float64
        data[c] = np.zeros(0, dtype)
    return pd.DataFrame(data, columns=list(COLUMNS))


def _measure(f: Fibers, pixel_size: float) -> pd.DataFrame:
    """The morphometrics table of ``f`` (see :func:`axon_morphometrics`)."""
    px = pixel_size
    shape = f.axons.shape
    attrs = {
        "pixel_size_um": px,
        "image_shape": tuple(int(n) for n in shape),
        "overlap_px": f.overlap_px,
        "orphan_myelin_px": f.orphan_myelin_px,
        "orphan_myelin_regions": f.orphan_myelin_regions,
    }
    props = regionprops_table(
        f.axons,
        properties=(
            "label",
            "centroid",
            "area",
            "axis_minor_length",
            "eccentricity",
            "orientation",
            "solidity",
        ),
    )
    ids = props["label"].astype(np.int64)
    if ids.size == 0:
        df = _empty_table()
        df.attrs.update(attrs)
        return df

    fiber_px = np.bincount(f.fibers.ravel(), minlength=int(ids.max()) + 1)[ids]
    axon_px = props["area"].astype(np.float64)
    myelin_px = fiber_px - axon_px
    border = np.concatenate([f.fibers[0], f.fibers[-1], f.fibers[:, 0], f.fibers[:, -1]])
    touches = np.isin(ids, border)

    axon_area = axon_px * px**2
    fiber_area = fiber_px * px**2
    axon_diam = np.sqrt(4 * axon_area / np.pi)
    fiber_diam = np.sqrt(4 * fiber_area / np.pi)
    myelinated = myelin_px > 0
    gratio = np.full(ids.size, np.nan)
    gratio[myelinated] = axon_diam[myelinated] / fiber_diam[myelinated]

    df = pd.DataFrame(
        {
            "axon_id": ids,
            "x_px": props["centroid-1"],
            "y_px": props["centroid-0"],
            "axon_area_um2": axon_area,
            "axon_diam_um": axon_diam,
            "axon_minor_axis_um": props["axis_minor_length"] * px,
            "myelin_area_um2": myelin_px * px**2,
            "fiber_area_um2": fiber_area,
            "fiber_diam_um": fiber_diam,
            "myelin_thickness_um": (fiber_diam - axon_diam) / 2,
            "gratio": gratio,
            "eccentricity": props["eccentricity"],
            "orientation_rad": props["orientation"],
            "solidity": props["solidity"],
            "touches_border": touches,
            "myelinated": myelinated,
        },
        columns=list(COLUMNS),
    )
    df.attrs.update(attrs)
    return df


def axon_morphometrics(
    axon_mask: npt.ArrayLike | None,
    myelin_mask: npt.ArrayLike,
    *,
    pixel_size: float,
    axon_labels: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Measure every axon and its myelin sheath.

    Parameters
    ----------
    axon_mask : array_like of bool or None
        2-D axon mask (bool, or values in {0, 1, 255}); may be None if ``axon_labels`` is
        given.
    myelin_mask : array_like of bool
        2-D myelin mask of the same shape.
    pixel_size : float
        µm per pixel.
    axon_labels : array_like of int, optional
        Axon instances to use instead of the connected components of ``axon_mask``.

    Returns
    -------
    pandas.DataFrame
        One row per axon, sorted by ``axon_id`` (the labels of :func:`assign_myelin`), with
        the columns of :data:`COLUMNS`:

        ``axon_id``; ``x_px``, ``y_px`` (axon centroid, column and row, in pixels);
        ``axon_area_um2``; ``axon_diam_um`` (diameter of the circle of the same area);
        ``axon_minor_axis_um`` (minor axis of the ellipse with the same second moments);
        ``myelin_area_um2`` (myelin assigned to the axon); ``fiber_area_um2`` (axon + its
        myelin); ``fiber_diam_um`` (equivalent circle of the fibre); ``myelin_thickness_um``
        (``(fiber_diam - axon_diam) / 2``); ``gratio`` (``axon_diam / fiber_diam``; NaN when
        not myelinated); ``eccentricity``, ``orientation_rad`` (angle between the row axis
        and the major axis, in [-pi/2, pi/2], as in scikit-image), ``solidity`` (all of the
        axon); ``touches_border`` (the axon or its myelin touches the image border);
        ``myelinated`` (at least one myelin pixel assigned).

        ``df.attrs`` holds diagnostics: ``pixel_size_um``, ``image_shape``, ``overlap_px``
        (pixels marked both axon and myelin, counted as axon), ``orphan_myelin_px`` and
        ``orphan_myelin_regions`` (myelin connected to no axon, ignored).

        An empty axon mask gives an empty DataFrame with these columns (and the attrs).

    Raises
    ------
    ValueError
        Masks of different shapes (both shapes named), non-binary masks, non-positive
        ``pixel_size``; see also :func:`assign_myelin`.

    Examples
    --------
    >>> yy, xx = np.mgrid[:80, :80]
    >>> r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    >>> df = axon_morphometrics(r2 <= 20**2, (r2 > 20**2) & (r2 <= 30**2), pixel_size=0.1)
    >>> df[["axon_diam_um", "fiber_diam_um", "gratio"]].round(1).values.tolist()
    [[4.0, 6.0, 0.7]]
    """
    px = _check_pixel_size(pixel_size)
    return _measure(assign_myelin(axon_mask, myelin_mask, axon_labels=axon_labels), px)


def masks_from_classes(classes: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Axon and myelin masks from an AxonDeepSeg class image.

    Parameters
    ----------
    classes : array_like of int
        2-D class image with the values of :data:`neuroseg.data.readers.AXON_CLASSES` (0 background,
        1 myelin, 2 axon, 3 unmyelinated axon).

    Returns
    -------
    axon_mask, myelin_mask : ndarray of bool
        ``classes == 2`` and ``classes == 1``. Unmyelinated axons (3) are in neither: the
        morphometrics are of myelinated fibres.

    Raises
    ------
    ValueError
        If the image is not 2-D or holds values outside the classes.

    Examples
    --------
    >>> axon, myelin = masks_from_classes([[0, 1, 2, 3]])
    >>> axon.tolist(), myelin.tolist()
    ([[False, False, True, False]], [[False, True, False, False]])
    """
    arr = as_labels(classes, "classes")
    if arr.ndim != 2:
        raise ValueError(f"classes must be a 2-D class image; got shape {arr.shape}")
    known = np.asarray(sorted(AXON_CLASSES.values()))
    bad = ~np.isin(arr, known)
    if bad.any():
        raise ValueError(
            f"classes holds values {np.unique(arr[bad])[:5].tolist()} outside the AxonDeepSeg "
            f"classes {AXON_CLASSES}"
        )
    return arr == _AXON, arr == _MYELIN


# --------------------------------------------------------------------------------------------
# summaries and comparison with manual segmentations
# --------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, name: str, columns=COLUMNS) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing} (use axon_morphometrics)")


def _measured(df: pd.DataFrame) -> np.ndarray:
    return df["myelinated"].to_numpy(bool) & ~df["touches_border"].to_numpy(bool)


def summary(df: pd.DataFrame) -> dict:
    """Counts and mean measures of one image's :func:`axon_morphometrics` table.

    Parameters
    ----------
    df : pandas.DataFrame
        Output of :func:`axon_morphometrics`.

    Returns
    -------
    dict
        ``n_axons``; ``n_myelinated``; ``n_touching_border``; ``n_measured`` (myelinated
        axons whose fibre does not touch the border); and over those measured fibres:
        ``gratio_mean``, ``gratio_median``, ``gratio_std`` (population), ``axon_diam_mean_um``,
        ``myelin_thickness_mean_um``. Means are NaN when no fibre is measured.

    Examples
    --------
    >>> yy, xx = np.mgrid[:80, :80]
    >>> r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    >>> df = axon_morphometrics(r2 <= 20**2, (r2 > 20**2) & (r2 <= 30**2), pixel_size=0.1)
    >>> s = summary(df)
    >>> s["n_measured"], round(s["gratio_mean"], 2)
    (1, 0.67)
    """
    _check_columns(df, "df")
    keep = _measured(df)
    sel = df[keep]

    def mean(col: str) -> float:
        return float(sel[col].mean()) if len(sel) else math.nan

    return {
        "n_axons": len(df),
        "n_myelinated": int(df["myelinated"].sum()),
        "n_touching_border": int(df["touches_border"].sum()),
        "n_measured": int(keep.sum()),
        "gratio_mean": mean("gratio"),
        "gratio_median": float(sel["gratio"].median()) if len(sel) else math.nan,
        "gratio_std": float(sel["gratio"].std(ddof=0)) if len(sel) else math.nan,
        "axon_diam_mean_um": mean("axon_diam_um"),
        "myelin_thickness_mean_um": mean("myelin_thickness_um"),
    }


def match_axons(
    true_labels: npt.ArrayLike,
    pred_labels: npt.ArrayLike,
    *,
    true_df: pd.DataFrame | None = None,
    pred_df: pd.DataFrame | None = None,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Pair predicted axons with true axons whose IoU exceeds ``threshold``.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int
        Axon instance labels of the same shape (0 = background), e.g. ``assign_myelin(...).axons``
        of the manual and of the predicted masks.
    true_df, pred_df : pandas.DataFrame, optional
        Their :func:`axon_morphometrics` tables (``axon_id`` = label). When given, every
        column except ``axon_id`` is joined to the pairs with the suffix ``_true`` (``_pred``).
    threshold : float, optional
        A pair matches when its IoU is **strictly greater** than this; must be in [0.5, 1]
        so that matches are one-to-one without an assignment problem (an axon cannot have
        IoU > 0.5 with two disjoint axons).

    Returns
    -------
    pandas.DataFrame
        One row per matched pair, sorted by ``true_id``: ``true_id``, ``pred_id``, ``iou``
        (computed with :func:`neuroseg.measure.overlap.pairwise_iou`), then the joined measures.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2]])
    >>> p = np.array([[3, 3, 0, 0, 4]])
    >>> match_axons(t, p).values.tolist()
    [[1.0, 3.0, 1.0]]
    """
    t = float(threshold)
    if not 0.5 <= t <= 1.0:
        raise ValueError(f"threshold must be in [0.5, 1] (one-to-one matching); got {threshold}")
    a_ids, b_ids, iou, _ = pairwise_iou(true_labels, pred_labels)
    hit = iou > t
    pairs = pd.DataFrame(
        {
            "true_id": a_ids[hit].astype(np.int64),
            "pred_id": b_ids[hit].astype(np.int64),
            "iou": iou[hit],
        }
    )
    for df, side, key in ((true_df, "true", "true_id"), (pred_df, "pred", "pred_id")):
        if df is None:
            continue
        if "axon_id" not in df.columns:
            raise ValueError(f"{side}_df lacks the column 'axon_id' (use axon_morphometrics)")
        cols = {c: f"{c}_{side}" for c in df.columns if c != "axon_id"}
        right = df.rename(columns={"axon_id": key, **cols})
        right[key] = right[key].astype(np.int64)
        pairs = pairs.merge(right, on=key, how="left", validate="one_to_one")
    return pairs.sort_values("true_id", ignore_index=True)


def matched_morphometrics(
    true_axon: npt.ArrayLike,
    true_myelin: npt.ArrayLike,
    pred_axon: npt.ArrayLike,
    pred_myelin: npt.ArrayLike,
    *,
    pixel_size: float,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Per-axon morphometrics of a predicted and a manual segmentation, side by side.

    Both segmentations are measured with :func:`axon_morphometrics` and their axons paired
    with :func:`match_axons` (IoU > ``threshold``).

    Parameters
    ----------
    true_axon, true_myelin, pred_axon, pred_myelin : array_like of bool
        2-D masks, all of the same shape.
    pixel_size : float
        µm per pixel.
    threshold : float, optional
        IoU threshold for a match, in [0.5, 1].

    Returns
    -------
    pandas.DataFrame
        One row per matched pair: ``true_id``, ``pred_id``, ``iou``, every measure with the
        suffix ``_true`` and ``_pred``, and ``compared``: True when the pair is myelinated in
        both and touches the border in neither (the pairs whose measures are comparable).
        ``attrs`` holds ``n_true`` and ``n_pred``, the axon counts of each segmentation, and
        ``true_summary`` and ``pred_summary``, their :func:`summary` over all their axons.

    Examples
    --------
    >>> yy, xx = np.mgrid[:80, :80]
    >>> r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    >>> axon, myelin = r2 <= 20**2, (r2 > 20**2) & (r2 <= 30**2)
    >>> pairs = matched_morphometrics(axon, myelin, r2 <= 21**2, myelin & (r2 > 21**2), pixel_size=0.1)
    >>> pairs[["gratio_true", "gratio_pred"]].round(2).values.tolist()
    [[0.67, 0.7]]
    """
    px = _check_pixel_size(pixel_size)
    ta = _as_binary(true_axon, "true_axon")
    pa = _as_binary(pred_axon, "pred_axon")
    require_same_shape(ta, pa, "true_axon", "pred_axon")
    tf = assign_myelin(ta, true_myelin)
    pf = assign_myelin(pa, pred_myelin)
    tdf, pdf = _measure(tf, px), _measure(pf, px)
    pairs = match_axons(tf.axons, pf.axons, true_df=tdf, pred_df=pdf, threshold=threshold)
    pairs["compared"] = (
        pairs["myelinated_true"].to_numpy(bool)
        & pairs["myelinated_pred"].to_numpy(bool)
        & ~pairs["touches_border_true"].to_numpy(bool)
        & ~pairs["touches_border_pred"].to_numpy(bool)
    )
    pairs.attrs.update({"n_true": len(tdf), "n_pred": len(pdf),
                        "true_summary": summary(tdf), "pred_summary": summary(pdf)})
    return pairs


def morphometrics_agreement(
    true_axon: npt.ArrayLike,
    true_myelin: npt.ArrayLike,
    pred_axon: npt.ArrayLike,
    pred_myelin: npt.ArrayLike,
    *,
    pixel_size: float,
    threshold: float = 0.5,
) -> dict:
    """How well morphometrics from predicted masks agree with those from manual masks.

    The pairs of :func:`matched_morphometrics` are compared where ``compared`` is True:
    matched, myelinated in both, and touching the border in neither.

    Parameters
    ----------
    true_axon, true_myelin, pred_axon, pred_myelin : array_like of bool
        2-D masks, all of the same shape.
    pixel_size : float
        µm per pixel.
    threshold : float, optional
        IoU threshold for a match, in [0.5, 1].

    Returns
    -------
    dict
        ``n_true``, ``n_pred`` (axons), ``n_matched`` (pairs), ``n_compared``, and over the
        compared pairs the mean absolute differences ``gratio_mad``, ``axon_diam_mad_um``
        and ``myelin_thickness_mad_um`` and the mean signed g-ratio difference
        ``gratio_bias`` (NaN when nothing is compared).

    Examples
    --------
    >>> yy, xx = np.mgrid[:80, :80]
    >>> r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    >>> axon, myelin = r2 <= 20**2, (r2 > 20**2) & (r2 <= 30**2)
    >>> morphometrics_agreement(axon, myelin, axon, myelin, pixel_size=0.1)["gratio_mad"]
    0.0
    """
    pairs = matched_morphometrics(
        true_axon, true_myelin, pred_axon, pred_myelin, pixel_size=pixel_size, threshold=threshold
    )
    return {
        "n_true": pairs.attrs["n_true"],
        "n_pred": pairs.attrs["n_pred"],
        "n_matched": len(pairs),
        **pair_differences(pairs),
    }


def pair_differences(pairs: pd.DataFrame) -> dict:
    """Mean absolute differences over the compared pairs of :func:`matched_morphometrics`
    tables (one image's, or several concatenated, so that every axon counts once).

    Returns
    -------
    dict
        ``n_compared``, ``gratio_mad``, ``axon_diam_mad_um``, ``myelin_thickness_mad_um``,
        and ``gratio_bias``, the mean of predicted minus manual g-ratio, which shows a
        systematic shift that ``gratio_mad`` mixes with scatter (NaN when nothing is
        compared).

    Examples
    --------
    >>> pairs = pd.DataFrame({"compared": [True, True, False], "gratio_true": [0.6, 0.5, 0.5],
    ...     "gratio_pred": [0.7, 0.45, 0.9], "axon_diam_um_true": [2.0, 1.0, 1.0],
    ...     "axon_diam_um_pred": [2.5, 1.0, 1.0], "myelin_thickness_um_true": [0.5, 0.5, 0.5],
    ...     "myelin_thickness_um_pred": [0.5, 0.5, 0.1]})
    >>> d = {k: round(v, 3) for k, v in pair_differences(pairs).items()}
    >>> d["n_compared"], d["gratio_mad"], d["gratio_bias"], d["axon_diam_mad_um"]
    (2, 0.075, 0.025, 0.25)
    """
    if "compared" not in pairs.columns:
        raise ValueError("pairs lacks the column 'compared' (use matched_morphometrics)")
    sel = pairs[pairs["compared"].to_numpy(bool)]

    def mean_difference(col: str, *, absolute: bool = True) -> float:
        if not len(sel):
            return math.nan
        d = sel[f"{col}_pred"] - sel[f"{col}_true"]
        return float(np.mean(np.abs(d) if absolute else d))

    return {
        "n_compared": len(sel),
        "gratio_mad": mean_difference("gratio"),
        "axon_diam_mad_um": mean_difference("axon_diam_um"),
        "myelin_thickness_mad_um": mean_difference("myelin_thickness_um"),
        "gratio_bias": mean_difference("gratio", absolute=False),
    }
