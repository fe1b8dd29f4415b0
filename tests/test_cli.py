"""The ``neuroseg`` command, end to end in a subprocess, on tiny inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroseg.data import files
from neuroseg.nets.folder import save_model
from neuroseg.nets.scale import pixel_size_meta
from neuroseg.nets.unet import UNet

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuroseg", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def nucleus_model(tmp_path_factory):
    torch.manual_seed(0)
    net = UNet(ndim=2, out_channels=2, depth=2, base_features=4)
    folder = tmp_path_factory.mktemp("models") / "nucleus"
    return save_model(net, folder, meta={"target": "fg_contour",
                                         "postprocess": {"fg_threshold": 0.5, "seed_threshold": 0.1}})


def test_segment2d_on_a_png_and_a_folder(tmp_path, nucleus_model):
    image = np.zeros((40, 40), np.uint8)
    image[10:20, 10:20] = 200
    files.write(tmp_path / "a.png", image)
    (tmp_path / "more").mkdir()
    files.write(tmp_path / "more" / "b.tif", image)
    out = _run("segment2d", str(tmp_path / "a.png"), str(tmp_path / "more"), str(tmp_path / "out"),
               "--model", str(nucleus_model), "--device", "cpu")
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_labels.tif", "b_labels.tif"]
    labels = files.read(tmp_path / "out" / "a_labels.tif").array
    assert labels.shape == image.shape and labels.dtype.kind == "u"


@pytest.mark.parametrize("method", [None, "multicut"])
def test_link_joins_a_folder_of_2d_masks(tmp_path, method):
    masks = tmp_path / "masks"
    masks.mkdir()
    for z in range(3):
        m = np.zeros((8, 8), np.uint8)
        m[1:4, 1:4] = 1 + z  # another ID in every slice, one object
        m[5:7, 5:7] = 9
        files.write(masks / f"slice{z}.png", m)
    extra = [] if method is None else ["--method", method]
    out = _run("link", str(masks), str(tmp_path / "linked.tif"), "--resolution", "40,10,10", *extra)
    assert out.returncode == 0, out.stderr
    back = files.read(tmp_path / "linked.tif")
    assert back.voxel_size == (40.0, 10.0, 10.0)
    assert back.array.shape == (3, 8, 8) and back.array.max() == 2
    assert "2 objects" in out.stdout


def test_bad_input_fails_cleanly_and_leaves_nothing(tmp_path, nucleus_model):
    missing = _run("link", str(tmp_path / "none"), str(tmp_path / "o.tif"), "--resolution", "40,10,10")
    assert missing.returncode != 0 and "no such file" in missing.stderr
    (tmp_path / "x.bmp").write_bytes(b"BM")
    wrong = _run("segment2d", str(tmp_path / "x.bmp"), str(tmp_path / "out"), "--model",
                 str(nucleus_model))
    assert wrong.returncode != 0 and "unknown format" in wrong.stderr
    files.write(tmp_path / "m.npy", np.ones((2, 4, 4), np.uint8))
    no_res = _run("link", str(tmp_path / "m.npy"), str(tmp_path / "o.tif"))
    assert no_res.returncode != 0 and "--resolution" in no_res.stderr
    bad_res = _run("link", str(tmp_path / "m.npy"), str(tmp_path / "o.tif"), "--resolution", "40,10")
    assert bad_res.returncode != 0 and "three positive numbers" in bad_res.stderr
    files.write(tmp_path / "v.npy", np.zeros((2, 16, 16), np.float32))
    no_voxel = _run("segment-volume", str(tmp_path / "v.npy"), str(tmp_path / "o.tif"), "--model",
                    str(nucleus_model), "--route", "3d")
    assert no_voxel.returncode != 0 and "--resolution" in no_voxel.stderr
    assert "Traceback" not in no_voxel.stderr + no_res.stderr + wrong.stderr + missing.stderr
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "out").exists()


def test_models_lists_model_folders(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = UNet(ndim=2, out_channels=3, depth=2, base_features=4)
    save_model(net, tmp_path / "quick" / "models" / "axon_myelin_sem" / "scratch",
               meta={"target": "classes", **pixel_size_meta(0.1, "um")})
    out = subprocess.run([sys.executable, "-m", "neuroseg", "models", "--profile", "quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "NEUROSEG_ARTIFACTS": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "axon_myelin_sem/scratch" in out.stdout and "classes" in out.stdout
    assert "0.1 x 0.1 um" in out.stdout
