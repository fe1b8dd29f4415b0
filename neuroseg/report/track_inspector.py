"""Interactive inspection of tracking in JupyterLab: frame ``t``, frame ``t + 1``, the links.

:class:`TrackInspector` applies the :class:`~neuroseg.report.inspector.LinkInspector`'s design
to time: a frame slider; the segments of frame ``t`` (outlined) and ``t + 1`` (filled) coloured
by track, so one colour is one track; an arrow from each segment to the segment it is linked to
(a link, a division, or a gap of a missing frame), labelled with its score; and the table of
the candidate links with their scores and the decision each led to. It shows labels and
coordinates only, never the raw images (the terms of some time-lapse data forbid showing them).

Everything it shows comes from :func:`inspect_frames`, a pure function of (segments, tracking
result, frame) that tests call without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from neuroseg.linking.tracks import Tracks
from neuroseg.plots import colour_labels

__all__ = ["TrackInspector", "TrackView", "busiest_frame", "inspect_frames", "view_figure"]

KIND_COLOURS = {"link": "#0072B2", "division": "#D55E00", "gap": "#CC79A7"}  # colour-blind safe


@dataclass(frozen=True, eq=False)
class TrackView:
    """What the inspector shows for frame ``t``.

    Attributes
    ----------
    t : int
        The first frame; the second is ``t + 1``.
    images : ndarray (2, y, x, 3) of uint8
        Frames ``t`` and ``t + 1``, segments coloured by track ID.
    links : DataFrame
        Candidate links leaving frame ``t`` (to ``t + 1``, or further for gaps), with
        ``score``, ``kind`` ("" = not taken), the tracks at both ends and the centroids
        ``y_a, x_a, y_b, x_b`` in pixels.
    tracks : ndarray of int
        Track IDs present in either frame.
    divisions, gaps : int
        Divisions and gap links leaving frame ``t``.
    """

    t: int
    images: np.ndarray
    links: pd.DataFrame
    tracks: np.ndarray
    divisions: int
    gaps: int


def _centroids(frame: np.ndarray, ids: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    if not len(ids):
        return np.zeros((0, 2))
    return np.asarray(ndi.center_of_mass(np.ones(frame.shape), frame, ids), float).reshape(-1, 2)


def inspect_frames(segments: npt.ArrayLike, result: Tracks, *, t: int) -> TrackView:
    """The view of frame ``t`` of a tracking result (see :class:`TrackView`).

    ``segments`` are the 2D segments the result was computed from (as given to
    :func:`neuroseg.linking.tracks.track`).

    Examples
    --------
    >>> from neuroseg.linking.tracks import track
    >>> seg = np.zeros((2, 1, 4), np.uint8); seg[:, 0, 1:3] = 1
    >>> view = inspect_frames(seg, track(seg), t=0)
    >>> view.links[["id_a", "id_b", "kind", "track_a", "track_b"]].values.tolist()
    [[1, 1, 'link', 1, 1]]
    """
    seg = np.asarray(segments)
    if seg.shape != result.labels.shape:
        raise ValueError(f"segments {seg.shape} and the result's labels {result.labels.shape} differ")
    n = seg.shape[0]
    if not 0 <= int(t) < max(n - 1, 1):
        raise ValueError(f"t must be a frame from 0 to {max(n - 2, 0)}; got {t}")
    t = int(t)
    links = result.links[result.links.z_a == t].reset_index(drop=True)
    where: dict[tuple[int, int], tuple[float, float, int]] = {}
    for z in sorted(set(links.z_a) | set(links.z_b)):
        ids = np.unique(np.concatenate([links.id_a[links.z_a == z], links.id_b[links.z_b == z]]))
        for i, (y, x) in zip(ids, _centroids(seg[z], ids)):
            owner = np.bincount(result.labels[z][seg[z] == i].astype(np.int64)).argmax()
            where[int(z), int(i)] = (float(y), float(x), int(owner))
    for side in ("a", "b"):
        keys = zip(links[f"z_{side}"].astype(int), links[f"id_{side}"].astype(int))
        got = [where[k] for k in keys]
        links[f"y_{side}"] = [g[0] for g in got]
        links[f"x_{side}"] = [g[1] for g in got]
        links[f"track_{side}"] = np.asarray([g[2] for g in got], np.int64)
    pair = result.labels[t : t + 2] if t + 1 < n else result.labels[[t, t]]
    images = np.stack([colour_labels(p) for p in pair])
    present = np.unique(pair)
    return TrackView(
        t=t, images=images, links=links,
        tracks=present[present != 0],
        divisions=int((links.kind == "division").sum()), gaps=int((links.kind == "gap").sum()),
    )


def busiest_frame(result: Tracks) -> int:
    """The frame whose outgoing links hold the most divisions, then the most gaps (the first
    such frame; 0 when there are none).

    Examples
    --------
    >>> from neuroseg.linking.tracks import track
    >>> busiest_frame(track(np.zeros((3, 2, 2), np.uint8)))
    0
    """
    links = result.links
    if not len(links):
        return 0
    counts = pd.DataFrame({"z": links.z_a, "division": links.kind == "division",
                           "gap": links.kind == "gap"}).groupby("z")[["division", "gap"]].sum()
    best = counts.sort_values(["division", "gap"], ascending=False, kind="stable")
    return int(best.index[0])


def view_figure(view: TrackView, *, pixel_size_um: float | None = None, title: str = ""):
    """The view drawn: frame ``t`` and ``t + 1`` side by side, links as arrows with scores."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    taken = view.links[view.links.kind != ""]
    for ax, image, name in zip(axes, view.images, (f"frame {view.t}", f"frame {view.t + 1}")):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[1]
    for row in taken.itertuples():
        colour = KIND_COLOURS.get(row.kind, "white")
        ax.annotate("", xy=(row.x_b, row.y_b), xytext=(row.x_a, row.y_a),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
        if np.isfinite(row.score):
            ax.text(row.x_b, row.y_b, f"{row.score:.2f}", color="white", fontsize=7,
                    ha="center", va="center")
    for kind, colour in KIND_COLOURS.items():
        ax.plot([], [], color=colour, label=kind)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    if pixel_size_um:
        from neuroseg.plots import scale_bar

        for a in axes:
            scale_bar(a, pixel_size_um, unit="µm")
    fig.suptitle(title or f"links from frame {view.t}: arrow = taken link, number = its score",
                 fontsize=9)
    fig.tight_layout()
    return fig


class TrackInspector:
    """A frame slider over a tracking result, for JupyterLab (ipywidgets).

    Parameters
    ----------
    segments : array (t, y, x)
        The 2D segments the result was computed from.
    result : Tracks
        From :func:`neuroseg.linking.tracks.track`.
    pixel_size_um : float, optional
        Draws a scale bar.

    Use the object as a notebook cell's last line (or ``.widget``). The current view is
    :attr:`view`.
    """

    def __init__(self, segments: npt.ArrayLike, result: Tracks, *, pixel_size_um: float | None = None):
        from neuroseg.checks import require_extra

        w = require_extra("ipywidgets", "notebooks")

        self.segments = np.asarray(segments)
        self.result = result
        self.pixel_size_um = pixel_size_um
        n = self.segments.shape[0]
        self.frame = w.IntSlider(value=0, min=0, max=max(n - 2, 0), description="frame")
        self.picture = w.Image(format="png")
        self.info = w.HTML()
        self.table = w.HTML()
        self.frame.observe(self._update, names="value")
        self.widget = w.VBox([self.frame, self.picture, self.info, self.table])
        self.view: TrackView | None = None
        self._update()

    def _png(self) -> bytes:
        import io

        import matplotlib.pyplot as plt

        fig = view_figure(self.view, pixel_size_um=self.pixel_size_um)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        return buf.getvalue()

    def _update(self, *_) -> None:
        view = inspect_frames(self.segments, self.result, t=self.frame.value)
        self.view = view
        self.picture.value = self._png()
        taken = int((view.links.kind != "").sum())
        self.info.value = (
            f"frames {view.t} | {view.t + 1}: {len(view.tracks)} tracks; {taken} of "
            f"{len(view.links)} candidate links taken ({view.divisions} divisions, "
            f"{view.gaps} gaps)"
        )
        table = view.links.assign(decision=view.links.kind.replace("", "not taken"))
        cols = ["z_a", "z_b", "id_a", "id_b", "track_a", "track_b", "iou", "score", "decision"]
        self.table.value = table[cols].head(60).to_html(index=False, float_format="%.3f")

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)
