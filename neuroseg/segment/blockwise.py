"""Volumes larger than one machine: both routes block by block on Dask, over zarr.

:func:`segment_blockwise` cuts a (z, y, x) volume into blocks (default 64 x 512 x 512), runs
the 2D route (2D segments, then slice linking) or the 3D route (affinities, then
agglomeration) on every block with a halo, as tasks of a ``dask.distributed`` cluster (a
``LocalCluster`` sized to the machine by default, or any cluster given its scheduler
address), and writes the labels block by block into an OME-Zarr image. No worker holds more
than one block with its halo.

IDs are consistent across blocks: every block's labels live in a global ID space (see
:mod:`neuroseg.segment.block_tasks`); objects cut by a z face are joined by the slice linking
itself (a block links its slices to the ``max_gap`` slices after it, exactly as the whole
volume's linking does), objects cut by a y or x face (and by every face in the 3D route) by
their overlap in the halo. The joins of all blocks form one small table, resolved by
union-find (the learned linker: by the same mutex watershed as the whole volume's), and a
last pass writes every block's final IDs.

The run works in a folder beside the output (``OUT.partial``): the segments with global IDs
(``segments.zarr``), one record per finished block (``blocks/``) and the run's settings
(``run.json``). A run that is killed and started again with the same settings skips the
finished blocks; a task of a worker that dies is re-run by Dask (``retries``) and writes the
same bytes. The output appears at once, complete, when the run ends, and the folder is
removed.

With blocks cut only in z (``block=(n, Y, X)``), the 2D route's labels equal the whole
volume's (:func:`neuroseg.segment.volume_2d.segment_volume_2d`) exactly up to renumbering:
the network sees every slice alone (``predict_stack`` gives a slice the same output whatever
batch it is in), and the z halo is ``max_gap`` slices deep.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["BlockGrid", "BlockwiseResult", "max_rss_mb", "segment_blockwise"]

ROUTES = ("2d", "3d")


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of ``block`` shape over a volume of ``shape`` (the last ones may be smaller).

    >>> grid = BlockGrid((10, 8, 8), (4, 8, 8))
    >>> grid.grid, len(grid), grid.core((2, 0, 0))
    ((3, 1, 1), 3, (slice(8, 10, None), slice(0, 8, None), slice(0, 8, None)))
    """

    shape: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(-(-s // b) for s, b in zip(self.shape, self.block))  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(np.prod(self.grid))

    def indices(self) -> list[tuple[int, int, int]]:
        return [tuple(i) for i in product(*(range(g) for g in self.grid))]  # type: ignore[misc]

    def linear(self, idx: Sequence[int]) -> int:
        return int(np.ravel_multi_index(tuple(idx), self.grid))

    def core(self, idx: Sequence[int]) -> tuple[slice, slice, slice]:
        return tuple(slice(i * b, min((i + 1) * b, s))  # type: ignore[return-value]
                     for i, b, s in zip(idx, self.block, self.shape))

    def extended(self, idx: Sequence[int], before: Sequence[int], after: Sequence[int]):
        """The block grown by ``before``/``after`` voxels per axis, clipped to the volume."""
        return tuple(slice(max(0, c.start - b), min(s, c.stop + a)) for c, b, a, s in
                     zip(self.core(idx), before, after, self.shape))


@dataclass(frozen=True)
class BlockwiseResult:
    """What :func:`segment_blockwise` did: the output, its objects and its blocks."""

    path: Path
    n_objects: int
    n_blocks: int
    blocks_skipped: int
    seconds: float
    workers: int
    peak_mb_per_worker: float | None = None
    startup_seconds: float = 0.0


@dataclass(frozen=True)
class _Source:
    """A volume that every worker can read a region of (zarr or HDF5, by path)."""

    path: str
    key: str | None
    kind: str

    def read(self, region) -> np.ndarray:
        if self.kind == "h5":
            import h5py

            with h5py.File(self.path, "r") as f:
                return np.asarray(f[self.key][region])
        from neuroseg.data.files import open_zarr

        return np.asarray(open_zarr(self.path, key=self.key)[0][region])


def _open_source(raw, key: str | None, work: Path):
    """The source, its shape and its voxel size; an array (or a TIFF, .npy...) is first
    copied into the work folder as zarr so workers can read it."""
    from neuroseg.data import files

    if isinstance(raw, str | os.PathLike):
        path = Path(raw)
        suffix = path.suffix.lower()
        if suffix == ".zarr":
            array, voxel = files.open_zarr(path, key=key)
            return _Source(str(path), key, "zarr"), array.shape, voxel
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                names: list[str] = []
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                if key is None and len(names) == 1:
                    key = names[0]
                elif key is None and "volumes/raw" in names:  # the CREMI layout
                    key = "volumes/raw"
                if key is None or key not in f:
                    raise files.DataError(f"{path}: holds datasets {names}; say which with key= "
                                          "(CREMI files: volumes/raw)")
                shape, res = f[key].shape, f[key].attrs.get("resolution")
            voxel = None if res is None else tuple(float(r) for r in np.atleast_1d(res))
            return _Source(str(path), key, "h5"), shape, voxel
        image = files.read(path, key=key)
        arr, voxel = image.array, image.voxel_size
    else:
        arr, voxel = np.asarray(raw), None
    target = work / "raw.zarr"
    if not (target / "zarr.json").exists():
        z = files.create_zarr(work / "raw.tmp.zarr", arr.shape, arr.dtype)
        z[...] = arr
        os.replace(work / "raw.tmp.zarr", target)
    return _Source(str(target), None, "zarr"), arr.shape, voxel


# --------------------------------------------------------------------------------------------
# the tasks (run on the workers)
# --------------------------------------------------------------------------------------------


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _block_file(work: Path, idx) -> Path:
    return work / "blocks" / ("_".join(map(str, idx)) + ".npz")


def _run_block(plan: dict, idx: tuple[int, int, int], model, linker) -> tuple[int, int, int]:
    """Segment block ``idx``, write its labels and its record; skip it when recorded."""
    from neuroseg.io import atomic_path
    from neuroseg.segment import block_tasks

    work = Path(plan["work"])
    record = _block_file(work, idx)
    if record.exists():
        return idx
    _set_threads(plan["threads"])
    grid = BlockGrid(tuple(plan["shape"]), tuple(plan["block"]))
    src = _Source(**plan["source"])
    halo = plan["halo"]
    core = grid.core(idx)
    if plan["route"] == "2d":
        ext = grid.extended(idx, (0, halo[1], halo[2]), halo)
        raw = src.read(ext)
        n_yx = grid.grid[1] * grid.grid[2]
        yx = idx[1] * grid.grid[2] + idx[2]
        budget = (plan["block"][1] + 2 * halo[1]) * (plan["block"][2] + 2 * halo[2]) + 1
        bases = [((ext[0].start + z) * n_yx + yx) * budget for z in range(raw.shape[0])]
        out = block_tasks.segment_block_2d(
            raw, model=model, core=_relative(core, ext), bases=bases,
            resolution=plan["resolution"], method=plan["method"], threshold=plan["threshold"],
            linker=linker, max_gap=plan["max_gap"], batch_size=plan["batch_size"],
            device=plan["device"], postprocess=plan["postprocess"],
            percentiles=np.asarray(plan["percentiles"], np.float64)[ext[0]],
        )
    else:
        ext = grid.extended(idx, halo, halo)
        raw = src.read(ext)
        budget = int(np.prod([b + 2 * h for b, h in zip(plan["block"], halo)])) + 1
        out = block_tasks.segment_block_3d(
            raw, model=model, core=_relative(core, ext), base=grid.linear(idx) * budget,
            percentiles=tuple(plan["percentiles"]), method=plan["method"],
            threshold=plan["threshold"], min_size=plan["min_size"], device=plan["device"],
        )
    from neuroseg.data.files import open_zarr

    segments, _ = open_zarr(work / "segments.zarr", mode="r+")
    segments[core] = out["labels"]
    strips = _strips(grid, idx, ext, out["ext"], halo, plan["route"])
    record.parent.mkdir(exist_ok=True)
    with atomic_path(record) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, present=np.unique(out["labels"]),
            links_a=out.get("links_a", np.zeros(0, np.uint64)),
            links_b=out.get("links_b", np.zeros(0, np.uint64)),
            score=out.get("score", np.zeros(0)), linked=out.get("linked", np.zeros(0, bool)),
            mutex=out.get("mutex", np.zeros((0, 2), np.uint64)), **strips,
        )
    del out, raw, strips
    gc.collect()  # give the block's arrays back before the next block comes
    return idx


def _relative(core, ext) -> tuple[slice, ...]:
    return tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext))


def _strips(grid: BlockGrid, idx, ext, labels: np.ndarray, halo, route: str) -> dict:
    """The block's labels in its halo beyond each + face (the next block's first voxels)."""
    out = {}
    core = grid.core(idx)
    axes = (1, 2) if route == "2d" else (0, 1, 2)
    for axis in axes:
        if idx[axis] + 1 >= grid.grid[axis] or halo[axis] == 0:
            continue
        region = list(core)
        region[axis] = slice(core[axis].stop, min(core[axis].stop + halo[axis], grid.shape[axis]))
        out[f"strip{axis}"] = labels[_relative(region, ext)]
    return out


def _face_joins(plan: dict, idx) -> np.ndarray:
    from neuroseg.data.files import open_zarr
    from neuroseg.segment.block_tasks import face_joins

    work = Path(plan["work"])
    grid = BlockGrid(tuple(plan["shape"]), tuple(plan["block"]))
    segments, _ = open_zarr(work / "segments.zarr")
    found = [np.zeros((0, 2), np.uint64)]
    with np.load(_block_file(work, idx)) as rec:
        for axis in range(3):
            if f"strip{axis}" not in rec:
                continue
            mine = rec[f"strip{axis}"]
            core = list(grid.core(idx))
            core[axis] = slice(core[axis].stop, core[axis].stop + mine.shape[axis])
            found.append(face_joins(mine, segments[tuple(core)], threshold=plan["join_threshold"]))
    return np.concatenate(found)


def _relabel_block(plan: dict, idx, target: str) -> None:
    from neuroseg.data.files import open_zarr

    work = Path(plan["work"])
    grid = BlockGrid(tuple(plan["shape"]), tuple(plan["block"]))
    core = grid.core(idx)
    segments, _ = open_zarr(work / "segments.zarr")
    block = segments[core]
    ids = np.load(work / "ids.npy", mmap_mode="r")
    final = np.load(work / "final.npy", mmap_mode="r")
    values, inv = np.unique(block, return_inverse=True)
    pos = np.searchsorted(ids, values)
    lut = np.where(values == 0, 0, np.asarray(final[np.minimum(pos, max(len(ids) - 1, 0))]))
    out, _ = open_zarr(target, mode="r+")
    out[core] = lut[inv.reshape(block.shape)].astype(out.dtype)


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------


def _as_model(model, what: str):
    if isinstance(model, str | os.PathLike):
        if what == "linker":
            from neuroseg.linking.learned import load_linker

            return load_linker(model)
        from neuroseg.nets.shipped import load_model

        return load_model(model, device="cpu")
    return model


def _accelerated(model, linker, *, precision: str, channels_last: bool, batch_size: int):
    """The segmenter and the linker run at ``precision`` (a :class:`neuroseg.nets.speed.Speed`);
    unchanged at fp32 without channels-last."""
    from neuroseg.nets.speed import Speed, accelerate

    speed = Speed(precision=precision, channels_last=channels_last, batch_size=int(batch_size))
    if speed == Speed(batch_size=int(batch_size)):
        return model, linker
    if linker is not None:
        from neuroseg.linking.learned import accelerated

        linker = accelerated(linker, speed)
    return accelerate(model, speed), linker


def _plan(route, model, linker, *, shape, block, halo, resolution, method, threshold, min_size,
          max_gap, postprocess, source, work, percentiles, threads, batch_size, device,
          join_threshold) -> tuple[dict, object]:
    meta = getattr(model, "meta", None) or {}
    if route == "2d":
        from neuroseg.segment.affinities_2d import TARGET_2D

        if meta.get("target") not in ("boundaries", TARGET_2D) or model.config["ndim"] != 2:
            raise ValueError("the 2D route needs a 2D boundary or in-plane affinity model (e.g. the "
                             "shipped 'em_2d', or artifacts/<profile>/models/em_boundary_unet); this "
                             f"one predicts {meta.get('target')!r}")
        if method is None:
            method = "learned" if linker is not None else "overlap"
        if method == "learned":
            if linker is None:
                raise ValueError("method='learned' needs a linker")
            linker = linker.calibrated_for(resolution, segments="predicted")
            threshold = linker.threshold if threshold is None else threshold
        else:
            linker = None
        threshold = 0.25 if threshold is None else float(threshold)
        post = dict(meta.get("postprocess", {}))
        post.update(postprocess)
        halo = (int(max_gap), *halo[1:])
        min_size_v = 0
    else:
        from neuroseg.segment.volume_3d import model_resolution

        if meta.get("target") != "affinities" or model.config["ndim"] != 3:
            raise ValueError("the 3D route needs a 3D affinity model (e.g. "
                             f"artifacts/<profile>/models/affinity_unet_40nm); this one predicts "
                             f"{meta.get('target')!r}")
        model_res = model_resolution(meta)
        if model_res and resolution and np.any(np.abs(np.divide(resolution, model_res) - 1) > 0.05):
            raise ValueError(f"blockwise, the 3D route needs the volume at the model's voxel size "
                             f"{tuple(model_res)} nm; this one is {tuple(resolution)} nm "
                             "(resample it first, or use segment_volume_3d)")
        stored = {"method": "cc", "threshold": 0.5, "min_size": 0, **dict(meta.get("postprocess") or {})}
        method = method or stored["method"]
        threshold = float(stored["threshold"] if threshold is None else threshold)
        min_size_v = int(stored["min_size"] if min_size is None else min_size)
        post = {}
    plan = {
        "route": route, "shape": [int(s) for s in shape], "block": [int(b) for b in block],
        "halo": [int(h) for h in halo], "resolution": None if resolution is None else
        [float(r) for r in resolution], "method": method, "threshold": threshold,
        "min_size": min_size_v, "max_gap": int(max_gap), "postprocess": post,
        "source": source.__dict__, "work": str(work), "percentiles": percentiles,
        "threads": threads, "batch_size": int(batch_size), "device": device,
        "join_threshold": float(join_threshold),
    }
    return plan, linker


def _percentiles(source: _Source, shape, *, max_voxels: int = 8_000_000) -> list[float]:
    """The volume's 1 and 99.8 percentiles (as the 3D route normalises), from every k-th
    slice so that at most ``max_voxels`` are read (all of them for small volumes)."""
    per_slice = int(np.prod(shape[1:]))
    step = max(1, int(np.ceil(shape[0] * per_slice / max_voxels)))
    sample = np.concatenate([source.read((slice(z, z + 1),)).ravel().astype(np.float32)
                             for z in range(0, shape[0], step)])
    lo, hi = np.percentile(sample, [1.0, 99.8])
    return [float(lo), float(hi)]


def _slice_percentiles(source: _Source, shape, *, max_pixels: int = 1_000_000) -> list[list[float]]:
    """Each slice's 1 and 99.8 percentiles (as the 2D route normalises a slice), from every
    k-th pixel of slices larger than ``max_pixels``: a block is normalised as its whole slice."""
    from neuroseg.nets.scale import slice_percentiles

    step = max(1, int(np.ceil(np.sqrt(int(np.prod(shape[1:])) / max_pixels))))
    out = []
    for z in range(shape[0]):
        part = source.read((slice(z, z + 1), slice(None, None, step), slice(None, None, step)))
        out += slice_percentiles(np.asarray(part)).tolist()
    return out


def _client(scheduler: str | None, workers: int | None, threads: int, memory_limit):
    from distributed import Client, LocalCluster

    if scheduler is not None:
        return Client(scheduler), None
    n = workers or max(1, (os.cpu_count() or 1) // threads)
    # few malloc arenas: a worker's memory then stays near one block's working set
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           memory_limit=memory_limit, dashboard_address=None,
                           env={"MALLOC_ARENA_MAX": "2"})
    return Client(cluster), cluster


def _run_all(client, fn, plan: dict, items, *extra, progress: bool, desc: str, retries: int) -> list:
    """``fn(plan, item, *extra)`` for every item, on the cluster (or here, inline)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="block", disable=not progress)
    if client is None:
        out = []
        for item in items:
            out.append(fn(plan, item, *extra))
            bar.update(1)
        bar.close()
        return out
    from distributed import as_completed

    futures = [client.submit(fn, plan, item, *extra, pure=False, retries=retries)
               for item in items]
    for _ in as_completed(futures):
        bar.update(1)
    bar.close()
    return client.gather(futures)


def segment_blockwise(
    raw: str | os.PathLike | npt.ArrayLike,
    out: str | os.PathLike,
    *,
    route: str,
    model,
    linker=None,
    resolution: Sequence[float] | None = None,
    block: Sequence[int] = (64, 512, 512),
    halo: Sequence[int] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    min_size: int | None = None,
    max_gap: int = 1,
    key: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    memory_limit: str | None = "auto",
    batch_size: int = 8,
    device: str | None = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    join_threshold: float = 0.5,
    retries: int = 3,
    progress: bool = True,
    **postprocess,
) -> BlockwiseResult:
    """Segment a volume block by block on a Dask cluster; write the labels to ``out``.

    Parameters
    ----------
    raw : path or array_like, shape (z, y, x)
        A zarr / OME-Zarr store or an HDF5 file (``key``; a CREMI file's ``volumes/raw`` by
        default), read block by block by the workers; any other file of
        :func:`neuroseg.data.files.read`, or an array, is first copied into the run's folder
        as zarr.
    out : path
        ``.zarr`` (OME-Zarr, written block by block, the voxel size in its metadata) or any
        format of :func:`neuroseg.data.files.write` (assembled in memory: small volumes).
        Labels are written as the smallest unsigned type that holds them.
    route : {"2d", "3d"}
    model : UNet or path
        A 2D boundary model (2d) or a 3D affinity model (3d), or its folder.
    linker : AffinityLinker or path, optional
        The learned linker (2D route): ``method`` then defaults to ``"learned"``.
    resolution : sequence of 3 float, optional
        (z, y, x) in nm; default the file's own. The 3D route needs the model's voxel size.
    block : 3 ints
        Block shape (z, y, x); ``(n, Y, X)`` with the volume's whole Y and X cuts only in z.
    halo : 3 ints, optional
        Voxels read around a block. The 2D route always reads ``max_gap`` slices after a
        block (its z halo; the given z value is ignored) and ``halo[1:]`` (default 32) beyond
        y and x faces; the 3D route reads ``halo`` on every side (default half the model's
        tile).
    method, threshold, min_size, max_gap, **postprocess
        As :func:`neuroseg.segment.volume_2d.segment_volume_2d` (2d) or
        :func:`neuroseg.segment.volume_3d.segment_volume_3d` (3d).
    scheduler : str, optional
        A Dask scheduler address (``tcp://host:8786``): the run uses that cluster as it is.
        None: a ``LocalCluster`` of ``workers`` processes (default: the machine's cores /
        ``threads``); ``"inline"``: no Dask, every block in this process in turn.
    threads : int
        Torch threads per task (each worker runs one task at a time).
    precision : {"fp32", "bf16", "fp16"}
        The networks' (segmenter's and linker's) arithmetic, as
        :class:`neuroseg.nets.speed.Speed`: ``"bf16"`` with ``channels_last=True`` is several
        times faster on CPUs with bf16 units and on GPUs, with validation scores unchanged
        (``reports/metrics/45_front_2d_vs_3d_cpu_precision.csv``). Blocks cut in z still
        equal the whole volume run at the same precision.
    channels_last : bool
        Channels-last memory layout for the networks (faster with ``"bf16"`` on CPU).
    join_threshold : float
        IoU in the halo from which two labels across a face are one object.
    retries : int
        How often Dask re-runs a task whose worker died.

    Returns
    -------
    BlockwiseResult

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from neuroseg.nets.unet import build_unet
    >>> net = build_unet({"ndim": 2, "in_channels": 1, "out_channels": 1, "depth": 2,
    ...                   "base_features": 4}, seed=0).eval()
    >>> net.meta = {"target": "boundaries"}
    >>> raw = np.random.default_rng(0).random((6, 32, 32)).astype(np.float32)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "labels.zarr"
    >>> result = segment_blockwise(raw, out, route="2d", model=net, resolution=(40, 10, 10),
    ...                            block=(2, 32, 32), scheduler="inline", progress=False)
    >>> result.n_blocks, out.exists(), out.with_name("labels.zarr.partial").exists()
    (3, True, False)
    """
    from neuroseg.checks import check_resolution
    from neuroseg.data import files

    if route not in ROUTES:
        raise ValueError(f"route must be '2d' or '3d'; got {route!r}")
    from neuroseg.nets.speed import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}; got {precision!r}")
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in files.FORMATS:
        raise ValueError(f"{out}: unknown output format; use .zarr, .tif, .h5 or .npy")
    block = tuple(int(b) for b in block)
    if len(block) != 3 or min(block) < 1:
        raise ValueError(f"block must be three positive ints (z, y, x); got {block}")
    work = out.with_name(out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    model = _as_model(model, "model")
    linker = _as_model(linker, "linker") if linker is not None else None
    source, shape, voxel = _open_source(raw, key, work)
    if len(shape) != 3:
        raise ValueError(f"the volume must be 3D (z, y, x); got shape {tuple(shape)}")
    resolution = check_resolution(resolution if resolution is not None else voxel)
    if halo is None:
        tile = (getattr(model, "meta", None) or {}).get("tile") or (8, 32, 32)
        halo = (0, 32, 32) if route == "2d" else tuple(int(t) // 2 for t in tile)
    halo = tuple(int(h) if s < g else 0 for h, s, g in zip(halo, block, shape))
    # the 3D route normalises by the volume's percentiles, the 2D route each slice by its own
    percentiles = _percentiles(source, shape) if route == "3d" else _slice_percentiles(source, shape)
    plan, linker = _plan(route, model, linker, shape=shape, block=block, halo=halo,
                         resolution=resolution, method=method, threshold=threshold,
                         min_size=min_size, max_gap=max_gap, postprocess=postprocess,
                         source=source, work=work, percentiles=percentiles,
                         threads=threads if scheduler != "inline" else None,
                         batch_size=batch_size, device=device, join_threshold=join_threshold)
    plan["precision"], plan["channels_last"] = precision, bool(channels_last)
    model, linker = _accelerated(model, linker, precision=precision,
                                 channels_last=bool(channels_last), batch_size=batch_size)
    _check_resume(work, plan)
    grid = BlockGrid(tuple(shape), block)
    if not (work / "segments.zarr" / "zarr.json").exists():
        files.create_zarr(work / "segments.zarr", shape, np.uint64, chunks=block)
    indices = grid.indices()
    skipped = sum(_block_file(work, i).exists() for i in indices)
    t_cluster = time.perf_counter()
    client, cluster = (None, None) if scheduler == "inline" else _client(
        scheduler, workers, threads, memory_limit)
    startup = time.perf_counter() - t_cluster
    try:
        model_f, linker_f, n_workers = model, linker, 1
        if client is not None:
            n_workers = len(client.scheduler_info().get("workers", {}))
            model_f = client.scatter(model, broadcast=True)
            linker_f = client.scatter(linker, broadcast=True) if linker is not None else None
        todo = [i for i in indices if not _block_file(work, i).exists()]
        _run_all(client, _run_block, plan, todo, model_f, linker_f, progress=progress,
                 desc="blocks", retries=retries)
        joins = _run_all(client, _face_joins, plan, indices, progress=False, desc="faces",
                         retries=retries)
        ids, final = _resolve_all(work, indices, joins)
        np.save(work / "ids.npy", ids)
        np.save(work / "final.npy", final)
        n_objects = int(final.max()) if final.size else 0
        dtype = files.smallest_label_dtype(np.array([n_objects]))
        if out.suffix.lower() == ".zarr":
            from neuroseg.io import atomic_folder

            with atomic_folder(out, keep_existing=False) as tmp:
                files.create_zarr(tmp, shape, dtype, chunks=block, voxel_size=resolution,
                                  labels=True, extra={"route": route, "block": list(block)})
                _run_all(client, _relabel_block, plan, indices, str(tmp), progress=progress,
                         desc="relabel", retries=retries)
        else:
            files.create_zarr(work / "final.zarr", shape, dtype, chunks=block)
            _run_all(client, _relabel_block, plan, indices, str(work / "final.zarr"),
                     progress=progress, desc="relabel", retries=retries)
            files.write(out, files.open_zarr(work / "final.zarr")[0][...], voxel_size=resolution,
                        labels=True)
        peak = _peak_mb(client)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    shutil.rmtree(work, ignore_errors=True)
    if n_objects == 0:
        warnings.warn("no object found in the volume: check the model, resolution= and the "
                      "image's contrast", UserWarning, stacklevel=2)
    return BlockwiseResult(out, n_objects, len(indices), skipped, time.perf_counter() - start,
                           n_workers, peak, startup)


def max_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux: ``VmHWM``, which a process started
    by another does not inherit, unlike ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb(client) -> float | None:
    """The largest peak resident memory of the workers' processes (MB), or None inline."""
    if client is None:
        return None
    try:
        return float(max(client.run(max_rss_mb).values()))
    except Exception:  # noqa: BLE001 - a remote cluster may refuse client.run
        return None


def _check_resume(work: Path, plan: dict) -> None:
    saved = work / "run.json"
    settings = {k: v for k, v in plan.items() if k not in ("threads",)}
    text = json.dumps(settings, sort_keys=True, default=str)
    if saved.exists():
        if saved.read_text() != text:
            raise ValueError(f"{work} holds an unfinished run with other settings: run it again "
                             "with the same ones, or delete that folder")
        return
    saved.write_text(text)


def _resolve_all(work: Path, indices, joins) -> tuple[np.ndarray, np.ndarray]:
    from neuroseg.segment.block_tasks import resolve

    present, la, lb, score, linked, mutex = [], [], [], [], [], []
    for idx in indices:
        with np.load(_block_file(work, idx)) as rec:
            present.append(rec["present"])
            la.append(rec["links_a"])
            lb.append(rec["links_b"])
            score.append(rec["score"])
            linked.append(rec["linked"])
            mutex.append(rec["mutex"])
    la, lb = np.concatenate(la), np.concatenate(lb)
    score, linked = np.concatenate(score), np.concatenate(linked)
    mutex = np.concatenate(mutex)
    links = np.stack([la[linked], lb[linked]], axis=1)
    face = np.concatenate(joins) if joins else np.zeros((0, 2), np.uint64)
    if len(mutex):
        return resolve(np.concatenate(present), face, links=links, scores=score[linked],
                       mutex=mutex)
    return resolve(np.concatenate(present), np.concatenate([face, links]))
