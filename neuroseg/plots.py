"""Plotting helpers shared by the notebooks: one style, label overlays, curves.

Colours are colour-blind safe (Okabe-Ito for categories; label images use a shuffled
perceptual colormap over which boundaries are drawn in white).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
