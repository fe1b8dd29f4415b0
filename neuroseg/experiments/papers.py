"""The published numbers this study compares with, and its targets: constants only, no torch."""

from __future__ import annotations

#: AxonDeepSeg's reported performance of its own SEM model on its SEM test set (Zaimi et al.
#: 2018, Table 2): Dice of axon and myelin. For context only: their model, training set and
#: test images differ from ours.
AXONDEEPSEG_PAPER = {"sem_dice_axon": 0.95, "sem_dice_myelin": 0.88}


#: The targets of issue #9 for held-out SEM images: Dice at least, differences (``_mad``) at
#: most (see :func:`meets_target`).
TARGETS = {"sem_dice_axon": 0.85, "sem_dice_myelin": 0.80, "sem_gratio_mad": 0.05}


def meets_target(key: str, value: float) -> bool:
    """Whether ``value`` meets ``TARGETS[key]``: a Dice at least, a difference at most;
    NaN (nothing measured) meets nothing.

    >>> meets_target("sem_dice_axon", 0.8496), meets_target("sem_gratio_mad", 0.05)
    (False, True)
    """
    target = TARGETS[key]
    return bool(value <= target) if key.endswith("_mad") else bool(value >= target)


SOMANET_PAPER = {
    "val_iou": 0.50,
    "precision": 0.94,
    "accuracy": 0.74,
}


#: The Cell Tracking Challenge's 2024 linking benchmark: LNK of the top methods on
#: Fluo-N2DH-GOWT1, about 0.98 (Maška et al. 2023 and the CTC's linking-only leaderboard), on the
#: challenge's test sequences, not on the training sequence 01 used here: an anchor, not a
#: like-for-like comparison.
CTC_GOWT1_TOP_LNK = 0.98
