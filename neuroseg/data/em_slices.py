"""The 2D slices of an EM dataset's split part as samples, with their 2D instances.
"""

from __future__ import annotations

import numpy as np

from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.images import normalize
from neuroseg.data.labels import connected_components_per_slice
from neuroseg.data.readers import Sample, read_cremi
from neuroseg.data.resample import resample_image, resample_labels

FIB25 = "fib25_neuroproof_training_sample2"


EXTRA_EM = ("isbi2012_em_membranes", "sstem_drosophila_vnc_gerhard2013")


def _instances_from_interior(interior: np.ndarray) -> np.ndarray:
    """2D instances of a membrane stack: 4-connected pieces of the interior, per slice."""
    return connected_components_per_slice(interior.astype(np.uint8))


def _em_volume(dataset: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(raw, per-slice 2D instances with 0 = membrane, pixel size in nm) of an EM dataset."""
    root = require(dataset)
    if dataset in (FIB25, "fib_gala_example"):
        file = "sample2.h5" if dataset == FIB25 else "train.h5"
        vol = read_cremi(root / file, labels="neuron_ids")
        # gala records no resolution; its FIB-SEM is about 10 nm (see PROVENANCE.md)
        nm = float(vol.resolution[-1]) if vol.resolution else 10.0
        return vol.raw, vol.labels, nm
    if dataset == "isbi2012_em_membranes":
        vol = read_cremi(root / "train.h5", labels="membrane_mask")
        return vol.raw, _instances_from_interior(vol.labels > 0), float(vol.resolution[-1])
    if dataset == "sstem_drosophila_vnc_gerhard2013":
        vol = read_cremi(root / "stack1.h5", labels="merged")
        # merged: <= 128 membrane classes; glia, mitochondria, synapse, intracellular above
        return vol.raw, _instances_from_interior(vol.labels > 128), float(vol.resolution[-1])
    raise ValueError(f"no EM slice reader for dataset {dataset!r}")


def load_em_slices(
    dataset: str,
    part: str,
    *,
    pixel_nm: float = 10.0,
    max_slices: int | None = None,
    profile: str | None = None,
) -> list[Sample]:
    """The 2D slices of one split part of an EM dataset, resampled to ``pixel_nm``.

    Each sample's ``labels`` are the slice's 2D instances: connected pieces (4-connectivity)
    of the neuron IDs for FIB-25 and gala, of the non-membrane pixels for the ssTEM stacks
    (0 = membrane there). Images are normalised per slice (percentiles 1 and 99.8).
    ``max_slices`` keeps that many slices evenly spaced over the part (quick runs).
    """
    raw, labels, nm = _em_volume(dataset)
    split = splits.load_split(dataset, profile=profile)
    regions = split["parts"][part]
    if not regions:
        raise ValueError(f"{dataset}: split part {part!r} is empty")
    out = []
    for region in regions:
        sl = splits.region_slices(region, axes="zyx")
        z0 = sl[0].start or 0
        r_raw = raw[sl]
        r_lab = connected_components_per_slice(labels[sl])
        for dz in range(r_raw.shape[0]):
            image, lab = r_raw[dz], r_lab[dz]
            if abs(nm - pixel_nm) > 1e-6:
                image = resample_image(image, pixel_size=nm, target_pixel_size=pixel_nm)
                lab = resample_labels(lab, pixel_size=nm, target_pixel_size=pixel_nm, shape=image.shape)
            out.append(
                Sample(
                    id=f"{dataset}:z{z0 + dz}",
                    image=normalize(np.asarray(image, np.float32)),
                    labels=np.ascontiguousarray(lab),
                    pixel_size=pixel_nm / 1000.0,
                    meta={"dataset": dataset, "z": z0 + dz, "region": dict(region)},
                )
            )
    if max_slices is not None and len(out) > max_slices:
        keep = np.unique(np.linspace(0, len(out) - 1, max_slices).round().astype(int))
        out = [out[i] for i in keep]
    return out
