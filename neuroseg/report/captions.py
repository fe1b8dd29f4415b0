"""One caption per figure of the results page: what it shows and what to look at; and where
each figure is shown (the page's key figures, :data:`KEY_FIGURES`, or the appendix).

:func:`caption` finds a figure's caption by its file name (without extension); names that
carry a device, a volume, a z spacing or a kind of segments match a pattern. The results page
(:func:`neuroseg.report.results.write_readme`) puts each caption under its figure, and
``tests/test_report.py`` checks that every committed figure has one.
"""

from __future__ import annotations

import re

__all__ = ["APPENDIX", "CAPTIONS", "KEY_FIGURES", "anchor", "caption", "figure_md", "split_figures"]

#: (pattern of the figure's name, caption); the first pattern that matches the whole name wins.
CAPTIONS: tuple[tuple[str, str], ...] = (
    (r"00_datasets_overview", "One sample of every dataset with its labels over it. Look at how "
     "different the images are: EM neurites, nuclei, somata, myelinated axons."),
    (r"00_dsb2018_distribution", "DSB 2018 images by modality: nuclei per image (left) and median "
     "nucleus area (right). Most images are fluorescence, the subset the nucleus model trains on."),
    (r"10_loss_curves", "Nucleus model: loss (left) and foreground IoU (right) per epoch. Training "
     "and validation curves stay together: no overfitting over the 40 epochs."),
    (r"10_test_examples", "Held-out DSB images, worst (left) to best (right) by AP@0.5: truth above, "
     "prediction below. The worst are crowded or dim images."),
    (r"10_threshold_grid", "Validation AP@0.5 over the two watershed thresholds; the brightest cell "
     "is the setting stored with the model."),
    (r"20_em_test_examples", "EM test slices: raw, true boundaries, predicted boundary probability "
     "and the 2D segments. Thin membranes are found; gaps in them merge neighbours."),
    (r"20_em_test_slices", "Per-slice errors of the EM 2D segments along z (lower is better): "
     "VOI split and merge (left), adapted Rand error (right). The peaks are slices with "
     "blurred membranes."),
    (r"20_learning_curves", "Test IoU against the number of training images, from the nucleus "
     "model (transfer) and from scratch, somata (left) and EM boundaries (right): where the two "
     "curves part, and which is above, says what the nucleus start is worth."),
    (r"20_soma_false_positives", "Somata predicted where the labels have none, with their contrast "
     "in the mean image: many are faint unlabelled cells rather than errors."),
    (r"20_soma_split", "The neurofinder field and its tiles in the training, validation and test "
     "parts (coloured frames), labelled somata in red."),
    (r"20_soma_test_examples", "Test tiles: labelled somata (top) and the predictions (bottom), "
     "matched ones in bluish green, false ones in orange, missed somata outlined in vermillion; "
     "the scale bar assumes Neurofinder 00.00's 1.15 px/µm, likely but not certain for this field."),
    (r"30_cremi_by_method", "CREMI score of each linking method (lower is better) with true (left) "
     "and predicted (right) 2D segments. Compare the bars within a group: the segments are "
     "the same, only the linking differs."),
    (r"30_error_maps_.*", "Where the linked volume is wrong: split (orange), merge (blue) and both "
     "(purple), overlap linking beside learned linking, at three slices; the percentage of "
     "wrong voxels is in each title."),
    (r"30_link_inspector", "The LinkInspector as JupyterLab shows it (notebook 30): two neighbouring "
     "slices coloured by 3D ID at the chosen threshold, and each candidate pair's score and "
     "decision below."),
    (r"30_link_scores", "Learned link scores of candidate pairs that are the same neuron (green) or "
     "different neurons (brown); the dashed line is the calibrated threshold. The less the "
     "colours overlap, the easier the decision."),
    (r"30_linked_slices_.*", "Slices coloured by 3D ID: raw, truth, overlap linking and learned "
     "linking. A colour that changes from slice to slice where the truth keeps one is a split."),
    (r"30_linker_training", "The learned linker's training: loss (left) and validation IoU of "
     "'does not continue' (right) per epoch."),
    (r"35_affinities_.*", "3D affinity network outputs: raw slice, affinities (red z, green y, blue "
     "x; dark where a boundary is) and 1 - mean affinity, the boundary map."),
    (r"35_cremi_by_setting", "CREMI score of every 3D post-processing and threshold on each test "
     "volume (lower is better); the star marks the one chosen on validation."),
    (r"35_error_maps_.*", "3D route errors: split (orange), merge (blue), both (purple), for "
     "connected components and mutex watershed: large blue regions are merges."),
    (r"35_segments_.*", "3D segments over the raw slices: truth, connected components and mutex "
     "watershed."),
    (r"35_training", "The 3D affinity networks' training and validation loss per epoch, at 10 and "
     "40 nm z spacing."),
    (r"40_scaling_.*", "End-to-end seconds against volume size for both routes (log-log): both "
     "grow linearly, so their ratio holds at any size."),
    (r"40_speed_.*", "Speed work, one change at a time (seconds per megavoxel of the network "
     "stages): filled bars were kept, hatched ones were slower or changed the outputs."),
    (r"40_stages_.*", "Seconds per megavoxel of each stage of both routes, with each route's CREMI "
     "score beside it: where the time goes."),
    (r"45_front_.*", "Accuracy against speed for every setting of both routes (CREMI, lower is "
     "better, against seconds per megavoxel), each network trained for the same wall time; the "
     "line joins each route's best trade-offs. A 2D point left of and as low as the best 3D "
     "point would support Know Your Neighbour."),
    (r"50_(sem|tem)_gratio", "g-ratio of matched myelinated axons on the test images: distribution "
     "(left) and against axon diameter (right), manual and predicted: the closer the two "
     "histograms, the better the morphometrics."),
    (r"50_(sem|tem)_pixel_size_sensitivity", "Test Dice when the image is given with a wrong pixel "
     "size (1 = the true one): the drop on either side is why the pixel size is required."),
    (r"50_(sem|tem)_test_examples", "Test images: raw, manual and predicted classes (myelin, axon, "
     "unmyelinated axon)."),
    (r"50_(sem|tem)_training_curves", "Training (left) and validation (right) loss per epoch of "
     "each candidate network."),
    (r"60_migration_distributions", "Per cell: mean speed, persistence and saltations per hour, "
     "from our tracks and from the ground-truth markers: compare the two histograms of each "
     "measure."),
    (r"60_speed_saltations", "Step speed over time of four cells: pauses below the dotted line, "
     "moves above the dashed one; triangles mark saltations."),
    (r"60_track_inspector", "The TrackInspector: one frame's links to the next (arrows), each with "
     "its score; labels only, no image of the data."),
    (r"60_tracking_metrics", "The Cell Tracking Challenge's measures (higher is better) of three "
     "linkers, on the whole sequence and on the later frames no training saw."),
    (r"60_tracks_by_speed", "Every cell's path, coloured by step speed; dots are first positions."),
    (r"70_link_inspector", "The LinkInspector opened on another tool's masks (here the shipped em_2d "
     "network's, renumbered per slice) with LinkInspector.from_masks and the shipped linker: "
     "two slices coloured by 3D ID, a scale bar, and each pair's score and decision."),
    (r"70_link_your_masks", "CREMI score of each linking rule on the same 2D masks (lower is "
     "better): the masks stay the same within a group, only the rule that joins them differs."),
    (r"90_axon_myelin_dice", "Test Dice per class of every axon/myelin candidate against "
     "AxonDeepSeg's targets (dashed): SEM (left) and TEM (right)."),
    (r"90_cremi_2d_vs_3d", "CREMI of the 2D route (true or predicted segments, overlap or learned "
     "linking) against the 3D route on both test volumes (lower is better): the gap between "
     "true and predicted segments is what the 2D segmenter costs."),
    (r"90_nucleus_pretraining", "The nucleus model's training curves and its validation IoU, "
     "precision and accuracy beside SomaNet's reported numbers."),
    (r"90_timing_by_device", "Seconds per megavoxel of both routes, stage by stage, with each "
     "route's CREMI score above its bar."),
    (r"90_transfer_learning_curves", "Transfer from the nucleus model against training from "
     "scratch over the number of training images (bands: spread over seeds)."),
)


def caption(name: str) -> str | None:
    """The caption of the figure ``name`` (file name without extension), or None.

    Examples
    --------
    >>> caption("30_error_maps_gala_40nm_oracle").startswith("Where the linked volume is wrong")
    True
    >>> caption("99_unknown") is None
    True
    """
    for pattern, text in CAPTIONS:
        if re.fullmatch(pattern, name):
            return text
    return None


#: The figures each section of the results page shows (one or two that carry its claim); every
#: other figure of the step is in the appendix, ``reports/figures.md``. The summary figures
#: (``90_``) all stay.
KEY_FIGURES = {
    "00_": ("00_datasets_overview",),
    "10_": ("10_test_examples", "10_loss_curves"),
    "20_": ("20_soma_test_examples", "20_learning_curves"),
    "30_": ("30_cremi_by_method", "30_link_inspector"),
    "35_": ("35_cremi_by_setting", "35_segments_fib25_test_40nm"),
    "40_": ("40_stages_cpu_40nm", "40_scaling_cpu"),
    "45_": ("45_front_cpu_40nm", "45_front_cpu_10nm"),
    "50_": ("50_sem_test_examples", "50_sem_gratio"),
    "60_": ("60_tracks_by_speed", "60_tracking_metrics"),
    "70_": ("70_link_your_masks", "70_link_inspector"),
}
APPENDIX = "figures.md"


def figure_md(name: str, folder: str = "figures") -> list[str]:
    return [f"![{name}]({folder}/{name}.png)", "", f"*{caption(name) or name}*", ""]


def split_figures(names: list[str], prefix: str) -> tuple[list[str], list[str]]:
    """A section's figures: those the results page shows (:data:`KEY_FIGURES`; all of the
    summary's ``90_``), and the rest, for the appendix.

    >>> split_figures(["10_loss_curves", "10_threshold_grid", "20_x"], "10_")
    (['10_loss_curves'], ['10_threshold_grid'])
    """
    mine = [n for n in names if n.startswith(prefix)]
    if prefix not in KEY_FIGURES:
        return mine, []
    keep = [n for n in mine if n in KEY_FIGURES[prefix]]
    return keep, [n for n in mine if n not in keep]


def anchor(title: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")
