"""The shipped trained models: export, load by name, the table, and their recorded scores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import neuroseg
from neuroseg.data import files
from neuroseg.io import sha256_file
from neuroseg.nets import shipped
from neuroseg.nets.folder import WEIGHTS_FILE, load_model, save_model
from neuroseg.nets.unet import UNet

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = shipped.read_registry(ROOT / "neuroseg" / "models")
NAMES = [e["name"] for e in REGISTRY]


@pytest.fixture
def tiny_source(tmp_path):
    torch.manual_seed(0)
    net = UNet(ndim=2, out_channels=2, depth=2, base_features=4)
    folder = save_model(net, tmp_path / "trained", meta={
        "target": "fg_contour", "postprocess": {"fg_threshold": 0.5, "seed_threshold": 0.1},
        "pixel_size": {"size": [0.5, 0.5], "unit": "um"}})
    (folder / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    return folder


def _export(source, dest, name="tiny", value=0.25):
    return shipped.export_model(source, name, task="nuclei", val_metric="AP@0.5", val_value=value,
                                val_data="none", val_split={"scorer": "none"},
                                rebuild="make 10_nucleus_pretraining", dest=dest)


def test_export_writes_half_precision_and_loads_by_name(tiny_source, tmp_path):
    dest = tmp_path / "shipped"
    entry = _export(tiny_source, dest)
    assert set(shipped.FIELDS) <= set(entry)
    state = torch.load(dest / "tiny" / WEIGHTS_FILE, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    full = torch.load(tiny_source / WEIGHTS_FILE, weights_only=True)
    assert sum(v.nbytes for v in state.values()) < 0.6 * sum(v.nbytes for v in full.values())
    assert (dest / "tiny" / "history.csv").is_file()
    model = shipped.load_model("tiny", shipped=dest)
    original = load_model(tiny_source)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # half-precision weights: close to the original, not equal
        assert torch.allclose(model(x), original(x), atol=1e-2)
    assert model.meta["shipped_as"] == "tiny" and model.meta["val_split"] == {"scorer": "none"}
    # a path still loads a folder; an unknown name lists what is shipped
    assert shipped.load_model(str(tiny_source)).meta["target"] == "fg_contour"
    with pytest.raises(FileNotFoundError, match="shipped: tiny"):
        shipped.load_model("nucleus_v2", shipped=dest)


def test_the_table_and_list_agree_with_the_files(tiny_source, tmp_path):
    dest = tmp_path / "shipped"
    _export(tiny_source, dest, "b", 0.5)
    _export(tiny_source, dest, "a", 0.25)
    _export(tiny_source, dest, "a", 0.75)  # re-export replaces, never duplicates
    table = shipped.shipped_table(dest)
    assert list(table.columns) == list(shipped.TABLE_COLUMNS)
    assert list(table["name"]) == ["a", "b"] and list(table["val_value"]) == [0.75, 0.5]
    assert table["pixel_size"].tolist() == ["0.5 x 0.5 um"] * 2
    listed = shipped.list_models(dest)
    assert list(listed["name"]) == ["a", "b"] and "rebuild" in listed
    (dest / "a" / WEIGHTS_FILE).write_bytes(b"not the file")
    with pytest.raises(ValueError, match="registry hash"):
        shipped.shipped_table(dest)
    with pytest.raises(ValueError, match="letters, digits"):
        _export(tiny_source, dest, "../evil")
    assert sorted(p.name for p in dest.iterdir()) == ["a", "b", "registry.json"]  # nothing left over


def test_the_package_ships_the_models_listed_in_the_report():
    table = pd.read_csv(ROOT / "reports" / "metrics" / "shipped_models.csv")
    assert list(table.columns) == list(shipped.TABLE_COLUMNS)
    assert sorted(table["name"]) == sorted(NAMES) and len(NAMES) >= 1
    for row in table.itertuples():
        path = ROOT / row.file
        assert path.is_file() and path.stat().st_size == row.bytes
        assert sha256_file(path) == row.sha256
    assert table["bytes"].sum() <= 50e6
    assert list(neuroseg.list_models()["name"]) == sorted(NAMES)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != "em_linker"])  # scored with em_2d
def test_each_shipped_model_reproduces_its_validation_score(name):
    from neuroseg.report.export_models import rescore

    (entry,) = [e for e in REGISTRY if e["name"] == name]
    assert abs(rescore(entry) - entry["val_value"]) <= 0.01, entry["val_metric"]


@pytest.mark.skipif("nucleus" not in NAMES, reason="no shipped nucleus model yet")
def test_a_new_user_segments_a_png_with_the_shipped_nucleus_model(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(20, 5, (128, 128))
    yy, xx = np.mgrid[:128, :128]
    for cy, cx in ((30, 30), (40, 90), (95, 60)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 12 ** 2] += 160
    files.write(tmp_path / "nuclei.png", np.clip(image, 0, 255).astype(np.uint8))
    out = subprocess.run([sys.executable, "-m", "neuroseg", "segment2d", str(tmp_path / "nuclei.png"),
                          str(tmp_path / "out"), "--model", "nucleus"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    labels = files.read(next((tmp_path / "out").iterdir())).array
    assert len(np.unique(labels[labels > 0])) == 3


PACKAGES = sorted((ROOT / "reports" / "bioimageio").glob("*.zip"))


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES, ids=[p.stem for p in PACKAGES])
def test_each_bioimageio_package_passes_bioimageio_cores_model_test(package):
    from neuroseg.report.bioimageio_export import check_package

    status, failed = check_package(package)
    assert status == "passed", failed


def test_every_shipped_2d_model_has_a_bioimageio_package():
    two_d = [e["name"] for e in REGISTRY if len(e["pixel_size"]) != 3]  # the nucleus model has none
    assert sorted(p.stem for p in PACKAGES) == sorted(two_d)


def test_a_bioimageio_export_of_a_tiny_model_passes(tiny_source, tmp_path):
    from neuroseg.report.bioimageio_export import check_package, export_bioimageio

    dest = tmp_path / "shipped"
    _export(tiny_source, dest)
    with pytest.raises(ValueError, match="channel"):
        export_bioimageio("tiny", out_dir=tmp_path, shipped=dest, test_input=np.zeros((3, 64, 64)))
    package = export_bioimageio("tiny", out_dir=tmp_path / "bio", shipped=dest,
                                test_input=np.random.default_rng(0).random((70, 70)))
    assert check_package(package) == ("passed", [])
    assert sorted(p.name for p in (tmp_path / "bio").iterdir()) == ["tiny.zip"]


@pytest.mark.data
@pytest.mark.slow
def test_soma_and_axon_models_export_with_a_score_that_comes_back(tmp_path):
    """The export of 20's soma model and 50's axon models (here the quick profile's): each
    registry entry records where its score was measured, and scoring it again from that record
    alone (no split file) gives the same number."""
    from neuroseg import paths
    from neuroseg.report import export_models

    models = paths.models_dir("quick")
    table = paths.metrics_dir("quick") / "50_axon_myelin_comparison.csv"
    if not ((models / "soma_unet" / "config.json").is_file() and table.is_file()):
        pytest.skip(f"the quick-profile models are not in {models}: run make reproduce PROFILE=quick")
    dest, inputs = tmp_path / "shipped", {}
    done = export_models.export_soma("quick", models, "make {}", dest, inputs)
    done += export_models.export_axons("quick", models, "make {}", dest, inputs)
    assert done == ["soma", "axon_sem", "axon_tem"] and sorted(inputs) == sorted(done)
    for entry in shipped.read_registry(dest):
        split = entry["val_split"]
        if entry["name"] == "soma":
            assert split["scorer"] == "soma_accuracy" and split["regions"]
        else:  # the quick profile refits too: the validation images were trained on
            assert split["part"] == "test" and "refit" in entry["val_data"]
        assert export_models.rescore(entry, shipped=dest) == pytest.approx(entry["val_value"], abs=1e-9)
