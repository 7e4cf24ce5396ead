"""Which inputs to label: picks from an unlabeled pool by the pretrained encoder's embeddings.

Labels here cost an eigensolve each and our own solvers compute them on demand, so the
platform can choose *which* inputs get labelled instead of labelling a random draw. The
pick uses only the inputs' embeddings (no label of the pool), so it is fair against random
labelling at the same budget. Two strategies:

- ``typiclust`` (Hacohen et al., "Active learning on a budget", ICML 2022): k-means with as
  many clusters as labels to pick, then from each cluster, largest first, its most *typical*
  point (highest inverse mean distance to its nearest neighbours in the pool). Meant for
  small budgets: it labels dense, representative regions rather than outliers.
- ``kcenter`` (Sener & Savarese, "Active learning for CNNs: a core-set approach", ICLR 2018):
  greedy farthest-point picking, each pick the point farthest from every point picked so
  far. It covers the embedding, outliers included; its picks are nested (the first 50 of a
  100-pick are the 50-pick).

Embeddings are L2-normalised first: contrastive pretraining shapes directions, not lengths.
NumPy only; deterministic for a given seed; the indices returned are distinct.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pool = np.concatenate([rng.normal(-5, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    >>> picked = select("kcenter", pool, 2, seed=0)
    >>> sorted(int(i) // 100 for i in picked)   # one from each cluster
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Neighbours whose mean distance defines a point's typicality (TypiClust's K).
TYPICALITY_NEIGHBOURS = 20
#: Lloyd iterations of TypiClust's k-means (each is one pass of pool × centres distances).
KMEANS_ITERATIONS = 25
#: Pool rows per block of a distance computation (keeps a 20k × 3.2k block under ~250 MB).
_BLOCK = 4096


def _normalised(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(len(x), len(centres)) squared Euclidean distances, computed in row blocks."""
    out = np.empty((len(x), len(centres)))
    c_norm = (centres ** 2).sum(1)
    for start in range(0, len(x), _BLOCK):
        block = x[start : start + _BLOCK]
        out[start : start + _BLOCK] = (block ** 2).sum(1)[:, None] - 2 * block @ centres.T + c_norm[None, :]
    return np.maximum(out, 0.0)


def kcenter_greedy(features: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` pool indices by greedy farthest-point picking, the first one drawn by ``seed``."""
    x = _normalised(features)
    rng = np.random.default_rng(seed)
    picked = [int(rng.integers(len(x)))]
    nearest = ((x - x[picked[0]]) ** 2).sum(1)
    for _ in range(count - 1):
        nearest[picked[-1]] = -1.0  # never pick a point twice, even among exact duplicates
        picked.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ((x - x[picked[-1]]) ** 2).sum(1))
    return np.asarray(picked, dtype=np.int64)


def kmeans(x: np.ndarray, clusters: int, seed: int, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Cluster label of each row of ``x``: k-means++ seeding, then Lloyd iterations."""
    rng = np.random.default_rng(seed)
    centres = [x[int(rng.integers(len(x)))]]
    nearest = ((x - centres[0]) ** 2).sum(1)
    for _ in range(clusters - 1):
        total = nearest.sum()
        choice = int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(x[choice])
        nearest = np.minimum(nearest, ((x - x[choice]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.argmin(_squared_distances(x, c), axis=1)
    for _ in range(iterations):
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        sizes = np.bincount(labels, minlength=clusters)
        filled = sizes > 0
        c[filled] = sums[filled] / sizes[filled, None]  # an emptied centre stays where it was
        new = np.argmin(_squared_distances(x, c), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def typicality(x: np.ndarray, neighbours: int = TYPICALITY_NEIGHBOURS) -> np.ndarray:
    """Inverse mean distance of each row to its ``neighbours`` nearest other rows (a density)."""
    k = min(neighbours, len(x) - 1)
    if k < 1:
        return np.ones(len(x))
    out = np.empty(len(x))
    for start in range(0, len(x), _BLOCK):
        d = _squared_distances(x[start : start + _BLOCK], x)
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf  # not its own neighbour
        nearest = np.partition(d, k - 1, axis=1)[:, :k]
        out[start : start + _BLOCK] = 1.0 / (np.sqrt(nearest).mean(1) + 1e-12)
    return out


def typiclust(features: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` pool indices: the most typical point of each of ``count`` k-means clusters,
    largest cluster first; should k-means leave a cluster empty, the largest clusters give
    their next most typical point."""
    x = _normalised(features)
    labels = kmeans(x, count, seed)
    density = typicality(x)
    by_size = np.argsort(-np.bincount(labels, minlength=count), kind="stable")
    members = [np.flatnonzero(labels == c) for c in by_size]
    members = [m[np.argsort(-density[m], kind="stable")] for m in members if len(m)]
    picked: list[int] = []
    depth = 0
    while len(picked) < count:
        picked += [int(m[depth]) for m in members if depth < len(m)][: count - len(picked)]
        depth += 1
    return np.asarray(picked, dtype=np.int64)


STRATEGIES: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "typiclust": typiclust,
    "kcenter": kcenter_greedy,
}


def select(strategy: str, features: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` distinct indices into ``features`` (one row per pool input) by ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}: allowed values are {', '.join(STRATEGIES)}")
    if not 1 <= count <= len(features):
        raise ValueError(f"cannot pick {count} inputs from a pool of {len(features)}")
    return STRATEGIES[strategy](features, count, seed)
