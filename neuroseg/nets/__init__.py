"""The network layer: U-Nets, how they are trained, and how they predict.

- :mod:`~neuroseg.nets.unet` — the 2D/3D U-Net; :mod:`~neuroseg.nets.folder` — a trained
  model as a folder (``config.json``, ``weights.pt``, ``history.csv``, ``env.json``);
- :mod:`~neuroseg.nets.augment`, :mod:`~neuroseg.nets.loaders` — augmentation and random
  crops, reproducibly;
- :mod:`~neuroseg.nets.train` — :func:`~neuroseg.nets.train.fit` with checkpoints and resume;
  :mod:`~neuroseg.nets.speed` — precision, memory layout, compilation;
- :mod:`~neuroseg.nets.layers`, :mod:`~neuroseg.nets.transfer` — layer surgery and starting
  a task from a trained model folder;
- :mod:`~neuroseg.nets.predict` — tiled prediction; :mod:`~neuroseg.nets.scale` —
  prediction at the model's pixel size.
"""
