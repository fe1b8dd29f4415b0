"""Pair features and their calibration: from a candidate pair to P(same neuron).

A logistic regression on :data:`FEATURES` (the mean z-affinity over the pair's overlap and
overlap features), fitted per z spacing and kind of segments, and the ground truth of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from neuroseg.measure.overlap import contingency

#: Link thresholds :func:`calibrate` tries: 0.05 to 0.95 in steps of 0.05, then 0.97, 0.99.
THRESHOLDS = (*np.round(np.arange(0.05, 0.96, 0.05), 2).tolist(), 0.97, 0.99)


#: Features of a candidate pair, in the order of a calibration's coefficients.
FEATURES = (
    "affinity",
    "iou",
    "cover_a",
    "cover_b",
    "log_size_a",
    "log_size_b",
    "share_a",
    "share_b",
    "best_a",
    "best_b",
    "log_partners_a",
    "log_partners_b",
)


@dataclass(frozen=True, eq=False)
class Calibration:
    """How pair features become a link score, for one z spacing and one kind of segments.

    A small multilayer perceptron (two hidden layers of ``hidden`` units, ReLU) on the
    standardised :data:`FEATURES` gives the probability that a pair joins one neuron; pairs
    with ``score >= threshold`` are linked. ``z_nm`` is the slice distance (nm) it was fitted
    at, ``segments`` ``"oracle"`` or ``"predicted"``; ``n_pairs`` and ``positive`` count its
    training pairs and the fraction of true links among them. ``state`` holds the
    perceptron's weights (tensors).
    """

    z_nm: float
    segments: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    state: dict = field(repr=False)
    hidden: int = 32
    threshold: float = 0.5
    n_pairs: int = 0
    positive: float | None = None

    def __post_init__(self):
        if self.segments not in ("oracle", "predicted"):
            raise ValueError(f"segments must be 'oracle' or 'predicted'; got {self.segments!r}")
        if not self.z_nm > 0:
            raise ValueError(f"z_nm must be positive; got {self.z_nm}")
        for name in ("mean", "scale"):
            if len(getattr(self, name)) != len(FEATURES):
                raise ValueError(f"calibration {name} needs {len(FEATURES)} values")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {self.threshold}")

    @property
    def key(self) -> str:
        """Name of the calibration, e.g. ``"40nm_oracle"``."""
        return f"{self.z_nm:g}nm_{self.segments}"

    def score(self, features: np.ndarray) -> np.ndarray:
        """Link probabilities (float64) of rows of ``features`` (columns :data:`FEATURES`)."""
        x = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        net = _perceptron(len(FEATURES), self.hidden)
        net.load_state_dict(self.state)
        with torch.no_grad():
            logit = net(torch.from_numpy(x.astype(np.float32)))[:, 0].double().numpy()
        return _sigmoid(logit)

    def to_dict(self) -> dict:
        """The JSON part (everything but the weights)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "state"}
        d["mean"], d["scale"] = list(self.mean), list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict, state: dict) -> Calibration:
        d = dict(d)
        d["mean"] = tuple(float(v) for v in d["mean"])
        d["scale"] = tuple(float(v) for v in d["scale"])
        return cls(state=state, **d)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def _perceptron(k: int, hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(k, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )


def fit_pair_classifier(
    features: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    hidden: int = 32,
    steps: int = 500,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit the pair perceptron (full-batch Adam, BCE) on standardised features.

    Deterministic for a given ``seed`` on the CPU (torch's global random state is left
    alone). Returns ``(state, mean, scale)`` for :class:`Calibration`.

    Examples
    --------
    >>> x = np.tile(np.linspace(0, 1, 20)[:, None], (1, len(FEATURES)))
    >>> state, mean, scale = fit_pair_classifier(x, x[:, 0] > 0.5, steps=200)
    >>> cal = Calibration(z_nm=40, segments="oracle", mean=tuple(mean), scale=tuple(scale),
    ...                   state=state)
    >>> p = cal.score(x)
    >>> bool(p[-1] > 0.9 and p[0] < 0.1)
    True
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(truth, np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"features must be (n, k) with one truth per row; got {x.shape}, {y.shape}")
    if y.size == 0:
        raise ValueError("no pairs to fit the pair classifier on")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    xt = torch.from_numpy(((x - mean) / scale).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _perceptron(x.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt)[:, 0], yt)
        loss.backward()
        opt.step()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return state, mean, scale


def pair_features(labels: npt.ArrayLike, pairs: pd.DataFrame, *, affinity) -> pd.DataFrame:
    """Features of candidate pairs: mean z-affinity over the overlap and overlap features.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        The 2D segments ``pairs`` refers to.
    pairs : pandas.DataFrame
        Candidate pairs, columns :data:`neuroseg.linking.graph.PAIR_COLUMNS`.
    affinity : callable or ndarray
        ``affinity(slice_pairs)`` returning one (y, x) map per ``(z_a, z_b)`` in the list
        (e.g. :meth:`AffinityLinker.affinities`), or a dict ``{(z_a, z_b): map}``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FEATURES`, one row per pair, in the order of ``pairs``:
        ``affinity`` (mean z-affinity over the overlap), ``iou``, ``cover_a``/``cover_b``
        (overlap / size of each segment), ``log_size_a``/``log_size_b`` (log(1 + voxels)),
        ``share_a``/``share_b`` (overlap / largest overlap of that segment with any partner
        at the same gap), ``best_a``/``best_b`` (1 when this pair is that largest one) and
        ``log_partners_a``/``log_partners_b`` (log of the number of such partners).

    Notes
    -----
    The mean affinity of all pairs of one slice pair comes from one ``np.bincount`` over the
    overlapping pixels; the only Python loop is over slice pairs.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2]], [[3, 3, 3, 4]]])
    >>> from neuroseg.linking.graph import candidate_pairs
    >>> pairs = candidate_pairs(labels)
    >>> aff = {(0, 1): np.array([[1.0, 0.8, 0.2, 0.9]])}
    >>> pair_features(labels, pairs, affinity=aff)["affinity"].round(2).tolist()
    [0.9, 0.2, 0.9]
    """
    arr = np.asarray(labels)
    out = np.zeros(len(pairs), np.float64)
    za = pairs["z_a"].to_numpy(np.int64)
    zb = pairs["z_b"].to_numpy(np.int64)
    slice_pairs = sorted(set(zip(za.tolist(), zb.tolist())))
    if isinstance(affinity, dict):
        maps = [np.asarray(affinity[p]) for p in slice_pairs]
    else:
        maps = list(affinity(slice_pairs)) if slice_pairs else []
    ida = pairs["id_a"].to_numpy()
    idb = pairs["id_b"].to_numpy()
    for (a, b), aff in zip(slice_pairs, maps):
        la, lb = arr[a].ravel(), arr[b].ravel()
        both = (la != 0) & (lb != 0)
        ua, ia = np.unique(la[both], return_inverse=True)
        ub, ib = np.unique(lb[both], return_inverse=True)
        code = ia.astype(np.int64) * max(ub.size, 1) + ib
        sums = np.bincount(code, weights=np.asarray(aff, np.float64).ravel()[both],
                           minlength=ua.size * ub.size)
        counts = np.bincount(code, minlength=ua.size * ub.size)
        rows = np.flatnonzero((za == a) & (zb == b))
        ra = np.searchsorted(ua, ida[rows])
        rb = np.searchsorted(ub, idb[rows])
        k = ra * max(ub.size, 1) + rb
        out[rows] = sums[k] / np.maximum(counts[k], 1)
    overlap = pairs["overlap"].to_numpy(np.float64)
    sa = pairs["size_a"].to_numpy(np.float64)
    sb = pairs["size_b"].to_numpy(np.float64)
    # context: how this pair compares with the other partners of each segment (same gap)
    keys = pd.DataFrame({"za": za, "zb": zb, "a": ida, "b": idb, "ov": overlap})
    best_of_a = keys.groupby(["za", "zb", "a"])["ov"].transform("max").to_numpy(np.float64)
    best_of_b = keys.groupby(["za", "zb", "b"])["ov"].transform("max").to_numpy(np.float64)
    n_of_a = keys.groupby(["za", "zb", "a"])["ov"].transform("size").to_numpy(np.float64)
    n_of_b = keys.groupby(["za", "zb", "b"])["ov"].transform("size").to_numpy(np.float64)
    return pd.DataFrame(
        {
            "affinity": out,
            "iou": pairs["iou"].to_numpy(np.float64),
            "cover_a": overlap / np.maximum(sa, 1.0),
            "cover_b": overlap / np.maximum(sb, 1.0),
            "log_size_a": np.log1p(sa),
            "log_size_b": np.log1p(sb),
            "share_a": overlap / np.maximum(best_of_a, 1.0),
            "share_b": overlap / np.maximum(best_of_b, 1.0),
            "best_a": (overlap >= best_of_a).astype(np.float64),
            "best_b": (overlap >= best_of_b).astype(np.float64),
            "log_partners_a": np.log(np.maximum(n_of_a, 1.0)),
            "log_partners_b": np.log(np.maximum(n_of_b, 1.0)),
        },
        index=pairs.index,
    )


def segment_truth(labels: npt.ArrayLike, gt: npt.ArrayLike) -> pd.DataFrame:
    """The ground-truth ID of every 2D segment: the one it overlaps most (gt 0 ignored).

    Returns a DataFrame with columns ``z``, ``id``, ``gt`` (0 when the segment lies on
    ground-truth background only), one row per segment.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2]]])
    >>> gt = np.array([[[5, 5, 6]]])
    >>> segment_truth(labels, gt).values.tolist()
    [[0, 1, 5], [0, 2, 6]]
    """
    arr = np.asarray(labels)
    g = np.asarray(gt)
    if arr.shape != g.shape:
        raise ValueError(f"shape mismatch: labels {arr.shape} but gt {g.shape}")
    rows = []
    for z in range(arr.shape[0]):
        ids = np.unique(arr[z])
        ids = ids[ids != 0]
        if ids.size == 0:
            continue
        best = np.zeros(ids.size, np.int64)
        c = contingency(arr[z], g[z], ignore_a=0, ignore_b=0)
        if c.counts.size:
            order = np.lexsort((-c.counts, c.a_ids))  # by segment, largest overlap first
            a_sorted = c.a_ids[order]
            first = np.concatenate([[True], a_sorted[1:] != a_sorted[:-1]])
            best[np.searchsorted(ids, a_sorted[first])] = c.b_ids[order][first]
        rows.append(pd.DataFrame({"z": z, "id": ids, "gt": best}))
    if not rows:
        return pd.DataFrame({"z": np.zeros(0, np.int64), "id": np.zeros(0, arr.dtype), "gt": 0})
    return pd.concat(rows, ignore_index=True)


def pair_truth(labels: npt.ArrayLike, gt: npt.ArrayLike, pairs: pd.DataFrame) -> np.ndarray:
    """Whether each candidate pair joins two segments of the same ground-truth neuron."""
    truth = segment_truth(labels, gt)
    key = truth.set_index(["z", "id"])["gt"]
    ga = key.reindex(pd.MultiIndex.from_arrays([pairs["z_a"], pairs["id_a"]])).to_numpy()
    gb = key.reindex(pd.MultiIndex.from_arrays([pairs["z_b"], pairs["id_b"]])).to_numpy()
    return (ga == gb) & (ga > 0)
