"""What one block of a blockwise run computes, and how the joins between blocks are resolved.

:mod:`neuroseg.segment.blockwise` cuts a volume into blocks and runs these on Dask workers:

- :func:`segment_block_2d` — the 2D route on one block and its halo: 2D segments of every
  slice (:func:`neuroseg.segment.volume_2d.segments_2d`), then slice linking
  (:func:`neuroseg.linking.rules.link_slices`) over the block's slices and the ``max_gap``
  slices after it, so every link whose first slice is in the block is decided here exactly
  as in the whole volume (a link between slices ``z`` and ``z + g`` depends on those slices
  and the ones between them only). Across a y or x face a block keeps only the links whose
  overlap lies mostly in its core, so that each pair is decided once; it decides them on the
  segments it sees, cut at its halo's edge, which is where y-x blocks differ from the whole.
- :func:`segment_block_3d` — the 3D route on one block and its halo: affinities of the 3D
  U-Net, normalised with the whole volume's percentiles, then agglomeration.
- :func:`face_joins` — a block's labels in its halo beyond a y or x face (both routes) or a
  z face (3D route) against the next block's own labels there: pairs that overlap with
  IoU ``>= threshold`` are one object.
- :func:`resolve` — all joins in one table: union-find (connected components), or for the
  learned linker the same mutex watershed the whole-volume linking runs, in the same
  order, so that z-cut blocks give exactly the whole volume's objects.

Every segment has a global ID: its slice (2D route) or block (3D route) owns a fixed range
of IDs, so a block needs no count from any other block and a repeated block writes the
same IDs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["face_joins", "resolve", "segment_block_2d", "segment_block_3d", "touching_pairs"]


def _empty() -> np.ndarray:
    return np.zeros(0, np.uint64)


def touching_pairs(labels: npt.ArrayLike, *, reach: int | None = None) -> np.ndarray:
    """Pairs (k, 2) of labels of one slice that touch or lie at most ``2 * reach`` apart.

    The mutex pairs of the learned linker (:mod:`neuroseg.linking.rules`): 4-neighbours
    after growing every label by ``reach`` pixels (default ``MUTEX_REACH``) into the
    background; each pair once, smaller label first, over every slice of a (z, y, x) stack.

    >>> touching_pairs(np.array([[[1, 1, 0, 2, 0, 0, 0, 0, 0, 3]]])).tolist()
    [[1, 2]]
    """
    from skimage.segmentation import expand_labels

    from neuroseg.linking.rules import MUTEX_REACH

    reach = MUTEX_REACH if reach is None else int(reach)
    arr = np.asarray(labels)
    if (arr == 0).any():
        arr = np.stack([expand_labels(s, distance=reach) for s in arr])
    found = []
    for a, b in ((arr[:, :, :-1], arr[:, :, 1:]), (arr[:, :-1, :], arr[:, 1:, :])):
        m = (a != b) & (a != 0) & (b != 0)
        found.append(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], axis=1))
    pairs = np.concatenate(found).astype(np.uint64)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.uint64)


def slice_global_ids(labels: np.ndarray, bases: Sequence[int]) -> np.ndarray:
    """Every slice's labels as ``bases[z] + rank`` (rank 1.. in the order of the slice's IDs).

    >>> slice_global_ids(np.array([[[5, 0, 9]], [[7, 7, 0]]]), [100, 200]).tolist()
    [[[101, 0, 102]], [[201, 201, 0]]]
    """
    out = np.zeros(labels.shape, np.uint64)
    for z, s in enumerate(labels):
        ids, inv = np.unique(s, return_inverse=True)
        rank = np.arange(ids.size, dtype=np.uint64) + (0 if ids[0] == 0 else 1)
        out[z] = np.where(s != 0, np.uint64(bases[z]) + rank[inv.reshape(s.shape)], 0)
    return out


def segment_block_2d(
    raw: np.ndarray,
    *,
    model,
    core: Sequence[slice],
    bases: Sequence[int],
    resolution: Sequence[float] | None,
    method: str,
    threshold: float,
    linker=None,
    max_gap: int = 1,
    batch_size: int = 8,
    device: str | None = None,
    postprocess: dict | None = None,
    percentiles: np.ndarray | None = None,
) -> dict:
    """The 2D route on one block with its halo (see the module docstring).

    ``raw`` is the block with its halo, ``core`` the block inside it (slices relative to
    ``raw``; the z halo is after the block only), ``bases[z]`` the first global ID of slice
    ``z`` of ``raw``. Returns ``labels`` (the core's global IDs, uint64), ``links``
    (global ID pairs, ``score``, ``linked`` before any mutex), ``mutex`` (touching pairs of
    the core's slices, learned linker only) and ``ext`` (the global IDs of the whole block
    with halo, for :func:`face_joins`). ``percentiles`` (one (low, high) pair per slice of
    ``raw``, from the whole slices) makes the segmenter and the linker normalise each slice of
    the block as they would the whole slice.
    """
    from neuroseg.linking.rules import link_slices, relink
    from neuroseg.segment.volume_2d import segments_2d

    segs = segments_2d(model, raw, resolution=resolution, batch_size=batch_size,
                       device=device, percentiles=percentiles, **(postprocess or {}))
    if percentiles is not None and hasattr(linker, "with_slice_percentiles"):  # the learned linker
        linker = linker.with_slice_percentiles(percentiles)
    gids = slice_global_ids(segs, bases)
    nz = core[0].stop - core[0].start
    learned = method == "learned"
    result = link_slices(segs, raw=raw, method=method, threshold=threshold,
                         linker=linker if learned else None, max_gap=max_gap,
                         resolution=resolution)
    links = result.links
    if learned:  # the linker's decisions before the mutex: the mutex runs on all blocks at once
        links = relink(segs, links, threshold, method="graph").links
    links = links[(links["z_a"].to_numpy() < core[0].stop) & _owned(segs, links, core)]
    ga = _gid_of(segs, gids, links["z_a"].to_numpy(), links["id_a"].to_numpy())
    gb = _gid_of(segs, gids, links["z_b"].to_numpy(), links["id_b"].to_numpy())
    mutex = np.zeros((0, 2), np.uint64)
    if learned:
        mutex = touching_pairs(gids[: core[0].stop])
    return {
        "labels": gids[tuple(core)],
        "links_a": ga, "links_b": gb,
        "score": links["score"].to_numpy(np.float64),
        "linked": links["linked"].to_numpy(bool),
        "mutex": mutex,
        "ext": gids[: nz],
    }


def _owned(segs: np.ndarray, links, core: Sequence[slice]) -> np.ndarray:
    """Which links this block decides: those whose two segments overlap mostly in its core.

    A pair of segments cut by a y or x face is seen by the blocks on both sides, each with
    its own (truncated) view; a pair that lies in the halo only is a stump of the next
    block's. The block in which the centroid of the pair's overlap falls decides the link,
    once, as the whole volume would, from the view that holds most of it.
    """
    keep = np.zeros(len(links), bool)
    if not len(links):
        return keep
    za, zb = links["z_a"].to_numpy(), links["z_b"].to_numpy()
    ia, ib = links["id_a"].to_numpy(np.int64), links["id_b"].to_numpy(np.int64)
    yy, xx = np.indices(segs.shape[1:])
    for a_z, b_z in set(zip(za.tolist(), zb.tolist())):
        a, b = segs[a_z].astype(np.int64), segs[b_z].astype(np.int64)
        both = (a > 0) & (b > 0)
        width = int(b.max()) + 1
        keys, inv = np.unique(a[both] * width + b[both], return_inverse=True)
        count = np.bincount(inv)
        cy, cx = np.bincount(inv, yy[both]) / count, np.bincount(inv, xx[both]) / count
        rows = np.flatnonzero((za == a_z) & (zb == b_z))
        pos = np.searchsorted(keys, ia[rows] * width + ib[rows])
        y, x = np.floor(cy[pos]), np.floor(cx[pos])
        keep[rows] = ((core[1].start <= y) & (y < core[1].stop)
                      & (core[2].start <= x) & (x < core[2].stop))
    return keep


def _gid_of(segs: np.ndarray, gids: np.ndarray, z: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.zeros(z.size, np.uint64)
    for zz in np.unique(z):
        rows = np.flatnonzero(z == zz)
        flat, g = segs[zz].ravel(), gids[zz].ravel()
        order = np.argsort(flat, kind="stable")
        pos = np.searchsorted(flat[order], ids[rows])
        out[rows] = g[order[pos]]
    return out


def segment_block_3d(
    raw: np.ndarray,
    *,
    model,
    core: Sequence[slice],
    base: int,
    percentiles: tuple[float, float],
    method: str,
    threshold: float,
    min_size: int,
    tile: Sequence[int] | None = None,
    device: str | None = None,
) -> dict:
    """The 3D route on one block with its halo: ``labels`` (core, global IDs ``base + id``)
    and ``ext`` (the whole block with halo), normalised by the volume's ``percentiles``."""
    from neuroseg.nets.predict import on_device, predict
    from neuroseg.segment.affinities import agglomerate
    from neuroseg.segment.volume_3d import model_resolution

    meta = model.meta
    lo, hi = percentiles
    image = ((np.asarray(raw, np.float32) - lo) / max(hi - lo, 1e-6)).astype(np.float32)[None]
    tile = tuple(int(t) for t in (tile or meta.get("tile") or raw.shape))
    affs = predict(on_device(model, device), image, tile=tile,
                   overlap=tuple(t // 4 for t in tile), batch_size=1)
    local = agglomerate(affs, method=method, threshold=threshold, min_size=min_size,
                        offsets=meta["offsets"], resolution=model_resolution(meta))
    gids = np.where(local > 0, np.uint64(base) + local.astype(np.uint64), np.uint64(0))
    return {"labels": gids[tuple(core)], "ext": gids}


def face_joins(mine: npt.ArrayLike, theirs: npt.ArrayLike, *, threshold: float = 0.5) -> np.ndarray:
    """Pairs (k, 2) of global IDs that are one object across a block face.

    ``mine`` is a block's labels in its halo beyond the face, ``theirs`` the next block's own
    labels over the same voxels; a pair joins when its IoU there is ``>= threshold``.

    >>> face_joins(np.array([[1, 1, 2, 2, 2]]), np.array([[7, 7, 7, 7, 8]])).tolist()
    [[1, 7]]
    """
    from neuroseg.measure.overlap import contingency, pair_iou

    c = contingency(np.asarray(mine), np.asarray(theirs), ignore_a=0, ignore_b=0)
    if c.counts.size == 0:
        return np.zeros((0, 2), np.uint64)
    _, _, iou = pair_iou(c)
    keep = iou >= threshold
    return np.stack([c.a_ids[keep], c.b_ids[keep]], axis=1).astype(np.uint64)


def resolve(
    present: npt.ArrayLike,
    joins: npt.ArrayLike,
    *,
    links: npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    mutex: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Final IDs ``1..N`` of the global IDs in ``present`` from every join of the run.

    ``joins`` (k, 2) always join (links decided in a block, face joins). ``links`` (m, 2)
    with ``scores`` and ``mutex`` (pairs that must stay apart) are resolved by a mutex
    watershed: ``joins`` first, then ``links`` by decreasing score (ties: lower IDs first),
    each refused when it would put two ``mutex`` IDs in one object — the learned linker's
    rule (:mod:`neuroseg.linking.rules`). Objects are numbered by their smallest ID.
    Returns the sorted unique ``present`` IDs and the final ID of each.

    >>> ids, final = resolve([1, 2, 3, 9], [[1, 9]])
    >>> ids.tolist(), final.tolist()
    ([1, 2, 3, 9], [1, 2, 3, 1])
    >>> resolve([1, 2, 3], [], links=[[1, 2], [2, 3]], scores=[0.9, 0.8],
    ...         mutex=[[1, 3]])[1].tolist()
    [1, 1, 2]
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    present = np.unique(np.asarray(present, np.uint64))
    present = present[present != 0]
    joins = np.asarray(joins, np.uint64).reshape(-1, 2)
    links = np.zeros((0, 2), np.uint64) if links is None else np.asarray(links, np.uint64).reshape(-1, 2)
    mutex = np.zeros((0, 2), np.uint64) if mutex is None else np.asarray(mutex, np.uint64).reshape(-1, 2)
    nodes = np.unique(np.concatenate([present, joins.ravel(), links.ravel(), mutex.ravel()]))
    idx = {"j": np.searchsorted(nodes, joins), "l": np.searchsorted(nodes, links),
           "m": np.searchsorted(nodes, mutex)}
    edges = idx["j"]
    if len(links):
        score = np.asarray(scores, np.float64)
        la, lb = idx["l"][:, 0], idx["l"][:, 1]
        order = np.lexsort((lb, la, -score))
        if len(mutex):
            edges = np.concatenate([edges, _mutex_watershed(nodes.size, idx["j"], idx["l"][order],
                                                            idx["m"])])
        else:
            edges = np.concatenate([edges, idx["l"][order]])
    graph = sparse.coo_array((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])),
                             shape=(nodes.size, nodes.size)).tocsr()
    _, comp = connected_components(graph, directed=False)
    where = np.searchsorted(nodes, present)
    comp_of_present = comp[where]
    # number objects by their smallest present ID (present is sorted)
    _, first = np.unique(comp_of_present, return_index=True)
    rank = np.empty(comp.max() + 1 if comp.size else 0, np.int64)
    rank[comp_of_present[np.sort(first)]] = np.arange(first.size)
    return present, (rank[comp_of_present] + 1).astype(np.uint64)


def _mutex_watershed(n: int, joins: np.ndarray, links: np.ndarray, mutex: np.ndarray) -> np.ndarray:
    """The links (already ordered) that a mutex watershed accepts after ``joins``."""
    import mwatershed

    from neuroseg.checks import native_call

    edges = [(False, int(u), int(v)) for u, v in mutex.tolist()]
    edges += [(True, int(u), int(v)) for u, v in joins.tolist()]
    edges += [(True, int(u), int(v)) for u, v in links.tolist()]
    root = np.arange(n, dtype=np.int64)
    clusters = native_call(mwatershed.cluster, edges, what="blockwise linking (mwatershed.cluster)")
    mapping = np.asarray(clusters, dtype=np.int64).reshape(-1, 2)
    if mapping.size:
        root[mapping[:, 0]] = mapping[:, 1]
    return links[root[links[:, 0]] == root[links[:, 1]]].reshape(-1, 2)
