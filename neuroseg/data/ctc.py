"""The Cell Tracking Challenge (CTC) format: lineages, parts of a sequence, result folders.

A CTC *lineage* (``man_track.txt``, ``res_track.txt``) has one row ``L B E P`` per track:
label, first frame, last frame, parent label (0: none). Masks are ``man_trackNNN.tif`` (ground
truth markers), ``man_segNNN.tif`` (segmentation ground truth of some frames) and
``maskNNN.tif`` (a result), one uint16 image per frame. Here a lineage is a DataFrame with the
columns :data:`LINEAGE_COLUMNS`.

:func:`cut_part` takes a part of a sequence (frames ``start`` to ``stop - 1``) the way the CTC
evaluation needs it: frames re-based to 0, tracks that begin before the part begin at its first
frame with no parent. :func:`write_result` and :func:`write_ground_truth` write the folders that
``py-ctcmetrics`` and the CTC's own tools read, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from neuroseg.io import atomic_folder, atomic_path

__all__ = [
    "LINEAGE_COLUMNS",
    "annotation_coverage",
    "check_lineage",
    "cut_part",
    "lineage_from_labels",
    "partial_labels",
    "read_lineage",
    "write_ground_truth",
    "write_lineage",
    "write_result",
]

LINEAGE_COLUMNS = ("track", "begin", "end", "parent")

# value of the pixels that a partially annotated frame leaves unknown (see partial_labels)
IGNORE = np.iinfo(np.uint32).max


def check_lineage(lineage: pd.DataFrame, *, n_frames: int | None = None) -> pd.DataFrame:
    """A lineage table, checked: integer columns, begin <= end, known parents, no loops.

    Examples
    --------
    >>> t = pd.DataFrame({"track": [1, 2], "begin": [0, 3], "end": [2, 4], "parent": [0, 1]})
    >>> check_lineage(t).track.tolist()
    [1, 2]
    """
    missing = [c for c in LINEAGE_COLUMNS if c not in lineage.columns]
    if missing:
        raise ValueError(f"a lineage needs the columns {list(LINEAGE_COLUMNS)}; missing {missing}")
    t = lineage[list(LINEAGE_COLUMNS)].astype(np.int64).reset_index(drop=True)
    if (t.track < 1).any():
        raise ValueError("track labels must be >= 1 (0 is the background)")
    if t.track.duplicated().any():
        raise ValueError(f"track labels repeat: {sorted(t.track[t.track.duplicated()].tolist())}")
    if ((t.begin < 0) | (t.end < t.begin)).any():
        bad = t[(t.begin < 0) | (t.end < t.begin)].iloc[0].tolist()
        raise ValueError(f"a track must have 0 <= begin <= end; got {bad} (track, begin, end, parent)")
    if n_frames is not None and (t.end >= n_frames).any():
        raise ValueError(f"a track ends after the last frame ({n_frames - 1})")
    known = set(t.track) | {0}
    unknown = sorted(set(t.parent) - known)
    if unknown:
        raise ValueError(f"parents {unknown} are not tracks of the lineage")
    begins = dict(zip(t.track, t.begin))
    ends = dict(zip(t.track, t.end))
    for track, parent in zip(t.track, t.parent):
        if parent and ends[parent] >= begins[track]:
            raise ValueError(
                f"track {track} begins at frame {begins[track]}, not after its parent "
                f"{parent} ends (frame {ends[parent]})"
            )
    return t


def read_lineage(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CTC ``man_track.txt`` / ``res_track.txt`` (``L B E P`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such lineage file (CTC man_track.txt or res_track.txt)")
    rows = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ValueError(f"{path}:{k}: expected four integers 'L B E P', got {line!r}")
        rows.append([int(p) for p in parts])
    return check_lineage(pd.DataFrame(rows, columns=list(LINEAGE_COLUMNS)))


def write_lineage(lineage: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a lineage as a CTC text file (atomically)."""
    t = check_lineage(lineage)
    text = "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in t.itertuples(index=False))
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def lineage_from_labels(labels: npt.ArrayLike, parents: Mapping[int, int] | None = None) -> pd.DataFrame:
    """The lineage of a track-labelled stack (t, y, x): each label's first and last frame.

    ``parents`` maps a track to its parent track (default: none).

    Examples
    --------
    >>> stack = np.array([[[1, 0]], [[0, 2]], [[0, 2]]])
    >>> lineage_from_labels(stack, {2: 1}).values.tolist()
    [[1, 0, 0, 0], [2, 1, 2, 1]]
    """
    stack = np.asarray(labels)
    if stack.ndim != 3:
        raise ValueError(f"labels must be a (t, y, x) stack; got shape {stack.shape}")
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t, frame in enumerate(stack):
        for lab in np.unique(frame):
            if lab:
                first.setdefault(int(lab), t)
                last[int(lab)] = t
    parents = dict(parents or {})
    rows = [[lab, first[lab], last[lab], int(parents.get(lab, 0))] for lab in sorted(first)]
    return check_lineage(pd.DataFrame(rows, columns=list(LINEAGE_COLUMNS), dtype=np.int64))


def cut_part(
    tracks: npt.ArrayLike, lineage: pd.DataFrame, *, start: int, stop: int | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Frames ``start`` to ``stop - 1`` of a tracked sequence, as a sequence of its own.

    Frames are re-based to 0. A track that began before ``start`` begins at the part's first
    frame and loses its parent; a track that ended before ``start`` or begins at ``stop`` or
    later is dropped (and its daughters lose it as parent); ends are clipped to the part.

    Examples
    --------
    >>> stack = np.array([[[1]], [[2]], [[2]]])
    >>> t = pd.DataFrame({"track": [1, 2], "begin": [0, 1], "end": [0, 2], "parent": [0, 1]})
    >>> part, lin = cut_part(stack, t, start=1)
    >>> part.shape, lin.values.tolist()
    ((2, 1, 1), [[2, 0, 1, 0]])
    """
    stack = np.asarray(tracks)
    n = stack.shape[0]
    stop = n if stop is None else int(stop)
    if not 0 <= start < stop <= n:
        raise ValueError(f"need 0 <= start < stop <= {n} frames; got start={start}, stop={stop}")
    t = check_lineage(lineage, n_frames=n)
    keep = (t.end >= start) & (t.begin < stop)
    part = t[keep].copy()
    part["begin"] = np.maximum(part.begin, start) - start
    part["end"] = np.minimum(part.end, stop - 1) - start
    kept = set(part.track)
    part["parent"] = [
        p if (p in kept and b > 0) else 0 for p, b in zip(part.parent, part.begin)
    ]
    return stack[start:stop].copy(), check_lineage(part, n_frames=stop - start)


def _write_stack(folder: Path, stack: np.ndarray, name: str, frames: Sequence[int]) -> None:
    import tifffile

    for t, frame in zip(frames, stack):
        tifffile.imwrite(folder / f"{name}{t:03d}.tif", np.asarray(frame, np.uint16))


def _check_stack(labels: npt.ArrayLike, name: str) -> np.ndarray:
    stack = np.asarray(labels)
    if stack.ndim != 3:
        raise ValueError(f"{name} must be a (t, y, x) stack; got shape {stack.shape}")
    if stack.dtype.kind not in "ui" or (stack.size and stack.min() < 0):
        raise ValueError(f"{name} must hold non-negative integer labels; got dtype {stack.dtype}")
    if stack.size and int(stack.max()) > np.iinfo(np.uint16).max:
        raise ValueError(
            f"{name} has label {int(stack.max())}; the CTC format stores uint16 (at most 65535)"
        )
    return stack


def write_result(folder: str | os.PathLike, labels: npt.ArrayLike, lineage: pd.DataFrame) -> Path:
    """Write a tracking result in the CTC format: ``maskNNN.tif`` + ``res_track.txt``.

    The folder is written whole or not at all (a temporary sibling, then renamed).
    """
    stack = _check_stack(labels, "labels")
    t = check_lineage(lineage, n_frames=stack.shape[0])
    with atomic_folder(folder, keep_existing=False) as tmp:
        tmp = Path(tmp)
        _write_stack(tmp, stack, "mask", range(stack.shape[0]))
        write_lineage(t, tmp / "res_track.txt")
    return Path(folder)


def write_ground_truth(
    folder: str | os.PathLike,
    tracks: npt.ArrayLike,
    lineage: pd.DataFrame,
    *,
    seg: Mapping[int, npt.ArrayLike] | None = None,
) -> Path:
    """Write ground truth in the CTC layout: ``TRA/man_trackNNN.tif``, ``TRA/man_track.txt``
    and ``SEG/man_segNNN.tif`` for the frames in ``seg`` (frame -> mask)."""
    stack = _check_stack(tracks, "tracks")
    t = check_lineage(lineage, n_frames=stack.shape[0])
    seg = dict(seg or {})
    bad = [f for f in seg if not 0 <= int(f) < stack.shape[0]]
    if bad:
        raise ValueError(f"segmentation frames {bad} are outside the {stack.shape[0]} frames")
    with atomic_folder(folder, keep_existing=False) as tmp:
        tra, segdir = Path(tmp) / "TRA", Path(tmp) / "SEG"
        tra.mkdir()
        segdir.mkdir()
        _write_stack(tra, stack, "man_track", range(stack.shape[0]))
        write_lineage(t, tra / "man_track.txt")
        frames = sorted(int(f) for f in seg)
        masks = [_check_stack(np.asarray(seg[f])[None], "seg")[0] for f in frames]
        _write_stack(segdir, np.asarray(masks).reshape(-1, *stack.shape[1:]), "man_seg", frames)
    return Path(folder)


def annotation_coverage(seg: npt.ArrayLike, markers: npt.ArrayLike) -> dict:
    """How completely a segmentation mask annotates a frame, read against its tracking markers.

    Returns the number of markers, how many overlap an annotated object, and ``complete``
    (every marker is covered).

    Examples
    --------
    >>> annotation_coverage([[1, 0, 0]], [[5, 0, 6]])
    {'markers': 2, 'covered': 1, 'complete': False}
    """
    s, m = np.asarray(seg), np.asarray(markers)
    if s.shape != m.shape:
        raise ValueError(f"seg {s.shape} and markers {m.shape} differ in shape")
    ids = np.unique(m[m > 0])
    covered = np.unique(m[(m > 0) & (s > 0)])
    return {"markers": int(ids.size), "covered": int(covered.size),
            "complete": bool(covered.size == ids.size)}


def partial_labels(seg: npt.ArrayLike, markers: npt.ArrayLike, *, margin: int = 15) -> np.ndarray:
    """Training labels of a partially annotated frame: unannotated nuclei are unknown.

    Annotated objects keep their labels; each tracking marker that no annotated object covers
    is grown by ``margin`` pixels and set to :data:`IGNORE` (not background, not object), so
    a loss can leave it out. Returns uint32.

    Examples
    --------
    >>> partial_labels([[1, 0, 0, 0]], [[5, 0, 0, 6]], margin=1).tolist()
    [[1, 0, 4294967295, 4294967295]]
    """
    from scipy import ndimage as ndi

    s, m = np.asarray(seg), np.asarray(markers)
    if s.shape != m.shape:
        raise ValueError(f"seg {s.shape} and markers {m.shape} differ in shape")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels; got {margin}")
    out = s.astype(np.uint32)
    covered = np.unique(m[(m > 0) & (s > 0)])
    unknown = (m > 0) & ~np.isin(m, covered)
    if margin:
        unknown = ndi.binary_dilation(unknown, iterations=int(margin))
    out[unknown & (s == 0)] = IGNORE
    return out
