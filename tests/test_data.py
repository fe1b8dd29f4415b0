"""Tests of neuroseg.data readers on tiny files built in tmp_path (no real data needed).

Every malformed input must raise DataError naming the file (and, for HDF5, the key).
"""

from __future__ import annotations

import csv
import json

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from neuroseg.data.readers import (
    AXON_CLASSES,
    DataError,
    Volume,
    check_image,
    check_labels,
    check_same_shape,
    list_axondeepseg,
    list_dsb,
    read_axondeepseg,
    read_cremi,
    read_dsb,
    read_tiff_stack,
    write_cremi,
)

RAW = "volumes/raw"
IDS = "volumes/labels/neuron_ids"


# --------------------------------------------------------------------------- helpers


def _h5(path, datasets: dict, attrs: dict | None = None):
    """Write ``{key: array}`` to an HDF5 file, with ``{key: {attr: value}}``."""
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
        for key, kv in (attrs or {}).items():
            for name, value in kv.items():
                f[key].attrs[name] = value
    return path


def _vol(shape=(2, 3, 4), dtype=np.uint8):
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def _raises(func, *args, must_name=(), **kwargs) -> str:
    with pytest.raises(DataError) as err:
        func(*args, **kwargs)
    message = str(err.value)
    for needle in must_name:
        assert str(needle) in message, f"{needle!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------- CREMI HDF5: errors


def test_cremi_missing_file(tmp_path):
    path = tmp_path / "absent.h5"
    _raises(read_cremi, path, must_name=[path])


def test_cremi_not_hdf5(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_text("this is not HDF5\n")
    _raises(read_cremi, path, must_name=[path, "HDF5"])


def test_cremi_missing_raw_key(tmp_path):
    path = _h5(tmp_path / "a.h5", {"volumes/other": _vol(), IDS: _vol(dtype=np.uint32)})
    _raises(read_cremi, path, must_name=[path, RAW, "volumes/other"])


def test_cremi_missing_labels_key(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol()})
    _raises(read_cremi, path, must_name=[path, IDS])
    _raises(read_cremi, path, labels="clefts", must_name=[path, "volumes/labels/clefts"])


def test_cremi_raw_2d_where_3d_expected(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol((3, 4)), IDS: _vol((3, 4), np.uint32)})
    msg = _raises(read_cremi, path, must_name=[path, RAW])
    assert "(3, 4)" in msg
    # the same file is fine when 2D is asked for
    assert read_cremi(path, ndim=2).raw.shape == (3, 4)


def test_cremi_labels_wrong_dimensionality(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: _vol((3, 4), np.uint32)})
    _raises(read_cremi, path, must_name=[path, IDS])


@pytest.mark.parametrize(
    "raw",
    [
        np.array([[[b"a", b"b"]]], dtype="S1"),
        np.array([[["x", "yy"]]], dtype=h5py.string_dtype()),
        np.ones((2, 3, 4), np.complex64),
    ],
    ids=["bytes", "vlen-str", "complex"],
)
def test_cremi_unusable_raw_dtype(tmp_path, raw):
    path = _h5(tmp_path / "a.h5", {RAW: raw})
    _raises(read_cremi, path, labels=None, must_name=[path, RAW, "dtype"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cremi_float_labels(tmp_path, dtype):
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: _vol(dtype=dtype)})
    _raises(read_cremi, path, must_name=[path, IDS, "float"])


def test_cremi_unusable_labels_dtype(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: np.ones((2, 3, 4), np.complex128)})
    _raises(read_cremi, path, must_name=[path, IDS])


def test_cremi_negative_labels(tmp_path):
    labels = _vol(dtype=np.int32)
    labels[0, 0, 0] = -1
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: labels})
    _raises(read_cremi, path, must_name=[path, IDS, "non-negative"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_cremi_nan_in_raw(tmp_path, bad):
    raw = _vol(dtype=np.float32)
    raw[1, 2, 3] = bad
    path = _h5(tmp_path / "a.h5", {RAW: raw, IDS: _vol(dtype=np.uint32)})
    _raises(read_cremi, path, must_name=[path, RAW, "NaN"])


def test_cremi_shape_mismatch_names_file(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol((2, 3, 4)), IDS: _vol((2, 3, 5), np.uint32)})
    msg = _raises(read_cremi, path, must_name=[path])
    assert "(2, 3, 4)" in msg and "(2, 3, 5)" in msg


def test_cremi_shape_mismatch_names_labels_key(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol((2, 3, 4)), IDS: _vol((2, 3, 5), np.uint32)})
    _raises(read_cremi, path, must_name=[path, IDS])


def test_cremi_resolution_of_wrong_length(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol()}, {RAW: {"resolution": [4.0, 4.0]}})
    _raises(read_cremi, path, labels=None, must_name=[path, RAW, "resolution"])


# --------------------------------------------------------------------------- CREMI HDF5: happy


def test_cremi_resolution_from_attribute(tmp_path):
    path = _h5(
        tmp_path / "a.h5",
        {RAW: _vol(), IDS: _vol(dtype=np.uint32)},
        {RAW: {"resolution": np.array([40, 4, 4], np.int64)}},
    )
    vol = read_cremi(path)
    assert vol.resolution == (40.0, 4.0, 4.0)
    assert all(type(r) is float for r in vol.resolution)
    assert vol.axes == "zyx"
    assert vol.label_key == IDS
    assert vol.source == str(path)
    np.testing.assert_array_equal(vol.raw, _vol())
    np.testing.assert_array_equal(vol.labels, _vol(dtype=np.uint32))


def test_cremi_resolution_none_when_absent(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: _vol(dtype=np.uint32)})
    vol = read_cremi(path)
    assert vol.resolution is None


def test_cremi_resolution_falls_back_to_labels(tmp_path):
    path = _h5(
        tmp_path / "a.h5",
        {RAW: _vol(), IDS: _vol(dtype=np.uint32)},
        {IDS: {"resolution": [30.0, 6.0, 6.0]}},
    )
    assert read_cremi(path).resolution == (30.0, 6.0, 6.0)
    assert read_cremi(path, labels=None).resolution is None


def test_cremi_axes_attribute_with_commas(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol()}, {RAW: {"axes": "z,y,x"}})
    assert read_cremi(path, labels=None).axes == "zyx"


def test_cremi_bool_labels_become_uint8(tmp_path):
    path = _h5(tmp_path / "a.h5", {RAW: _vol(), IDS: _vol() % 2 == 0})
    labels = read_cremi(path).labels
    assert labels.dtype == np.uint8 and labels.sum() == 12


def test_write_read_cremi_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (3, 5, 7), dtype=np.uint8)
    labels = rng.integers(0, 2**40, (3, 5, 7), dtype=np.uint64)
    vol = Volume(raw=raw, labels=labels, resolution=(50.0, 4.5, 4.5), axes="zyx", source="x")
    path = write_cremi(vol, tmp_path / "out" / "rt.h5")
    assert path == tmp_path / "out" / "rt.h5"
    assert sorted(p.name for p in path.parent.iterdir()) == ["rt.h5"]  # no temp file left
    back = read_cremi(path)
    np.testing.assert_array_equal(back.raw, raw)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.raw.dtype == np.uint8 and back.labels.dtype == np.uint64
    assert back.resolution == (50.0, 4.5, 4.5)
    assert back.shape == (3, 5, 7)


def test_write_read_cremi_without_labels_or_resolution(tmp_path):
    vol = Volume(raw=_vol(), labels=None, resolution=None, axes="zyx", source="x")
    path = write_cremi(vol, tmp_path / "r.h5")
    back = read_cremi(path, labels=None)
    assert back.labels is None and back.resolution is None
    _raises(read_cremi, path, must_name=[IDS])


def test_official_cremi_layout_opens_unchanged(tmp_path):
    """Mimics cremi.org sample files: uint64 IDs, clefts with 2**64-1 background, annotations."""
    shape = (2, 6, 6)
    raw = _vol(shape)
    ids = np.full(shape, 7, np.uint64)
    ids[:, :, 3:] = 2**40 + 1
    clefts = np.full(shape, np.iinfo(np.uint64).max, np.uint64)
    clefts[1, 2:4, 2:4] = 5
    path = tmp_path / "sample_A_20160501.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=raw).attrs["resolution"] = [40.0, 4.0, 4.0]
        for name, arr in (("neuron_ids", ids), ("clefts", clefts)):
            ds = f.create_dataset(f"volumes/labels/{name}", data=arr)
            ds.attrs["resolution"] = [40.0, 4.0, 4.0]
            ds.attrs["offset"] = [0.0, 0.0, 0.0]
        f["annotations/ids"] = np.array([1, 2], np.uint64)
        f["annotations/types"] = np.array(["presynaptic_site", "postsynaptic_site"], dtype="S17")
        f["annotations/locations"] = np.zeros((2, 3), np.float64)
    vol = read_cremi(path)
    assert vol.resolution == (40.0, 4.0, 4.0)
    assert vol.labels.dtype == np.uint64
    np.testing.assert_array_equal(vol.labels, ids)
    np.testing.assert_array_equal(vol.raw, raw)
    cl = read_cremi(path, labels="clefts")
    assert cl.label_key == "volumes/labels/clefts"
    assert int(cl.labels.max()) == 2**64 - 1 and int(cl.labels.min()) == 5
    full_key = read_cremi(path, labels="volumes/labels/clefts")
    np.testing.assert_array_equal(full_key.labels, clefts)


# --------------------------------------------------------------------------- DSB 2018


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)
    return path


GREY = (np.arange(6 * 8).reshape(6, 8) * 5).astype(np.uint8)


def _dsb_masks():
    """Three nucleus masks under names whose sorted order differs from creation order."""
    m = {name: np.zeros((6, 8), np.uint8) for name in ("c_mask", "a_mask", "b_mask")}
    m["a_mask"][0:3, 0:3] = 255
    m["b_mask"][2:4, 2:6] = 255  # overlaps a at (2, 2): b is later in sorted order and wins
    m["c_mask"][5, 7] = 255
    return m


EXPECTED_DSB = np.zeros((6, 8), np.uint16)
EXPECTED_DSB[0:3, 0:3] = 1
EXPECTED_DSB[2:4, 2:6] = 2
EXPECTED_DSB[5, 7] = 3


def _kaggle_tree(root, image_id="img1", image=None, masks=None):
    if image is None:
        image = np.dstack([GREY, GREY, GREY, np.full_like(GREY, 255)])  # RGBA, R==G==B
    _png(root / image_id / "images" / f"{image_id}.png", image)
    for name, mask in (masks if masks is not None else _dsb_masks()).items():
        _png(root / image_id / "masks" / f"{name}.png", mask)
    return root


def _merged_tree(root, rows):
    """rows: list of (id, image, labels)."""
    for image_id, image, labels in rows:
        _png(root / "images" / f"{image_id}.png", image)
        _png(root / "labels" / f"{image_id}.png", labels)
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "height", "width", "channels", "n_nuclei", "mean_intensity",
                         "nuclei_brighter_than_background"])
        for image_id, image, labels in rows:
            writer.writerow([image_id, *labels.shape, 1 if image.ndim == 2 else image.shape[-1],
                             int(labels.max()), 12.5, 1])
    return root


def test_dsb_kaggle_layout_merges_masks_in_sorted_order(tmp_path):
    root = _kaggle_tree(tmp_path / "kaggle")
    sample = read_dsb(root, "img1")
    assert sample.id == "img1"
    np.testing.assert_array_equal(sample.labels, EXPECTED_DSB)
    assert sample.labels.dtype == np.uint16
    # RGBA with constant alpha and identical RGB becomes one grey channel
    assert sample.image.shape == (6, 8) and sample.image.dtype == np.uint8
    np.testing.assert_array_equal(sample.image, GREY)


def test_dsb_both_layouts_agree(tmp_path):
    kaggle = _kaggle_tree(tmp_path / "kaggle")
    merged = _merged_tree(tmp_path / "merged", [("img1", GREY, EXPECTED_DSB)])
    a, b = read_dsb(kaggle, "img1"), read_dsb(merged, "img1")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.image, b.image)


def test_dsb_colour_image_kept_rgb(tmp_path):
    rgb = np.dstack([GREY, GREY[::-1], GREY])
    root = _kaggle_tree(tmp_path / "k", image=np.dstack([rgb, np.full_like(GREY, 255)]))
    image = read_dsb(root, "img1").image
    assert image.shape == (6, 8, 3)
    np.testing.assert_array_equal(image, rgb)


def test_dsb_list_layouts(tmp_path):
    kaggle = tmp_path / "kaggle"
    for image_id in ("zz", "aa", "mm"):
        _kaggle_tree(kaggle, image_id=image_id)
    (kaggle / "README.txt").write_text("stray file")
    assert [r["id"] for r in list_dsb(kaggle)] == ["aa", "mm", "zz"]
    merged = _merged_tree(
        tmp_path / "merged", [("x2", GREY, EXPECTED_DSB), ("x1", GREY, EXPECTED_DSB)]
    )
    rows = list_dsb(merged)
    assert [r["id"] for r in rows] == ["x2", "x1"]  # manifest order
    assert rows[0] == {
        "id": "x2", "height": 6, "width": 8, "channels": 1, "n_nuclei": 3,
        "mean_intensity": 12.5, "nuclei_brighter_than_background": 1,
    }
    (merged / "manifest.csv").unlink()
    assert list_dsb(merged) == [{"id": "x1"}, {"id": "x2"}]


def test_dsb_mask_of_wrong_shape(tmp_path):
    masks = _dsb_masks()
    masks["b_mask"] = np.zeros((6, 7), np.uint8)
    root = _kaggle_tree(tmp_path / "k", masks=masks)
    _raises(read_dsb, root, "img1", must_name=[root / "img1" / "masks" / "b_mask.png"])


def test_dsb_merged_labels_of_wrong_shape(tmp_path):
    root = _merged_tree(tmp_path / "m", [("img1", GREY, np.zeros((6, 9), np.uint16))])
    _raises(read_dsb, root, "img1", must_name=["img1", "(6, 8)", "(6, 9)"])


def test_dsb_missing_image_and_masks(tmp_path):
    root = _merged_tree(tmp_path / "m", [("img1", GREY, EXPECTED_DSB)])
    _raises(read_dsb, root, "nope", must_name=[root / "images" / "nope.png"])
    kaggle = _kaggle_tree(tmp_path / "k", masks={})
    (kaggle / "img1" / "masks").mkdir()
    _raises(read_dsb, kaggle, "img1", must_name=[kaggle / "img1" / "masks"])


def test_dsb_unknown_layout_and_missing_root(tmp_path):
    (tmp_path / "empty" / "something").mkdir(parents=True)
    _raises(read_dsb, tmp_path / "empty", "x", must_name=[tmp_path / "empty", "layout"])
    _raises(list_dsb, tmp_path / "absent", must_name=[tmp_path / "absent"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio probes legacy plugins
def test_dsb_unreadable_png(tmp_path):
    root = _merged_tree(tmp_path / "m", [("img1", GREY, EXPECTED_DSB)])
    (root / "labels" / "img1.png").write_bytes(b"not a png")
    _raises(read_dsb, root, "img1", must_name=[root / "labels" / "img1.png"])


# --------------------------------------------------------------------------- AxonDeepSeg


AX_IMAGE = (np.arange(5 * 6).reshape(5, 6) * 7).astype(np.uint8)
AX_AXON = np.zeros((5, 6), np.uint8)
AX_AXON[1:3, 1:3] = 255
AX_MYELIN = np.zeros((5, 6), np.uint8)
AX_MYELIN[0:4, 0:4] = 255
AX_MYELIN[1:3, 1:3] = 0
AX_MYELIN[1, 1] = 255  # overlaps axon: axon is painted over myelin
AX_UAXON = np.zeros((5, 6), np.uint8)
AX_UAXON[3:5, 4:6] = 255
AX_UAXON[3, 3] = 255  # overlaps myelin: uaxon wins

EXPECTED_AX = np.zeros((5, 6), np.uint8)
EXPECTED_AX[0:4, 0:4] = 1
EXPECTED_AX[1:3, 1:3] = 2
EXPECTED_AX[3:5, 4:6] = 3
EXPECTED_AX[3, 3] = 3
EXPECTED_AX_NO_UAXON = EXPECTED_AX.copy()
EXPECTED_AX_NO_UAXON[3:5, 4:6] = 0
EXPECTED_AX_NO_UAXON[3, 3] = 1


def _ax_folders(root, *, with_csv=True, uaxon=True, masks_dtype=np.uint8):
    samples = {"sub-r1_sample-a_TEM": 0.00493, "sub-r2_sample-b_TEM": 0.1}
    for sample in samples:
        _png(root / sample / "image.png", AX_IMAGE)
        for name, mask in (("axon", AX_AXON), ("myelin", AX_MYELIN), ("uaxon", AX_UAXON)):
            if name == "uaxon" and not uaxon:
                continue
            value = mask > 0 if masks_dtype is bool else mask.astype(masks_dtype)
            _png(root / sample / f"{name}.png", value)
    if with_csv:
        with (root / "samples.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sample", "subject", "pixel_size_um", "phenotype"])
            for sample, px in samples.items():
                writer.writerow([sample, sample.split("_")[0], px, "WT"])
    return root


def _ax_bids(root, *, modality="TEM", pixel_size=(0.00493, 0.00493), uaxon=True):
    stems = [f"sub-r1_sample-a_{modality}", f"sub-r2_sample-b_{modality}"]
    for stem in stems:
        subject = stem.split("_")[0]
        grey_alpha = np.dstack([AX_IMAGE, np.full_like(AX_IMAGE, 255)])
        _png(root / subject / "micr" / f"{stem}.png", grey_alpha)
        if pixel_size is not None:
            sidecar = {"PixelSize": list(pixel_size), "PixelSizeUnits": "um"}
            (root / subject / "micr" / f"{stem}.json").write_text(json.dumps(sidecar))
        lab = root / "derivatives" / "labels" / subject / "micr"
        for name, mask in (("axon", AX_AXON), ("myelin", AX_MYELIN), ("uaxon", AX_UAXON)):
            if name == "uaxon" and not uaxon:
                continue
            _png(lab / f"{stem}_seg-{name}-manual.png", mask)
        # the combined mask ADS also ships must not be mistaken for an image
        _png(lab / f"{stem}_seg-axonmyelin-manual.png", AX_AXON)
    (root / "participants.tsv").write_text("participant_id\nsub-r1\nsub-r2\n")
    return stems


def test_axondeepseg_folders_with_samples_csv(tmp_path):
    root = _ax_folders(tmp_path / "ads")
    entries = list_axondeepseg(root)
    assert [e["id"] for e in entries] == ["sub-r1_sample-a_TEM", "sub-r2_sample-b_TEM"]
    assert [e["pixel_size"] for e in entries] == [0.00493, 0.1]
    s = read_axondeepseg(root, "sub-r1_sample-a_TEM")
    np.testing.assert_array_equal(s.labels, EXPECTED_AX)
    np.testing.assert_array_equal(s.image, AX_IMAGE)
    assert s.pixel_size == 0.00493
    assert sorted(s.masks) == ["axon", "myelin", "uaxon"]
    np.testing.assert_array_equal(s.masks["axon"], AX_AXON > 0)
    assert s.meta["phenotype"] == "WT" and s.meta["layout"] == "folders"
    assert AXON_CLASSES == {"background": 0, "myelin": 1, "axon": 2, "uaxon": 3}


def test_axondeepseg_without_uaxon_and_without_csv(tmp_path):
    root = _ax_folders(tmp_path / "ads", with_csv=False, uaxon=False)
    entries = list_axondeepseg(root)
    assert [e["pixel_size"] for e in entries] == [None, None]
    s = read_axondeepseg(root, "sub-r2_sample-b_TEM")
    np.testing.assert_array_equal(s.labels, EXPECTED_AX_NO_UAXON)
    assert sorted(s.masks) == ["axon", "myelin"]
    assert s.pixel_size is None
    assert read_axondeepseg(root, "sub-r2_sample-b_TEM", pixel_size=0.2).pixel_size == 0.2


def test_axondeepseg_bids_layout(tmp_path):
    root = tmp_path / "bids"
    stems = _ax_bids(root)
    entries = list_axondeepseg(root)
    assert [e["id"] for e in entries] == stems
    assert all(e["layout"] == "bids" and e["pixel_size"] == 0.00493 for e in entries)
    s = read_axondeepseg(root, stems[1])
    np.testing.assert_array_equal(s.labels, EXPECTED_AX)
    np.testing.assert_array_equal(s.image, AX_IMAGE)  # grey + alpha -> grey
    assert s.pixel_size == 0.00493


def test_axondeepseg_bids_and_folders_agree(tmp_path):
    folders = _ax_folders(tmp_path / "f", uaxon=False)
    bids = tmp_path / "b"
    _ax_bids(bids, modality="SEM", pixel_size=(0.1, 0.1), uaxon=False)
    a = read_axondeepseg(folders, "sub-r2_sample-b_TEM")
    b = read_axondeepseg(bids, "sub-r2_sample-b_SEM")
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.pixel_size == b.pixel_size == 0.1


def test_axondeepseg_bids_without_sidecar(tmp_path):
    root = tmp_path / "b"
    stems = _ax_bids(root, pixel_size=None)
    assert [e["pixel_size"] for e in list_axondeepseg(root)] == [None, None]
    assert read_axondeepseg(root, stems[0]).pixel_size is None


def test_axondeepseg_errors(tmp_path):
    root = _ax_folders(tmp_path / "ads")
    _raises(read_axondeepseg, root, "sub-r9_x_TEM", must_name=[root, "sub-r9_x_TEM"])
    _png(root / "sub-r1_sample-a_TEM" / "myelin.png", np.zeros((5, 5), np.uint8))
    _raises(
        read_axondeepseg, root, "sub-r1_sample-a_TEM",
        must_name=[root / "sub-r1_sample-a_TEM" / "myelin.png"],
    )
    (root / "sub-r2_sample-b_TEM" / "axon.png").unlink()
    _raises(
        read_axondeepseg, root, "sub-r2_sample-b_TEM",
        must_name=[root / "sub-r2_sample-b_TEM" / "axon.png", "not found"],
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises(list_axondeepseg, empty, must_name=[empty])


def test_axondeepseg_colour_image_rejected(tmp_path):
    root = _ax_folders(tmp_path / "ads")
    rgb = np.dstack([AX_IMAGE, AX_IMAGE[::-1], AX_IMAGE])
    _png(root / "sub-r1_sample-a_TEM" / "image.png", rgb)
    _raises(
        read_axondeepseg, root, "sub-r1_sample-a_TEM",
        must_name=[root / "sub-r1_sample-a_TEM" / "image.png", "grey"],
    )


def test_axondeepseg_one_bit_masks(tmp_path):
    root = _ax_folders(tmp_path / "ads", masks_dtype=bool)
    assert iio.imread(root / "sub-r1_sample-a_TEM" / "axon.png").dtype == bool
    s = read_axondeepseg(root, "sub-r1_sample-a_TEM")
    np.testing.assert_array_equal(s.labels, EXPECTED_AX)


# --------------------------------------------------------------------------- TIFF stacks


def test_tiff_multipage_and_folder_agree(tmp_path):
    stack = np.random.default_rng(1).integers(0, 2**16, (4, 5, 6), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    folder = tmp_path / "slices"
    folder.mkdir()
    for z, plane in enumerate(stack):
        tifffile.imwrite(folder / f"s{z:03d}.tif", plane)
    (folder / "notes.txt").write_text("ignored")
    a = read_tiff_stack(tmp_path / "stack.tif", resolution=(40, 4, 4))
    b = read_tiff_stack(folder, resolution=(40, 4, 4))
    for vol in (a, b):
        np.testing.assert_array_equal(vol.raw, stack)
        assert vol.raw.dtype == np.uint16
        assert vol.axes == "zyx" and vol.labels is None
        assert vol.resolution == (40.0, 4.0, 4.0)
    assert read_tiff_stack(folder).resolution is None


def test_tiff_single_page_becomes_one_slice(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", GREY)
    vol = read_tiff_stack(tmp_path / "one.tif")
    assert vol.raw.shape == (1, 6, 8)


def test_tiff_errors(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    _raises(read_tiff_stack, folder, must_name=[folder, "*.tif*"])
    tifffile.imwrite(folder / "a.tif", np.zeros((4, 5), np.uint8))
    tifffile.imwrite(folder / "b.tif", np.zeros((4, 6), np.uint8))
    _raises(read_tiff_stack, folder, must_name=[folder, "different shapes"])
    _raises(read_tiff_stack, tmp_path / "absent.tif", must_name=[tmp_path / "absent.tif"])
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    _raises(read_tiff_stack, bad, must_name=[bad])
    tifffile.imwrite(tmp_path / "ok.tif", np.zeros((2, 4, 5), np.uint8), photometric="minisblack")
    _raises(read_tiff_stack, tmp_path / "ok.tif", resolution=(4, 4), must_name=["resolution"])


def test_tiff_nan_rejected(tmp_path):
    stack = np.zeros((2, 3, 3), np.float32)
    stack[1, 1, 1] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", stack, photometric="minisblack")
    _raises(read_tiff_stack, tmp_path / "nan.tif", must_name=[tmp_path / "nan.tif", "NaN"])


# --------------------------------------------------------------------------- validators


def test_check_image_and_labels_directly():
    assert check_image(np.zeros((2, 2), bool), where="w").dtype == bool
    _raises(check_image, np.zeros((0, 3)), where="here", must_name=["here", "empty"])
    _raises(check_image, np.zeros((2, 2)), where="w", ndim=(3, 4), must_name=["(3, 4)"])
    _raises(check_labels, np.array(["a"]), where="w", must_name=["cannot hold labels"])
    check_same_shape((2, 3), [2, 3], where="w")
    _raises(check_same_shape, (2, 3), (3, 2), where="w", must_name=["w", "differ"])
