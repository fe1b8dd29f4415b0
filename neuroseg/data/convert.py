"""Converters from each public source's layout to the staged layout the readers expect.

Format changes only: nothing here invents or alters data.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from neuroseg.data.readers import (
    DataError,
    grey_or_rgb,
    list_axondeepseg,
    list_dsb,
    read_axondeepseg,
    read_dsb,
)
from neuroseg.data.summaries import CORR_DESCRIPTION, local_correlation, temporal_moments

PathLike = str | os.PathLike


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
    image = grey_or_rgb(_read_image(path), str(path))
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
        [_as_uint8(grey_or_rgb(tifffile.imread(p), str(p)), str(p)) for p in tifs],
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

    The merge is :func:`neuroseg.data.readers.read_dsb` (label k = k-th mask in sorted order, later
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

    Images and masks are read by :func:`neuroseg.data.readers.read_axondeepseg` (channel 0, masks
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


LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
