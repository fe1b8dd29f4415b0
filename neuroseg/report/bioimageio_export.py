"""The shipped 2D models as bioimage.io model packages, for ilastik, deepImageJ and napari.

:func:`export_bioimageio` writes ``<name>.zip``: the network as TorchScript (float32, from the
shipped half-precision weights), an ``rdf.yaml`` (bioimage.io model spec 0.5) with its
pre-processing (percentile normalisation 1–99.8 of each image and channel, as neuroseg does)
and post-processing (sigmoid: the package returns probabilities; the watershed, mutex
watershed or linking that turns them into objects stays in neuroseg), the pixel size, a test
input and the output neuroseg computes for it. :func:`check_package` runs bioimageio.core's own
model test on it. ``make export-models`` writes them to ``reports/bioimageio/``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["check_package", "export_bioimageio"]

_CITE_TEXT = ("neuroseg: neuron segmentation in microscopy (nucleus pretraining, slice linking "
              "against 3D affinities, axon and myelin morphometrics)")


def _channel_names(model) -> list[str]:
    meta = model.meta or {}
    n = int(model.config["out_channels"])
    names = meta.get("outputs")
    if isinstance(names, Sequence) and len(names) == n and not isinstance(names, str):
        return [str(x).replace(" ", "_") for x in names]
    target = str(meta.get("target", "channel"))
    return [f"{target}_{k}" for k in range(n)] if n > 1 else [target]


def _multiple(model) -> int:
    return 2 ** (int(model.config["depth"]) - 1)


def _preprocess(image: np.ndarray) -> np.ndarray:
    """What the package's ScaleRange step does: each channel of each image to its percentiles
    1 and 99.8 (float32)."""
    from neuroseg.data.images import normalize

    return np.stack([normalize(c) for c in image]).astype(np.float32)


def export_bioimageio(
    name: str,
    *,
    out_dir: str | os.PathLike,
    test_input: np.ndarray | None = None,
    shipped: str | os.PathLike | None = None,
    description: str | None = None,
) -> Path:
    """Write the shipped 2D model ``name`` as ``out_dir/<name>.zip`` (bioimage.io model 0.5).

    ``test_input`` is one (channels, y, x) raw image (any range; cropped to a size the network
    takes); without it a random image is used. Returns the package's path.
    """
    import torch

    from neuroseg.checks import require_extra

    spec = require_extra("bioimageio.spec.model.v0_5", "bioimageio")
    save_bioimageio_package = require_extra("bioimageio.spec", "bioimageio").save_bioimageio_package

    from neuroseg.io import atomic_path
    from neuroseg.nets.shipped import load_model, read_registry

    model = load_model(name, shipped=shipped).eval()
    if int(model.config["ndim"]) != 2:
        raise ValueError(f"{name!r} is a {model.config['ndim']}D network; only 2D models are exported")
    entry = next((e for e in read_registry(shipped) if e["name"] == name), {})
    c_in, multiple = int(model.config["in_channels"]), _multiple(model)
    if test_input is None:
        test_input = np.random.default_rng(0).random((c_in, 256, 256), np.float32)
    image = np.asarray(test_input, np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.shape[0] != c_in:
        raise ValueError(f"{name!r} takes {c_in} channel(s); the test input has shape {image.shape}")
    ys, xs = (s - s % multiple for s in image.shape[1:])
    if min(ys, xs) < 4 * multiple:
        raise ValueError(f"the test input must be at least {4 * multiple} pixels in y and x")
    image = image[:, :ys, :xs]
    x = torch.from_numpy(_preprocess(image)[None])
    with torch.no_grad():
        y = torch.sigmoid(model(x)).numpy().astype(np.float32)

    meta = model.meta or {}
    size = (meta.get("pixel_size") or {}).get("size")
    unit = {"nm": "nanometer", "um": "micrometer"}.get((meta.get("pixel_size") or {}).get("unit"))

    def space(axis: str, k: int, **kw):
        extra = {"unit": unit, "scale": float(size[k])} if size and unit else {}
        return spec.SpaceInputAxis(id=spec.AxisId(axis), **extra, **kw)

    def out_space(axis: str, k: int):
        extra = {"unit": unit, "scale": float(size[k])} if size and unit else {}
        return spec.SpaceOutputAxis(id=spec.AxisId(axis), size=spec.SizeReference(
            tensor_id=spec.TensorId("raw"), axis_id=spec.AxisId(axis)), **extra)

    in_names = ["slice_a", "slice_b"] if c_in == 2 else [f"channel_{k}" for k in range(c_in)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "test_input.npy", image[None])
        np.save(tmp / "test_output.npy", y)
        torch.jit.trace(model, x, check_trace=False).save(str(tmp / "weights_torchscript.pt"))
        doc = description or entry.get("task") or name
        (tmp / "README.md").write_text(
            f"# neuroseg {name}\n\n{doc}\n\nTrained by neuroseg ({entry.get('rebuild', 'see neuroseg')});"
            f" validation: {entry.get('val_metric', '?')} {entry.get('val_value', '?')} on "
            f"{entry.get('val_data', '?')}. Input: a raw image, normalised to its percentiles 1 and "
            "99.8; output: probabilities. Objects: neuroseg's post-processing (see its README).\n",
            encoding="utf-8")
        inputs = spec.InputTensorDescr(
            id=spec.TensorId("raw"),
            axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in in_names]),
                  space("y", 0, size=spec.ParameterizedSize(min=4 * multiple, step=multiple)),
                  space("x", 1, size=spec.ParameterizedSize(min=4 * multiple, step=multiple))],
            test_tensor=spec.FileDescr(source=tmp / "test_input.npy"),
            preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=[spec.AxisId("y"), spec.AxisId("x")], min_percentile=1.0, max_percentile=99.8))],
        )
        outputs = spec.OutputTensorDescr(
            id=spec.TensorId("probabilities"),
            axes=[spec.BatchAxis(),
                  spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in _channel_names(model)]),
                  out_space("y", 0), out_space("x", 1)],
            test_tensor=spec.FileDescr(source=tmp / "test_output.npy"),
            postprocessing=[spec.SigmoidDescr()],
        )
        descr = spec.ModelDescr(
            name=f"neuroseg {name}", description=str(doc)[:1000],
            authors=[spec.Author(name="neuroseg developers")],
            cite=[spec.CiteEntry(text=_CITE_TEXT, url="https://github.com/neuroseg/neuroseg")],
            license=spec.LicenseId("BSD-3-Clause"), tags=["neuroseg", "2d", "segmentation"],
            documentation=spec.FileDescr(source=tmp / "README.md"),
            inputs=[inputs], outputs=[outputs],
            weights=spec.WeightsDescr(torchscript=spec.TorchscriptWeightsDescr(
                source=tmp / "weights_torchscript.pt",
                pytorch_version=spec.Version(torch.__version__.split("+")[0]))),
        )
        target = Path(out_dir) / f"{name}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".zip") as part:
            save_bioimageio_package(descr, output_path=part)
    return target


def check_package(path: str | os.PathLike) -> tuple[str, list[str]]:
    """bioimageio.core's model test of a package: its status (``"passed"``, ``"valid-format"``
    or ``"failed"``) and the names of the checks that did not pass."""
    from neuroseg.checks import require_extra

    test_model = require_extra("bioimageio.core", "bioimageio").test_model

    summary = test_model(Path(path))
    return str(summary.status), [d.name for d in summary.details if d.status not in ("passed", "valid-format")]
