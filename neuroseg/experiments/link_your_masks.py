"""Another tool's 2D masks joined in 3D, for ``70_link_your_masks``: the worked example of
:func:`neuroseg.link` as a drop-in.

A researcher who segments an EM volume slice by slice with Cellpose, StarDist or micro-SAM gets
a stack of 2D masks numbered from 1 in every slice. Here such stacks are made two ways, since
none of those tools is installed in this environment:

- ``shipped em_2d``: the shipped 2D EM network (:func:`neuroseg.load_model`), slice by slice,
  each slice renumbered from 1 — masks of a real, imperfect 2D segmenter;
- ``true 2D pieces``: the ground truth cut into its per-slice pieces, renumbered from 1 — the
  masks of a perfect 2D tool, so that only the linking can go wrong.

Each stack is joined by :func:`neuroseg.link` with every rule (Cellpose's ``stitch_threshold``
overlap rule, Hungarian matching, micro-SAM's multicut and the learned linker), and scored
against the true 3D neurons with CREMI, VOI and adapted Rand (lower is better), with the seconds
each call took.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["METHODS", "compare", "masks_per_slice", "comparison_figure", "shipped_2d_masks"]

METHODS = ("overlap", "hungarian", "multicut", "learned")


def masks_per_slice(labels: np.ndarray, *, pieces: bool = False) -> np.ndarray:
    """``labels`` (z, y, x) numbered from 1 in every slice, as a 2D tool numbers its masks;
    with ``pieces`` every connected piece of a label in a slice becomes its own mask (the true
    neurons cut into their per-slice pieces).

    Examples
    --------
    >>> masks_per_slice(np.array([[[5, 5, 0, 7]], [[7, 0, 0, 7]]])).tolist()
    [[[1, 1, 0, 2]], [[1, 0, 0, 1]]]
    >>> masks_per_slice(np.array([[[5, 5, 0, 7]], [[7, 0, 0, 7]]]), pieces=True).tolist()
    [[[1, 1, 0, 2]], [[1, 0, 0, 2]]]
    """
    from neuroseg.data.labels import connected_components_per_slice
    from neuroseg.linking.dropin import number_per_slice

    return number_per_slice(connected_components_per_slice(labels) if pieces else labels)


def shipped_2d_masks(model, raw: np.ndarray, *, resolution: Sequence[float], device: str | None = None) -> np.ndarray:
    """The 2D segments of ``model`` (e.g. the shipped ``em_2d``), numbered from 1 per slice."""
    from neuroseg.segment.volume_2d import segments_2d

    return masks_per_slice(segments_2d(model, raw, resolution=resolution, device=device))


def compare(
    stacks: Mapping[str, np.ndarray],
    raw: np.ndarray,
    gt: np.ndarray,
    *,
    resolution: Sequence[float],
    linker=None,
    methods: Sequence[str] = METHODS,
) -> tuple[pd.DataFrame, dict]:
    """Every stack of 2D masks joined by :func:`neuroseg.link` with every method; scores
    against ``gt`` (truth first) and seconds. ``"learned"`` is left out without a ``linker``.

    Returns the table (``masks, method, cremi, voi_split, voi_merge, arand, objects,
    seconds``) and the :class:`~neuroseg.linking.graph.LinkResult` of each (masks, method).
    """
    import time

    from neuroseg.linking.dropin import link
    from neuroseg.measure.voi_rand import segmentation_scores

    rows, results = [], {}
    for source, masks in stacks.items():
        for method in methods:
            if method == "learned" and linker is None:
                continue
            start = time.perf_counter()
            result = link(masks, raw, resolution=resolution, method=method,
                          linker=linker if method == "learned" else None, return_result=True)
            seconds = time.perf_counter() - start
            rows.append({"masks": source, "method": method, **segmentation_scores(gt, result.labels),
                         "objects": int(result.n_objects), "seconds": seconds})
            results[(source, method)] = result
    return pd.DataFrame(rows), results


def comparison_figure(table: pd.DataFrame, *, title: str = ""):
    """CREMI of each method (bars) for each stack of masks (groups); lower is better."""
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(table["masks"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(sources) * len(methods) / 2, 3.2))
    width = 0.8 / len(methods)
    colours = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
    for k, method in enumerate(methods):
        values = [table[(table["masks"] == s) & (table["method"] == method)]["cremi"].mean()
                  for s in sources]
        ax.bar(np.arange(len(sources)) + (k - (len(methods) - 1) / 2) * width, values, width,
               label=method, color=colours[k % len(colours)])
    ax.set_xticks(np.arange(len(sources)), sources)
    ax.set_ylabel("CREMI score (lower is better)")
    ax.legend(frameon=False, fontsize=8, ncols=2)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    caption = ("CREMI score of the 3D neurons each linking rule makes from the same 2D masks "
               "(lower is better). Compare the bars within a group: the masks are the same, only "
               "the rule that joins them differs; the 'true 2D pieces' group shows what linking "
               "alone costs.")
    return fig, caption
