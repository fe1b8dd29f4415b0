"""The ``neuroseg`` command: segment and link a researcher's own files.

::

    neuroseg segment2d nuclei.png out/ --model nucleus
    neuroseg link masks/ labels3d.tif --resolution 40,10,10
    neuroseg segment-volume em.h5 labels3d.tif --model FOLDER --route 3d --resolution 40,10,10
    neuroseg segment-volume em.zarr labels.zarr --model FOLDER --route 2d --block 64,512,512
    neuroseg axons sem.png classes.tif --model FOLDER --pixel-size 0.13
    neuroseg models

Inputs are TIFF, PNG, HDF5 (``--key``), ``.npy``, zarr / OME-Zarr or a folder of slices
(:mod:`neuroseg.data.files`); outputs are written atomically, labels as the smallest unsigned
type with the voxel size. A bad path, format or voxel size ends with a message and exit
status 1, and nothing half-written.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from neuroseg import paths

__all__ = ["main"]


def _resolution(text: str | None) -> tuple[float, float, float] | None:
    from neuroseg.checks import check_resolution

    if text is None:
        return None
    try:
        return check_resolution(text.split(","))  # type: ignore[return-value]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give three positive numbers in nm, e.g. 40,10,10") from None


def _fail_clearly(fn):
    """Known errors of bad input become a one-line message and exit status 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from neuroseg.data.readers import DataError
        from neuroseg.nets.unet import ModelError

        try:
            return fn(*args, **kwargs)
        except (DataError, ModelError, FileNotFoundError, ValueError, TypeError) as err:
            raise click.ClickException(str(err)) from err

    return wrapper


def _model(name_or_folder: str, device: str | None):
    from neuroseg.nets.shipped import load_model

    return load_model(name_or_folder, device=device)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Neuron segmentation in microscopy: segment images and volumes, link 2D masks in 3D."""


@main.command("segment2d")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--model", "model_folder", required=True, help="a shipped model's name (`neuroseg models`) or a model folder")
@click.option("--invert", is_flag=True, help="dark objects on a bright background")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: the best there is)")
@_fail_clearly
def segment2d(inputs, out, model_folder, invert, device):
    """Segment 2D images (files or folders of them) into instance labels; OUT is a folder."""
    from tqdm.auto import tqdm

    from neuroseg.data import files
    from neuroseg.segment.image_2d import segment_2d

    images = []
    for item in inputs:
        if item.is_dir():
            images += sorted(p for p in item.iterdir() if p.suffix.lower() in files.FORMATS)
        elif not item.exists():
            raise FileNotFoundError(f"{item}: no such file or folder")
        else:
            images.append(item)
    if not images:
        raise FileNotFoundError(f"no images among {', '.join(map(str, inputs))}")
    unknown = [str(p) for p in images if p.suffix.lower() not in files.FORMATS]
    if unknown:
        raise ValueError(f"unknown format of {', '.join(unknown)}; use one of "
                         f"{', '.join(files.FORMATS)}")
    model = _model(model_folder, device)
    for path in tqdm(images, desc="images", unit="image", disable=len(images) < 2):
        labels = segment_2d(model, files.read(path).array, invert=invert, device=device)
        out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        target = files.write(out / f"{path.stem}_labels.tif", labels, labels=True)
        click.echo(f"{path} -> {target} ({int(labels.max())} objects)")


@main.command("link")
@click.argument("masks", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--resolution", required=True, help="z,y,x voxel size in nm, e.g. 40,10,10")
@click.option("--raw", type=click.Path(path_type=Path), help="the image (the learned linker reads it)")
@click.option("--method", type=click.Choice(["learned", "overlap", "hungarian", "graph", "multicut"]),
              default=None, help="default: learned with --linker, else overlap (Cellpose's rule)")
@click.option("--linker", "linker_folder", help="a trained linker folder")
@click.option("--max-gap", default=1, show_default=True, help="largest slice distance of a link")
@click.option("--key", default=None, help="dataset of an HDF5 input")
@_fail_clearly
def link_cmd(masks, out, resolution, raw, method, linker_folder, max_gap, key):
    """Join another tool's 2D masks (a stack, or a folder of slices) into 3D objects."""
    from neuroseg.data import files
    from neuroseg.linking.dropin import link

    res = _resolution(resolution)
    stack = files.read(masks, key=key).array
    image = files.read(raw).array if raw is not None else None
    linker = None
    if linker_folder:
        from neuroseg.linking.learned import load_linker

        linker = load_linker(linker_folder)
    labels = link(stack, image, resolution=res, method=method, linker=linker, max_gap=max_gap)
    files.write(out, labels, voxel_size=res, labels=True)
    click.echo(f"{masks} -> {out} ({int(labels.max())} objects)")


def _block(text: str) -> tuple[int, int, int]:
    try:
        block = tuple(int(v) for v in text.split(","))
    except ValueError:
        block = ()
    if len(block) != 3 or min(block) < 1:
        raise click.BadParameter(f"{text!r}: give three positive ints z,y,x, e.g. 64,512,512")
    return block  # type: ignore[return-value]


@main.command("segment-volume")
@click.argument("raw", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--model", "model_folder", required=True, help="EM 2D (2d) or affinity (3d) model: a shipped name or a folder")
@click.option("--route", type=click.Choice(["2d", "3d"]), required=True)
@click.option("--resolution", default=None, help="z,y,x in nm (default: the file's own)")
@click.option("--linker", "linker_folder", help="the learned linker (2d route)")
@click.option("--key", default=None, help="dataset of an HDF5 input (CREMI: volumes/raw) or array of a zarr one")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: the best there is)")
@click.option("--block", default=None,
              help="z,y,x: segment block by block on Dask (e.g. 64,512,512); zarr in and out")
@click.option("--scheduler", default=None,
              help="address of a running Dask scheduler (default: a local cluster); implies --block")
@click.option("--workers", type=int, default=None, help="local cluster's worker processes")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="the networks' arithmetic; bf16 (with channels-last) is several times faster "
                   "on CPUs with bf16 units and on GPUs, validation scores unchanged")
@_fail_clearly
def segment_volume(raw, out, model_folder, route, resolution, linker_folder, key, device, block,
                   scheduler, workers, precision):
    """Segment a 3D EM volume into neurons, the 2D way (slices, then linking) or the 3D way.

    With --block (or --scheduler) the volume is read, segmented and written block by block
    on a Dask cluster: a volume larger than memory, e.g. OME-Zarr in and out. A killed run
    started again skips the blocks it finished.
    """
    from neuroseg.data import files

    if not raw.exists():
        raise FileNotFoundError(f"{raw}: no such file or folder")
    res = _resolution(resolution)
    if block is not None or scheduler is not None:
        from neuroseg.segment.blockwise import segment_blockwise

        result = segment_blockwise(
            raw, out, route=route, model=model_folder, linker=linker_folder, resolution=res,
            block=_block(block or "64,512,512"), key=key, scheduler=scheduler,
            workers=workers, device=device or "cpu", progress=True,
            precision=precision, channels_last=precision != "fp32",
        )
        click.echo(f"{raw} -> {out} ({result.n_objects} objects, {result.n_blocks} blocks, "
                   f"{result.blocks_skipped} already done)")
        return
    image = files.read(raw, key=key)
    res = res or image.voxel_size
    if res is None:
        raise ValueError(f"{raw} records no voxel size: pass --resolution z,y,x in nm")
    model = _model(model_folder, device)
    speed = None
    if precision != "fp32":
        from neuroseg.nets.speed import Speed, accelerate

        speed = Speed(precision=precision, channels_last=True)
        model = accelerate(model, speed)
    if route == "2d":
        from neuroseg.segment.volume_2d import segment_volume_2d

        linker = None
        if linker_folder:
            from neuroseg.linking.learned import accelerated, load_linker

            linker = load_linker(linker_folder)
            linker = accelerated(linker, speed) if speed is not None else linker
        labels = segment_volume_2d(model, image.array, linker=linker, resolution=res,
                                   progress=True, device=device)
    else:
        from neuroseg.segment.volume_3d import segment_volume_3d

        labels = segment_volume_3d(model, image.array, resolution=res, progress=True, device=device)
    files.write(out, labels, voxel_size=res, labels=True)
    click.echo(f"{raw} -> {out} ({int(labels.max())} objects)")


@main.command("axons")
@click.argument("image_path", metavar="IMAGE", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--model", "model_folder", required=True, help="an axon/myelin model: a shipped name or a folder")
@click.option("--pixel-size", type=float, required=True, help="the image's pixel size in µm")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: the best there is)")
@_fail_clearly
def axons(image_path, out, model_folder, pixel_size, device):
    """Axon and myelin classes of an SEM/TEM image, and the morphometrics table beside them."""
    from neuroseg.data import files
    from neuroseg.io import write_csv
    from neuroseg.measure import morphometrics
    from neuroseg.segment.axon_myelin import segment

    model = _model(model_folder, device)
    classes = segment(model, files.read(image_path).array, pixel_size=pixel_size, device=device)
    axon, myelin = morphometrics.masks_from_classes(classes)
    table = morphometrics.axon_morphometrics(axon, myelin, pixel_size=pixel_size)
    nm = pixel_size * 1000.0
    files.write(out, classes, voxel_size=(nm, nm), labels=True)
    csv = out.with_name(f"{out.stem}_morphometrics.csv")
    write_csv(table, csv)
    click.echo(f"{image_path} -> {out}, {csv} ({len(table)} axons)")


@main.command("models")
@click.option("--profile", type=click.Choice(list(paths.PROFILES)), default=None,
              help="also list the model folders `make reproduce` trained for this profile")
def models(profile):
    """The shipped models (name, task, pixel size, validation score) and, with --profile, the
    trained model folders of a profile."""
    from neuroseg.nets.shipped import list_models

    shipped = list_models()
    if len(shipped):
        click.echo("shipped (use the name with --model):")
        width = max(len(n) for n in shipped["name"])
        for r in shipped.itertuples():
            click.echo(f"  {r.name:<{width}}  {r.task:<28} {r.pixel_size or '':<14} "
                       f"{r.val_metric} {r.val_value:.3f}")
    else:
        click.echo("no shipped models in this installation")
    if profile is None:
        return
    root = paths.models_dir(profile)
    rows = []
    for config in sorted(root.rglob("config.json")) if root.exists() else []:
        meta = json.loads(config.read_text()).get("meta", {})
        size = meta.get("pixel_size") or {}
        rows.append((str(config.parent.relative_to(root)), str(meta.get("target", "?")),
                     " x ".join(f"{v:g}" for v in size.get("size", [])) + f" {size.get('unit', '')}"))
    if not rows:
        click.echo(f"no trained models in {root}: run `make reproduce` (or pass --model FOLDER)")
        return
    click.echo(f"trained by `make reproduce PROFILE={paths.current_profile(profile)}` (use the path with --model):")
    width = max(len(r[0]) for r in rows)
    for name, task, size in rows:
        click.echo(f"  {root / name!s:<{width}}  {task:<12} {size.strip()}")
