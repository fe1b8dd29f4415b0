"""The slice-linking inspector: the pure view function, its colours and the ipywidgets."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neuroseg.linking.rules import link_slices
from neuroseg.plots import colour_labels
from neuroseg.report.inspector import InspectorView, LinkInspector, inspect_links

WHITE = [255, 255, 255]


def _case() -> np.ndarray:
    """Three 4x6 slices: two segments per slice on rows 0-2, background on row 3.

    Slice 0: 1 | 2 (3 columns each). Slices 1 and 2 repeat each other: 3 under 1 (IoU 1),
    and under 2 a 1-column segment (4, IoU 1/3 with 2) and a 2-column one (5, IoU 2/3).
    At threshold 0.3 (graph) there are 2 objects; at 0.5 segment 4 (and 7) is its own.
    """
    rows = ([1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 5, 5], [6, 6, 6, 7, 8, 8])
    return np.array([[r, r, r, [0] * 6] for r in rows], dtype=np.uint32)


@pytest.fixture
def case():
    labels = _case()
    links = link_slices(labels, method="graph", threshold=0.0).links
    raw = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    return labels, links, raw


def _colours(image: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in image.reshape(-1, 3).tolist()}


def _all_neighbours_in(mask: np.ndarray, *, outside: bool) -> np.ndarray:
    """Pixels of ``mask`` whose four neighbours are in it (beyond the image: ``outside``)."""
    pad = np.pad(mask, 1, constant_values=outside)
    return mask & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]


def _pairs(table: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(table["id_a"].astype(int).tolist(), table["id_b"].astype(int).tolist()))


# --------------------------------------------------------------------------------------------
# inspect_links
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "right", "objects", "n_objects"),
    [
        (0.3, [1, 1, 1, 2, 2, 2], [1, 2], 2),
        (0.5, [1, 1, 1, 3, 2, 2], [1, 2, 3], 3),
    ],
)
def test_view_labels_at_two_thresholds(case, threshold, right, objects, n_objects):
    labels, links, _ = case
    view = inspect_links(labels, links, z=0, threshold=threshold)
    assert isinstance(view, InspectorView)
    assert view.z == 0 and view.threshold == threshold
    expected = np.array(
        [[[1, 1, 1, 2, 2, 2]] * 3 + [[0] * 6], [right] * 3 + [[0] * 6]], dtype=np.uint32
    )
    np.testing.assert_array_equal(view.labels, expected)
    assert view.objects.tolist() == objects
    assert view.n_objects == n_objects
    assert view.selection is None
    # no selection: every candidate pair between slices 0 and 1, with the new decision
    assert _pairs(view.links) == {(1, 3), (2, 4), (2, 5)}
    assert (view.links["z_a"] == 0).all() and (view.links["z_b"] == 1).all()
    linked = dict(zip(view.links["id_b"].tolist(), view.links["linked"].tolist()))
    assert linked == {3: True, 4: threshold <= 1 / 3, 5: True}


def test_view_of_the_second_pair_of_slices(case):
    labels, links, _ = case
    view = inspect_links(labels, links, z=1, threshold=0.5)
    assert view.z == 1
    np.testing.assert_array_equal(view.labels[0], view.labels[1])
    assert view.labels[0, 0].tolist() == [1, 1, 1, 3, 2, 2]
    assert _pairs(view.links) == {(3, 6), (4, 7), (5, 8)}
    assert (view.links["z_a"] == 1).all()


def test_images_colour_by_3d_id(case):
    labels, links, _ = case
    view = inspect_links(labels, links, z=0, threshold=0.5)
    images = view.images
    assert images.shape == (2, 4, 6, 3) and images.dtype == np.uint8
    # the same 3D ID has the same colour in both slices, different IDs differ
    for obj in view.objects:
        colours = _colours(images[view.labels == obj][None])
        assert len(colours) == 1, obj
    c1, c2, c3 = (tuple(images[1][view.labels[1] == i][0]) for i in (1, 2, 3))
    assert len({c1, c2, c3}) == 3
    assert tuple(images[0, 0, 0]) == c1 and tuple(images[0, 0, 5]) == c2
    # without raw the background is black, and no object is black
    assert (images[:, 3] == 0).all()
    assert all(max(c) > 0 for c in (c1, c2, c3))
    # the colours are those of colour_labels
    np.testing.assert_array_equal(images[1], colour_labels(view.labels[1]))


def test_images_at_lower_threshold_merge_colours(case):
    labels, links, _ = case
    low = inspect_links(labels, links, z=0, threshold=0.3).images
    high = inspect_links(labels, links, z=0, threshold=0.5).images
    assert tuple(low[1, 0, 3]) == tuple(low[1, 0, 4])  # segments 4 and 5: one object
    assert tuple(high[1, 0, 3]) != tuple(high[1, 0, 4])


def test_selection_outlines_object_and_filters_links(case):
    labels, links, _ = case
    plain = inspect_links(labels, links, z=0, threshold=0.5)
    view = inspect_links(labels, links, z=0, threshold=0.5, selection=2)
    assert view.selection == 2
    np.testing.assert_array_equal(view.labels, plain.labels)
    for k in range(2):
        mask = view.labels[k] == 2
        changed = (view.images[k] != plain.images[k]).any(-1)
        assert changed.any()
        # only pixels of the selected object change, and they turn white
        assert not (changed & ~mask).any()
        assert (view.images[k][changed] == 255).all()
        # every pixel of the object with a 4-neighbour of another label is white
        edge = mask & ~_all_neighbours_in(mask, outside=True)
        assert edge.any()
        assert not (edge & ~changed).any()
        # pixels away from the object's border and the image's keep the object's colour
        inner = _all_neighbours_in(mask, outside=False)
        assert inner.any() or k == 1
        assert not (inner & changed).any()
    # the table holds the pairs of the object's segments (2 in slice 0, 5 in slice 1)
    assert _pairs(view.links) == {(2, 4), (2, 5)}
    assert view.links.index.tolist() == [0, 1]
    # other objects are untouched
    np.testing.assert_array_equal(
        view.images[0][view.labels[0] == 1], plain.images[0][plain.labels[0] == 1]
    )


def test_selection_of_single_segment_object(case):
    labels, links, _ = case
    view = inspect_links(labels, links, z=0, threshold=0.5, selection=3)
    assert view.selection == 3
    assert _pairs(view.links) == {(2, 4)}
    assert (view.images[1][:3, 3] == 255).all()
    assert not (view.images[0] == 255).all(-1).any()  # object 3 is not in slice 0


@pytest.mark.parametrize("selection", [99, 3])
def test_absent_selection_gives_none(case, selection):
    labels, links, _ = case
    # at 0.3 there is no object 3 in slices 0-1; 99 is nowhere
    plain = inspect_links(labels, links, z=0, threshold=0.3)
    view = inspect_links(labels, links, z=0, threshold=0.3, selection=selection)
    assert view.selection is None
    np.testing.assert_array_equal(view.images, plain.images)
    pd.testing.assert_frame_equal(view.links, plain.links)


@pytest.mark.parametrize("z", [2, 3, -1])
def test_z_out_of_range(case, z):
    labels, links, _ = case
    with pytest.raises(ValueError, match="z must be in"):
        inspect_links(labels, links, z=z, threshold=0.5)


def test_raw_shape_mismatch(case):
    labels, links, raw = case
    with pytest.raises(ValueError, match="shape mismatch"):
        inspect_links(labels, links, z=0, threshold=0.5, raw=raw[:, :3])


def test_labels_must_be_3d(case):
    labels, links, _ = case
    with pytest.raises(ValueError, match=r"\(z, y, x\)"):
        inspect_links(labels[0], links, z=0, threshold=0.5)


def test_raw_gives_grey_background(case):
    labels, links, raw = case
    view = inspect_links(labels, links, z=0, threshold=0.5, raw=raw)
    background = view.images[:, 3]
    assert (background[..., 0] == background[..., 1]).all()
    assert (background[..., 1] == background[..., 2]).all()
    assert background.max() > 0
    np.testing.assert_array_equal(view.images[1], colour_labels(view.labels[1], raw=raw[1]))


def test_inputs_not_modified(case):
    labels, links, raw = case
    before = labels.copy(), links.copy(deep=True), raw.copy()
    for t, sel in ((0.3, None), (0.5, 2), (0.9, 1)):
        inspect_links(labels, links, z=0, threshold=t, selection=sel, raw=raw)
    np.testing.assert_array_equal(labels, before[0])
    pd.testing.assert_frame_equal(links, before[1])
    np.testing.assert_array_equal(raw, before[2])


def test_one_slice_volume_shows_the_slice_twice():
    labels = _case()[:1]
    links = link_slices(labels, method="graph").links
    view = inspect_links(labels, links, z=0, threshold=0.5)
    np.testing.assert_array_equal(view.labels[0], view.labels[1])
    assert len(view.links) == 0


# --------------------------------------------------------------------------------------------
# colour_labels
# --------------------------------------------------------------------------------------------


def test_colour_labels_golden_properties():
    labels = np.arange(60).reshape(6, 10)
    rgb = colour_labels(labels)
    assert rgb.shape == (6, 10, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, colour_labels(labels.copy()))  # deterministic
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert len(_colours(rgb[labels > 0][None])) == 59  # 59 IDs, 59 colours
    assert (rgb[labels > 0].max(-1) > 0).all()
    assert (rgb[labels > 0] < 255).any(-1).all()  # never white (white marks a selection)
    # an ID's colour depends on the ID alone, not on the other labels or the dtype
    alone = colour_labels(np.array([[7]], np.uint16))
    assert alone[0, 0].tolist() == rgb[0, 7].tolist()


def test_colour_labels_blends_over_raw():
    labels = np.array([[0, 0, 1, 1]] * 4)
    raw = np.tile(np.linspace(0, 1, 4), (4, 1))
    plain = colour_labels(labels)
    blended = colour_labels(labels, raw=raw)
    bg = blended[:, :2]
    assert (bg[..., 0] == bg[..., 1]).all() and (bg[..., 1] == bg[..., 2]).all()
    assert bg[0, 1, 0] > bg[0, 0, 0]  # brighter raw, lighter grey
    assert not (blended[:, 2:] == plain[:, 2:]).all()
    full = colour_labels(labels, raw=raw, alpha=1.0)
    np.testing.assert_array_equal(full[:, 2:], plain[:, 2:])


# --------------------------------------------------------------------------------------------
# LinkInspector
# --------------------------------------------------------------------------------------------


def _decode(value) -> np.ndarray:
    png = bytes(value)  # ipywidgets hands the Image's value back as a memoryview
    assert png.startswith(b"\x89PNG")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _option_values(inspector: LinkInspector) -> list[int]:
    return [v for _, v in inspector.object.options]


def test_link_inspector_follows_its_controls(case):
    labels, links, raw = case
    inspector = LinkInspector(labels, links, threshold=0.5, scale=3)
    view = inspector.view
    assert view is not None and view.z == 0 and view.threshold == 0.5
    assert inspector.z.max == 1
    assert _option_values(inspector) == [0, 1, 2, 3]
    assert inspector.object.value == 0 and view.selection is None
    left = _decode(inspector.left.value)
    assert left.shape == (12, 18, 3)
    np.testing.assert_array_equal(left, np.kron(view.images[0], np.ones((3, 3, 1), np.uint8)))
    np.testing.assert_array_equal(_decode(inspector.right.value)[::3, ::3], view.images[1])
    assert "3 objects here" in inspector.info.value
    assert "<table" in inspector.table.value

    inspector.threshold.value = 0.3
    assert inspector.view.threshold == 0.3
    assert inspector.view.labels[1, 0].tolist() == [1, 1, 1, 2, 2, 2]
    assert _option_values(inspector) == [0, 1, 2]

    inspector.object.value = 2
    view = inspector.view
    assert view.selection == 2
    assert _pairs(view.links) == {(2, 4), (2, 5)}
    assert (_decode(inspector.left.value)[::3, ::3] == view.images[0]).all()
    assert (view.images[0][2, 3:] == 255).all()

    inspector.z.value = 1
    assert inspector.view.z == 1 and inspector.view.selection == 2
    assert _pairs(inspector.view.links) == {(4, 7), (5, 8)}

    inspector.threshold.value = 0.5
    assert inspector.view.threshold == 0.5
    assert _option_values(inspector) == [0, 1, 2, 3]
    inspector.object.value = 3
    assert inspector.view.selection == 3
    assert _pairs(inspector.view.links) == {(4, 7)}
    # object 3 disappears at 0.3: the picker falls back to "none"
    inspector.threshold.value = 0.3
    assert inspector.view.selection is None
    assert inspector.object.value == 0
    assert _option_values(inspector) == [0, 1, 2]
    assert not (inspector.view.images == 255).all(-1).any()


def test_link_inspector_keeps_a_selection_that_is_still_present(case):
    labels, links, _ = case
    inspector = LinkInspector(labels, links, threshold=0.3)
    inspector.object.value = 2
    assert inspector.view.selection == 2
    inspector.threshold.value = 0.5  # object 3 appears; object 2 is still in both slices
    assert 2 in inspector.view.objects.tolist()
    assert _option_values(inspector) == [0, 1, 2, 3]
    assert inspector.object.value == 2
    assert inspector.view.selection == 2


def test_link_inspector_with_raw_and_links_unchanged(case):
    labels, links, raw = case
    before = links.copy(deep=True)
    inspector = LinkInspector(labels, links, raw=raw, threshold=0.9, scale=1)
    assert inspector.view.n_objects == 4
    image = _decode(inspector.left.value)
    assert image.shape == (4, 6, 3)
    np.testing.assert_array_equal(image, inspector.view.images[0])
    bg = image[3]
    assert (bg[:, 0] == bg[:, 2]).all() and bg.max() > 0
    inspector.z.value = 1
    pd.testing.assert_frame_equal(links, before)


def test_the_inspector_on_another_tools_masks_has_a_scale_bar_and_each_links_decision():
    import io as _io

    from PIL import Image

    from neuroseg.report.inspector import LinkInspector, with_scale_bar

    masks = np.zeros((3, 40, 60), np.uint16)
    masks[:, 5:20, 5:25] = 1  # numbered from 1 in every slice, as Cellpose writes them
    masks[:, 22:35, 30:55] = 2
    masks[2, 22:35, 30:55] = 1
    raw = np.random.default_rng(0).random(masks.shape).astype(np.float32)
    ins = LinkInspector.from_masks(masks, raw, resolution=(40, 8, 8))
    assert ins.view.n_objects == 2 and ins.pixel_size == 8.0
    assert {"score", "linked"} <= set(ins.view.links.columns) and ins.view.links["linked"].all()
    png = Image.open(_io.BytesIO(ins.left.value))
    plain = LinkInspector(ins.labels, ins.links, raw=raw, threshold=ins.threshold.value)
    assert png.size == Image.open(_io.BytesIO(plain.left.value)).size
    assert ins.left.value != plain.left.value  # the bar and its label
    bar = np.asarray(with_scale_bar(Image.new("RGB", (100, 50)), 10.0))
    assert bar[..., 0].max() == 255 and (bar[:, :, 0] == 255).any(axis=0).sum() >= 20  # 200 nm = 20 px
    with pytest.raises(ValueError, match="pixel_size"):
        LinkInspector(ins.labels, ins.links, pixel_size=-1.0)
