"""Linking 2D segments of neighbouring slices into 3D objects ("Know Your Neighbour").

- :mod:`~neuroseg.linking.graph` — segments as nodes, candidate pairs, 3D IDs from links;
- :mod:`~neuroseg.linking.rules` — :func:`~neuroseg.linking.rules.link_slices` and
  :func:`~neuroseg.linking.rules.relink` with the overlap (Cellpose), Hungarian, graph and
  learned rules;
- :mod:`~neuroseg.linking.calibration` — pair features and their calibration;
- :mod:`~neuroseg.linking.learned` — the learned linker: z-affinities from two slices, its
  training and its folder (:func:`~neuroseg.linking.learned.load_linker`);
- :mod:`~neuroseg.linking.dropin` — :func:`neuroseg.link`: another tool's 2D masks joined into
  3D objects; :mod:`~neuroseg.linking.multicut` — micro-SAM's multicut rule;
- :mod:`~neuroseg.linking.tracks` — tracking over time with the same candidates (time read
  as z): gaps, divisions, and the peer tracker laptrack.
"""
