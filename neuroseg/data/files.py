"""Images and labels in and out of files, with their voxel size where the format holds one.

:func:`read` opens TIFF (a single image, a stack, OME-TIFF), PNG/JPEG, HDF5 (with a dataset
``key``), NumPy ``.npy``, zarr (``.zarr``: an OME-Zarr image or a plain zarr array, ``key``
naming an array inside a group) and a folder of TIFF or PNG slices (in natural order: ``z2``
before ``z10``); :func:`write` writes TIFF (as OME-TIFF, with the voxel size), PNG, HDF5 (the
voxel size in the dataset's ``resolution`` attribute, as the CREMI files), ``.npy`` and zarr
v3 as OME-Zarr 0.5 (one scale, the voxel size in its ``scale`` transformation, labels marked
``image-label``, so napari and neuroglancer open it), atomically (TIFF drops axes of length 1
on reading, as ``tifffile`` does). :func:`create_zarr` and :func:`open_zarr` give the zarr
array itself, for writing and reading block by block.
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

__all__ = ["FORMATS", "Image", "create_zarr", "open_zarr", "read", "smallest_label_dtype",
           "write"]

PathLike = str | os.PathLike

#: File suffixes :func:`read` and :func:`write` know.
FORMATS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".h5", ".hdf5", ".npy", ".zarr")
#: The array of an OME-Zarr image written here (its only scale).
ZARR_ARRAY = "0"
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
    suffix = _suffix(path)
    if suffix == ".zarr":
        array, voxel = open_zarr(path, key=key)
        return Image(array[...], voxel, path)
    if path.is_dir():
        return _read_folder(path)
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

    ``voxel_size`` (nm, one per axis, z first) is stored where the format can (TIFF, HDF5,
    zarr);
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
        raise ValueError(f"{path}: cannot write {suffix!r}; use .tif, .png, .h5, .npy or .zarr")
    if suffix == ".png" and (arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16)):
        raise ValueError(f"{path}: PNG holds 2D images of uint8 or uint16; got {arr.ndim}D "
                         f"{arr.dtype} (write .tif instead)")
    if suffix == ".zarr":
        from neuroseg.io import atomic_folder

        with atomic_folder(path, keep_existing=False) as tmp:
            z = create_zarr(tmp, arr.shape, arr.dtype, voxel_size=voxel, labels=labels)
            z[...] = arr
        return path
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


# --------------------------------------------------------------------------------------------
# zarr (OME-Zarr 0.5 on zarr v3), block by block
# --------------------------------------------------------------------------------------------


def _ome_attrs(ndim: int, voxel: Sequence[float] | None, labels: bool) -> dict:
    names = "tczyx"[-ndim:] if ndim <= 5 else None
    if names is None:
        return {}
    axes = [{"name": n, "type": "space", "unit": "nanometer"} if n in "zyx"
            else {"name": n, "type": "time" if n == "t" else "channel"} for n in names]
    scale = list(voxel) if voxel is not None else [1.0] * ndim
    ome: dict = {"version": "0.5", "multiscales": [{
        "name": "labels" if labels else "image", "axes": axes,
        "datasets": [{"path": ZARR_ARRAY, "coordinateTransformations": [
            {"type": "scale", "scale": [float(v) for v in scale]}]}],
    }]}
    if labels:
        ome["image-label"] = {"version": "0.5"}
    return {"ome": ome}


def create_zarr(
    path: PathLike,
    shape: Sequence[int],
    dtype: npt.DTypeLike,
    *,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    labels: bool = False,
    extra: dict | None = None,
):
    """An empty OME-Zarr image (zarr v3) at ``path``, for writing block by block.

    The image is the group's array ``"0"`` (fill value 0, zstd-compressed, ``chunks`` default
    at most 64 x 256 x 256); the group's ``ome`` attributes give the axes in nm and the voxel
    size as the scale, and ``image-label`` when ``labels``. ``extra`` goes into the group's
    ``neuroseg`` attribute. Returns the :class:`zarr.Array`.

    >>> import tempfile, pathlib
    >>> z = create_zarr(pathlib.Path(tempfile.mkdtemp()) / "a.zarr", (4, 8, 8), np.uint8,
    ...                 voxel_size=(40, 10, 10), labels=True)
    >>> z.shape, z.dtype, open_zarr(z.store.root)[1]
    ((4, 8, 8), dtype('uint8'), (40.0, 10.0, 10.0))
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    voxel = check_resolution(voxel_size, n=len(shape), name="voxel_size")
    if chunks is None:
        chunks = tuple(min(s, c) for s, c in zip(shape, (64, 256, 256)[-len(shape):]))
        chunks = (1,) * (len(shape) - len(chunks)) + chunks
    chunks = tuple(max(1, int(c)) for c in chunks)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    attrs = _ome_attrs(len(shape), voxel, labels)
    if extra:
        attrs["neuroseg"] = extra
    group.attrs.update(attrs)
    return group.create_array(ZARR_ARRAY, shape=shape, chunks=chunks, dtype=np.dtype(dtype),
                              fill_value=0)


def _zarr_voxel_size(attrs: dict, key: str, ndim: int) -> tuple[float, ...] | None:
    ome = attrs.get("ome", attrs)  # 0.5 nests under "ome"; 0.4 has multiscales at the top
    for ms in ome.get("multiscales", []) or []:
        for ds in ms.get("datasets", []):
            if ds.get("path") != key:
                continue
            for t in ds.get("coordinateTransformations", []):
                if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
                    units = [a.get("unit", "nanometer") if isinstance(a, dict) else "nanometer"
                             for a in ms.get("axes", [])] or ["nanometer"] * ndim
                    per = {"nanometer": 1.0, "micrometer": 1000.0, "millimeter": 1e6,
                           "meter": 1e9, "picometer": 1e-3, "angstrom": 0.1}
                    sizes = [float(v) * per.get(u, math.nan) for v, u in zip(t["scale"], units)]
                    return tuple(sizes) if all(math.isfinite(v) and v > 0 for v in sizes) else None
    return None


def open_zarr(path: PathLike, *, key: str | None = None, mode: str = "r"):
    """The zarr array in ``path`` (lazy, nothing read) and its voxel size in nm (or None).

    ``path`` is an OME-Zarr image (its first scale is taken unless ``key`` names another
    array), a zarr group holding one array, or a zarr array. The voxel size comes from the
    OME scale, else from a ``resolution`` attribute (as in HDF5 files here). ``mode="r+"``
    opens it for writing.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        node = zarr.open(str(path), mode=mode)
    except Exception as err:  # noqa: BLE001 - zarr raises many kinds
        raise DataError(f"{path}: not a readable zarr store ({err})") from err
    attrs: dict = {}
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        if key is None:
            ome = attrs.get("ome", attrs)
            datasets = [d["path"] for ms in ome.get("multiscales", []) or []
                        for d in ms.get("datasets", [])]
            names = datasets[:1] or [name for name, _ in node.arrays()]
            if len(names) != 1:
                raise DataError(f"{path}: holds arrays {sorted(names)}; say which with key=")
            key = names[0]
        try:
            array = node[key]
        except KeyError:
            raise DataError(f"{path}: no array {key!r}") from None
        if not isinstance(array, zarr.Array):
            raise DataError(f"{path}: {key!r} is a group, not an array")
    else:
        array, key = node, ""
    voxel = _zarr_voxel_size(attrs, key, array.ndim)
    if voxel is None and array.attrs.get("resolution") is not None:
        voxel = check_resolution(np.atleast_1d(array.attrs["resolution"]), n=array.ndim,
                                 name="the resolution attribute")
    return array, voxel
