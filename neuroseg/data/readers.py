"""Readers for the datasets the study uses, with validation that names the problem.

Each reader returns arrays with their axes and resolution attached:

- :func:`read_cremi` — CREMI-layout HDF5 (``volumes/raw``, ``volumes/labels/<name>``,
  ``resolution`` attribute in nm, z-y-x). An official CREMI sample opens unchanged.
- :func:`read_dsb` / :func:`list_dsb` — Kaggle DSB 2018 nuclei, in Kaggle's layout
  (``<id>/images/<id>.png``, ``<id>/masks/*.png``) or the merged layout
  (``images/<id>.png``, ``labels/<id>.png``, ``manifest.csv``).
- :func:`read_axondeepseg` / :func:`list_axondeepseg` — AxonDeepSeg samples, as one folder
  per sample (``image.png``, ``axon.png``, ``myelin.png`` [, ``uaxon.png``]) or the
  original BIDS layout (``sub-*/micr/*.png`` + ``derivatives/labels``).
- :func:`read_tiff_stack` — a multi-page TIFF or a folder of single-page TIFFs.
- :func:`read_neurofinder`, :func:`read_ctc_frames` — the soma and tracking sets.

All raise :class:`DataError` (a ``ValueError``) naming the file and key for a missing file, a
missing key, wrong dimensionality, an unusable dtype, NaNs, or image and labels of different
shapes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PathLike = str | os.PathLike


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Volume:
    """A 3D (or 2D+t) image with optional labels.

    Attributes
    ----------
    raw : ndarray
        Intensities, axes as in ``axes``.
    labels : ndarray or None
        Label image of the same shape (instance IDs or classes; see the dataset).
    resolution : tuple of float or None
        Voxel size per axis in nm (``None`` where the source does not record it).
    axes : str
        Axis names, e.g. ``"zyx"``.
    source : str
        File (and key) the data came from.
    """

    raw: np.ndarray
    labels: np.ndarray | None
    resolution: tuple[float, ...] | None
    axes: str
    source: str
    label_key: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.raw.shape


@dataclass(frozen=True)
class Sample:
    """One 2D image with labels.

    ``image`` is (Y, X) or (Y, X, C); ``labels`` is (Y, X) integers. ``pixel_size`` is in µm
    when known. ``masks`` holds extra named binary masks (e.g. ``axon``, ``myelin``).
    """

    id: str
    image: np.ndarray
    labels: np.ndarray
    pixel_size: float | None = None
    masks: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- validation


def check_image(array: np.ndarray, *, where: str, ndim: int | Sequence[int] | None = None):
    """Validate an intensity array: numeric dtype, finite, expected dimensionality."""
    array = np.asarray(array)
    if array.dtype.kind not in "uif" and array.dtype != bool:
        raise DataError(f"{where}: dtype {array.dtype} is not a numeric image type")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            raise DataError(f"{where}: expected {allowed} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{where}: empty array of shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise DataError(f"{where}: contains NaN or infinite values")
    return array


def check_labels(array: np.ndarray, *, where: str, ndim: int | Sequence[int] | None = None):
    """Validate a label array: integer (or bool) dtype, non-negative, expected dims."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind == "f":
        raise DataError(f"{where}: labels must be integers, got float dtype {array.dtype}")
    if array.dtype.kind not in "ui":
        raise DataError(f"{where}: dtype {array.dtype} cannot hold labels")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            raise DataError(f"{where}: expected {allowed} dimensions, got shape {array.shape}")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise DataError(f"{where}: labels must be non-negative")
    return array


def check_same_shape(image_shape, labels_shape, *, where: str) -> None:
    """Raise if image (spatial part) and labels differ in shape."""
    if tuple(image_shape) != tuple(labels_shape):
        raise DataError(
            f"{where}: image shape {tuple(image_shape)} and labels shape "
            f"{tuple(labels_shape)} differ"
        )


def _require_file(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    return path


def _imread(path: Path) -> np.ndarray:
    _require_file(path)
    import imageio.v3 as iio

    try:
        return np.asarray(iio.imread(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(f"{path}: cannot read image ({err})") from err


def grey_or_rgb(image: np.ndarray, where: str) -> np.ndarray:
    """Drop an alpha channel; collapse identical RGB channels to grey."""
    if image.ndim == 3 and image.shape[-1] in (2, 4):
        image = image[..., :-1]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 3 and (
        np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
    ):
        image = image[..., 0]
    return check_image(image, where=where, ndim=(2, 3))


# --------------------------------------------------------------------------- CREMI HDF5


def read_cremi(
    path: PathLike,
    *,
    labels: str | None = "neuron_ids",
    raw_key: str = "volumes/raw",
    ndim: int = 3,
) -> Volume:
    """Read a CREMI-layout HDF5 file.

    Parameters
    ----------
    path : path
        HDF5 file with ``volumes/raw`` and ``volumes/labels/<labels>``.
    labels : str or None
        Name under ``volumes/labels/`` (``None``: read no labels).
    raw_key : str
        Key of the intensities.
    ndim : int
        Expected dimensionality of raw (3 for volumes).

    Returns
    -------
    Volume
        ``resolution`` comes from the ``resolution`` attribute of the raw (or labels)
        dataset, in nm, z-y-x; ``None`` where the file has none.

    Examples
    --------
    >>> import tempfile, h5py, numpy as np, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> with h5py.File(p, "w") as f:
    ...     f["volumes/raw"] = np.zeros((2, 3, 3), np.uint8)
    ...     f["volumes/raw"].attrs["resolution"] = (40.0, 4.0, 4.0)
    ...     f["volumes/labels/neuron_ids"] = np.ones((2, 3, 3), np.uint64)
    >>> v = read_cremi(p)
    >>> v.raw.shape, v.resolution
    ((2, 3, 3), (40.0, 4.0, 4.0))
    """
    import h5py

    path = _require_file(Path(path), "HDF5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle as f:
        if raw_key not in f:
            raise DataError(f"{path}: missing key {raw_key!r} (has {sorted(_keys(f))})")
        raw_ds = f[raw_key]
        raw = check_image(raw_ds[...], where=f"{path}:{raw_key}", ndim=ndim)
        resolution = _resolution(raw_ds, raw.ndim)
        label_arr = None
        label_key = None
        if labels is not None:
            label_key = labels if labels.startswith("volumes/") else f"volumes/labels/{labels}"
            if label_key not in f:
                raise DataError(f"{path}: missing key {label_key!r} (has {sorted(_keys(f))})")
            lab_ds = f[label_key]
            label_arr = check_labels(lab_ds[...], where=f"{path}:{label_key}", ndim=ndim)
            check_same_shape(raw.shape, label_arr.shape, where=f"{path}:{raw_key} vs {label_key}")
            if resolution is None:
                resolution = _resolution(lab_ds, raw.ndim)
        axes = raw_ds.attrs.get("axes", "zyx"[-raw.ndim :] if raw.ndim <= 3 else None)
        if isinstance(axes, bytes):
            axes = axes.decode()
        axes = str(axes).replace(",", "")
    return Volume(
        raw=raw,
        labels=label_arr,
        resolution=resolution,
        axes=axes,
        source=str(path),
        label_key=label_key,
    )


def _keys(f) -> list[str]:
    out: list[str] = []
    f.visit(lambda name: out.append(name) if hasattr(f[name], "shape") else None)
    return out


def _resolution(ds, ndim: int) -> tuple[float, ...] | None:
    res = ds.attrs.get("resolution")
    if res is None:
        return None
    res = tuple(float(r) for r in np.atleast_1d(res))
    if len(res) != ndim:
        raise DataError(f"{ds.file.filename}:{ds.name}: resolution {res} does not match {ndim}D")
    if not all(math.isfinite(r) and r > 0 for r in res):
        raise DataError(
            f"{ds.file.filename}:{ds.name}: resolution {res} must be positive, finite numbers "
            "(fix the file's 'resolution' attribute, in nm per voxel)"
        )
    return res


def write_cremi(volume: Volume, path: PathLike, *, labels: str = "neuron_ids") -> Path:
    """Write a :class:`Volume` in CREMI layout (atomically)."""
    import h5py

    from neuroseg.io import atomic_path

    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("volumes/raw", data=volume.raw, compression="gzip")
            if volume.resolution is not None:
                ds.attrs["resolution"] = np.asarray(volume.resolution, dtype=float)
            if volume.labels is not None:
                lab = f.create_dataset(
                    f"volumes/labels/{labels}", data=volume.labels, compression="gzip"
                )
                if volume.resolution is not None:
                    lab.attrs["resolution"] = np.asarray(volume.resolution, dtype=float)
    return Path(path)


# --------------------------------------------------------------------------- DSB 2018


def _dsb_layout(root: Path) -> str:
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "merged"
    if any((p / "images").is_dir() and (p / "masks").is_dir() for p in root.iterdir()):
        return "kaggle"
    raise DataError(
        f"{root}: neither the merged DSB layout (images/, labels/) nor Kaggle's "
        "(<id>/images/<id>.png, <id>/masks/*.png)"
    )


def list_dsb(root: PathLike) -> list[dict]:
    """One dict per image of a DSB 2018 folder (either layout).

    Keys: ``id`` and, for the merged layout, the columns of ``manifest.csv`` (``height``,
    ``width``, ``channels``, ``n_nuclei``, ``nuclei_brighter_than_background``, ...).
    In Kaggle's layout only ``id`` is known without reading the images.
    """
    root = _require_file(Path(root), "DSB folder")
    layout = _dsb_layout(root)
    if layout == "merged":
        manifest = root / "manifest.csv"
        if manifest.exists():
            with manifest.open() as fh:
                rows = list(csv.DictReader(fh))
            for row in rows:
                for key, value in row.items():
                    if key != "id" and re.fullmatch(r"-?\d+", value or ""):
                        row[key] = int(value)
                    elif key != "id" and re.fullmatch(r"-?\d*\.\d+", value or ""):
                        row[key] = float(value)
            return rows
        return [{"id": p.stem} for p in sorted((root / "images").glob("*.png"))]
    return [{"id": p.name} for p in sorted(root.iterdir()) if (p / "images").is_dir()]


def read_dsb(root: PathLike, image_id: str) -> Sample:
    """Read one DSB 2018 image and its instance labels (uint16/uint32, 0 = background).

    In Kaggle's layout the per-nucleus masks are merged: label k is the k-th mask file in
    sorted order (1-based), a later mask wins where masks overlap, exactly as the staged
    merged layout was made.
    """
    root = _require_file(Path(root), "DSB folder")
    layout = _dsb_layout(root)
    if layout == "merged":
        img_path = root / "images" / f"{image_id}.png"
        lab_path = root / "labels" / f"{image_id}.png"
        image = grey_or_rgb(_imread(img_path), str(img_path))
        labels = check_labels(_imread(lab_path), where=str(lab_path), ndim=2)
    else:
        folder = root / image_id
        img_path = folder / "images" / f"{image_id}.png"
        image = grey_or_rgb(_imread(img_path), str(img_path))
        mask_files = sorted((folder / "masks").glob("*.png"))
        if not mask_files:
            raise DataError(f"{folder / 'masks'}: no mask PNGs")
        labels = np.zeros(image.shape[:2], dtype=np.uint16 if len(mask_files) < 2**16 else np.uint32)
        for k, mask_path in enumerate(mask_files, start=1):
            mask = _imread(mask_path)
            if mask.ndim == 3:
                mask = mask[..., 0]
            check_same_shape(image.shape[:2], mask.shape, where=str(mask_path))
            labels[mask > 0] = k
    check_same_shape(image.shape[:2], labels.shape, where=f"DSB image {image_id}")
    return Sample(id=image_id, image=image, labels=labels)


# --------------------------------------------------------------------------- AxonDeepSeg

AXON_CLASSES = {"background": 0, "myelin": 1, "axon": 2, "uaxon": 3}
"""Class indices of AxonDeepSeg labels (uaxon = unmyelinated axon, TEM only)."""


def list_axondeepseg(root: PathLike) -> list[dict]:
    """Samples of an AxonDeepSeg dataset: per-sample folders or BIDS.

    Each dict has ``id``, ``layout`` and ``pixel_size`` (µm, or ``None``), plus the columns of
    ``samples.csv`` when present.
    """
    root = _require_file(Path(root), "AxonDeepSeg folder")
    table = root / "samples.csv"
    if table.exists():
        with table.open() as fh:
            rows = list(csv.DictReader(fh))
        out = []
        for row in rows:
            row = dict(row)
            row["id"] = row.pop("sample")
            row["layout"] = "folders"
            row["pixel_size"] = float(row["pixel_size_um"]) if row.get("pixel_size_um") else None
            out.append(row)
        return out
    images = sorted(
        p for p in root.glob("sub-*/micr/*.png") if re.search(r"_(SEM|TEM|BF)$", p.stem)
    )
    if images:
        out = []
        for p in images:
            sidecar = p.with_suffix(".json")
            px = None
            if sidecar.exists():
                value = json.loads(sidecar.read_text()).get("PixelSize")
                if value is not None:
                    px = float(np.atleast_1d(value)[0])
            out.append({"id": p.stem, "layout": "bids", "pixel_size": px})
        return out
    folders = sorted(p for p in root.iterdir() if (p / "image.png").exists())
    if not folders:
        raise DataError(f"{root}: no AxonDeepSeg samples (no samples.csv, */image.png or BIDS)")
    return [{"id": p.name, "layout": "folders", "pixel_size": None} for p in folders]


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """A saved mask as bool: on above half its maximum (0/255 and 0/1 masks read alike).

    >>> binary_mask(np.array([0, 1])).tolist(), binary_mask(np.array([0, 255], np.uint8)).tolist()
    ([False, True], [False, True])
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    top = float(mask.max()) if mask.size else 0.0
    return mask > top / 2 if top > 0 else np.zeros(mask.shape, bool)


def read_axondeepseg(root: PathLike, sample_id: str, *, pixel_size: float | None = None) -> Sample:
    """Read one AxonDeepSeg sample.

    Returns a :class:`Sample` whose ``labels`` are classes (see :data:`AXON_CLASSES`: 0
    background, 1 myelin, 2 axon, 3 unmyelinated axon; later classes painted over earlier
    ones) and whose ``masks`` hold the binary ``axon``, ``myelin`` (and ``uaxon``) masks.
    """
    root = _require_file(Path(root), "AxonDeepSeg folder")
    entries = {e["id"]: e for e in list_axondeepseg(root)}
    if sample_id not in entries:
        raise DataError(f"{root}: no sample {sample_id!r}")
    entry = entries[sample_id]
    if entry["layout"] == "bids":
        subject = sample_id.split("_")[0]
        img_path = root / subject / "micr" / f"{sample_id}.png"
        lab_dir = root / "derivatives" / "labels" / subject / "micr"
        mask_paths = {
            name: lab_dir / f"{sample_id}_seg-{name}-manual.png"
            for name in ("axon", "myelin", "uaxon")
        }
    else:
        folder = root / sample_id
        img_path = folder / "image.png"
        mask_paths = {name: folder / f"{name}.png" for name in ("axon", "myelin", "uaxon")}
    image = grey_or_rgb(_imread(img_path), str(img_path))
    if image.ndim != 2:
        raise DataError(f"{img_path}: expected a grey image, got shape {image.shape}")
    masks = {}
    for name, mpath in mask_paths.items():
        if name == "uaxon" and not mpath.exists():
            continue
        mask = _imread(mpath)
        if mask.ndim == 3:
            mask = mask[..., 0]
        check_same_shape(image.shape, mask.shape, where=str(mpath))
        masks[name] = binary_mask(mask)
    labels = np.zeros(image.shape, np.uint8)
    for name in ("myelin", "axon", "uaxon"):
        if name in masks:
            labels[masks[name]] = AXON_CLASSES[name]
    px = pixel_size if pixel_size is not None else entry.get("pixel_size")
    meta = {k: v for k, v in entry.items() if k not in ("id", "pixel_size")}
    return Sample(id=sample_id, image=image, labels=labels, pixel_size=px, masks=masks, meta=meta)


# --------------------------------------------------------------------------- TIFF


def natural_key(path: PathLike) -> list:
    """Sort key that orders numbers by value: ``z2`` before ``z10``.

    >>> sorted(["z10.tif", "z2.tif", "z1.tif"], key=natural_key)
    ['z1.tif', 'z2.tif', 'z10.tif']
    """
    parts = re.split(r"(\d+)", Path(path).name)
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def read_tiff_stack(
    path: PathLike, *, resolution: Sequence[float] | None = None, pattern: str = "*.tif*"
) -> Volume:
    """Read a multi-page TIFF file, or a folder of single-page TIFFs sorted by name.

    Returns a :class:`Volume` with axes ``"zyx"`` (``labels`` is ``None``).
    """
    import tifffile

    path = _require_file(Path(path), "TIFF file or folder")
    if path.is_dir():
        files = sorted(path.glob(pattern), key=natural_key)
        if not files:
            raise DataError(f"{path}: no files matching {pattern!r}")
        try:
            planes = [tifffile.imread(f) for f in files]
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{path}: cannot read TIFF ({err})") from err
        shapes = {p.shape for p in planes}
        if len(shapes) != 1:
            raise DataError(f"{path}: slices of different shapes {sorted(shapes)}")
        raw = np.stack(planes)
    else:
        try:
            raw = tifffile.imread(path)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{path}: cannot read TIFF ({err})") from err
        if raw.ndim == 2:
            raw = raw[None]
    raw = check_image(raw, where=str(path), ndim=3)
    res = tuple(float(r) for r in resolution) if resolution is not None else None
    if res is not None and len(res) != 3:
        raise DataError(f"{path}: resolution must have 3 values (z, y, x), got {res}")
    return Volume(raw=raw, labels=None, resolution=res, axes="zyx", source=str(path))


# --------------------------------------------------------------------------- somata / tracking


def read_neurofinder(path: PathLike, *, image: str = "mean") -> Sample:
    """Read the neurofinder summary image (``mean``, ``max``, ``std`` or ``corr``) and somata.

    ``labels`` are the soma outlines (0 = unlabelled; the labelling is not exhaustive).
    ``masks`` holds all four summary images as float32.
    """
    import h5py

    path = _require_file(Path(path), "HDF5 file")
    with h5py.File(path, "r") as f:
        key = f"images/{image}"
        for needed in (key, "volumes/labels/neuron_ids"):
            if needed not in f:
                raise DataError(f"{path}: missing key {needed!r}")
        summaries = {
            name: check_image(f[f"images/{name}"][...].astype(np.float32), where=f"{path}:{name}")
            for name in ("mean", "max", "std", "corr")
            if f"images/{name}" in f
        }
        labels = check_labels(
            f["volumes/labels/neuron_ids"][...], where=f"{path}:volumes/labels/neuron_ids", ndim=2
        )
    img = summaries[image]
    check_same_shape(img.shape, labels.shape, where=str(path))
    return Sample(id=path.stem, image=img, labels=labels, masks=summaries)


def read_ctc_frames(
    folder: PathLike, *, kind: str = "raw", frames: Sequence[int] | None = None
) -> tuple[list[int], np.ndarray]:
    """Read a Cell Tracking Challenge sequence folder.

    ``kind`` is ``"raw"`` (``tNNN.tif``), ``"tra"`` (``man_trackNNN.tif``) or ``"seg"``
    (``man_segNNN.tif``; only the annotated frames). ``frames`` selects time points.
    Returns (frame indices, stack t-y-x).
    """
    import tifffile

    folder = _require_file(Path(folder), "CTC folder")
    patterns = {"raw": "t[0-9]*.tif", "tra": "man_track[0-9]*.tif", "seg": "man_seg[0-9]*.tif"}
    if kind not in patterns:
        raise ValueError(f"kind must be one of {sorted(patterns)}, got {kind!r}")
    files = sorted(folder.glob(patterns[kind]))
    if not files:
        raise DataError(f"{folder}: no {patterns[kind]} files")
    index = [int(re.findall(r"\d+", f.stem)[-1]) for f in files]
    if frames is not None:
        wanted = set(frames)
        absent = sorted(wanted - set(index))
        if absent:
            raise DataError(f"{folder}: no {kind} frames {absent}")
        files = [f for f, t in zip(files, index) if t in wanted]
        index = [t for t in index if t in wanted]
    stack = np.stack([tifffile.imread(f) for f in files])
    return index, stack


def dsb_modality(entry: dict) -> str:
    """``fluorescence``, ``brightfield`` or ``colour`` from the manifest columns."""
    if int(entry.get("channels", 1)) == 3:
        return "colour"
    bright = entry.get("nuclei_brighter_than_background")
    if bright is None:
        return "unknown"
    return "fluorescence" if int(bright) == 1 else "brightfield"


def check_volume(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ValueError(f"raw must be a (z, y, x) volume; got shape {raw.shape}")
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise TypeError(f"raw must hold numbers; got dtype {raw.dtype}")
    if min(raw.shape) == 0:
        raise ValueError(f"raw is empty (shape {raw.shape})")
    if np.issubdtype(raw.dtype, np.floating) and not np.all(np.isfinite(raw)):
        raise ValueError("raw contains NaN or infinite values")
    return raw
