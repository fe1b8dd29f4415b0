"""Tests of neuroseg.data.download: downloading, safe extraction and the dataset converters.

No test touches the network: each builds a tiny fake source tree with the layout of the real
public repository, packs it like a GitHub archive (``<repo>-<commit>/...``) and fetches it
through a ``file://`` URL. The results are read back with the readers of neuroseg.data.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import shutil
import tarfile
import warnings
import zipfile
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from neuroseg.data import download
from neuroseg.data.catalogue import DATASETS
from neuroseg.data.convert import (
    AXON_COLUMNS,
    DSB_COLUMNS,
    convert_axondeepseg,
    convert_dsb2018,
    staging_dir,
)
from neuroseg.data.download import (
    SOURCES,
    UnsafeArchiveError,
    extract_archive,
    fetch_missing,
    missing_files,
)
from neuroseg.data.readers import (
    DataError,
    list_dsb,
    read_axondeepseg,
    read_cremi,
    read_ctc_frames,
    read_dsb,
    read_neurofinder,
)
from neuroseg.data.summaries import local_correlation

TOP = "repo-0123456789abcdef"


# --------------------------------------------------------------------------- helpers


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    """Write a PNG; bool arrays as 1-bit, ``mode`` e.g. "LA" for grey + alpha."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if mode or array.dtype == bool:
        Image.fromarray(array, mode=mode).save(path)
    else:
        iio.imwrite(path, array)


def _pack(tmp_path: Path, build, *, top: str = TOP) -> str:
    """Build a source tree with ``build(root)`` and pack it as a GitHub-like .tar.gz URL."""
    root = tmp_path / "src" / top
    root.mkdir(parents=True)
    build(root)
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root, arcname=top)
    return archive.as_uri()


def _fetch(name: str, tmp_path: Path, url: str) -> Path:
    root = tmp_path / "data"
    out = download.fetch(name, data_root=root, url=url, progress=False)
    assert out == root / name
    assert [p.name for p in root.iterdir()] == [name], "temporary files left in data_root"
    return out


def _attrs(path: Path, key: str) -> dict:
    with h5py.File(path, "r") as f:
        return dict(f[key].attrs)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- converters


def test_gala(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    gt = rng.integers(0, 7, (3, 4, 5)).astype(np.int32)

    def build(root):
        ex = root / "tests" / "example-data"
        ex.mkdir(parents=True)
        with h5py.File(ex / "train-image.h5", "w") as f:
            f["stack"] = raw
        with h5py.File(ex / "train-gt.lzf.h5", "w") as f:
            f.create_dataset("stack", data=gt, compression="lzf")
        (root / "LICENSE.txt").write_text("Copyright 2012 HHMI.\n")

    out = _fetch("fib_gala_example", tmp_path, _pack(tmp_path, build))
    vol = read_cremi(out / "train.h5")
    assert vol.raw.dtype == np.uint8 and vol.labels.dtype == np.uint32
    np.testing.assert_array_equal(vol.raw, raw)
    np.testing.assert_array_equal(vol.labels, gt)
    assert vol.resolution is None and vol.axes == "zyx"
    attrs = _attrs(out / "train.h5", "volumes/labels/neuron_ids")
    assert attrs["meaning"] == "0 = boundary/unlabelled, >0 = body id"
    assert "train-gt.lzf.h5" in attrs["source"]
    assert (out / "LICENSE.txt").read_text() == "Copyright 2012 HHMI.\n"

    # complete: a second fetch is skipped (the file is not rewritten), even with a bad URL
    mtime = (out / "train.h5").stat().st_mtime_ns
    download.fetch("fib_gala_example", data_root=out.parent, url="file:///nonexistent.tar.gz")
    assert (out / "train.h5").stat().st_mtime_ns == mtime


def test_isbi2012_slices_in_numeric_order(tmp_path):
    n = 12  # 0..11: sorted by name would put 10 and 11 before 2
    images = [np.full((6, 7), 10 * z, np.uint8) for z in range(n)]
    labels = [np.where(np.arange(42).reshape(6, 7) % (z + 2) == 0, 0, 255).astype(np.uint8)
              for z in range(n)]  # fmt: skip

    def build(root):
        train = root / "data" / "membrane" / "train"
        for z in range(n):
            _png(train / "image" / f"{z}.png", images[z])
            _png(train / "label" / f"{z}.png", labels[z])

    out = _fetch("isbi2012_em_membranes", tmp_path, _pack(tmp_path, build))
    vol = read_cremi(out / "train.h5", labels="membrane_mask")
    np.testing.assert_array_equal(vol.raw, np.stack(images))
    np.testing.assert_array_equal(vol.labels, np.stack(labels))
    assert vol.labels.dtype == np.uint8
    assert vol.resolution == (50.0, 4.0, 4.0)
    assert _attrs(out / "train.h5", "volumes/raw")["unit"] == "nm"
    assert "no explicit open-data license" in (out / "LICENSE.txt").read_text().lower()


def _fib25_tree(root: Path, raw: np.ndarray, stack: np.ndarray, transforms: np.ndarray) -> None:
    sample = root / "training_sample2"
    for z, plane in enumerate(raw):
        _png(sample / "grayscale_maps" / f"iso.{2600 + z}.png", plane)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f["stack"] = stack
        f["transforms"] = transforms
    (sample / "groundtruth.h5.gz").write_bytes(gzip.compress(buffer.getvalue()))
    (root / "LICENSE.txt").write_text("CC BY 3.0\n")


def _fib25_data():
    """Supervoxels 1..6 in z-y-x blocks (4 x 6 x 5), 0 on one voxel; dark boundaries."""
    stack = np.zeros((4, 6, 5), np.uint64)
    stack[:2, :3] = 1
    stack[:2, 3:] = 2
    stack[2:, :3, :2] = 3
    stack[2:, :3, 2:] = 4
    stack[2:, 3:] = 5
    stack[3, 5, 4] = 6
    stack[0, 0, 0] = 0
    transforms = np.array([[1, 100], [2, 100], [3, 7000], [4, 300], [5, 300]], np.uint64)
    body = np.array([0, 100, 100, 7000, 300, 300, 6], np.uint32)[stack.astype(int)]
    boundary = np.zeros(body.shape, bool)
    for axis in range(3):
        d = np.diff(body, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        boundary[tuple(lo)] |= d
        boundary[tuple(hi)] |= d
    raw = np.where(boundary, 40, 200).astype(np.uint8)
    return raw, stack, transforms, body


def test_fib25_applies_transforms(tmp_path):
    raw, stack, transforms, body = _fib25_data()
    url = _pack(tmp_path, lambda root: _fib25_tree(root, raw, stack, transforms))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _fetch("fib25_neuroproof_training_sample2", tmp_path, url)
    messages = [str(w.message) for w in caught]
    assert any("1 supervoxel id(s) absent from transforms" in m for m in messages), messages
    assert not any("orientation" in m for m in messages), messages
    vol = read_cremi(out / "sample2.h5")
    np.testing.assert_array_equal(vol.raw, raw)
    assert vol.labels.dtype == np.uint32
    np.testing.assert_array_equal(vol.labels, body)  # unmapped supervoxel 6 keeps its id
    assert vol.resolution == (10.0, 10.0, 10.0)
    attrs = _attrs(out / "sample2.h5", "volumes/labels/neuron_ids")
    assert attrs["unit"] == "nm" and list(attrs["resolution"]) == [10, 10, 10]
    assert "iso.2600.png..iso.2603.png" in _attrs(out / "sample2.h5", "volumes/raw")["source"]


def test_fib25_warns_when_orientation_looks_wrong(tmp_path):
    raw, stack, transforms, _ = _fib25_data()
    wrong = (240 - raw).astype(np.uint8)  # boundaries brighter than interiors: misaligned
    url = _pack(tmp_path, lambda root: _fib25_tree(root, wrong, stack, transforms))
    with pytest.warns(UserWarning) as record:
        _fetch("fib25_neuroproof_training_sample2", tmp_path, url)
    assert any("check the orientation" in str(w.message) for w in record)


def test_sstem(tmp_path):
    rng = np.random.default_rng(1)
    n, shape = 3, (8, 9)
    raw = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    merged = rng.choice(np.array([0, 32, 128, 159, 191, 223, 255], np.uint8), (n, *shape))
    binary = {k: rng.random((n, *shape)) > 0.5 for k in ("membranes", "mitochondria", "synapses")}

    def build(root):
        stack = root / "stack1"
        for z in range(n):
            (stack / "raw").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(stack / "raw" / f"{z:02d}.tif", raw[z])
            _png(stack / "labels" / f"labels{z:08d}.png", merged[z])
            for name, masks in binary.items():
                _png(stack / name / f"{z:02d}.png", masks[z])

    out = _fetch("sstem_drosophila_vnc_gerhard2013", tmp_path, _pack(tmp_path, build))
    vol = read_cremi(out / "stack1.h5", labels="merged")
    np.testing.assert_array_equal(vol.raw, raw)
    np.testing.assert_array_equal(vol.labels, merged)
    assert vol.resolution == (50.0, 4.6, 4.6)
    for name, masks in binary.items():
        got = read_cremi(out / "stack1.h5", labels=name).labels
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, masks.astype(np.uint8))
    assert _attrs(out / "stack1.h5", "volumes/labels/merged")["meaning"].startswith("0 membrane |")


def test_dsb2018_from_kaggle_layout(tmp_path):
    grey = np.full((10, 12), 20, np.uint8)
    grey[1:4, 1:4] = 200
    grey[2:6, 3:7] = 180
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    colour = np.zeros((9, 8, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 150, 100
    colour[3:6, 3:6] = 30
    m1 = np.zeros((10, 12), np.uint8)
    m1[1:4, 1:4] = 255
    m2 = np.zeros((10, 12), np.uint8)
    m2[2:6, 3:7] = 255  # overlaps m1 at (2..3, 3): 2 pixels
    m3 = np.zeros((9, 8), np.uint8)
    m3[3:6, 3:6] = 255

    def build(root):
        base = root / "stage1_train"
        _png(base / "aaa" / "images" / "aaa.png", rgba)
        _png(base / "aaa" / "masks" / "m1.png", m1)
        _png(base / "aaa" / "masks" / "m2.png", m2)
        _png(base / "bbb" / "images" / "bbb.png", colour)
        _png(base / "bbb" / "masks" / "x.png", m3)

    url = _pack(tmp_path, build)
    out = _fetch("dsb2018_stage1_train", tmp_path, url)
    rows = {r["id"]: r for r in list_dsb(out)}
    assert list(_rows(out / "manifest.csv")[0]) == list(DSB_COLUMNS)
    assert rows["aaa"] == {
        "id": "aaa", "height": 10, "width": 12, "channels": 1, "n_nuclei": 2, "n_masks": 2,
        "overlap_pixels": 2, "mean_intensity": round(float(grey.mean()), 2),
        "nuclei_brighter_than_background": 1,
    }  # fmt: skip
    assert rows["bbb"]["channels"] == 3 and rows["bbb"]["nuclei_brighter_than_background"] == 0
    assert rows["bbb"]["overlap_pixels"] == 0 and rows["bbb"]["n_nuclei"] == 1
    kaggle = tmp_path / "src" / TOP / "stage1_train"
    for image_id in ("aaa", "bbb"):
        merged, orig = read_dsb(out, image_id), read_dsb(kaggle, image_id)
        np.testing.assert_array_equal(merged.image, orig.image)
        np.testing.assert_array_equal(merged.labels, orig.labels)
        assert merged.labels.dtype == np.uint16
    assert read_dsb(out, "aaa").image.ndim == 2
    assert read_dsb(out, "aaa").labels[2, 3] == 2  # the later mask wins


def _bids(root: Path, samples: dict, participants: list[str], tem: bool = False) -> None:
    """Write an AxonDeepSeg BIDS tree: samples = {stem: (image, {name: mask}, sidecar)}."""
    kind = "TEM" if tem else "SEM"
    header = "participant_id\tspecies" + ("\tphenotype" if tem else "")
    (root / "participants.tsv").write_text("\n".join([header, *participants]) + "\n")
    (root / "LICENSE").write_text("MIT License\n")
    for stem, (image, masks, sidecar) in samples.items():
        subject = stem.split("_")[0]
        assert stem.endswith(kind)
        _png(root / subject / "micr" / f"{stem}.png", *image)
        (root / subject / "micr" / f"{stem}.json").write_text(json.dumps(sidecar))
        for name, mask in masks.items():
            path = (
                root / "derivatives" / "labels" / subject / "micr" / f"{stem}_seg-{name}-manual.png"
            )
            _png(path, mask)


def test_axondeepseg_sem_from_bids(tmp_path):
    image = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) % 251
    image = image.astype(np.uint8)
    axon = np.zeros((20, 30), np.uint8)
    axon[5:10, 5:10] = 255
    myelin = np.zeros((20, 30), np.uint8)
    myelin[3:12, 3:12] = 255
    myelin[5:10, 5:10] = 0
    axon[0, 0] = myelin[0, 0] = 130  # stray pixel: foreground in both, counted as non-binary
    la = np.dstack([image, np.full_like(image, 255)])
    samples = {
        "sub-rat1_sample-data1_SEM": (
            (la, "LA"),
            {"axon": axon, "myelin": myelin},
            {"PixelSize": 0.1, "BodyPart": "CSPINE", "Species": "rat"},
        ),
        "sub-rat7_sample-x_SEM": ((image,), {"axon": axon, "myelin": myelin}, {"PixelSize": 0.07}),
    }
    participants = ["sub-rat1\trattus norvegicus", "sub-rat7\trattus norvegicus"]
    url = _pack(tmp_path, lambda root: _bids(root, samples, participants))
    out = _fetch("axondeepseg_sem_rat_spinalcord", tmp_path, url)

    rows = {r["sample"]: r for r in _rows(out / "samples.csv")}
    assert list(_rows(out / "samples.csv")[0]) == list(AXON_COLUMNS)
    r1 = rows["sub-rat1_sample-data1_SEM"]
    assert r1["subject"] == "sub-rat1" and (r1["height"], r1["width"]) == ("20", "30")
    assert r1["pixel_size_um"] == "0.1" and r1["body_part"] == "CSPINE"
    assert r1["species"] == "rattus norvegicus" and r1["phenotype"] == ""
    assert r1["frac_axon"] == str(round(26 / 600, 4)) and r1["frac_uaxon"] == ""
    assert r1["overlap_axon_myelin_px"] == "1" and r1["nonbinary_mask_px"] == "2"
    assert r1["overlap_uaxon_px"] == "0"
    assert rows["sub-rat7_sample-x_SEM"]["body_part"] == ""

    bids = tmp_path / "src" / TOP
    for sample_id in samples:
        got = read_axondeepseg(out, sample_id)
        ref = read_axondeepseg(bids, sample_id)
        np.testing.assert_array_equal(got.image, ref.image)
        np.testing.assert_array_equal(got.labels, ref.labels)
        assert sorted(got.masks) == ["axon", "myelin"]
        assert iio.imread(out / sample_id / "classes.png").dtype == np.uint8
        assert set(np.unique(iio.imread(out / sample_id / "axon.png"))) <= {0, 255}
    assert read_axondeepseg(out, "sub-rat1_sample-data1_SEM").pixel_size == 0.1
    assert read_axondeepseg(out, "sub-rat1_sample-data1_SEM").labels[0, 0] == 2
    assert (out / "LICENSE").read_text() == "MIT License\n"


def test_axondeepseg_tem_with_uaxon(tmp_path):
    image = np.full((12, 12), 90, np.uint8)
    axon = np.zeros((12, 12), np.uint8)
    axon[2:5, 2:5] = 255
    myelin = np.zeros((12, 12), np.uint8)
    myelin[1:6, 1:6] = 255
    myelin[2:5, 2:5] = 0
    uaxon = np.zeros((12, 12), np.uint8)
    uaxon[5:9, 5:9] = 255  # overlaps myelin at (5, 5)
    uaxon_rgb = np.dstack([uaxon] * 3)
    stem = "sub-366A_sample-0001_acq-roi_TEM"
    samples = {
        stem: (
            (image,),
            {"axon": axon, "myelin": myelin, "uaxon": uaxon_rgb},
            {"PixelSize": 0.00493, "BodyPart": "corpus callosum"},
        )
    }
    url = _pack(tmp_path, lambda root: _bids(root, samples, ["sub-366A\tmus muculus\tWT"], True))
    out = _fetch("axondeepseg_tem_mouse_corpuscallosum_srf", tmp_path, url)
    (row,) = _rows(out / "samples.csv")
    assert row["phenotype"] == "WT" and row["species"] == "mus muculus"
    assert row["body_part"] == "corpus callosum" and row["pixel_size_um"] == "0.00493"
    assert row["frac_uaxon"] == str(round(16 / 144, 4)) and row["overlap_uaxon_px"] == "1"
    sample = read_axondeepseg(out, stem)
    assert sorted(sample.masks) == ["axon", "myelin", "uaxon"]
    assert sample.labels[5, 5] == 3 and sample.labels[3, 3] == 2 and sample.labels[1, 1] == 1


def test_ctc_copied_unchanged(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)

    def build(root):
        seq = root / "Fluo-N2DH-GOWT1"
        (seq / "01").mkdir(parents=True)
        (seq / "01_GT" / "TRA").mkdir(parents=True)
        (seq / "02").mkdir()
        for t, frame in enumerate(frames):
            tifffile.imwrite(seq / "01" / f"t{t:03d}.tif", frame, compression="lzw")
            tifffile.imwrite(
                seq / "01_GT" / "TRA" / f"man_track{t:03d}.tif", frame.astype(np.uint16)
            )
        (seq / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 2 0\n")

    out = _fetch("ctc_fluo_n2dh_gowt1_01", tmp_path, _pack(tmp_path, build))
    src = tmp_path / "src" / TOP / "Fluo-N2DH-GOWT1"
    assert sorted(p.name for p in out.iterdir()) == ["01", "01_GT", "LICENSE.txt"]
    for path in (src / "01").iterdir():
        assert (out / "01" / path.name).read_bytes() == path.read_bytes()
    index, stack = read_ctc_frames(out / "01")
    assert index == [0, 1, 2]
    np.testing.assert_array_equal(stack, frames)
    assert (out / "01_GT" / "TRA" / "man_track.txt").read_text() == "1 0 2 0\n"


def _brute_force_corr(movie: np.ndarray) -> np.ndarray:
    t, h, w = movie.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            values = []
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if (dy or dx) and 0 <= yy < h and 0 <= xx < w:
                        values.append(np.corrcoef(movie[:, y, x], movie[:, yy, xx])[0, 1])
            out[y, x] = np.mean(values)
    return out


def test_local_correlation_matches_brute_force():
    rng = np.random.default_rng(3)
    movie = rng.normal(size=(40, 5, 7))
    movie[:, 1:4, 2:5] += 2 * rng.normal(size=(40, 1, 1))
    np.testing.assert_allclose(
        local_correlation(movie, chunk=7), _brute_force_corr(movie), atol=1e-5
    )
    flat = np.ones((10, 3, 3))
    np.testing.assert_array_equal(local_correlation(flat), np.zeros((3, 3)))


def test_neurofinder(tmp_path):
    rng = np.random.default_rng(4)
    movie = rng.integers(100, 400, (60, 10, 12)).astype(np.uint16)
    regions = [
        {"id": 9000, "coordinates": [[1, 2], [1, 3], [2, 3]]},
        {"id": 9001, "coordinates": [[2, 3], [5, 7]]},  # (2, 3) shared with the first
        {"id": 9002, "coordinates": [[9, 11]]},
    ]
    regions_text = json.dumps(regions, indent=0)

    def build(root):
        (root / "images").mkdir()
        for t, frame in enumerate(movie):
            tifffile.imwrite(root / "images" / f"image{t:05d}.tiff", frame)
        (root / "regions").mkdir()
        (root / "regions" / "regions.json").write_text(regions_text)

    out = _fetch("neurofinder_2p_subset", tmp_path, _pack(tmp_path, build))
    path = out / "neurofinder_subset.h5"
    sample = read_neurofinder(path, image="corr")
    ids = sample.labels
    assert ids.dtype == np.uint16
    assert ids[1, 2] == 1 and ids[2, 3] == 1 and ids[5, 7] == 2 and ids[9, 11] == 3
    assert np.count_nonzero(ids) == 5
    np.testing.assert_allclose(sample.image, _brute_force_corr(movie.astype(float)), atol=1e-5)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["volumes/raw"][...], movie[:50])
        assert f["volumes/raw"].attrs["axes"] == "t,y,x"
        np.testing.assert_allclose(f["images/mean"][...], movie.mean(0), rtol=1e-6)
        np.testing.assert_allclose(f["images/std"][...], movie.std(0), rtol=1e-5)
        np.testing.assert_array_equal(f["images/max"][...], movie.max(0))
        assert f["images/max"].dtype == np.uint16 and f["images/corr"].dtype == np.float32
        masks = f["volumes/labels/roi_masks"][...]
        assert masks.shape == (3, 10, 12) and masks.dtype == np.uint8
        assert masks[1, 2, 3] == 1 and masks.sum() == 6
        np.testing.assert_array_equal(f["volumes/labels/roi_ids"][...], [9000, 9001, 9002])
        assert f["images/corr"].attrs["description"].endswith("frames 0-59")
    assert (out / "regions.json").read_text() == regions_text


# --------------------------------------------------------------------------- atomicity


def test_failing_converter_leaves_no_dataset_folder(tmp_path, monkeypatch):
    def broken(source_root, out_dir):
        with staging_dir(out_dir) as tmp:
            (tmp / "train.h5").write_bytes(b"half")
            raise RuntimeError("converter died")

    source = dataclasses.replace(SOURCES["fib_gala_example"], convert=broken, subpath="")
    monkeypatch.setitem(SOURCES, "fib_gala_example", source)
    url = _pack(tmp_path, lambda root: (root / "x.txt").write_text("x"))
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="converter died"):
        download.fetch("fib_gala_example", data_root=root, url=url, progress=False)
    assert list(root.iterdir()) == []  # no dataset folder, no partial folder, no download

    # an incomplete existing folder is left as it was
    (root / "fib_gala_example").mkdir()
    (root / "fib_gala_example" / "LICENSE.txt").write_text("keep")
    with pytest.raises(RuntimeError):
        download.fetch("fib_gala_example", data_root=root, url=url, progress=False)
    assert [p.name for p in root.iterdir()] == ["fib_gala_example"]
    assert [p.name for p in (root / "fib_gala_example").iterdir()] == ["LICENSE.txt"]


def test_bad_source_data_leaves_nothing(tmp_path):
    def build(root):
        ex = root / "tests" / "example-data"
        ex.mkdir(parents=True)
        with h5py.File(ex / "train-image.h5", "w") as f:
            f["stack"] = np.zeros((2, 3, 4), np.uint8)
        with h5py.File(ex / "train-gt.lzf.h5", "w") as f:
            f["stack"] = np.zeros((2, 3, 5), np.int32)

    root = tmp_path / "data"
    with pytest.raises(DataError, match="differ"):
        download.fetch("fib_gala_example", data_root=root, url=_pack(tmp_path, build), progress=False)
    assert list(root.iterdir()) == []


def test_incomplete_folder_is_replaced(tmp_path):
    def build(root):
        ex = root / "tests" / "example-data"
        ex.mkdir(parents=True)
        for name in ("train-image.h5", "train-gt.lzf.h5"):
            with h5py.File(ex / name, "w") as f:
                f["stack"] = np.ones((2, 3, 4), np.uint8)
        (root / "LICENSE.txt").write_text("BSD")

    root = tmp_path / "data"
    (root / "fib_gala_example").mkdir(parents=True)
    (root / "fib_gala_example" / "stale.txt").write_text("old")
    out = _fetch("fib_gala_example", tmp_path, _pack(tmp_path, build))
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE.txt", "train.h5"]


# --------------------------------------------------------------------------- archives


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, payload: bytes = b"evil") -> Path:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        ok = tarfile.TarInfo(f"{TOP}/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        if member.isfile():
            member.size = len(payload)
            tf.addfile(member, io.BytesIO(payload))
        else:
            tf.addfile(member)
    return archive


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo(f"{TOP}/../../evil.txt"),
        tarfile.TarInfo("../evil.txt"),
        tarfile.TarInfo("/tmp/neuroseg-evil.txt"),
        _symlink(f"{TOP}/link", "../../outside"),
        _symlink(f"{TOP}/link", "/etc/passwd"),
    ],
    ids=["dotdot-inside", "dotdot", "absolute", "symlink-out", "symlink-absolute"],
)
def test_unsafe_tar_members_are_rejected(tmp_path, member):
    archive = _tar_with(tmp_path, member)
    root = tmp_path / "data" / "deeper"
    with pytest.raises(UnsafeArchiveError):
        download.fetch("fib_gala_example", data_root=root, url=archive.as_uri(), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data" / "evil.txt").exists()
    assert not Path("/tmp/neuroseg-evil.txt").exists()
    assert list(root.iterdir()) == []


def test_unsafe_zip_member_is_rejected(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{TOP}/ok.txt", "ok")
        zf.writestr("../evil.txt", "evil")
    dest = tmp_path / "x" / "y"
    with pytest.raises(UnsafeArchiveError):
        extract_archive(archive, dest)
    assert not (tmp_path / "x" / "evil.txt").exists()
    assert not (dest / TOP).exists()


def test_zip_extracts_to_top_folder(tmp_path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{TOP}/a/b.txt", "b")
    root = extract_archive(archive, tmp_path / "out")
    assert root.name == TOP and (root / "a" / "b.txt").read_text() == "b"


def test_download_plain_file(tmp_path):
    src = tmp_path / "regions.json"
    src.write_text("[]")
    got = download.download(src.as_uri(), tmp_path / "dl", progress=False)
    assert got == tmp_path / "dl" / "regions.json" and got.read_text() == "[]"
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["regions.json"]
    with pytest.raises(OSError):
        download.download((tmp_path / "missing.tar.gz").as_uri(), tmp_path / "dl", progress=False)


# --------------------------------------------------------------------------- registry


def test_sources_cover_every_dataset():
    assert set(SOURCES) == set(DATASETS)
    for name, source in SOURCES.items():
        assert source.url.startswith("https://github.com/") and source.url.endswith(".tar.gz")
        commit = source.url.rsplit("/", 1)[1].removesuffix(".tar.gz")
        assert len(commit) == 40, name
        short = DATASETS[name].source.split("@ ")[-1][:8]
        if "@" in DATASETS[name].source:
            assert commit.startswith(short), name
        assert source.license_file or source.license_note, name


def test_fetch_missing_fetches_only_incomplete(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name, dataset in DATASETS.items():
        if name == "fib_gala_example":
            continue
        for rel in dataset.files:
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if rel in ("images", "labels", "01") else path.write_text("")

    def build(tree):
        ex = tree / "tests" / "example-data"
        ex.mkdir(parents=True)
        for name in ("train-image.h5", "train-gt.lzf.h5"):
            with h5py.File(ex / name, "w") as f:
                f["stack"] = np.ones((2, 3, 4), np.uint8)
        (tree / "LICENSE.txt").write_text("BSD")

    source = dataclasses.replace(SOURCES["fib_gala_example"], url=_pack(tmp_path, build))
    monkeypatch.setitem(SOURCES, "fib_gala_example", source)
    assert fetch_missing(root, progress=False) == ["fib_gala_example"]
    assert missing_files("fib_gala_example", root) == []
    assert fetch_missing(root, progress=False) == []


# --------------------------------------------------------------------------- real data


@pytest.mark.data
def test_dsb_manifest_matches_staged_rows(tmp_path, data_root):
    """Staged images split back into Kaggle's layout give the staged manifest rows back."""
    staged = data_root / "dsb2018_stage1_train"
    rows = [r for r in list_dsb(staged) if r["overlap_pixels"] == 0]
    picked = [rows[0], next(r for r in rows if r["channels"] == 3)]
    picked.append(
        next(r for r in rows if r["channels"] == 1 and not r["nuclei_brighter_than_background"])
    )
    kaggle = tmp_path / "stage1_train"
    for row in picked:
        sample = read_dsb(staged, row["id"])
        _png(kaggle / row["id"] / "images" / f"{row['id']}.png", sample.image)
        for k in np.unique(sample.labels[sample.labels > 0]):
            mask = np.where(sample.labels == k, 255, 0).astype(np.uint8)
            _png(kaggle / row["id"] / "masks" / f"{k:05d}.png", mask)
    out = convert_dsb2018(kaggle, tmp_path / "out")
    got = {r["id"]: r for r in list_dsb(out)}
    for row in picked:
        assert got[row["id"]] == row


@pytest.mark.data
@pytest.mark.parametrize(
    ("folder", "sample_id"),
    [
        ("axondeepseg_sem_rat_spinalcord", "sub-rat3_sample-data10_SEM"),
        ("axondeepseg_tem_mouse_corpuscallosum_srf", "sub-366A_sample-0004_acq-roi_TEM"),
    ],
)
def test_axondeepseg_row_matches_staged(tmp_path, data_root, folder, sample_id):
    """A staged sample written back as BIDS gives its staged samples.csv row back."""
    staged = data_root / folder
    (row,) = [r for r in _rows(staged / "samples.csv") if r["sample"] == sample_id]
    subject = row["subject"]
    bids = tmp_path / "bids"
    micr = bids / subject / "micr"
    micr.mkdir(parents=True)
    (micr / f"{sample_id}.png").write_bytes((staged / sample_id / "image.png").read_bytes())
    sidecar = {"PixelSize": float(row["pixel_size_um"]), "BodyPart": row["body_part"]}
    (micr / f"{sample_id}.json").write_text(json.dumps(sidecar))
    labels = bids / "derivatives" / "labels" / subject / "micr"
    labels.mkdir(parents=True)
    for name in ("axon", "myelin", "uaxon"):
        if (staged / sample_id / f"{name}.png").exists():
            mask = (staged / sample_id / f"{name}.png").read_bytes()
            (labels / f"{sample_id}_seg-{name}-manual.png").write_bytes(mask)
    (bids / "participants.tsv").write_text(
        f"participant_id\tspecies\tphenotype\n{subject}\t{row['species']}\t{row['phenotype']}\n"
    )
    out = convert_axondeepseg(bids, tmp_path / "out")
    assert _rows(out / "samples.csv") == [row]
    for name in ("image", "axon", "myelin", "classes"):
        got, ref = (
            iio.imread(out / sample_id / f"{name}.png"),
            iio.imread(staged / sample_id / f"{name}.png"),
        )
        np.testing.assert_array_equal(got, ref)


def _gala_tree(value: int):
    def build(root):
        ex = root / "tests" / "example-data"
        ex.mkdir(parents=True)
        with h5py.File(ex / "train-image.h5", "w") as f:
            f["stack"] = np.full((2, 3, 4), value, np.uint8)
        with h5py.File(ex / "train-gt.lzf.h5", "w") as f:
            f["stack"] = np.ones((2, 3, 4), np.int32)
        (root / "LICENSE.txt").write_text("Copyright 2012 HHMI.\n")
    return build


_gala_source, _gala_source_changed = _gala_tree(1), _gala_tree(2)


# --------------------------------------------------------------------------- hashes (pooch)


def test_download_checks_a_pinned_hash_and_keeps_nothing_on_a_mismatch(tmp_path):
    import hashlib

    src = tmp_path / "regions.json"
    src.write_text("[]")
    good = hashlib.sha256(b"[]").hexdigest()
    hashes = {}
    got = download.download(src.as_uri(), tmp_path / "dl", progress=False, sha256=good, hashes=hashes)
    assert got.read_text() == "[]" and hashes == {src.as_uri(): good}
    with pytest.raises(download.HashMismatchError, match="expected 0000"):
        download.download(src.as_uri(), tmp_path / "bad", progress=False, sha256="0" * 64)
    assert list((tmp_path / "bad").iterdir()) == []


def test_http_goes_through_pooch_and_the_first_hash_is_recorded_then_checked(tmp_path, monkeypatch):
    """No network: pooch.retrieve is replaced by a server that returns a local archive. The
    first fetch records the archive's SHA-256 in DOWNLOADS.sha256; a later download of the same
    URL with other bytes is refused by name and leaves the dataset as it was."""
    import pooch

    root = tmp_path / "data"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    served = {"archive": Path(_pack(tmp_path / "one", _gala_source).removeprefix("file://"))}
    calls = []

    def fake_retrieve(url, known_hash, fname, path, downloader=None, progressbar=False):
        calls.append((url, type(downloader).__name__))
        out = Path(path) / fname
        shutil.copyfile(served["archive"], out)
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    url = download.SOURCES["fib_gala_example"].url
    assert url.startswith("https://")
    download.fetch("fib_gala_example", data_root=root, progress=False)
    assert calls == [(url, "HTTPDownloader")]
    recorded = download.read_download_hashes(root)
    assert list(recorded) == [url] and len(recorded[url]) == 64
    served["archive"] = Path(_pack(tmp_path / "two", _gala_source_changed).removeprefix("file://"))
    before = sorted(p.name for p in (root / "fib_gala_example").iterdir())
    with pytest.raises(download.HashMismatchError, match="SHA-256"):
        download.fetch("fib_gala_example", data_root=root, progress=False, force=True)
    assert sorted(p.name for p in (root / "fib_gala_example").iterdir()) == before
    assert sorted(p.name for p in root.iterdir()) == ["DOWNLOADS.sha256", "fib_gala_example"]
