"""The EM volumes of the linking protocol (FIB-25 parts and gala) with dense neuron IDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroseg.data import splits
from neuroseg.data.catalogue import require
from neuroseg.data.em_slices import FIB25
from neuroseg.data.readers import read_cremi

GALA = "fib_gala_example"


@dataclass(frozen=True, eq=False)
class EMVolume:
    """A (part of an) EM volume with dense neuron IDs: ``raw``, ``gt`` (z, y, x), voxel size."""

    name: str
    raw: np.ndarray
    gt: np.ndarray
    resolution: tuple[float, float, float]
    region: dict

    def subsampled(self, z_nm: float, *, offset: int = 0) -> EMVolume:
        """Every k-th slice (k = z_nm / native z spacing), starting at ``offset``."""
        step = int(round(z_nm / self.resolution[0]))
        if step < 1 or abs(step * self.resolution[0] - z_nm) > 1e-6:
            raise ValueError(f"{self.name}: {z_nm} nm is not a multiple of {self.resolution[0]} nm")
        return EMVolume(
            self.name,
            self.raw[offset::step],
            self.gt[offset::step],
            (float(z_nm), *self.resolution[1:]),
            {**self.region, "z_step": step, "z_offset": offset},
        )


def _crop(vol: np.ndarray, max_slices: int | None, max_yx: int | None) -> np.ndarray:
    if max_slices is not None:
        vol = vol[:max_slices]
    if max_yx is not None:
        vol = vol[:, :max_yx, :max_yx]
    return np.ascontiguousarray(vol)


def load_volumes(
    *, max_slices: int | None = None, max_yx: int | None = None, profile: str | None = None
) -> dict[str, EMVolume]:
    """The volumes of the protocol: ``train``, ``val`` (FIB-25 parts) and the test volumes
    ``fib25_test`` and ``gala``, at their native spacing (10 nm; gala's is undocumented and
    taken as 10 nm like the FIB-SEM it comes from). ``max_slices`` and ``max_yx`` crop every
    volume (quick runs)."""
    out: dict[str, EMVolume] = {}
    fib = read_cremi(require(FIB25) / "sample2.h5", labels="neuron_ids")
    res = tuple(float(r) for r in (fib.resolution or (10.0, 10.0, 10.0)))
    split = splits.load_split(FIB25, profile=profile)
    for part, name in (("train", "train"), ("val", "val"), ("test", "fib25_test")):
        (region,) = split["parts"][part]
        sl = splits.region_slices(region, axes="zyx")
        out[name] = EMVolume(
            name if part == "test" else f"fib25_{part}",
            _crop(fib.raw[sl], max_slices, max_yx),
            _crop(fib.labels[sl], max_slices, max_yx),
            res,
            {"dataset": FIB25, "part": part, **dict(region)},
        )
    gala = read_cremi(require(GALA) / "train.h5", labels="neuron_ids")
    out["gala"] = EMVolume(
        "gala",
        _crop(gala.raw, max_slices, max_yx),
        _crop(gala.labels, max_slices, max_yx),
        (10.0, 10.0, 10.0),
        {"dataset": GALA, "part": "test"},
    )
    return out


def fib25_region(region: dict, *, name: str = "fib25_val", max_slices: int | None = None,
                 max_yx: int | None = None) -> EMVolume:
    """One region of FIB-25 (a split part's ``region``, as ``load_split`` gives it, e.g. the
    ``val`` part recorded beside a shipped model), cropped as :func:`load_volumes` crops."""
    fib = read_cremi(require(FIB25) / "sample2.h5", labels="neuron_ids")
    res = tuple(float(r) for r in (fib.resolution or (10.0, 10.0, 10.0)))
    sl = splits.region_slices(region, axes="zyx")
    return EMVolume(name, _crop(fib.raw[sl], max_slices, max_yx),
                    _crop(fib.labels[sl], max_slices, max_yx), res,
                    {"dataset": FIB25, **dict(region)})
