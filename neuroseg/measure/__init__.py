"""Measurements. Every metric takes the truth first and the prediction second.

- :mod:`~neuroseg.measure.overlap` — the one overlap table and the pixel metrics
  (IoU, Dice);
- :mod:`~neuroseg.measure.matching` — instance matching, precision, recall, the DSB score;
- :mod:`~neuroseg.measure.voi_rand` — VOI, adapted Rand error and CREMI score of dense
  segmentations; :mod:`~neuroseg.measure.error_map` — where they err;
- :mod:`~neuroseg.measure.morphometrics` — per-axon morphometrics (g-ratio and more);
- :mod:`~neuroseg.measure.contrast` — object contrast and error tables of instances;
- :mod:`~neuroseg.measure.timing` — honest wall-clock and memory measurements;
  :mod:`~neuroseg.measure.front` — the accuracy–speed front and its verdict;
- :mod:`~neuroseg.measure.ctc_scores` — the Cell Tracking Challenge's measures of a tracking
  result; :mod:`~neuroseg.measure.migration` — speed, direction, persistence and saltations
  of tracked cells;
- :mod:`~neuroseg.measure.seeds` — the spread of a number over training seeds.
"""
