"""neuroseg: neuron segmentation in microscopy.

Nucleus pretraining and transfer to neurons (SomaNet), slice-by-slice segmentation with
learned linking ("Know Your Neighbour") against a 3D affinity baseline, and axon/myelin
morphometrics. The user-facing calls::

    model = neuroseg.load_model(folder)
    labels = neuroseg.segment_2d(model, image)
    labels3d = neuroseg.segment_volume_2d(model, raw, linker=linker, resolution=(40, 10, 10))
    labels3d = neuroseg.segment_volume_3d(affinity_model, raw, resolution=(40, 10, 10))

Modules: ``paths`` (where things live), ``data`` / ``datasets`` / ``splits`` (the data),
``models`` / ``augment`` / ``loaders`` / ``train`` / ``inference`` (networks),
``instances`` and ``metrics`` (labels and scores), ``linking`` and ``linker`` (slice linking and
the learned linker), ``affinities`` (the 3D baseline), ``widgets`` (the link inspector), ``timing`` (measurements).
"""

from .affinities import segment_volume_3d
from .inference import segment_2d, segment_volume_2d
from .models import load_model

__version__ = "0.1.0"
__all__ = ["load_model", "segment_2d", "segment_volume_2d", "segment_volume_3d", "__version__"]
