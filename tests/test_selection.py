"""The label pickers of active labelling (``learning.selection``), on embeddings with known structure."""

from __future__ import annotations

import numpy as np
import pytest

from sibcl_ray.learning.selection import STRATEGIES, kmeans, select, typicality


def _clusters(sizes: tuple[int, ...], seed: int = 0, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Tight blobs around orthogonal directions (distinct after L2 normalisation) and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[: len(sizes)] * 10
    x = np.concatenate([c + rng.normal(0, 0.3, (n, dim)) for c, n in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_selection_is_deterministic_per_seed_and_distinct(strategy: str) -> None:
    x = np.random.default_rng(1).normal(size=(400, 16))
    first, again = select(strategy, x, 40, seed=3), select(strategy, x, 40, seed=3)
    assert np.array_equal(first, again)
    assert len(set(first.tolist())) == 40 and first.min() >= 0 and first.max() < 400
    assert not np.array_equal(first, select(strategy, x, 40, seed=4))  # the seed matters


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_two_clusters_are_both_picked_from(strategy: str) -> None:
    x, cluster = _clusters((300, 30))  # a small cluster a random draw of 4 misses 2 times in 3
    for seed in range(5):
        assert set(cluster[select(strategy, x, 4, seed)]) == {0, 1}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_duplicated_inputs_are_never_picked_twice(strategy: str) -> None:
    x = np.repeat(np.random.default_rng(2).normal(size=(5, 4)), 10, axis=0)  # 5 points, each 10 times
    picked = select(strategy, x, 12, seed=0)
    assert len(set(picked.tolist())) == 12


def test_typiclust_picks_the_densest_point_of_each_cluster() -> None:
    x, cluster = _clusters((200, 200, 200), seed=5)
    x[0] = x[cluster == 0].mean(0) * 3  # an outlier of cluster 0 along its direction: far from its neighbours
    picked = select("typiclust", x, 3, seed=0)
    assert sorted(cluster[picked]) == [0, 1, 2]
    density = typicality(x / np.linalg.norm(x, axis=1, keepdims=True))
    for i in picked:  # among the top tenth of its cluster by density
        own = density[cluster == cluster[i]]
        assert density[i] >= np.quantile(own, 0.9)


def test_kcenter_covers_outliers_and_nests() -> None:
    x, _ = _clusters((500,), seed=6, dim=3)
    x = np.concatenate([x, np.array([[0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])])  # two lone points elsewhere
    picked = select("kcenter", x, 3, seed=0)
    assert {500, 501} <= set(picked.tolist())
    assert np.array_equal(select("kcenter", x, 10, seed=0)[:3], picked)


def test_kmeans_recovers_separated_clusters() -> None:
    x, cluster = _clusters((50, 70, 90), seed=7)
    labels = kmeans(x, 3, seed=0)
    # each found cluster is exactly one true cluster
    assert sorted(len(set(cluster[labels == c])) for c in range(3)) == [1, 1, 1]
    assert sorted(np.bincount(labels).tolist()) == [50, 70, 90]


@pytest.mark.parametrize("count", [0, 11])
def test_a_budget_outside_the_pool_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="pool of 10"):
        select("kcenter", np.zeros((10, 2)), count, seed=0)


def test_an_unknown_strategy_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="kcenter"):
        select("random", np.zeros((10, 2)), 2, seed=0)
