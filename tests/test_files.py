"""Tests of neuroseg.data.files: every format round-trips an image and a label volume."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data import files
from neuroseg.data.readers import DataError

IMAGE = np.random.default_rng(0).integers(0, 200, (12, 10)).astype(np.uint8)
LABELS = np.zeros((3, 12, 10), np.int64)
LABELS[:, 2:6, 2:6] = 1
LABELS[1, 7:, 5:] = 70000  # needs uint32


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".npy"])
def test_label_volume_round_trips_with_its_voxel_size(tmp_path, suffix):
    path = files.write(tmp_path / f"labels{suffix}", LABELS, voxel_size=(40, 10, 10), labels=True)
    back = files.read(path)
    assert back.array.dtype == np.uint32
    np.testing.assert_array_equal(back.array, LABELS)
    expected = None if suffix == ".npy" else (40.0, 10.0, 10.0)
    assert back.voxel_size == expected


@pytest.mark.parametrize("suffix", [".tif", ".png", ".h5", ".npy"])
def test_image_round_trips(tmp_path, suffix):
    voxel = None if suffix in (".png", ".npy") else (4.5, 4.5)
    back = files.read(files.write(tmp_path / f"image{suffix}", IMAGE, voxel_size=voxel))
    np.testing.assert_array_equal(back.array, IMAGE)
    assert back.array.dtype == IMAGE.dtype and back.voxel_size == voxel


def test_smallest_label_type():
    assert files.smallest_label_dtype(np.array([0, 3])) == np.uint8
    assert files.smallest_label_dtype(np.array([0, 256])) == np.uint16
    assert files.smallest_label_dtype(np.array([2**40])) == np.uint64
    with pytest.raises(ValueError, match=">= 0"):
        files.smallest_label_dtype(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        files.smallest_label_dtype(np.array([0.5]))


def test_folder_of_slices_in_natural_order(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for z in (1, 2, 10):
        files.write(folder / f"z{z}.png", np.full((4, 4), z, np.uint8))
    assert files.read(folder).array[:, 0, 0].tolist() == [1, 2, 10]


def test_bad_paths_and_formats_fail_clearly_and_leave_nothing(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        files.read(tmp_path / "none.tif")
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match="unknown format"):
        files.read(tmp_path / "x.bmp")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match="broken.tif"):
        files.read(tmp_path / "broken.tif")
    with pytest.raises(ValueError, match="PNG holds 2D"):
        files.write(tmp_path / "v.png", LABELS, labels=True)
    with pytest.raises(ValueError, match="voxel_size must be 3"):
        files.write(tmp_path / "v.tif", LABELS, voxel_size=(10, 10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tif", "x.bmp"]


def test_hdf5_with_several_datasets_needs_a_key(tmp_path):
    import h5py

    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = IMAGE
        f["labels"] = IMAGE > 100
    with pytest.raises(DataError, match="key="):
        files.read(path)
    np.testing.assert_array_equal(files.read(path, key="raw").array, IMAGE)


# --------------------------------------------------------------------------------------------
# zarr / OME-Zarr
# --------------------------------------------------------------------------------------------


def test_zarr_round_trip_with_voxel_size_and_label_dtype(tmp_path):
    labels = np.array([[[0, 1], [2, 70000]], [[0, 1], [1, 1]]], np.int64)
    files.write(tmp_path / "l.zarr", labels, voxel_size=(40, 10, 10), labels=True)
    image = files.read(tmp_path / "l.zarr")
    assert image.array.dtype == np.uint32 and image.voxel_size == (40.0, 10.0, 10.0)
    np.testing.assert_array_equal(image.array, labels)
    # written again: replaced whole, no stale chunk or leftover folder
    files.write(tmp_path / "l.zarr", np.zeros((1, 3, 3), np.float32))
    assert files.read(tmp_path / "l.zarr").array.shape == (1, 3, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["l.zarr"]


def test_zarr_is_ome_zarr_that_ome_zarr_reads(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    files.write(tmp_path / "img.zarr", np.ones((2, 4, 4), np.uint8), voxel_size=(30, 4, 4))
    (node,) = list(Reader(parse_url(str(tmp_path / "img.zarr")))())
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [30.0, 4.0, 4.0]
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]


def test_zarr_plain_array_key_and_bad_stores(tmp_path):
    import zarr

    z = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(2, 3), dtype="uint16")
    z[...] = 7
    z.attrs["resolution"] = [5.0, 5.0]
    image = files.read(tmp_path / "plain.zarr")
    assert image.voxel_size == (5.0, 5.0) and image.array.sum() == 42
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(2,), dtype="uint8")
    group.create_array("b", shape=(3,), dtype="uint8")
    with pytest.raises(DataError, match="key="):
        files.read(tmp_path / "g.zarr")
    assert files.read(tmp_path / "g.zarr", key="b").array.shape == (3,)
    with pytest.raises(DataError, match="no array 'c'"):
        files.read(tmp_path / "g.zarr", key="c")
    with pytest.raises(DataError, match="no such file"):
        files.read(tmp_path / "missing.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(DataError, match="not a readable zarr"):
        files.read(tmp_path / "junk.zarr")


def test_create_zarr_writes_block_by_block(tmp_path):
    z = files.create_zarr(tmp_path / "b.zarr", (4, 6, 6), np.uint16, chunks=(2, 3, 3),
                          voxel_size=(40, 10, 10), labels=True)
    z[2:4, 3:6, 0:3] = 9
    array, voxel = files.open_zarr(tmp_path / "b.zarr")
    assert array.chunks == (2, 3, 3) and voxel == (40.0, 10.0, 10.0)
    assert int(array[...].sum()) == 9 * 18
