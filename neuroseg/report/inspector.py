"""Interactive inspection of slice linking in JupyterLab.

:class:`LinkInspector` shows slice ``z`` and slice ``z + 1`` of a volume side by side, their
2D segments coloured by 3D ID (the same colour for the same object in both slices), with a
z slider, a threshold slider that re-links live (:func:`neuroseg.linking.rules.relink`: no overlap
is recomputed) and a dropdown to pick one 3D object, whose segments are then outlined and
whose links between the two slices are listed.

Everything it shows comes from :func:`inspect_links`, a pure function of (segments, link
table, z, threshold, selection) that tests call without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from neuroseg.linking.rules import relink
from neuroseg.plots import colour_labels

__all__ = ["InspectorView", "LinkInspector", "colour_labels", "inspect_links"]


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


@dataclass(frozen=True, eq=False)
class InspectorView:
    """What the inspector shows for one (z, threshold, selection).

    Attributes
    ----------
    z : int
        The left slice; the right one is ``z + 1``.
    threshold : float
        Threshold the links were decided at.
    labels : ndarray (2, y, x) of uint32
        3D IDs of slices ``z`` and ``z + 1`` after re-linking at ``threshold``.
    images : ndarray (2, y, x, 3) of uint8
        The two slices coloured by 3D ID (over the raw data when given); the selected
        object's segments outlined in white.
    links : pandas.DataFrame
        The candidate pairs between the two slices (columns of the link table), restricted
        to the selected object's segments when there is a selection.
    objects : ndarray of int
        3D IDs present in either slice (the dropdown's choices).
    selection : int or None
        The selected 3D ID (None when nothing, or an ID absent from both slices, is chosen).
    n_objects : int
        Number of 3D objects in the whole volume at this threshold.
    """

    z: int
    threshold: float
    labels: np.ndarray
    images: np.ndarray
    links: pd.DataFrame
    objects: np.ndarray
    selection: int | None
    n_objects: int


def inspect_links(
    labels: npt.ArrayLike,
    links: pd.DataFrame,
    *,
    z: int,
    threshold: float,
    selection: int | None = None,
    raw: npt.ArrayLike | None = None,
    method: str = "graph",
) -> InspectorView:
    """The inspector's view: slices ``z`` and ``z + 1`` re-linked at ``threshold``.

    A pure function (inputs are not modified, nothing is cached).

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        2D segments (the input of :func:`neuroseg.linking.rules.link_slices`).
    links : pandas.DataFrame
        Its link table (:attr:`neuroseg.linking.graph.LinkResult.links`), with a ``score`` column.
    z : int
        Left slice, ``0 <= z < nz - 1`` (a one-slice volume shows slice 0 twice).
    threshold : float
        Link threshold in [0, 1].
    selection : int, optional
        A 3D ID to highlight.
    raw : array_like, shape (z, y, x), optional
        Grey values under the colours.
    method : str, optional
        Decision rule of :func:`neuroseg.linking.rules.relink` (the table's own method).

    Returns
    -------
    InspectorView

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2]], [[3, 3, 4]]])
    >>> from neuroseg.linking.rules import link_slices
    >>> links = link_slices(labels, method="graph").links
    >>> view = inspect_links(labels, links, z=0, threshold=0.5)
    >>> view.labels.tolist(), view.objects.tolist()
    ([[[1, 1, 2]], [[1, 1, 2]]], [1, 2])
    >>> inspect_links(labels, links, z=0, threshold=1.0, selection=2).links["id_a"].tolist()
    [2]
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"labels must be (z, y, x); got shape {arr.shape}")
    nz = arr.shape[0]
    if nz == 0:
        raise ValueError("labels has no slices")
    z = int(z)
    if not 0 <= z < max(nz - 1, 1):
        raise ValueError(f"z must be in [0, {max(nz - 2, 0)}]; got {z}")
    z2 = min(z + 1, nz - 1)
    if raw is not None:
        raw = np.asarray(raw)
        if raw.shape != arr.shape:
            raise ValueError(f"shape mismatch: raw {raw.shape} but labels {arr.shape}")
    res = relink(arr, links, float(threshold), method=method)
    two = np.stack([res.labels[z], res.labels[z2]])
    objects = np.unique(two)
    objects = objects[objects != 0]
    sel = int(selection) if selection is not None and int(selection) in set(objects.tolist()) else None
    images = np.stack(
        [colour_labels(two[k], raw=None if raw is None else raw[(z, z2)[k]]) for k in range(2)]
    )
    table = res.links[(res.links["z_a"] == z) & (res.links["z_b"] == z2)]
    if sel is not None:
        for k in range(2):
            images[k][_outline(two[k] == sel)] = 255
        ids_a = np.unique(arr[z][two[0] == sel])
        ids_b = np.unique(arr[z2][two[1] == sel])
        table = table[table["id_a"].isin(ids_a) | table["id_b"].isin(ids_b)]
    return InspectorView(
        z=z,
        threshold=float(threshold),
        labels=two,
        images=images,
        links=table.reset_index(drop=True),
        objects=objects,
        selection=sel,
        n_objects=res.n_objects,
    )


def with_scale_bar(picture, pixel_nm: float):
    """``picture`` (a PIL image) with a white scale bar and its length in the lower left;
    ``pixel_nm`` is its pixel size in nm. Lengths of 1 µm and more are written in µm."""
    from PIL import ImageDraw

    from neuroseg.plots import round_length

    out = picture.copy()
    w, h = out.size
    length = round_length(w * pixel_nm / 5)
    pixels = max(1, int(round(length / pixel_nm)))
    x, y = max(2, w // 20), h - max(6, h // 14)
    draw = ImageDraw.Draw(out)
    draw.rectangle([x, y, x + pixels, y + max(2, h // 100)], fill=(255, 255, 255))
    text = f"{length / 1000:g} µm" if length >= 1000 else f"{length:g} nm"
    draw.text((x, y - 12), text, fill=(255, 255, 255))
    return out


class LinkInspector:
    """ipywidgets over a volume's linking: z slider, live threshold, object picker, table.

    Parameters
    ----------
    labels : array_like of int, shape (z, y, x)
        2D segments.
    links : pandas.DataFrame
        Their link table (e.g. ``link_slices(labels, method="learned", ...).links``).
    raw : array_like, optional
        The raw volume, shown under the colours.
    threshold : float
        Initial threshold.
    method : str
        Decision rule for re-linking (the table's method).
    scale : int
        Pixels per voxel in the shown images.
    pixel_size : float, optional
        The y-x pixel size in nm: the images get a scale bar.

    Use ``LinkInspector(...).widget`` (or just the object, as a notebook cell's last line).
    The current view is :attr:`view` (an :class:`InspectorView`).
    """

    def __init__(
        self,
        labels: npt.ArrayLike,
        links: pd.DataFrame,
        *,
        raw: npt.ArrayLike | None = None,
        threshold: float = 0.5,
        method: str = "graph",
        scale: int = 2,
        pixel_size: float | None = None,
    ):
        from neuroseg.checks import require_extra

        w = require_extra("ipywidgets", "notebooks")

        self.labels = np.asarray(labels)
        self.links = links
        self.raw = None if raw is None else np.asarray(raw)
        self.method = method
        self.scale = int(scale)
        if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
            raise ValueError(f"pixel_size must be a positive number of nm; got {pixel_size}")
        self.pixel_size = pixel_size
        nz = self.labels.shape[0]
        self.z = w.IntSlider(value=0, min=0, max=max(nz - 2, 0), description="z")
        self.threshold = w.FloatSlider(
            value=float(threshold), min=0.0, max=1.0, step=0.01, description="threshold",
            continuous_update=False,
        )
        self.object = w.Dropdown(options=[("none", 0)], value=0, description="object")
        self.left = w.Image(format="png")
        self.right = w.Image(format="png")
        self.info = w.HTML()
        self.table = w.HTML()
        for control in (self.z, self.threshold, self.object):
            control.observe(self._update, names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.z, self.threshold, self.object]),
                w.HBox([self.left, self.right]),
                self.info,
                self.table,
            ]
        )
        self.view: InspectorView | None = None
        self._update()

    @classmethod
    def from_masks(
        cls,
        masks: npt.ArrayLike,
        raw: npt.ArrayLike | None = None,
        *,
        resolution,
        method: str | None = None,
        linker=None,
        threshold: float | None = None,
        scale: int = 2,
    ) -> LinkInspector:
        """The inspector on any stack of 2D masks (another tool's, IDs restarting in every
        slice, or a saved stack): joined by :func:`neuroseg.link` with ``method`` / ``linker``
        (its defaults), then shown with every candidate pair's score and decision.

        Examples
        --------
        >>> masks = np.array([[[1, 1, 0, 2]], [[1, 1, 0, 2]]])
        >>> ins = LinkInspector.from_masks(masks, resolution=(40, 10, 10))
        >>> ins.view.n_objects, ins.method, len(ins.view.links), ins.pixel_size
        (2, 'overlap', 2, 10.0)
        """
        from neuroseg.linking.dropin import link, unique_per_slice

        result = link(masks, raw, resolution=resolution, method=method, linker=linker,
                      threshold=threshold, return_result=True)
        segments = unique_per_slice(masks)
        return cls(segments, result.links, raw=raw, threshold=float(result.threshold),
                   method=str(result.method), scale=scale, pixel_size=float(result.resolution[-1]))

    def _png(self, image: np.ndarray) -> bytes:
        import io

        from PIL import Image

        big = np.kron(image, np.ones((self.scale, self.scale, 1), np.uint8))
        picture = Image.fromarray(big)
        if self.pixel_size is not None:
            picture = with_scale_bar(picture, self.pixel_size / self.scale)
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        return buf.getvalue()

    def _update(self, *_) -> None:
        selection = self.object.value or None
        view = inspect_links(
            self.labels, self.links, z=self.z.value, threshold=self.threshold.value,
            selection=selection, raw=self.raw, method=self.method,
        )
        self.view = view
        options = [("none", 0)] + [(f"object {i}", int(i)) for i in view.objects]
        if [o[1] for o in self.object.options] != [o[1] for o in options]:
            # new options reset the dropdown's value; put the selection back without a re-run
            self.object.unobserve(self._update, names="value")
            try:
                self.object.options = options
                self.object.value = view.selection or 0
            finally:
                self.object.observe(self._update, names="value")
        self.left.value = self._png(view.images[0])
        self.right.value = self._png(view.images[1])
        linked = int(view.links["linked"].sum()) if len(view.links) else 0
        self.info.value = (
            f"slices {view.z} | {view.z + 1}: {len(view.objects)} objects here, "
            f"{view.n_objects} in the volume; {linked} of {len(view.links)} pairs shown are linked "
            f"at threshold {view.threshold:.2f}"
        )
        cols = [c for c in ("id_a", "id_b", "iou", "overlap", "size_a", "size_b", "score", "linked")
                if c in view.links.columns]
        self.table.value = view.links[cols].head(50).to_html(index=False, float_format="%.3f")

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)
