"""Bad input, as a user meets it: one table of cases across the public calls and the CLI.

Each case calls the package the wrong way (or on an edge it must handle) and records what it
got: the error type and message, whether the message is *clear* (it names the problem: every
word of the case's ``must`` list appears in it) and how many files a failed or killed save
left behind, counted after the next call of the same kind has run. A case whose input is
legitimate (``error=None``) must instead return the right result.

Every case must be clear and leave no file. When the whole table has run, it is written to
``<reports>/metrics/robustness.csv`` (columns ``case, call, error_type, message, clear,
files_left``), the same bytes on every machine: temporary paths are replaced by ``<tmp>``.
"""

from __future__ import annotations

import csv
import io as _stdio
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from neuroseg import io, paths
from neuroseg.data import catalogue, readers, resample, splits
from neuroseg.linking import graph, learned, rules
from neuroseg.linking.calibration import FEATURES, Calibration, fit_pair_classifier
from neuroseg.measure import matching, morphometrics, overlap, voi_rand
from neuroseg.measure.error_map import error_map
from neuroseg.nets import folder, predict
from neuroseg.nets.scale import pixel_size_meta
from neuroseg.nets.unet import UNet
from neuroseg.segment import affinities, axon_myelin, image_2d, instances, volume_2d, volume_3d

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    case: str
    call: str
    run: Callable[[Path], int | None]
    error: type[BaseException] | tuple[type[BaseException], ...] | None
    must: tuple[str, ...] = ()
    #: for a failing call: how many files it left in the case's folder (after the failure)
    left: Callable[[Path], int] | None = None


# --------------------------------------------------------------------------------------------
# small models and data
# --------------------------------------------------------------------------------------------


def _unet(out: int = 2, *, ndim: int = 2, inp: int = 1, **meta) -> UNet:
    torch.manual_seed(0)
    pool = [(1, 2, 2)] if ndim == 3 else None
    net = UNet(ndim=ndim, in_channels=inp, out_channels=out, depth=2, base_features=4,
               pool_factors=pool).eval()
    net.meta = meta
    return net


def _nucleus():
    return _unet(2, target="fg_contour", postprocess={"fg_threshold": 0.5, "seed_threshold": 0.5})


def _boundary():
    return _unet(1, target="boundaries", postprocess={"threshold": 0.5},
                 **pixel_size_meta(10.0, "nm"))


def _axon():
    return _unet(3, target="classes", **pixel_size_meta(0.1, "um"))


def _affinity():
    return _unet(3, ndim=3, target="affinities", offsets=[[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
                 tile=[4, 16, 16], **pixel_size_meta([40, 10, 10], "nm", ndim=3))


def _linker() -> learned.AffinityLinker:
    net = _unet(1, inp=2, target="z_affinity", **pixel_size_meta(10.0, "nm"))
    x = np.tile(np.linspace(0, 1, 10)[:, None], (1, len(FEATURES)))
    state, mean, scale = fit_pair_classifier(x, x[:, 0] > 0.5, hidden=4, steps=5)
    cal = Calibration(z_nm=40.0, segments="predicted", mean=tuple(mean), scale=tuple(scale),
                      state=state, hidden=4, threshold=0.5, n_pairs=10, positive=0.5)
    return learned.AffinityLinker(net, [cal], active=cal)


def _stack() -> np.ndarray:
    return np.array([[[1, 1, 2, 2]] * 4, [[3, 3, 4, 4]] * 4], np.uint32)


def _write_h5(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for key, (value, attrs) in datasets.items():
            ds = f.create_dataset(key.replace("__", "/"), data=value)
            for k, v in attrs.items():
                ds.attrs[k] = v
    return path


def _leftovers(folder: Path, keep: set[str]) -> int:
    return sum(1 for p in folder.iterdir() if p.name not in keep)


# --------------------------------------------------------------------------------------------
# saves killed halfway (in a child process that dies with os._exit) and full disks
# --------------------------------------------------------------------------------------------


def _killed_save(tmp: Path, code: str) -> None:
    """Run ``code`` in a fresh Python that is killed (``os._exit``) in the middle of a save."""
    script = textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=False, timeout=120,
                   env={**os.environ, "TMP_TARGET": str(tmp)}, capture_output=True)


KILL_IN_TORCH_SAVE = """
import os, torch
real = torch.save
def dying(obj, f, *a, **k):
    real(obj, f, *a, **k)
    os._exit(9)
torch.save = dying
"""


def _kill_save_model(tmp: Path) -> int:
    target = tmp / "model"
    folder.save_model(_nucleus(), target)  # a finished folder
    _killed_save(tmp, KILL_IN_TORCH_SAVE + """
from pathlib import Path
from neuroseg.nets.folder import save_model
from neuroseg.nets.unet import UNet
save_model(UNet(ndim=2, out_channels=2, depth=2, base_features=4), Path(os.environ["TMP_TARGET"]) / "model")
""")
    assert folder.load_model(target).config["out_channels"] == 2  # the old folder, whole
    folder.save_model(_nucleus(), target)  # the next save of the same kind
    return _leftovers(tmp, {"model"}) + _leftovers(target, {"config.json", "weights.pt", "env.json"})


def _kill_save_linker(tmp: Path) -> int:
    target = tmp / "linker"
    learned.save_linker(_linker(), target)
    _killed_save(tmp, KILL_IN_TORCH_SAVE + """
from pathlib import Path
import sys
sys.path.insert(0, "tests")
from test_robustness import _linker
from neuroseg.linking.learned import save_linker
save_linker(_linker(), Path(os.environ["TMP_TARGET"]) / "linker")
""")
    loaded = learned.read_linker(target)  # whole: network and calibrations of one save
    assert len(loaded.calibrations) == 1
    learned.save_linker(_linker(), target)
    return _leftovers(tmp, {"linker"}) + _leftovers(
        target, {"config.json", "weights.pt", "env.json", learned.CALIBRATIONS_FILE})


def _kill_write_json(tmp: Path) -> int:
    target = tmp / "headline.json"
    io.write_json({"a": 1}, target)
    _killed_save(tmp, """
import os
from pathlib import Path
from neuroseg import io
def dying(*a, **k):  # killed after the data is written, before it is renamed into place
    os._exit(9)
os.replace = dying
io.write_json({"a": 2}, Path(os.environ["TMP_TARGET"]) / "headline.json")
""")
    assert io.read_json(target) == {"a": 1}
    io.write_json({"a": 3}, target)
    return _leftovers(tmp, {"headline.json"})


def _full_disk_save_model(tmp: Path) -> None:
    import errno

    target = tmp / "model"
    real = torch.save

    def full(obj, handle, *args, **kwargs):  # the weights do not fit on the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    torch.save = full
    try:
        folder.save_model(_nucleus(), target)
    finally:
        torch.save = real


def _model_is_a_file(tmp: Path) -> None:
    (tmp / "m").write_text("")
    folder.save_model(_nucleus(), tmp / "m")


# --------------------------------------------------------------------------------------------
# corrupt files
# --------------------------------------------------------------------------------------------


def _truncated_weights(tmp: Path) -> None:
    target = folder.save_model(_nucleus(), tmp / "m")
    data = (target / "weights.pt").read_bytes()
    (target / "weights.pt").write_bytes(data[: len(data) // 3])
    folder.load_model(target)


def _corrupt_config(tmp: Path) -> None:
    target = folder.save_model(_nucleus(), tmp / "m")
    (target / "config.json").write_text("{not json")
    folder.load_model(target)


def _missing_weights(tmp: Path) -> None:
    target = folder.save_model(_nucleus(), tmp / "m")
    (target / "weights.pt").unlink()
    folder.load_model(target)


def _truncated_checkpoint(tmp: Path) -> None:
    from neuroseg.nets import train

    path = tmp / "last.pt"
    torch.save({"epoch": 1, "model": _nucleus().state_dict()}, path)
    path.write_bytes(path.read_bytes()[:100])
    train.load_checkpoint(path)


def _truncated_h5(tmp: Path) -> None:
    path = _write_h5(tmp / "v.h5", volumes__raw=(np.zeros((4, 8, 8), np.uint8), {}))
    path.write_bytes(path.read_bytes()[:200])
    readers.read_cremi(path, labels=None)


def _bad_resolution_attr(tmp: Path) -> None:
    path = _write_h5(tmp / "v.h5", volumes__raw=(np.zeros((4, 8, 8), np.uint8),
                                                   {"resolution": [40.0, -10.0, float("nan")]}))
    readers.read_cremi(path, labels=None)


def _float_labels_in_h5(tmp: Path) -> None:
    path = _write_h5(tmp / "v.h5", volumes__raw=(np.zeros((4, 8, 8), np.uint8), {}),
                     volumes__labels__neuron_ids=(np.full((4, 8, 8), 1.5), {}))
    readers.read_cremi(path)


def _tiff_order(tmp: Path) -> None:
    import tifffile

    stack = tmp / "stack"
    stack.mkdir()
    for z in (1, 2, 10):
        tifffile.imwrite(stack / f"z{z}.tif", np.full((4, 4), z, np.uint8))
    vol = readers.read_tiff_stack(stack)
    assert vol.raw[:, 0, 0].tolist() == [1, 2, 10], vol.raw[:, 0, 0]


def _axon_masks_0_1(tmp: Path) -> None:
    import imageio.v3 as iio

    sample = tmp / "adsg" / "s1"
    sample.mkdir(parents=True)
    iio.imwrite(sample / "image.png", np.full((8, 8), 100, np.uint8))
    axon = np.zeros((8, 8), np.uint8)
    axon[2:4, 2:4] = 1  # saved as 0/1, not 0/255
    myelin = np.zeros((8, 8), np.uint8)
    myelin[1:5, 1] = 1
    iio.imwrite(sample / "axon.png", axon)
    iio.imwrite(sample / "myelin.png", myelin)
    (tmp / "adsg" / "samples.csv").write_text("sample,subject,pixel_size_um\ns1,rat1,0.1\n")
    s = readers.read_axondeepseg(tmp / "adsg", "s1")
    assert int(s.masks["axon"].sum()) == 4 and int(s.masks["myelin"].sum()) == 4


def _damaged_dataset(tmp: Path) -> None:
    from neuroseg.data.__main__ import main

    root = tmp / "data"
    gala = root / "fib_gala_example"
    gala.mkdir(parents=True)
    (gala / "train.h5").write_bytes(b"truncated")
    (root / catalogue.CHECKSUMS_FILE).write_text("0" * 64 + "  ./fib_gala_example/train.h5\n")
    old = os.environ.get("NEUROSEG_DATA")
    os.environ["NEUROSEG_DATA"] = str(root)
    out = _stdio.StringIO()
    try:
        from contextlib import redirect_stdout

        with redirect_stdout(out):
            code = main([])
    finally:
        if old is None:
            os.environ.pop("NEUROSEG_DATA")
        else:
            os.environ["NEUROSEG_DATA"] = old
    text = out.getvalue()
    assert code == 1 and "DAMAGED fib_gala_example (train.h5" in text, text


def _no_data_root(tmp: Path) -> None:
    old = os.environ.pop("NEUROSEG_DATA", None)
    try:
        paths.data_root()
    finally:
        if old is not None:
            os.environ["NEUROSEG_DATA"] = old


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------

IMG = np.random.default_rng(0).random((24, 24))
VOL = np.random.default_rng(1).random((4, 16, 16)).astype(np.float32)
LAB = np.array([[1, 1, 2, 2]])
AFF3 = np.random.default_rng(2).random((3, 4, 16, 16)).astype(np.float32)
OFFS = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (-2, 0, 0), (0, -8, 0), (0, 0, -8)]


def _mws_thin(tmp):
    out = affinities.mutex_watershed(np.random.default_rng(0).random((6, 2, 4, 4)),
                                     offsets=OFFS)
    assert out.shape == (2, 4, 4) and out.min() >= 1


def _uint64_ids(tmp):
    t = np.array([[1, 1, 2, 2]], np.uint64)
    p = np.array([[2**64 - 2, 2**64 - 2, 2**63, 2**63]], np.uint64)
    assert voi_rand.voi(t, p) == (0.0, 0.0)
    assert matching.matching(t, p).tp == 2


def _all_background(tmp):
    s = voi_rand.segmentation_scores(np.zeros((4, 4), int), np.zeros((4, 4), int))
    assert s == {"voi_split": 0.0, "voi_merge": 0.0, "arand": 0.0, "cremi": 0.0}
    assert matching.matching(np.zeros((4, 4), int), np.zeros((4, 4), int)).tp == 0


def _empty_link(tmp):
    res = rules.link_slices(np.zeros((3, 4, 4), np.uint32))
    assert res.n_objects == 0 and len(res.links) == 0


def _linker_far_z(tmp):
    _linker().calibrated_for((1000.0, 10.0, 10.0))


def _linker_near_z_warns(tmp):
    with pytest.warns(UserWarning, match="calibrated for z spacings"):
        _linker().calibrated_for((70.0, 10.0, 10.0))


CASES = [
    # ---- 2D segmentation
    Case("image of strings", "segment_2d", lambda t: image_2d.segment_2d(_nucleus(), np.array([["a"]])), TypeError, ("dtype", "numeric")),
    Case("image 4D", "segment_2d", lambda t: image_2d.segment_2d(_nucleus(), np.zeros((2, 3, 8, 8))), ValueError, ("image",)),
    Case("image with NaN", "segment_2d", lambda t: image_2d.segment_2d(_nucleus(), np.full((16, 16), np.nan)), ValueError, ("nan",)),
    Case("three slices as one image", "segment_2d", lambda t: image_2d.segment_2d(_nucleus(), np.zeros((3, 16, 16))), ValueError, ("channel_axis=0", "slices")),
    Case("a GPU that is not there", "segment_2d", lambda t: image_2d.segment_2d(_nucleus(), IMG, device="cuda:7"), ValueError, ("gpu", "cpu")),
    Case("3D model for a 2D image", "segment_2d", lambda t: image_2d.segment_2d(_affinity(), IMG), ValueError, ("segment_2d", "affinities")),
    Case("fg threshold above 1", "labels_from_fg_contour", lambda t: instances.labels_from_fg_contour(IMG, IMG, fg_threshold=1.5), ValueError, ("fg_threshold", "[0, 1]")),
    Case("seed threshold negative", "labels_from_fg_contour", lambda t: instances.labels_from_fg_contour(IMG, IMG, seed_threshold=-0.2), ValueError, ("seed_threshold", "[0, 1]")),
    Case("boundary threshold NaN", "labels_from_boundaries", lambda t: instances.labels_from_boundaries(IMG, threshold=float("nan")), ValueError, ("threshold", "[0, 1]")),
    Case("probabilities above 1", "labels_from_boundaries", lambda t: instances.labels_from_boundaries(IMG * 3), ValueError, ("boundary_prob", "[0, 1]")),
    Case("probability map of NaN", "labels_from_fg_contour", lambda t: instances.labels_from_fg_contour(np.full((4, 4), np.nan), IMG[:4, :4]), ValueError, ("fg_prob", "nan")),
    # ---- prediction
    Case("wrong channel count", "predict", lambda t: predict.predict(_nucleus(), np.zeros((3, 16, 16), np.float32)), ValueError, ("channels", "expects")),
    Case("channels-last image", "predict", lambda t: predict.predict(_nucleus(), np.zeros((16, 16, 1), np.float32)), ValueError, ("channels",)),
    Case("tile of zero", "predict", lambda t: predict.predict(_nucleus(), np.zeros((1, 32, 32), np.float32), tile=0), ValueError, ("tile", "positive")),
    Case("negative overlap", "predict", lambda t: predict.predict(_nucleus(), np.zeros((1, 32, 32), np.float32), tile=16, overlap=-4), ValueError, ("overlap", ">= 0")),
    Case("tile of wrong length", "predict", lambda t: predict.predict(_nucleus(), np.zeros((1, 32, 32), np.float32), tile=(16, 16, 16)), ValueError, ("tile", "2")),
    Case("stack of 3 axes", "predict_stack", lambda t: predict.predict_stack(_boundary(), np.zeros((4, 16, 16))), ValueError, ("stack", "(N, C, Y, X)")),
    # ---- volumes, both routes
    Case("2D raw to the 2D route", "segment_volume_2d", lambda t: volume_2d.segment_volume_2d(_boundary(), IMG), ValueError, ("raw", "(z, y, x)")),
    Case("empty volume", "segment_volume_2d", lambda t: volume_2d.segment_volume_2d(_boundary(), np.zeros((0, 8, 8))), ValueError, ("empty",)),
    Case("volume of NaN", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_affinity(), np.full((4, 16, 16), np.nan)), ValueError, ("nan",)),
    Case("complex volume", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_affinity(), VOL.astype(complex)), TypeError, ("dtype",)),
    Case("resolution 10x off", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_affinity(), VOL, resolution=(400, 100, 100)), ValueError, ("coarser", "refusing")),
    Case("resolution 10x too fine", "segment_volume_2d", lambda t: volume_2d.segment_volume_2d(_boundary(), VOL, resolution=(40, 1, 1)), ValueError, ("finer", "refusing")),
    Case("negative resolution", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_affinity(), VOL, resolution=(40, -10, 10)), ValueError, ("resolution", "positive")),
    Case("NaN resolution", "segment_volume_2d", lambda t: volume_2d.segment_volume_2d(_boundary(), VOL, resolution=(40, float("nan"), float("nan"))), ValueError, ("resolution", "positive")),
    Case("resolution of 2 numbers", "link_slices", lambda t: rules.link_slices(_stack(), resolution=(10, 10)), ValueError, ("resolution", "3")),
    Case("boundary model for the 3D route", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_boundary(), VOL), (ValueError,), ("affinit",)),
    Case("affinity model for the 2D route", "segment_volume_2d", lambda t: volume_2d.segment_volume_2d(_affinity(), VOL), ValueError, ("2D boundary model",)),
    Case("unknown agglomeration", "segment_volume_3d", lambda t: volume_3d.segment_volume_3d(_affinity(), VOL, method="magic"), ValueError, ("method", "magic")),
    # ---- affinities and agglomeration
    Case("thin volume, long offsets", "mutex_watershed", _mws_thin, None),
    Case("mws threshold above 1", "mutex_watershed", lambda t: affinities.mutex_watershed(AFF3, threshold=2.0), ValueError, ("threshold", "[0, 1]")),
    Case("cc threshold negative", "connected_components", lambda t: affinities.connected_components(AFF3, threshold=-1), ValueError, ("threshold", "[0, 1]")),
    Case("offsets and channels differ", "mutex_watershed", lambda t: affinities.mutex_watershed(AFF3, offsets=OFFS), ValueError, ("offsets", "channels")),
    Case("zero offset", "connected_components", lambda t: affinities.connected_components(AFF3, offsets=[(0, 0, 0), (0, -1, 0), (0, 0, -1)]), ValueError, ("offset", "not all zero")),
    Case("negative min_size", "agglomerate", lambda t: affinities.agglomerate(AFF3, min_size=-3), ValueError, ("min_size",)),
    Case("affinities of NaN", "connected_components", lambda t: affinities.connected_components(np.full((3, 2, 4, 4), np.nan)), ValueError, ("nan",)),
    # ---- linking
    Case("float labels", "link_slices", lambda t: rules.link_slices(_stack().astype(float)), TypeError, ("labels", "integer")),
    Case("2D labels", "link_slices", lambda t: rules.link_slices(_stack()[0]), ValueError, ("labels", "(z, y, x)")),
    Case("negative labels", "link_slices", lambda t: rules.link_slices(-_stack().astype(np.int64)), ValueError, ("negative",)),
    Case("threshold above 1", "link_slices", lambda t: rules.link_slices(_stack(), threshold=3), ValueError, ("threshold", "[0, 1]")),
    Case("unknown method", "link_slices", lambda t: rules.link_slices(_stack(), method="magic"), ValueError, ("method", "magic")),
    Case("learned without a linker", "link_slices", lambda t: rules.link_slices(_stack(), method="learned"), ValueError, ("linker",)),
    Case("max_gap of zero", "link_slices", lambda t: rules.link_slices(_stack(), max_gap=0), ValueError, ("max_gap",)),
    Case("all background", "link_slices", _empty_link, None),
    Case("link table without columns", "relabel_from_links", lambda t: graph.relabel_from_links(_stack(), pd.DataFrame({"z_a": [0]})), ValueError, ("links", "columns")),
    Case("link to a missing segment", "relabel_from_links", lambda t: graph.relabel_from_links(_stack(), pd.DataFrame({"z_a": [0], "z_b": [1], "id_a": [1], "id_b": [99], "linked": [True]})), ValueError, ("99",)),
    Case("z spacing 25x the calibrations", "calibrated_for", _linker_far_z, ValueError, ("coarser", "refusing")),
    Case("z spacing between calibrations", "calibrated_for", _linker_near_z_warns, None),
    # ---- metrics
    Case("shape mismatch", "segmentation_scores", lambda t: voi_rand.segmentation_scores(LAB, LAB[:, :3]), ValueError, ("shape", "true", "pred")),
    Case("float labels with fractions", "voi", lambda t: voi_rand.voi(LAB, LAB + 0.5), TypeError, ("pred", "integer")),
    Case("float labels above 2**53", "voi", lambda t: voi_rand.voi(LAB, np.array([[2.0**63, 2.0**63, 2.0**64, 2.0**64]])), TypeError, ("2**53", "integers")),
    Case("uint64 IDs of 2**63 and above", "voi", _uint64_ids, None),
    Case("all background", "segmentation_scores", _all_background, None),
    Case("string labels", "matching", lambda t: matching.matching(np.array([["a"]]), np.array([["b"]])), TypeError, ("integer",)),
    Case("matching threshold above 1", "matching", lambda t: matching.matching(LAB, LAB, threshold=1.5), ValueError, ("threshold",)),
    Case("mask with value 2", "dice", lambda t: overlap.dice(LAB, LAB), ValueError, ("binary mask",)),
    Case("error map shape mismatch", "error_map", lambda t: error_map(LAB, LAB[:, :2]), ValueError, ("shape",)),
    # ---- axon and myelin
    Case("no pixel size", "axon_myelin.segment", lambda t: axon_myelin.segment(_axon(), IMG), TypeError, ("pixel_size",)),
    Case("pixel size 5x off", "axon_myelin.segment", lambda t: axon_myelin.segment(_axon(), IMG, pixel_size=0.5), ValueError, ("coarser", "refusing")),
    Case("negative pixel size", "axon_morphometrics", lambda t: morphometrics.axon_morphometrics(np.zeros((8, 8), bool), np.zeros((8, 8), bool), pixel_size=-1), ValueError, ("pixel_size", "positive")),
    Case("nucleus model as axon model", "axon_myelin.segment", lambda t: axon_myelin.segment(_nucleus(), IMG, pixel_size=0.1), ValueError, ("axon/myelin model",)),
    Case("masks of different shapes", "axon_morphometrics", lambda t: morphometrics.axon_morphometrics(np.zeros((8, 8), bool), np.zeros((8, 9), bool), pixel_size=0.1), ValueError, ("shape",)),
    Case("resample to pixel size 0", "resample_image", lambda t: resample.resample_image(IMG, pixel_size=0.1, target_pixel_size=0), ValueError, ("target_pixel_size", "positive")),
    # ---- model folders, checkpoints and saves
    Case("missing model folder", "load_model", lambda t: folder.load_model(t / "nothing"), (FileNotFoundError, ValueError), ("nothing",)),
    Case("truncated weights", "load_model", _truncated_weights, ValueError, ("weights.pt",)),
    Case("corrupt config.json", "load_model", _corrupt_config, ValueError, ("config.json",)),
    Case("missing weights", "load_model", _missing_weights, ValueError, ("weights.pt",)),
    Case("truncated checkpoint", "load_checkpoint", _truncated_checkpoint, ValueError, ("last.pt",)),
    Case("killed during save_model", "save_model", _kill_save_model, None),
    Case("killed during save_linker", "save_linker", _kill_save_linker, None),
    Case("killed during write_json", "write_json", _kill_write_json, None),
    Case("disk full during save_model", "save_model", _full_disk_save_model, OSError, ("space", "model"),
         left=lambda t: _leftovers(t, set())),
    Case("meta not JSON", "save_model", lambda t: folder.save_model(_nucleus(), t / "m", meta={"x": object()}), TypeError, ("meta", "json")),
    Case("model folder is a file", "save_model", _model_is_a_file, (ValueError, NotADirectoryError), ("not a", "directory")),
    # ---- data files and the CLI
    Case("truncated HDF5", "read_cremi", _truncated_h5, ValueError, ("v.h5",)),
    Case("bad resolution attribute", "read_cremi", _bad_resolution_attr, ValueError, ("resolution", "positive")),
    Case("float neuron IDs", "read_cremi", _float_labels_in_h5, ValueError, ("labels", "integers")),
    Case("missing file", "read_cremi", lambda t: readers.read_cremi(t / "none.h5"), (FileNotFoundError, ValueError), ("none.h5",)),
    Case("TIFF folder z1, z2, z10", "read_tiff_stack", _tiff_order, None),
    Case("masks saved as 0/1", "read_axondeepseg", _axon_masks_0_1, None),
    Case("truncated dataset file", "python -m neuroseg.data", _damaged_dataset, None),
    Case("NEUROSEG_DATA unset", "paths.data_root", _no_data_root, FileNotFoundError, ("NEUROSEG_DATA", "make data")),
    Case("split of a missing dataset", "load_split", lambda t: splits.load_split("no_such_dataset", profile="quick"), (FileNotFoundError, KeyError, ValueError), ("no_such_dataset",)),
]

RESULTS: dict[tuple[str, str], dict] = {}


def _tidy(message: str, tmp: Path) -> str:
    text = message.replace(str(tmp), "<tmp>").replace(str(ROOT), "<repo>")
    return " ".join(text.split())[:300]


@pytest.mark.parametrize("case", CASES, ids=[c.case for c in CASES])
def test_bad_input_gets_a_clear_error_and_leaves_nothing(case, tmp_path):
    left = 0
    error_type, message = "", ""
    if case.error is None:
        left = case.run(tmp_path) or 0
        clear = True
    else:
        with pytest.raises(BaseException) as info:
            case.run(tmp_path)
        err = info.value
        error_type, message = type(err).__name__, _tidy(str(err), tmp_path)
        assert isinstance(err, case.error), f"{case.case}: {error_type}: {message}"
        clear = all(word.lower() in message.lower() for word in case.must)
        left = case.left(tmp_path) if case.left else 0
    RESULTS[(case.case, case.call)] = {"case": case.case, "call": case.call, "error_type": error_type or "-",
                          "message": message or "(correct result)", "clear": clear,
                          "files_left": int(left)}
    assert clear, f"{case.case}: the message does not name {case.must}: {message}"
    assert left == 0, f"{case.case}: {left} file(s) left behind"


def test_the_table_is_large_and_written():
    """Runs after the cases (pytest keeps file order); writes the table when every case ran."""
    assert len(CASES) >= 60
    assert len({c.case + c.call for c in CASES}) == len(CASES)
    if len(RESULTS) != len(CASES):
        pytest.skip("not every case ran (a selection); the table is written by a full run")
    out = paths.metrics_dir() / "robustness.csv"
    buffer = _stdio.StringIO()
    writer = csv.DictWriter(buffer, ["case", "call", "error_type", "message", "clear", "files_left"],
                            lineterminator="\n")
    writer.writeheader()
    for c in CASES:
        row = dict(RESULTS[(c.case, c.call)])
        row["clear"] = "yes" if row["clear"] else "no"
        writer.writerow(row)
    text = buffer.getvalue()
    if not out.exists() or out.read_text() != text:
        with io.atomic_path(out) as tmp:
            tmp.write_text(text)
    assert all(r["clear"] and r["files_left"] == 0 for r in RESULTS.values())


def test_a_native_panic_becomes_a_runtime_error():
    """The guard around native calls: a panic (a BaseException) turns into a RuntimeError that
    names the call; KeyboardInterrupt passes through."""
    from neuroseg.checks import native_call

    class Panic(BaseException):
        pass

    def panicking():
        raise Panic("assertion failed: start <= axis_len")

    with pytest.raises(RuntimeError, match="mutex watershed failed inside a native library"):
        native_call(panicking, what="mutex watershed")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        native_call(interrupted, what="x")
    assert native_call(lambda a, b=1: a + b, 1, b=2, what="sum") == 3
