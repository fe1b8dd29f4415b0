"""Images and labels in and out of files, with their voxel size where the format holds one.

:func:`read` opens TIFF (a single image, a stack, OME-TIFF), PNG/JPEG, HDF5 (with a dataset
``key``), NumPy ``.npy`` and a folder of TIFF or PNG slices (in natural order: ``z2`` before
``z10``); :func:`write` writes TIFF (as OME-TIFF, with the voxel size), PNG, HDF5 (the voxel
size in the dataset's ``resolution`` attribute, as the CREMI files) and ``.npy``, atomically
(TIFF drops axes of length 1 on reading, as ``tifffile`` does).
Label images are written as the smallest unsigned integer type that holds them
(:func:`smallest_label_dtype`), so that napari and neuroglancer show them as labels at the
right scale. Voxel sizes are in nm, one per axis, z first.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> labels = np.array([[[0, 1], [2, 300]], [[0, 1], [1, 1]]])
>>> _ = write(folder / "labels.tif", labels, voxel_size=(40, 10, 10), labels=True)
>>> image = read(folder / "labels.tif")
>>> image.array.dtype, image.voxel_size
(dtype('uint16'), (40.0, 10.0, 10.0))
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from neuroseg.checks import check_resolution
from neuroseg.data.readers import DataError, natural_key
from neuroseg.io import atomic_path

__all__ = ["FORMATS", "Image", "read", "smallest_label_dtype", "write"]

PathLike = str | os.PathLike

#: File suffixes :func:`read` and :func:`write` know.
FORMATS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".h5", ".hdf5", ".npy")
_NM_PER = {"nm": 1.0, "µm": 1000.0, "um": 1000.0, "mm": 1e6, "m": 1e9, "pm": 1e-3}


@dataclass(frozen=True, eq=False)
class Image:
    """An array read from a file, its voxel size in nm (z first; None when the file has none)
    and where it came from."""

    array: np.ndarray
    voxel_size: tuple[float, ...] | None
    path: Path


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def smallest_label_dtype(labels: npt.ArrayLike) -> np.dtype:
    """The smallest unsigned integer type that holds every label (labels must be >= 0).

    >>> smallest_label_dtype(np.array([0, 255])), smallest_label_dtype(np.array([70000]))
    (dtype('uint8'), dtype('uint32'))
    """
    arr = np.asarray(labels)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"labels must be integers; got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels must be >= 0 to be written; the smallest is {arr.min()}")
    top = int(arr.max()) if arr.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if top <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise AssertionError("unreachable: uint64 holds every non-negative int64")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _tiff_voxel_size(tif) -> tuple[float, ...] | None:
    if tif.is_ome and tif.ome_metadata:
        root = ET.fromstring(tif.ome_metadata)
        pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
        if pixels is None:
            return None
        sizes = []
        for axis in ("Z", "Y", "X"):
            value = pixels.attrib.get(f"PhysicalSize{axis}")
            unit = pixels.attrib.get(f"PhysicalSize{axis}Unit", "µm")
            if value is not None:
                sizes.append(float(value) * _NM_PER.get(unit, math.nan))
        return tuple(sizes) if sizes and all(math.isfinite(s) for s in sizes) else None
    return None


def _read_tiff(path: Path) -> Image:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not len(tif.pages):
                raise ValueError("no image in it (truncated or not a TIFF)")
            array = tif.asarray()
            voxel = _tiff_voxel_size(tif)
    except Exception as err:  # noqa: BLE001 - tifffile raises many kinds
        raise DataError(f"{path}: not a readable TIFF file ({err})") from err
    if array.size == 0:
        raise DataError(f"{path}: not a readable TIFF file (no image in it)")
    if voxel is not None and len(voxel) != array.ndim:
        voxel = voxel[-array.ndim:] if len(voxel) > array.ndim else None
    return Image(array, voxel, path)


def _read_h5(path: Path, key: str | None) -> Image:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key is None:
                names: list[str] = []
                f.visititems(lambda name, obj: names.append(name)
                             if isinstance(obj, h5py.Dataset) else None)
                if len(names) != 1:
                    raise DataError(f"{path}: holds datasets {names}; say which with key=")
                key = names[0]
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataError(f"{path}: no dataset {key!r}")
            ds = f[key]
            array = ds[...]
            res = ds.attrs.get("resolution")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
    voxel = None if res is None else check_resolution(np.atleast_1d(res), n=array.ndim, name="the resolution attribute")
    return Image(array, voxel, path)


def _read_folder(path: Path) -> Image:
    files = sorted((p for p in path.iterdir() if _suffix(p) in (".tif", ".tiff", ".png")),
                   key=natural_key)
    if not files:
        raise DataError(f"{path}: a folder of images needs .tif or .png files; found none")
    planes = [read(f) for f in files]
    shapes = {p.array.shape for p in planes}
    if len(shapes) != 1:
        raise DataError(f"{path}: slices of different shapes {sorted(shapes)}")
    # single slices say nothing of the z spacing: the caller gives the voxel size
    return Image(np.stack([p.array for p in planes]), None, path)


def read(path: PathLike, *, key: str | None = None) -> Image:
    """Read an image or label volume, with its voxel size (nm) where the file records one.

    Raises :class:`~neuroseg.data.readers.DataError` naming the file for a missing path, an
    unknown format or a file that cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_folder(path)
    suffix = _suffix(path)
    if suffix in (".tif", ".tiff"):
        return _read_tiff(path)
    if suffix in (".png", ".jpg", ".jpeg"):
        import imageio.v3 as iio

        try:
            return Image(np.asarray(iio.imread(path)), None, path)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{path}: not a readable image ({err})") from err
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path, key)
    if suffix == ".npy":
        try:
            return Image(np.load(path, allow_pickle=False), None, path)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable .npy file ({err})") from err
    raise DataError(f"{path}: unknown format {suffix!r}; use one of {', '.join(FORMATS)} "
                    "or a folder of .tif/.png slices")


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def write(
    path: PathLike,
    array: npt.ArrayLike,
    *,
    voxel_size: Sequence[float] | None = None,
    labels: bool = False,
    key: str = "data",
) -> Path:
    """Write ``array`` to ``path`` (format by suffix), atomically; returns the path.

    ``voxel_size`` (nm, one per axis, z first) is stored where the format can (TIFF, HDF5);
    ``labels=True`` writes the smallest unsigned integer type that holds the labels. PNG holds
    2D images of 8 or 16 bits only. Nothing is left at ``path`` when writing fails.
    """
    path = Path(path)
    arr = np.asarray(array)
    voxel = check_resolution(voxel_size, n=arr.ndim, name="voxel_size")
    if labels:
        arr = arr.astype(smallest_label_dtype(arr), copy=False)
    suffix = _suffix(path)
    if suffix not in FORMATS or suffix in (".jpg", ".jpeg"):
        raise ValueError(f"{path}: cannot write {suffix!r}; use .tif, .png, .h5 or .npy")
    if suffix == ".png" and (arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16)):
        raise ValueError(f"{path}: PNG holds 2D images of uint8 or uint16; got {arr.ndim}D "
                         f"{arr.dtype} (write .tif instead)")
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            axes = "ZYX"[-arr.ndim:] if arr.ndim <= 3 else None
            metadata: dict = {"axes": axes} if axes else {}
            if voxel is not None and axes:
                for axis, size in zip(axes, voxel, strict=True):
                    metadata[f"PhysicalSize{axis}"] = size
                    metadata[f"PhysicalSize{axis}Unit"] = "nm"
            tifffile.imwrite(tmp, arr, ome=True, photometric="minisblack", metadata=metadata)
        elif suffix == ".png":
            import imageio.v3 as iio

            iio.imwrite(tmp, arr, extension=".png")
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as f:
                ds = f.create_dataset(key, data=arr, compression="gzip")
                if voxel is not None:
                    ds.attrs["resolution"] = np.asarray(voxel, np.float64)
        else:
            with open(tmp, "wb") as handle:
                np.save(handle, arr, allow_pickle=False)
    return path
