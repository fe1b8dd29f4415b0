"""The same seed, threads and machine give the same bytes, from scratch, in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from neuroseg import machine

ROOT = Path(__file__).resolve().parents[1]

TRAIN = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from neuroseg.data import synthetic
    from neuroseg.nets import train
    from neuroseg.nets.loaders import CropDataset
    from neuroseg.nets.unet import build_unet
    from neuroseg.segment.instances import fg_contour_targets

    folder, threads = Path(sys.argv[1]), int(sys.argv[2])
    train.seed_everything(0, threads=threads)
    images, labels = [], []
    for k in range(3):
        image, lab = synthetic.nuclei_2d((64, 64), n=6, seed=k)
        images.append(image[None].astype(np.float32))
        labels.append(lab)
    data = CropDataset(images, labels, crop=(48, 48), samples_per_epoch=8,
                       target_fn=fg_contour_targets, seed=0)
    val = CropDataset(images, labels, crop=(48, 48), samples_per_epoch=4,
                      target_fn=fg_contour_targets, seed=1, fixed=True)
    model = build_unet({"ndim": 2, "in_channels": 1, "out_channels": 2, "depth": 2,
                        "base_features": 8}, seed=0)
    config = train.TrainConfig(epochs=3, batch_size=4, lr=1e-2, seed=0, device="cpu")
    train.fit(model, data, val, config=config, folder=folder, progress=False, meta={"target": "fg"})
""")


def _train(folder: Path, threads: int) -> None:
    subprocess.run([sys.executable, "-c", TRAIN, str(folder), str(threads)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in ("a", "b"):
        _train(root / name, threads=2)
    return root


def test_two_runs_from_scratch_give_the_same_bytes(runs):
    a, b = runs / "a", runs / "b"
    assert (a / "weights.pt").read_bytes() == (b / "weights.pt").read_bytes()
    assert (a / "checkpoints" / "last.pt").exists()
    ha = pd.read_csv(a / "history.csv").drop(columns=["seconds"])
    hb = pd.read_csv(b / "history.csv").drop(columns=["seconds"])
    pd.testing.assert_frame_equal(ha, hb)
    assert json.loads((a / "config.json").read_text()) == json.loads((b / "config.json").read_text())


def test_model_folder_records_the_machine_and_threads(runs):
    env = json.loads((runs / "a" / "env.json").read_text())
    facts = env["machine"]
    assert facts["threads"] == 2
    assert facts["cpu"] == machine.cpu_model()
    assert facts["cpu_flags"] == machine.cpu_flags()
    assert facts["torch"] and facts["device"] == "cpu"


def test_set_threads_checks_its_argument():
    import torch

    before = torch.get_num_threads()
    try:
        assert machine.set_threads(1) == 1
    finally:
        machine.set_threads(before)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            machine.set_threads(bad)
