"""neuroseg: neuron segmentation in microscopy.

Nucleus pretraining and transfer to neurons (SomaNet), slice-by-slice segmentation with
learned linking ("Know Your Neighbour") against a 3D affinity baseline, and axon/myelin
morphometrics. The user-facing calls::

    neuroseg.list_models()                       # the trained models that ship with it
    model = neuroseg.load_model("nucleus")       # by name, or the path of a model folder
    labels = neuroseg.segment_2d(model, image)
    labels3d = neuroseg.segment_volume_2d(model, raw, linker=linker, resolution=(40, 10, 10))
    labels3d = neuroseg.segment_volume_3d(affinity_model, raw, resolution=(40, 10, 10))
    labels3d = neuroseg.link(masks_from_any_tool, resolution=(40, 10, 10))

They are loaded on first use, so ``import neuroseg`` (and ``neuroseg.paths``) needs neither
torch nor numpy. The layers, each importing only those below it:

- ``neuroseg.data``: the dataset catalogue, download and conversion, readers, splits, EM
  volumes, resampling, synthetic test data;
- ``neuroseg.nets``: U-Net, augmentation, crops, training, transfer, speed, prediction at the
  model's scale;
- ``neuroseg.measure``, ``neuroseg.linking``, ``neuroseg.segment``: metrics and
  morphometrics; linking 2D segments across z; from network outputs to segments (the 2D and
  3D routes, axon/myelin classes);
- ``neuroseg.experiments``: one module per notebook;
- ``neuroseg.report``: the results page, its figures and the link inspector.

``paths``, ``io``, ``plots``, ``pipeline``, ``checks`` and ``machine`` serve every layer (where
files live, atomic writing, one plotting style, the notebook pipeline, argument checks and the
guard around native libraries, the machine and its threads).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["link", "list_models", "load_model", "segment_2d", "segment_volume_2d",
           "segment_volume_3d", "__version__"]

_LAZY = {
    "link": "neuroseg.linking.dropin",
    "list_models": "neuroseg.nets.shipped",
    "load_model": "neuroseg.nets.shipped",
    "segment_2d": "neuroseg.segment.image_2d",
    "segment_volume_2d": "neuroseg.segment.volume_2d",
    "segment_volume_3d": "neuroseg.segment.volume_3d",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuroseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
