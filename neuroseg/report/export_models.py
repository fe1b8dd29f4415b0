"""``make export-models``: the trained models of a profile become the package's shipped models.

Run as ``python -m neuroseg.report.export_models --profile full`` after the steps that train
them. Each model is scored on its validation data *with its weights rounded to half precision*
(as shipped), and that score, the validation data and the command that rebuilds it go into the
registry (:mod:`neuroseg.nets.shipped`), so that anyone can check a shipped model against its
record (:func:`rescore`; ``tests/test_shipped_models.py`` does, where the data is present).

What is shipped, where it comes from, and how it is scored:

- ``nucleus``: ``10_nucleus_pretraining``'s ``nucleus_unet``; mean AP@0.5 over the DSB 2018
  validation images (their IDs are recorded);
- ``soma``: ``20_neuron_finetuning``'s ``soma_unet``; object accuracy tp/(tp+fp+fn) at IoU 0.5
  over the neurofinder validation tiles (their regions are recorded);
- ``axon_sem`` and ``axon_tem``: ``50_axon_myelin``'s reported model of each modality; mean
  Dice over the axon/myelin classes, on the test images where that model was refitted on the
  training and validation images (as 50 does), else on the validation images;
- ``em_2d`` and ``em_linker``: the fair fight's 2D winner (``45_front_2d_vs_3d``: the 2D
  setting with the best validation CREMI at 40 nm among the post-processings chosen there) and
  its learned linker, calibrated on that network's own segments at 40 and 10 nm; both scored
  by the CREMI score of the 2D route (network, post-processing, linker) on the FIB-25
  validation part at 40 nm (lower is better);
- ``em_3d_40nm`` and ``em_3d_10nm``: the 3D winner at each z spacing (best validation CREMI),
  with its chosen agglomeration stored; CREMI of the 3D route on the validation part at that
  spacing.

The 2D ones (``nucleus``, ``soma``, ``axon_*``, ``em_2d``, ``em_linker``) are also written as bioimage.io model
packages (:mod:`neuroseg.report.bioimageio_export`), each passing bioimageio.core's model test.

A model whose step has not run is left out with a message. The EM validation part is the
FIB-25 region recorded beside the model (subsampled from slice 0).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from neuroseg import paths

__all__ = ["export_all", "export_axons", "export_soma", "half_rounded", "rescore", "score"]

FRONT_STEP = "45_front_2d_vs_3d"
SHIPPED_CSV = "shipped_models.csv"


def half_rounded(model):
    """A copy of ``model`` whose floating-point weights are rounded to float16 and back: what
    the shipped (half-precision) file gives when loaded."""
    import copy

    import torch

    out = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(out.parameters()) + list(out.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return out


# --------------------------------------------------------------------------------------------
# scorers: one per kind of validation record
# --------------------------------------------------------------------------------------------


def _score_nucleus(model, split: Mapping, *, linker=None) -> float:
    from neuroseg.experiments import nucleus_pretraining as nuc

    samples = nuc.load_part("val", subset=split.get("subset", "all"), ids=split["ids"])
    probs = nuc.predict_probabilities(model, samples, tile=int(split.get("tile", 256)))
    preds = nuc.segment_probabilities(probs, dict(model.meta.get("postprocess") or {}))
    _, summary = nuc.evaluate(samples, preds, prefix="val_")
    return float(summary["val_ap50"])


def _val_volume(split: Mapping):
    from neuroseg.data.em_volumes import fib25_region

    vol = fib25_region(split["region"], max_slices=split.get("max_slices"), max_yx=split.get("max_yx"))
    return vol.subsampled(float(split["z_nm"]))


def _score_route_2d(model, split: Mapping, *, linker=None) -> float:
    from neuroseg.linking.learned import load_linker
    from neuroseg.measure.voi_rand import cremi_score
    from neuroseg.segment.volume_2d import segment_volume_2d

    linker = linker if linker is not None else load_linker(split["linker"])
    sub = _val_volume(split)
    labels = segment_volume_2d(model, sub.raw, linker=linker, resolution=sub.resolution, device="cpu")
    return float(cremi_score(sub.gt, labels))


def _score_route_3d(model, split: Mapping, *, linker=None) -> float:
    from neuroseg.measure.voi_rand import cremi_score
    from neuroseg.segment.volume_3d import segment_volume_3d

    sub = _val_volume(split)
    labels = segment_volume_3d(model, sub.raw, resolution=sub.resolution, device="cpu")
    return float(cremi_score(sub.gt, labels))


def _score_soma(model, split: Mapping, *, linker=None) -> float:
    from neuroseg.data.soma_tiles import load_soma_tiles
    from neuroseg.experiments.neuron_finetuning import soma_accuracy

    samples = load_soma_tiles("val", image=split["image"], regions=split["regions"])
    return soma_accuracy(model, samples, scale=float(split["scale"]), tile=int(split["tile"]))


def _score_axon(model, split: Mapping, *, linker=None) -> float:
    from neuroseg.experiments.axon_myelin import dice_mean, load_samples

    samples = load_samples(split["modality"], split["part"], ids=split["ids"])
    return dice_mean(model, samples, tile=split.get("tile"))


SCORERS = {"nucleus_ap50": _score_nucleus, "route_2d_cremi": _score_route_2d,
           "route_3d_cremi": _score_route_3d, "soma_accuracy": _score_soma,
           "axon_dice_mean": _score_axon}


def score(model, split: Mapping, *, linker=None) -> float:
    """The validation score of ``model`` on the record ``split`` (``split["scorer"]`` names
    how, one of :data:`SCORERS`)."""
    kind = split.get("scorer")
    if kind not in SCORERS:
        raise ValueError(f"unknown scorer {kind!r}; one of {sorted(SCORERS)}")
    return SCORERS[kind](model, split, linker=linker)


def rescore(entry: Mapping, *, shipped: str | os.PathLike | None = None) -> float:
    """Score the shipped model of registry ``entry`` again on its recorded validation data."""
    from neuroseg.linking.learned import read_linker
    from neuroseg.nets.shipped import load_model, shipped_folder

    split = dict(entry["val_split"])
    if entry["name"] == split.get("linker"):  # the linker is scored with its 2D network
        linker = read_linker(shipped_folder(entry["name"], shipped))
        model = load_model(split["network"], shipped=shipped)
    else:
        model = load_model(entry["name"], shipped=shipped)
        linker = read_linker(shipped_folder(split["linker"], shipped)) if "linker" in split else None
    return score(model, split, linker=linker)


# --------------------------------------------------------------------------------------------
# the export
# --------------------------------------------------------------------------------------------


def _front_winners(profile: str, device: str) -> dict:
    """The front's best settings by validation (:func:`neuroseg.experiments.front_2d_vs_3d.winners`)."""
    from neuroseg.experiments.front_2d_vs_3d import winners

    path = paths.metrics_dir(profile) / f"{FRONT_STEP}_{device}_choices.csv"
    return winners(pd.read_csv(path)) if path.is_file() else {}


def export_all(profile: str | None = None, *, dest: str | os.PathLike | None = None,
               device: str = "cpu", write_table: bool = True, bioimageio: bool = True) -> pd.DataFrame:
    """Export every trained model of ``profile`` that exists (see the module docstring) into
    ``dest`` (default: the package's shipped models), and write
    ``reports[/<profile>]/metrics/shipped_models.csv`` and (``bioimageio``) each 2D model as a
    bioimage.io package in ``reports[/<profile>]/bioimageio/`` (tested with bioimageio.core's
    model test). Returns the table."""
    import tempfile

    from neuroseg.data import splits
    from neuroseg.data.em_slices import FIB25
    from neuroseg.experiments import nucleus_pretraining as nuc
    from neuroseg.io import write_csv
    from neuroseg.linking.learned import load_linker, save_linker
    from neuroseg.nets.folder import load_model, save_model
    from neuroseg.nets.shipped import export_model, shipped_table
    from neuroseg.pipeline import notebook_parameters

    profile = paths.current_profile(profile)
    models = paths.models_dir(profile)
    make = f"make {{}} PROFILE={profile}"
    done = []
    bio_inputs = {}  # test inputs of the 2D models' bioimage.io packages

    nucleus = models / "nucleus_unet"
    if (nucleus / "config.json").is_file():
        p10 = notebook_parameters("10_nucleus_pretraining", profile)
        samples = nuc.load_part("val", subset=p10["subset"], max_images=p10.get("max_val_images"),
                                profile=profile)
        ids = [s.id for s in samples]
        split = {"scorer": "nucleus_ap50", "dataset": nuc.DATASET, "ids": ids,
                 "subset": p10["subset"], "tile": int(p10.get("tile", 256))}
        value = score(half_rounded(load_model(nucleus)), split)
        export_model(nucleus, "nucleus", task="nuclei: foreground + contour (2D fluorescence)",
                     origin=_origin(nucleus),
                     val_metric="AP@0.5 (higher is better)", val_value=value,
                     val_data=f"DSB 2018 validation images ({len(ids)})",
                     rebuild=make.format("10_nucleus_pretraining"), dest=dest, val_split=split)
        done.append("nucleus")
        bio_inputs["nucleus"] = samples[0].image[None, :256, :256]
    else:
        print(f"nucleus: {nucleus} not trained; run `{make.format('10_nucleus_pretraining')}`")

    done += export_soma(profile, models, make, dest, bio_inputs)
    done += export_axons(profile, models, make, dest, bio_inputs)

    winners = _front_winners(profile, device)
    front = models / "front"
    if winners:
        params = _front_params(profile)
        region = splits.load_split(FIB25, profile=profile)["parts"]["val"][0]
        base = {"region": dict(region), "max_slices": params.get("max_slices"),
                "max_yx": params.get("max_yx")}
        rebuild = make.format(FRONT_STEP) + " && " + make.format("export-models")
        w2 = winners["2d"]
        post2 = w2["postprocess"]
        net2 = load_model(front / w2["setting"])
        net2.meta = {**net2.meta, "postprocess": post2}
        linker = load_linker(front / "linker")
        volumes = _volumes(profile, params)
        from neuroseg.segment.front_routes import calibrate_for

        for z in (40.0, 10.0):
            linker, _ = calibrate_for(linker, net2, volumes, z_nm=z, postprocess=post2, device="cpu")
        split2 = {**base, "scorer": "route_2d_cremi", "z_nm": 40.0, "linker": "em_linker",
                  "network": "em_2d"}
        value = score(half_rounded(net2), split2,
                      linker=type(linker)(half_rounded(linker.network), linker.calibrations))
        with tempfile.TemporaryDirectory() as tmp:
            save_linker(linker, Path(tmp) / "linker")
            save_model(net2, Path(tmp) / "em_2d", meta=net2.meta)
            _copy_history(front / "linker", Path(tmp) / "linker")
            _copy_history(front / w2["setting"], Path(tmp) / "em_2d")
            common = dict(val_metric="CREMI of the 2D route at 40 nm (lower is better)",
                          val_value=value, val_data="FIB-25 validation part, every 4th slice",
                          rebuild=rebuild, dest=dest)
            export_model(Path(tmp) / "em_2d", "em_2d", origin=_origin(front / w2["setting"]),
                         task=f"EM 2D: {w2['setting']} ({post2})", val_split=split2,
                         meta={"front_setting": w2["setting"]}, **common)
            export_model(Path(tmp) / "linker", "em_linker", origin=_origin(front / "linker"),
                         task="EM: learned slice linker (z-affinities, calibrated for em_2d at 40 and 10 nm)",
                         val_split=split2, **common)
        done += ["em_2d", "em_linker"]
        val = volumes["val"].raw
        bio_inputs["em_2d"] = val[0, :256, :256][None]
        bio_inputs["em_linker"] = np.stack([val[0, :256, :256], val[min(4, len(val) - 1), :256, :256]])
        for key, w3 in winners.items():
            if not key.startswith("3d_"):
                continue
            z = float(w3["z_nm"])
            post3 = w3["postprocess"]
            folder = front / f"{w3['setting']}_{z:g}nm"
            net3 = load_model(folder)
            net3.meta = {**net3.meta, "postprocess": post3}
            split3 = {**base, "scorer": "route_3d_cremi", "z_nm": z}
            value = score(half_rounded(net3), split3)
            name = f"em_3d_{z:g}nm"
            with tempfile.TemporaryDirectory() as tmp:
                save_model(net3, Path(tmp) / name, meta=net3.meta)
                _copy_history(folder, Path(tmp) / name)
                export_model(Path(tmp) / name, name, origin=_origin(folder),
                             task=f"EM 3D affinities at {z:g} nm: {w3['setting']} ({post3})",
                             val_metric=f"CREMI of the 3D route at {z:g} nm (lower is better)",
                             val_value=value, val_data=f"FIB-25 validation part at {z:g} nm",
                             rebuild=rebuild, dest=dest, val_split=split3,
                             meta={"front_setting": w3["setting"]})
            done.append(name)
    else:
        print(f"em_2d, em_linker, em_3d_*: no front yet; run `{make.format(FRONT_STEP)}`")

    table = shipped_table(dest, relative_to=paths.notebooks_dir().parent if dest is None else None)
    if write_table:
        write_csv(table, paths.metrics_dir(profile) / SHIPPED_CSV)
    if bioimageio:
        from neuroseg.report.bioimageio_export import check_package, export_bioimageio

        folder = paths.reports_dir(profile) / "bioimageio"
        for name, image in bio_inputs.items():
            package = export_bioimageio(name, out_dir=folder, test_input=image, shipped=dest)
            status, failed = check_package(package)
            print(f"{package}: bioimageio.core test {status}" + (f" ({', '.join(failed)})" if failed else ""))
    print(f"exported: {', '.join(done) or 'nothing'}")
    return table


def export_soma(profile: str, models: Path, make: str, dest, bio_inputs: dict) -> list[str]:
    """``soma``: 20's ``soma_unet``, scored by object accuracy on the validation tiles."""
    from neuroseg.data.soma_tiles import load_soma_tiles
    from neuroseg.nets.folder import load_model
    from neuroseg.nets.shipped import export_model
    from neuroseg.pipeline import notebook_parameters

    step = "20_neuron_finetuning"
    folder = models / "soma_unet"
    if not (folder / "config.json").is_file():
        print(f"soma: {folder} not trained; run `{make.format(step)}`")
        return []
    params = notebook_parameters(step, profile)
    samples = load_soma_tiles("val", image=params["soma_image"], profile=profile)
    split = {"scorer": "soma_accuracy", "image": params["soma_image"],
             "scale": float(params["soma_scale"]), "tile": int(params["tile"]),
             "regions": [s.meta["region"] for s in samples]}
    value = score(half_rounded(load_model(folder)), split)
    export_model(folder, "soma", task="somata: foreground + contour (2P summary image, neurofinder)",
                 origin=_origin(folder), val_split=split,
                 val_metric="object accuracy tp/(tp+fp+fn) at IoU 0.5 (higher is better)",
                 val_value=value, val_data=f"neurofinder validation tiles ({len(samples)})",
                 rebuild=make.format(step) + " && " + make.format("export-models"), dest=dest)
    bio_inputs["soma"] = samples[0].image[None, :256, :256]
    return ["soma"]


def export_axons(profile: str, models: Path, make: str, dest, bio_inputs: dict) -> list[str]:
    """``axon_sem`` and ``axon_tem``: 50's reported model of each modality (the candidate
    chosen on validation, refitted on training + validation images where 50 refits), scored
    by mean Dice over the non-background classes: on the validation images, or on the test
    images when the refit has trained on the validation images."""
    from neuroseg.experiments.axon_myelin import load_samples
    from neuroseg.nets.folder import load_model
    from neuroseg.nets.shipped import export_model
    from neuroseg.pipeline import notebook_parameters

    step = "50_axon_myelin"
    table_path = paths.metrics_dir(profile) / f"{step}_comparison.csv"
    if not table_path.is_file():
        print(f"axon_sem, axon_tem: no {table_path.name}; run `{make.format(step)}`")
        return []
    table = pd.read_csv(table_path)
    params = notebook_parameters(step, profile)
    done = []
    for row in table[table["final"]].itertuples():
        folder = models / f"axon_myelin_{row.modality}" / str(row.setting)
        if not (folder / "config.json").is_file():
            print(f"axon_{row.modality}: {folder} missing; run `{make.format(step)}`")
            continue
        part = "test" if row.train_on == "train+val" else "val"
        samples = load_samples(row.modality, part, profile=profile)
        ids = [s.id for s in samples]
        split = {"scorer": "axon_dice_mean", "modality": row.modality, "part": part, "ids": ids,
                 "tile": params.get("tile")}
        value = score(half_rounded(load_model(folder)), split)
        why = " (the refit trained on the validation images)" if part == "test" else ""
        name = f"axon_{row.modality}"
        export_model(folder, name, task=f"axon/myelin {row.modality.upper()}: {row.name}",
                     origin=_origin(folder), val_split=split,
                     val_metric="mean Dice over the axon/myelin classes (higher is better)",
                     val_value=value,
                     val_data=f"AxonDeepSeg {row.modality.upper()} {part} images ({len(ids)}){why}",
                     rebuild=make.format(step) + " && " + make.format("export-models"), dest=dest)
        bio_inputs[name] = samples[0].image[None, :256, :256]
        done.append(name)
    return done


def _origin(folder: Path) -> str:
    """A trained model folder's path as the registry records it: relative to the repository."""
    root = paths.notebooks_dir().parent.resolve()
    folder = Path(folder).resolve()
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


def _copy_history(src: Path, dst: Path) -> None:
    import shutil

    if (Path(src) / "history.csv").is_file():
        shutil.copy2(Path(src) / "history.csv", Path(dst) / "history.csv")


def _front_params(profile: str) -> dict:
    from neuroseg.pipeline import notebook_parameters

    return notebook_parameters(FRONT_STEP, profile)


def _volumes(profile: str, params: Mapping) -> dict:
    from neuroseg.data import em_volumes

    return em_volumes.load_volumes(max_slices=params.get("max_slices"), max_yx=params.get("max_yx"),
                                   profile=profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(paths.PROFILES), default=None)
    parser.add_argument("--device", default="cpu", help="whose front to take the winners from")
    args = parser.parse_args(argv)
    export_all(args.profile, device=args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
