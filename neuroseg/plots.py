"""Plotting helpers shared by the notebooks: one style, label overlays, curves.

Colours are colour-blind safe (Okabe-Ito for categories; label images use a shuffled
perceptual colormap over which boundaries are drawn in white).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]


def set_style() -> None:
    """The study's matplotlib/seaborn style (call once at the top of a notebook)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=OKABE_ITO)
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "image.interpolation": "nearest"})


def normalise_for_display(image: np.ndarray, *, percentiles=(1, 99.5)) -> np.ndarray:
    """Scale intensities to [0, 1] by percentiles (RGB kept as RGB)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, percentiles)
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)


def label_colours(labels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """RGBA image colouring each label by a fixed pseudo-random colour (0 transparent)."""
    import matplotlib as mpl

    labels = np.asarray(labels)
    ids, inverse = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    cmap = mpl.colormaps["turbo"]
    colours = cmap(rng.uniform(0.05, 0.95, size=len(ids)))
    colours[ids == 0] = 0
    return colours[inverse.reshape(labels.shape)]


def overlay(ax, image, labels=None, *, title: str | None = None, alpha=0.35, boundaries=True):
    """Show ``image`` in grey with ``labels`` as translucent colours and outlines."""
    from skimage.segmentation import find_boundaries

    shown = normalise_for_display(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    if labels is not None and np.any(labels):
        rgba = label_colours(labels)
        rgba[..., 3] *= alpha
        ax.imshow(rgba)
        if boundaries:
            edge = find_boundaries(labels, mode="inner")
            edge_rgba = np.zeros(labels.shape + (4,))
            edge_rgba[edge] = (1, 1, 1, 0.9)
            ax.imshow(edge_rgba)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return ax


def image_grid(items: Sequence[tuple[str, np.ndarray, np.ndarray | None]], *, ncols=4, size=3.0):
    """A figure with one overlay panel per (title, image, labels) item."""
    import matplotlib.pyplot as plt

    n = len(items)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax, (title, image, labels) in zip(axes.ravel(), items):
        overlay(ax, image, labels, title=title)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


_GOLDEN = 0.618033988749895


def colour_labels(labels: npt.ArrayLike, *, raw: npt.ArrayLike | None = None, alpha: float = 0.6) -> np.ndarray:
    """RGB image (uint8) of a label image: one fixed colour per ID, 0 black (or the raw grey).

    The colour of an ID depends on the ID alone (hue by the golden ratio), so an object has
    the same colour in every slice. With ``raw``, colours are blended over the grey image.

    Examples
    --------
    >>> rgb = colour_labels(np.array([[0, 1], [1, 2]]))
    >>> rgb.shape, rgb.dtype, rgb[0, 0].tolist(), (rgb[0, 1] == rgb[1, 0]).all()
    ((2, 2, 3), dtype('uint8'), [0, 0, 0], np.True_)
    """
    from matplotlib.colors import hsv_to_rgb

    lab = np.asarray(labels)
    ids = lab.astype(np.int64)
    hue = (ids * _GOLDEN) % 1.0
    sat = 0.55 + 0.45 * ((ids * 7) % 3) / 2
    rgb = hsv_to_rgb(np.stack([hue, sat, np.full(hue.shape, 0.95)], axis=-1))
    rgb[ids == 0] = 0.0
    if raw is not None:
        grey = np.asarray(raw, np.float64)
        lo, hi = np.percentile(grey, [1, 99]) if grey.size else (0.0, 1.0)
        grey = np.clip((grey - lo) / max(hi - lo, 1e-9), 0, 1)[..., None]
        a = np.where(ids[..., None] > 0, alpha, 0.0)
        rgb = a * rgb + (1 - a) * grey
    return np.round(rgb * 255).astype(np.uint8)


CLASS_COLOURS = {1: "#E69F00", 2: "#0072B2", 3: "#009E73"}


def overlay_classes(ax, image: np.ndarray, classes: np.ndarray, *, title: str | None = None, alpha=0.45):
    """Grey image with myelin, axon and uaxon in colour-blind-safe colours."""
    from matplotlib.colors import to_rgba

    from neuroseg.plots import normalise_for_display

    ax.imshow(normalise_for_display(image), cmap="gray")
    rgba = np.zeros(np.shape(classes) + (4,))
    for k, colour in CLASS_COLOURS.items():
        rgba[np.asarray(classes) == k] = to_rgba(colour, alpha)
    ax.imshow(rgba)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return ax


def class_legend(fig, names: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLOURS[k], label=names[k]) for k in range(1, len(names))]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)


def learning_curve_figure(tables: dict[str, pd.DataFrame], *, metric: str = "test_iou"):
    """Test IoU against the number of training images: transfer and scratch, every seed."""
    import matplotlib.pyplot as plt

    from neuroseg.plots import OKABE_ITO

    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.4), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        for colour, init in zip(OKABE_ITO, ("transfer", "scratch")):
            part = table[table.init == init]
            if part.empty:
                continue
            mean = part.groupby("n_train")[metric].mean()
            ax.plot(mean.index, mean.values, "-o", color=colour, label=init)
            ax.scatter(part.n_train, part[metric], color=colour, alpha=0.4, s=14)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training images (tiles / slices)")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    return fig


def round_length(target: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``target`` (> 0): a scale bar's length.

    Examples
    --------
    >>> round_length(730.0), round_length(0.26)
    (500.0, 0.2)
    """
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive number; got {target}")
    power = 10 ** np.floor(np.log10(target))
    return float(max(s * power for s in (1, 2, 5) if s * power <= target * (1 + 1e-12)))


def scale_bar(ax, pixel_size: float, *, unit: str = "µm", length: float | None = None,
              colour: str = "white") -> float:
    """Draw a scale bar in the lower left of an image axis; return its length in ``unit``.

    ``pixel_size`` is the image's pixel size in ``unit``; ``length`` defaults to a round number
    near a fifth of the image's width (1, 2 or 5 times a power of ten).
    """
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number of {unit}; got {pixel_size}")
    x0, x1 = sorted(ax.get_xlim())
    y0, y1 = sorted(ax.get_ylim())
    width = (x1 - x0) * pixel_size
    if length is None:
        length = round_length(width / 5)
    pixels = length / pixel_size
    x, y = x0 + 0.05 * (x1 - x0), y1 - 0.06 * (y1 - y0)
    ax.plot([x, x + pixels], [y, y], color=colour, lw=3, solid_capstyle="butt")
    ax.text(x + pixels / 2, y - 0.03 * (y1 - y0), f"{length:g} {unit}", color=colour,
            ha="center", va="bottom", fontsize=7)
    return float(length)
