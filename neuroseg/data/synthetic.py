"""Small generated data with known answers, for unit tests and examples.

- :func:`nuclei_2d` — touching bright discs on a dark background (DSB-like), with labels.
- :func:`neurites_3d` — a dense 3D labelling of tube-like neurites that drift through z,
  with dark membranes between them in the raw (EM-like), optionally one branching neurite.

Everything is driven by ``seed``; same seed, same arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def nuclei_2d(
    shape: tuple[int, int] = (64, 64),
    *,
    n: int = 6,
    radius: tuple[float, float] = (5.0, 9.0),
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs (some touching) on a dark background.

    Returns
    -------
    image : float32 array in [0, 1]
    labels : uint16 array, 0 = background, 1..n = nuclei (a later disc wins overlaps)

    Examples
    --------
    >>> image, labels = nuclei_2d((32, 32), n=3, seed=1)
    >>> image.shape, bool(labels.max() <= 3)
    ((32, 32), True)
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    yy, xx = np.indices(shape)
    k = 0
    for _ in range(n):
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r, shape[0] - r), rng.uniform(r, shape[1] - r)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        k += 1
        labels[disc] = k
    # drop labels that were fully painted over, keep IDs consecutive
    present = np.unique(labels[labels > 0])
    lut = np.zeros(int(labels.max()) + 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    labels = lut[labels]
    brightness = rng.uniform(0.6, 1.0, size=int(labels.max()) + 1)
    brightness[0] = 0.1
    image = ndi.gaussian_filter(brightness[labels].astype(np.float32), 1.0)
    image = image + rng.normal(0, noise, size=shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32), labels


def neurites_3d(
    shape: tuple[int, int, int] = (16, 48, 48),
    *,
    n: int = 8,
    drift: float = 0.6,
    branch: bool = False,
    membrane: float = 0.35,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A dense 3D labelling of neurites running through z, and an EM-like raw volume.

    Each neurite has a centre that drifts smoothly from slice to slice (reflected at the
    borders); every voxel of a slice belongs to the nearest centre (a Voronoi partition), so
    the labelling is dense. Pieces of an ID cut off from its largest 3D component (where a
    thin cell shifts between slices) are given to the neighbouring IDs, so every ID is one
    connected 3D object. With ``branch=True`` neurite 1 gets a second centre in
    the upper half of the volume that moves gradually away from the first (it branches; in
    slices where another neurite comes between the two, neurite 1 shows as two pieces). Membranes (voxels on a boundary between IDs)
    are dark in the raw.

    Returns
    -------
    raw : float32 (z, y, x) in [0, 1]
    labels : uint32 (z, y, x), IDs 1..n, no 0

    Examples
    --------
    >>> raw, labels = neurites_3d((4, 24, 24), n=3, seed=0)
    >>> raw.shape == labels.shape, int(labels.min()) >= 1
    (True, True)
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    start = rng.uniform([0, 0], [ny, nx], size=(n, 2))
    velocity = rng.normal(0, drift, size=(n, 2))
    centres = start[None] + velocity[None] * np.arange(nz)[:, None, None]  # (z, n, 2)
    size = np.array([ny, nx], float) - 1
    centres = size - np.abs(np.mod(centres, 2 * size) - size)  # reflect at the borders
    ids = np.arange(1, n + 1)
    if branch:  # a second centre of neurite 1 moves away from the first above nz // 2
        ramp = np.clip((np.arange(nz) - nz // 2 + 1) / max(nz // 4, 1), 0, 1)[:, None]
        extra = centres[:, 0] + ramp * np.array([ny / 3.0, nx / 3.0])
        extra = size - np.abs(np.mod(extra, 2 * size) - size)
        centres = np.concatenate([centres, extra[:, None]], axis=1)
        ids = np.append(ids, 1)
    yy, xx = np.indices((ny, nx))
    labels = np.empty(shape, np.uint32)
    for z in range(nz):
        d = (yy[None] - centres[z, :, 0, None, None]) ** 2 + (
            xx[None] - centres[z, :, 1, None, None]
        ) ** 2
        labels[z] = ids[np.argmin(d, axis=0)]
    labels = _keep_largest_components(labels)
    from skimage.segmentation import find_boundaries

    boundary = np.stack([find_boundaries(s, mode="inner") for s in labels])
    raw = 0.75 - membrane * boundary + rng.normal(0, noise, size=shape)
    raw = ndi.gaussian_filter(raw, (0, 0.7, 0.7))
    return np.clip(raw, 0, 1).astype(np.float32), labels


def _keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """Give every voxel outside its ID's largest 6-connected component to the nearest kept voxel."""
    import cc3d

    labels = labels.copy()
    for _ in range(10):
        comps = cc3d.connected_components(labels, connectivity=6)
        comp_ids, comp_sizes = np.unique(comps, return_counts=True)
        owner = np.zeros(int(comp_ids.max()) + 1, labels.dtype)
        owner[comps.ravel()] = labels.ravel()
        order = np.lexsort((-comp_sizes, owner[comp_ids]))
        first = np.ones(len(order), bool)
        first[1:] = owner[comp_ids[order]][1:] != owner[comp_ids[order]][:-1]
        kept = np.zeros(len(owner), bool)
        kept[comp_ids[order][first]] = True
        keep = kept[comps]
        if keep.all():
            break
        _, index = ndi.distance_transform_edt(~keep, return_indices=True)
        labels = labels[tuple(index)]
    return labels
