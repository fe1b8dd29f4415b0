"""The data layer: what the study reads, and nothing above it.

- :mod:`~neuroseg.data.catalogue` — the datasets, where each lives in ``NEUROSEG_DATA``
  and where it comes from (``python -m neuroseg.data`` checks them);
- :mod:`~neuroseg.data.download`, :mod:`~neuroseg.data.convert`,
  :mod:`~neuroseg.data.summaries` — fetching the public sources and converting them to the
  staged layout;
- :mod:`~neuroseg.data.readers` — readers with validation (CREMI HDF5, DSB, AxonDeepSeg,
  TIFF stacks, neurofinder, CTC); :mod:`~neuroseg.data.files` — a user's own images and
  labels in and out (TIFF, PNG, HDF5, .npy) with their voxel size;
- :mod:`~neuroseg.data.splits` — train / validation / test splits, made once;
- :mod:`~neuroseg.data.em_volumes`, :mod:`~neuroseg.data.em_slices`,
  :mod:`~neuroseg.data.soma_tiles` — the study's samples built from those;
- :mod:`~neuroseg.data.images`, :mod:`~neuroseg.data.labels`,
  :mod:`~neuroseg.data.resample` — intensity normalisation, label arrays, pixel sizes;
- :mod:`~neuroseg.data.ctc` — the Cell Tracking Challenge format (lineages, parts of a
  sequence, result and ground-truth folders);
- :mod:`~neuroseg.data.synthetic` — small generated data with known answers, for tests.
"""
