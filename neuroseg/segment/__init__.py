"""From network outputs to segments.

- :mod:`~neuroseg.segment.instances` — instance labels from probability maps (seeded
  watershed) and the training targets that go with them;
- :mod:`~neuroseg.segment.tuning` — post-processing chosen on validation data;
- :mod:`~neuroseg.segment.image_2d` — one 2D image to instances
  (:func:`neuroseg.segment_2d`);
- :mod:`~neuroseg.segment.volume_2d` — the 2D route through a volume: slices, then linking
  (:func:`neuroseg.segment_volume_2d`);
- :mod:`~neuroseg.segment.affinities`, :mod:`~neuroseg.segment.volume_3d` — the 3D route:
  affinities and their agglomeration (:func:`neuroseg.segment_volume_3d`);
- :mod:`~neuroseg.segment.affinities_2d` — in-plane affinities and a per-slice mutex
  watershed (the 2D route's other segmenter); :mod:`~neuroseg.segment.fragments` — xy
  fragments and their agglomeration with waterz; :mod:`~neuroseg.segment.choose` — a
  post-processing chosen by CREMI and time; :mod:`~neuroseg.segment.front_routes` — both
  routes' settings for the accuracy–speed front;
- :mod:`~neuroseg.segment.blockwise`, :mod:`~neuroseg.segment.block_tasks` — either route
  block by block on Dask over zarr, with consistent IDs;
- :mod:`~neuroseg.segment.axon_myelin` — axon and myelin classes of an SEM/TEM image.
"""
